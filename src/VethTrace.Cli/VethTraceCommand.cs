using System.CommandLine;
using System.Runtime.InteropServices;
using System.CommandLine.Parsing;
using VethTrace.Capture.Filters;
using VethTrace.Capture.Live;
using VethTrace.Tracing;
using VethTrace.Cli.Commands;
using VethTrace.Packets;
using VethTrace.Text;

namespace VethTrace.Cli;

/// <summary>The command tree. Handlers take writers and return an <see cref="ExitCode"/>, so tests need no process.</summary>
public static class VethTraceCommand
{
    public static ExitCode Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = Build(output, error);
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            return ReportUsageErrors(root, parsed, error);
        }
        return (ExitCode)parsed.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    /// <summary>One line per problem, then a hint: no stack trace, no wall of help text.</summary>
    private static ExitCode ReportUsageErrors(RootCommand root, ParseResult parsed, TextWriter error)
    {
        if (parsed.CommandResult.Command == root)
        {
            // No subcommand recognised: System.CommandLine says both "required command" and "unrecognized"; one line is enough.
            string commands = string.Join(", ", root.Subcommands.Select(c => c.Name));
            string? unknown = parsed.UnmatchedTokens.FirstOrDefault() ?? parsed.Tokens.FirstOrDefault()?.Value;
            error.WriteLine(TerminalText.Escape(unknown is null
                ? $"vethtrace: no command given; the commands are {commands}"
                : unknown.StartsWith('-') ? $"vethtrace: unknown option '{unknown}'" : $"vethtrace: unknown command '{unknown}'; the commands are {commands}"));
            error.WriteLine("Try 'vethtrace --help'.");
            return ExitCode.Usage;
        }
        foreach (ParseError parseError in parsed.Errors)
        {
            // Messages quote the command line, which may hold a name pasted from a capture.
            error.WriteLine(TerminalText.Escape($"vethtrace: {parseError.Message}"));
        }
        error.WriteLine($"Try 'vethtrace {parsed.CommandResult.Command.Name} --help'.");
        return ExitCode.Usage;
    }

    /// <summary>
    /// The process entry: like <see cref="Run"/>, but asynchronous, so SIGINT (Ctrl-C), SIGTERM and SIGHUP become
    /// cancellation; follow and record then stop capturing, record closes its file, and both print their final report.
    /// </summary>
    public static async Task<ExitCode> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var root = Build(output, error);
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            return ReportUsageErrors(root, parsed, error);
        }
        // Ctrl-C and SIGTERM cancel the command instead of killing the process: the handles stop and the final
        // report is printed. A second signal, while that is under way, is left to its default action.
        // Only follow and record watch for cancellation; replay, packets and bench keep the signals' default action
        // (a swallowed Ctrl-C would leave them running to the end).
        bool stoppable = parsed.CommandResult.Command.Name is "follow" or "record";
        using var stop = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            if (stoppable && !stop.IsCancellationRequested)
            {
                context.Cancel = true;
                stop.Cancel();
            }
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        // A closed terminal (SIGHUP) stops a recording the same way, with its file complete, instead of killing it.
        using var hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Cancel);
        var configuration = new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null };
        return (ExitCode)await parsed.InvokeAsync(configuration, stop.Token);
    }

    public static RootCommand Build(TextWriter output, TextWriter error)
    {
        var root = new RootCommand(
            "VethTrace: follow a container's packets across its eth0, its veth, the bridge, NAT and the host's egress, " +
            "and see where the time went.\n\n" +
            "Replay and packets read capture files and need no privilege; follow, record and interfaces need root (CAP_NET_RAW, " +
            "CAP_NET_ADMIN, CAP_SYS_ADMIN) and the Docker socket. Exit codes: 0 success, 1 command line, 2 input file, " +
            "3 container or Docker, 4 capture could not start.\n\nExamples:\n" +
            "  vethtrace replay captures/masquerade-multi.pcapng\n" +
            "  vethtrace packets captures/masquerade-multi.pcapng --by-fingerprint\n" +
            "  vethtrace follow web --duration 10s\n" +
            "  vethtrace record web -o web.pcapng --duration 30s\n" +
            "  vethtrace interfaces\n" +
            "  vethtrace bench");
        root.Subcommands.Add(BuildFollow(output, error, record: false));
        root.Subcommands.Add(BuildFollow(output, error, record: true));
        root.Subcommands.Add(BuildInterfaces(output, error));
        root.Subcommands.Add(BuildReplay(output, error));
        root.Subcommands.Add(BuildPackets(output, error));
        root.Subcommands.Add(BuildBench(output, error));
        VersionText.Attach(root);
        return root;
    }

    private static Argument<string[]> FilesArgument()
    {
        var files = new Argument<string[]>("files")
        {
            Description = "pcap or pcapng files (gzip-compressed is fine)",
            Arity = ArgumentArity.OneOrMore,
        };
        files.Validators.Add(result =>
        {
            // System.CommandLine hands an unknown "--option" to a string argument; say what it is.
            foreach (string file in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (file.Length > 1 && file[0] == '-')
                {
                    result.AddError($"unknown option '{file}' (a file whose name starts with '-' can be given as ./{file})");
                }
            }
        });
        return files;
    }

    /// <summary>--filter, compiled while the command line is checked: a typo is a usage error before anything starts.</summary>
    private static Option<string?> FilterOption(string description)
    {
        var filter = new Option<string?>("--filter", "-F") { Description = description };
        filter.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } expression)
            {
                using var compiled = PacketFilter.TryCreate(expression, out string? problem);
                if (compiled is null)
                {
                    result.AddError($"--filter '{expression}' does not compile: {problem}");
                }
            }
        });
        return filter;
    }

    private static Option<int> VxlanPortOption()
    {
        var vxlanPort = new Option<int>("--vxlan-port")
        {
            Description = "UDP port that carries VXLAN; 0 turns decapsulation off",
            DefaultValueFactory = _ => 4789,
        };
        vxlanPort.Validators.Add(result =>
        {
            int value = result.GetValueOrDefault<int>();
            if (value is < 0 or > 65535)
            {
                result.AddError($"--vxlan-port must be between 0 and 65535; got {value}");
            }
        });
        return vxlanPort;
    }

    private static Option<string[]> IfnameOption()
    {
        var ifname = new Option<string[]>("--ifname")
        {
            Description = "Name an interface known only by its index (Linux cooked v2, tcpdump -i any): INDEX=NAME, repeatable",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        ifname.Validators.Add(result =>
        {
            foreach (string text in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (InterfaceNames.TryParseMapping(text, []) is { } problem)
                {
                    result.AddError(problem);
                }
            }
        });
        return ifname;
    }

    private static Dictionary<int, string> InterfaceMap(ParseResult parseResult, Option<string[]> ifname)
    {
        var map = new Dictionary<int, string>();
        foreach (string text in parseResult.GetValue(ifname) ?? [])
        {
            InterfaceNames.TryParseMapping(text, map);
        }
        return map;
    }

    private static Command BuildPackets(TextWriter output, TextWriter error)
    {
        var files = FilesArgument();
        var byFingerprint = new Option<bool>("--by-fingerprint", "-g")
        {
            Description = "Group packets by their NAT-invariant fingerprint: one packet's copies on several interfaces stand together, with the time since the first copy",
        };
        var count = new Option<long?>("--count", "-c")
        {
            Description = "Stop after this many packets (default: all)",
        };
        count.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long?>() is <= 0)
            {
                result.AddError("--count must be a positive number");
            }
        });
        var vxlanPort = VxlanPortOption();
        var ifname = IfnameOption();

        var command = new Command("packets", "Print every packet of the captures, parsed, with its NAT-invariant fingerprint.\n\nExamples:\n" +
            "  vethtrace packets captures/masquerade-multi.pcapng --by-fingerprint\n" +
            "  vethtrace packets captures/any-sll2.pcap --ifname 5=docker0 -c 20")
        {
            files, byFingerprint, count, vxlanPort, ifname,
        };
        command.SetAction(parseResult =>
        {
            var settings = new PacketsCommand.Settings(
                parseResult.GetValue(files) ?? [],
                parseResult.GetValue(byFingerprint),
                parseResult.GetValue(count) ?? long.MaxValue,
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                InterfaceMap(parseResult, ifname));
            return (int)PacketsCommand.Execute(settings, output, error);
        });
        return command;
    }

    private static Option<ReplayCommand.Format> FormatOption(string description) => new("--format", "-f")
    {
        Description = description,
        DefaultValueFactory = _ => ReplayCommand.Format.Table,
    };

    /// <summary>A positive duration (500ms, 1s, 250us), given as text and parsed by <see cref="Durations"/> in the action.</summary>
    private static Option<string> DurationOption(string name, string alias, string description, string defaultValue, string examples)
    {
        var option = new Option<string>(name, alias)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
        };
        option.Validators.Add(result =>
        {
            string text = result.GetValueOrDefault<string>() ?? "";
            if (Durations.TryParseNanoseconds(text, out long ns) is not null || ns <= 0)
            {
                result.AddError($"{name} expects a positive duration such as {examples}; got '{text}'");
            }
        });
        return option;
    }

    private static Command BuildBench(TextWriter output, TextWriter error)
    {
        var file = new Argument<string?>("file")
        {
            Description = "A pcap or pcapng file (default: the shipped bulk capture, captures/bulk-iperf3.pcap)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var format = FormatOption("table (for people) or json (JSON Lines: one bench record per parser)");
        var duration = DurationOption("--duration", "-d",
            "How long to measure (both parsers share it, alternating); a fifth of it again is spent warming up first: 3s, 500ms, or a bare number of seconds", "3s", "3s, 500ms or 3");
        var vxlanPort = VxlanPortOption();
        var command = new Command("bench", "Parse a capture's packets in a loop with VethTrace's parser and with PacketDotNet, side by side on the " +
            "same packets in one run, and print Mpps, ns and bytes allocated per packet, and the ratio.\n\nExamples:\n" +
            "  vethtrace bench\n" +
            "  vethtrace bench captures/masquerade-multi.pcapng --duration 5s --format json")
        {
            file, format, duration, vxlanPort,
        };
        command.SetAction(parseResult =>
        {
            Durations.TryParseNanoseconds(parseResult.GetValue(duration) ?? "3s", out long ns);
            var settings = new BenchCommand.Settings(
                parseResult.GetValue(file),
                parseResult.GetValue(format),
                TimeSpan.FromTicks(ns / 100),
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) });
            return (int)BenchCommand.Execute(settings, output, error);
        });
        return command;
    }

    private static Command BuildReplay(TextWriter output, TextWriter error)
    {
        var files = FilesArgument();
        var format = FormatOption("table (for people) or json (JSON Lines: summary, hop, nat, loss, path, segmentation and tunnel records)");
        var window = DurationOption("--window", "-w",
            "How long after its first sighting a packet may still reach another hop: 250ms, 1s, 1500us, or a bare number of seconds (0.5)", "1s", "500ms, 1s, 250us or 0.5");
        var egress = new Option<string?>("--egress")
        {
            Description = "The host's egress interface, when its name does not say so (e.g. --egress eth0 on a host whose uplink is eth0)",
        };
        var filter = FilterOption("A pcap-filter expression (as for tcpdump), compiled by libpcap; a packet is traced when any of its copies on any hop matches, so 'host 172.17.0.2' follows it past NAT");
        var vxlanPort = VxlanPortOption();
        var ifname = IfnameOption();

        var command = new Command("replay", "Match each packet's copies across the captured hops (container eth0, veth, bridge, NAT, egress) " +
            "and report the paths, per-hop latency, NAT mappings and where lost packets were last seen.\n\nExamples:\n" +
            "  vethtrace replay captures/masquerade-multi.pcapng\n" +
            "  vethtrace replay captures/masquerade-multi.pcapng --filter 'icmp and host 172.17.0.2'\n" +
            "  vethtrace replay eth0.pcap veth1eae2a7.pcap docker0.pcap vt-up0.pcap --format json\n" +
            "  vethtrace replay captures/any-sll2.pcap --ifname 11=docker0 --ifname 12=vt-up0 --ifname 14=veth1eae2a7\n" +
            "  vethtrace replay captures/replay/overlay-vxlan.pcapng   (VXLAN between two hosts: matched by the inner packet)")
        {
            files, format, window, filter, egress, vxlanPort, ifname,
        };
        command.SetAction(parseResult =>
        {
            Durations.TryParseNanoseconds(parseResult.GetValue(window) ?? "1s", out long windowNs);
            var settings = new ReplayCommand.Settings(
                parseResult.GetValue(files) ?? [],
                parseResult.GetValue(format),
                windowNs,
                parseResult.GetValue(egress),
                parseResult.GetValue(filter),
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                InterfaceMap(parseResult, ifname));
            return (int)ReplayCommand.Execute(settings, output, error);
        });
        return command;
    }

    private static Command BuildFollow(TextWriter output, TextWriter error, bool record)
    {
        var file = new Option<string>("--output", "-o")
        {
            Description = "The pcapng file to write: one Interface Description Block per hop (if_name, if_description with its role, nanosecond timestamps)",
            Required = true,
        };
        var target = new Argument<string?>("target")
        {
            Description = "A container name or ID prefix, netns:<name> or pid:<n>",
            Arity = ArgumentArity.ZeroOrOne,
        };

        var hops = new Option<string[]>("--hop")
        {
            Description = "Capture this interface as a hop: IFACE, or IFACE@/path/to/netns for one inside a namespace; repeatable. Alone, the hops (in path order) replace a target; beside a target they are added to its path (another container's veth for east-west traffic)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var egress = new Option<string?>("--egress")
        {
            Description = "The host's egress interface (default: the device of the default route)",
        };
        var duration = new Option<string?>("--duration", "-d")
        {
            Description = "Stop after this long: 10s, 500ms, or a bare number of seconds (12, 0.5); default: until Ctrl-C",
        };
        duration.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } text && (Durations.TryParseNanoseconds(text, out long ns) is not null || ns <= 0))
            {
                result.AddError($"--duration expects a positive duration such as 10s, 500ms or 12 (seconds); got '{text}'");
            }
        });
        var format = new Option<ReplayCommand.Format>("--format", "-f")
        {
            Description = "table (for people) or json (JSON Lines: a summary record a second, then the final report)",
            DefaultValueFactory = _ => ReplayCommand.Format.Table,
        };
        var filter = FilterOption("A pcap-filter expression applied by libpcap on every hop");
        var snapLength = new Option<int?>("--snaplen", "-s")
        {
            Description = $"Bytes kept of each packet (libpcap's snapshot length). follow keeps {FollowCommand.FollowSnapLength}, enough for every header " +
                "it matches on (VXLAN, IPv6 extension headers and TCP options included) and far less to copy at line rate; record keeps " +
                $"whole packets ({FollowCommand.RecordSnapLength}), like tcpdump: under bulk TCP those are 64 KiB GSO/GRO super-packets, hundreds of MB a second; " +
                $"-s {FollowCommand.FollowSnapLength} keeps all that replay needs",
        };
        snapLength.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is { } value && value is < 64 or > FollowCommand.RecordSnapLength)
            {
                result.AddError($"--snaplen must be between 64 and {FollowCommand.RecordSnapLength}; got {value}");
            }
        });
        var bufferSize = new Option<int?>("--buffer-size", "-B")
        {
            Description = $"The libpcap ring per hop, in KiB, as tcpdump -B (default {LiveCapture.DefaultBufferBytes / 1024}); when it fills, the kernel drops packets and follow counts them",
        };
        bufferSize.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is { } value && value is < 64 or > 1024 * 1024)
            {
                result.AddError($"--buffer-size must be between 64 and {1024 * 1024} KiB; got {value}");
            }
        });
        var all = new Option<bool>("--all")
        {
            Description = "When the container stops, keep waiting for it to come back (as long as the capture lasts) instead of ending after 15 s",
        };
        var vxlanPort = VxlanPortOption();
        var recordFiles = new RecordFileOptions();
        var command = record
            ? new Command("record", "Capture on every hop of a container's path, like follow, and write every packet to one multi-interface " +
                "pcapng that 'vethtrace replay' reads back into the same report.\n\nExamples:\n" +
                "  vethtrace record web -o web.pcapng --duration 30s\n" +
                "  vethtrace record web -o web.pcapng --egress vt-up0 --filter 'tcp port 80'\n" +
                "  vethtrace record web -o web.pcapng -C 100 -W 10   (a ring of ten files of at most 100 MB: web0.pcapng to web9.pcapng)\n" +
                "  vethtrace record web -o web.pcapng -s 128   (headers only: enough for replay, and far smaller under bulk TCP)\n\n" +
                "The file is flushed every half second and when a signal (SIGINT, SIGTERM, SIGHUP) stops the recording, so a crash " +
                "or kill -9 loses at most the last half second; a write error (a full disk) stops the recording with one line and exit 4, " +
                "the file cut back to its last whole packet.")
            {
                target, file, hops, egress, duration, format, filter, snapLength, bufferSize, all, vxlanPort,
            }
            : new Command("follow", "Capture on every hop of a container's path at once (its eth0 inside its namespace, its veth, " +
                "the bridge, the egress) and show the path latency as it happens.\n\nExamples:\n" +
                "  vethtrace follow web --duration 10s\n" +
                "  vethtrace follow web --egress vt-up0 --format json\n" +
                "  vethtrace follow netns:upstream --duration 5s\n" +
                "  vethtrace follow --hop eth0@/proc/1234/ns/net --hop veth1eae2a7 --hop docker0 --hop eth0\n" +
                "  vethtrace follow web --hop vethd4e5f6 --hop eth0@/proc/5678/ns/net   (east-west: add the peer's hops)\n" +
                "  vethtrace follow --hop eth0@/run/netns/c1 --hop vxlan1@/run/netns/h1 --hop wire1@/run/netns/h1 ...   (an overlay, across hosts)")
            {
                target, hops, egress, duration, format, filter, snapLength, bufferSize, all, vxlanPort,
            };
        if (record)
        {
            recordFiles.AddTo(command);
        }
        command.Validators.Add(result =>
        {
            // As for files: System.CommandLine hands an unknown "--option" to the argument. No container name starts with '-'.
            if (result.GetValue(target) is { Length: > 1 } text && text[0] == '-')
            {
                result.AddError($"unknown option '{text}'");
            }
            else if (result.GetValue(target) is null && (result.GetValue(hops) ?? []).Length == 0)
            {
                result.AddError("follow needs a target (a container, netns:<name> or pid:<n>) or --hop interfaces");
            }
        });
        command.SetAction(async (parseResult, cancel) =>
        {
            // Up front, before Docker is asked anything: every hop needs CAP_NET_RAW and CAP_NET_ADMIN. Whether
            // CAP_SYS_ADMIN is needed too (setns) is known once the target is resolved; FollowCommand checks that.
            if (Capabilities.Missing(entersNamespaces: false) is { } missing)
            {
                error.WriteLine($"vethtrace: {missing}");
                return (int)ExitCode.CaptureFailed;
            }
            var resolved = await ResolveHopsAsync(parseResult.GetValue(target), parseResult.GetValue(hops), parseResult.GetValue(egress),
                parseResult.GetValue(format) == ReplayCommand.Format.Json, output, error, cancel);
            if (resolved.Exit is { } exit)
            {
                return (int)exit;
            }
            var (hopTargets, description) = (resolved.Hops!, resolved.Description!);
            long? durationNs = null;
            if (parseResult.GetValue(duration) is { } text)
            {
                Durations.TryParseNanoseconds(text, out long ns);
                durationNs = ns;
            }
            var settings = new FollowCommand.Settings(hopTargets, description, parseResult.GetValue(format),
                durationNs is { } n ? TimeSpan.FromTicks(n / 100) : null, 1_000_000_000, parseResult.GetValue(filter),
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                record ? parseResult.GetValue(file) : null,
                Terminal: ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected,
                Reresolve: parseResult.GetValue(target) is { } name
                    ? token => WithExtraHops(LiveTargets.ResolveAsync(name, parseResult.GetValue(egress), token).GetAwaiter().GetResult().Hops,
                        (parseResult.GetValue(hops) ?? []).Select(ParseHop).ToList())
                    : null,
                WaitForever: parseResult.GetValue(all),
                SnapLength: parseResult.GetValue(snapLength) ?? (record ? FollowCommand.RecordSnapLength : FollowCommand.FollowSnapLength),
                BufferBytes: (parseResult.GetValue(bufferSize) ?? LiveCapture.DefaultBufferBytes / 1024) * 1024,
                Rotation: record ? recordFiles.Read(parseResult) : null);
            return (int)FollowCommand.Execute(settings, output, error, cancel);
        });
        return command;
    }

    private static Command BuildInterfaces(TextWriter output, TextWriter error)
    {
        var command = new Command("interfaces", "List the host's bridges and veths with the containers they belong to (name, IP, network mode), " +
            "and the egress: the answer to \"which veth is my container?\".\n\nExamples:\n  vethtrace interfaces\n" +
            "  DOCKER_HOST=unix:///run/user/1000/docker.sock vethtrace interfaces   (a rootless Docker's socket)");
        command.SetAction(async (parseResult, cancel) =>
        {
            try
            {
                var listing = await VethTrace.Capture.Topology.HostInterfaces.ListAsync(VethTrace.Capture.Docker.DockerClient.FromEnvironment(), cancel);
                listing.Format(output);
                return (int)ExitCode.Success;
            }
            catch (VethTrace.Capture.Docker.DockerException e)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
                return (int)ExitCode.ContainerUnavailable;
            }
            catch (VethTrace.Capture.Topology.TopologyException e)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
                return (int)ExitCode.CaptureFailed;
            }
        });
        return command;
    }

    private sealed record ResolvedHops(IReadOnlyList<HopTarget>? Hops, string? Description, ExitCode? Exit);

    /// <summary>The hops of a target (through Docker or the namespace), or the --hop list; prints failures itself.</summary>
    private static async Task<ResolvedHops> ResolveHopsAsync(string? target, string[]? hops, string? egress, bool json, TextWriter output, TextWriter error, CancellationToken cancel)
    {
        List<HopTarget> extra = (hops ?? []).Select(ParseHop).ToList();
        if (target is null)
        {
            return new ResolvedHops(extra, "hops given on the command line", null);
        }
        try
        {
            LiveTargets.Resolution resolution = await LiveTargets.ResolveAsync(target, egress, cancel);
            if (resolution.Topology.Shape == VethTrace.Capture.Topology.TopologyShape.NoNetwork || resolution.Hops.Count == 0)
            {
                // Nothing to capture (none mode): say why, in the stream's own form, and end successfully.
                output.WriteLine(json
                    ? FollowCommand.StartRecord(resolution.Description, [])
                    : TerminalText.Escape(resolution.Description));
                return new ResolvedHops(null, null, ExitCode.Success);
            }
            // --hop beside a target adds hops to its path: the other container's veth for east-west traffic, say.
            return new ResolvedHops(WithExtraHops(resolution.Hops, extra), resolution.Description, null);
        }
        catch (VethTrace.Capture.Docker.DockerException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
            return new ResolvedHops(null, null, ExitCode.ContainerUnavailable);
        }
        catch (VethTrace.Capture.Topology.TopologyException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
            return new ResolvedHops(null, null, ExitCode.ContainerUnavailable);
        }
    }

    private static List<HopTarget> WithExtraHops(IReadOnlyList<HopTarget> resolved, List<HopTarget> extra) =>
        [.. resolved, .. extra.Where(e => !resolved.Any(r => r.Interface == e.Interface && r.NetworkNamespace == e.NetworkNamespace))];

    private static HopTarget ParseHop(string text)
    {
        int at = text.IndexOf('@');
        string name = at < 0 ? text : text[..at];
        string? netns = at < 0 ? null : text[(at + 1)..];
        // A hop in the host's namespace is never the container's own side, whatever its name (eth0 is often the
        // uplink); inside a namespace the name says it (eth0 the container's side, vethX a veth, br-X a bridge: the
        // hosts of the overlay lab are namespaces too).
        InterfaceRole byName = InterfaceRoles.FromName(name);
        InterfaceRole role = netns is null && byName == InterfaceRole.Container ? InterfaceRole.Egress : byName;
        return new HopTarget(name, netns, role, netns is null ? name : $"{name}@{NamespaceLabel(netns)}");
    }

    /// <summary>How a hop's namespace is shown: the PID of /proc/PID/ns/net, else the file's name (ip netns names).</summary>
    internal static string NamespaceLabel(string netns)
    {
        string[] parts = netns.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts is ["proc", var pid, "ns", ..] ? pid : parts.Length > 0 ? parts[^1] : netns;
    }
}
