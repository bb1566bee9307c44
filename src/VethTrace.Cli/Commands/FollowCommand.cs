using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Cli.Metrics;
using VethTrace.Cli.Output;
using VethTrace.Packets;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace follow &lt;container&gt;</c>: captures on every hop of the container's path at once (its eth0 from inside
/// its namespace, its veth, the bridge, the egress) and shows the path latency as it happens, then a final report
/// as replay prints it. Interface names, the container's description and error messages come from the kernel, libpcap
/// and Docker: every line that carries one is escaped (<see cref="TerminalText"/>) where it is printed.
/// </summary>
public static class FollowCommand
{
    /// <summary>The <c>follow</c> command, or with <paramref name="record"/> the <c>record</c> command: arguments and options, parsed into <see cref="Settings"/>.</summary>
    public static Command Build(TextWriter output, TextWriter error, bool record)
    {
        var file = new Option<string>("--output", "-o")
        {
            Description = "The pcapng file to write: one Interface Description Block per hop (if_name, if_description with its role, nanosecond timestamps)",
            Required = true,
        };
        var target = new Argument<string[]>("target")
        {
            Description = "A container name or ID prefix, netns:<name> or pid:<n>; several containers: those (through the whole-host engine); " +
                "none (and no --hop): the whole host, every bridge, every veth on one and the egress, containers attached as they start",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var network = new Option<string?>("--network")
        {
            Description = "Follow the containers of this Docker network (by name), with any containers named, through the whole-host engine",
        };
        var focus = new Option<string?>("--container")
        {
            Description = "Whole-host follow: the live view also shows this container's path view under the per-container table",
        };

        var hops = new Option<string[]>("--hop")
        {
            Description = "Capture this interface as a hop: IFACE, or IFACE@/path/to/netns for one inside a namespace; repeatable. Alone, the hops (in path order) replace a target; beside a target they are added to its path (another container's veth for east-west traffic)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var egress = new Option<string?>("--egress")
        {
            Description = "The host's egress interface: captured as a hop and given the egress role, as replay's --egress gives it (default for a target: the device of the default route; with --hop alone, the hop of that name, added when missing)",
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
        var filter = CommonOptions.Filter(record
            ? "A pcap-filter expression handed to libpcap on every hop: only what it matches is captured and written (as tcpdump -w)"
            : "A pcap-filter expression (as for tcpdump), as replay's --filter: every hop is captured, and a packet is traced when any of its copies on any hop matches, so 'host 172.17.0.2' follows it past NAT");
        var window = CommonOptions.Window();
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
            Description = $"The libpcap ring per hop, in KiB, as tcpdump -B (default {LiveCapture.DefaultBufferBytes / 1024}; the whole host's one 'any' ring: {HostCapture.DefaultBufferBytes / 1024}); when it fills, the kernel drops packets and follow counts them. " +
                $"Each hop's ring is read empty, then left to fill for {LiveCapture.GatherMs} ms (at once again when a read found an eighth of it full), so a capture thread wakes per batch, not per packet; the capture and matching threads run under SCHED_IDLE, on CPU time the traffic they observe leaves, back at follow's own priority while a ring fills or the matching falls behind (with CAP_SYS_NICE, as root)",
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
        var vxlanPort = CommonOptions.VxlanPort();
        var flowTimeout = CommonOptions.FlowTimeout();
        var natDetail = CommonOptions.NatDetail();
        var role = CommonOptions.Role();
        var sample = CommonOptions.Sample();
        var engine = CommonOptions.Engine();
        var html = CommonOptions.Html("when the run ends (--duration, Ctrl-C or the container gone)");
        var recordFiles = new RecordFileOptions();
        var prometheus = new PrometheusOptions();
        var command = record
            ? new Command("record", "Capture on every hop of a container's path, like follow, and write every packet to one multi-interface " +
                "pcapng that 'vethtrace replay' reads back into the same report. With no target, the whole host (as follow with no target): " +
                "one Interface Description Block per interface, its role and container in if_description, so replay gives the per-container " +
                "report with no --ifname.\n\nExamples:\n" +
                "  vethtrace record -o host.pcapng --duration 60s   (the whole host)\n" +
                "  vethtrace record web -o web.pcapng --duration 30s\n" +
                "  vethtrace record web -o web.pcapng --egress vt-up0 --filter 'tcp port 80'\n" +
                "  vethtrace record web -o web.pcapng -C 100 -W 10   (a ring of ten files of at most 100 MB: web0.pcapng to web9.pcapng)\n" +
                "  vethtrace record web -o web.pcapng -s 128   (headers only: enough for replay, and far smaller under bulk TCP)\n\n" +
                "The file is flushed every half second and when a signal (SIGINT, SIGTERM, SIGHUP) stops the recording, so a crash " +
                "or kill -9 loses at most the last half second; a write error (a full disk) stops the recording with one line and exit 4, " +
                "the file cut back to its last whole packet.")
            {
                target, file, hops, egress, duration, format, filter, window, snapLength, bufferSize, all, vxlanPort, role, engine, network,
            }
            : new Command("follow", "Capture on every hop of a container's path at once (its eth0 inside its namespace, its veth, " +
                "the bridge, the egress) and show the path latency as it happens.\n\n" +
                "With no target, the whole host: every bridge (docker0, br-*), every veth on one and the egress, through one 'any' " +
                "handle; containers that start are attached within a second and those that stop are detached with their figures kept " +
                "(each change printed with its time). The view is one row per container, worst first, like docker stats; the report " +
                "and --format json add a container record per container and a container field on hop, path, nat and loss records. " +
                "Several targets, or --network NAME, follow just those containers the same way.\n\nExamples:\n" +
                "  vethtrace follow --egress vt-up0   (the whole host)\n" +
                "  vethtrace follow web db --duration 30s --format json\n" +
                "  vethtrace follow --network backend --container db\n" +
                "  vethtrace follow web --duration 10s\n" +
                "  vethtrace follow web --egress vt-up0 --format json\n" +
                "  vethtrace follow netns:upstream --duration 5s\n" +
                "  vethtrace follow --hop eth0@/proc/1234/ns/net --hop veth1eae2a7 --hop docker0 --hop eth0\n" +
                "  vethtrace follow web --hop vethd4e5f6 --hop eth0@/proc/5678/ns/net   (east-west: add the peer's hops)\n" +
                "  vethtrace follow --hop eth0@/run/netns/c1 --hop vxlan1@/run/netns/h1 --hop wire1@/run/netns/h1 ...   (an overlay, across hosts)\n" +
                "  vethtrace follow web --duration 60s --html web.html   (the final report also as a page to open in a browser)\n" +
                "  vethtrace follow web --prometheus 9417 --quiet   (an agent: /metrics on 127.0.0.1:9417 for Prometheus, docs/prometheus.md)\n" +
                "  vethtrace follow --prometheus 9417 --quiet   (the whole host as an agent: every container's series with its container label)")
            {
                target, hops, egress, duration, format, filter, window, snapLength, bufferSize, all, vxlanPort, role, flowTimeout, natDetail, sample, html, engine,
                network, focus,
            };
        if (record)
        {
            recordFiles.AddTo(command);
        }
        else
        {
            prometheus.AddTo(command);
        }
        command.Validators.Add(result =>
        {
            // As for files: System.CommandLine hands an unknown "--option" to the argument. No container name starts with '-'.
            string[] targets = result.GetValue(target) ?? [];
            if (targets.FirstOrDefault(t => t is { Length: > 1 } && t[0] == '-') is { } text)
            {
                // Alone, it is an option follow does not know; after a target, what System.CommandLine says of an extra token.
                result.AddError(targets[0] == text ? $"unknown option '{text}'" : $"Unrecognized command or argument '{text}'.");
            }
            else if ((targets.Length > 1 || result.GetValue(network) is not null) && targets.Any(t => t.Contains(':', StringComparison.Ordinal)))
            {
                result.AddError("several targets (or --network) are containers only; netns:<name> and pid:<n> are followed one at a time");
            }
            else if ((targets.Length != 1 || result.GetValue(network) is not null) && (result.GetValue(hops) ?? []).Length > 0 && (targets.Length > 0 || result.GetValue(network) is not null))
            {
                result.AddError("--hop goes with one target or none; several targets and --network use the whole-host engine");
            }
            else if (WholeHostFollow.Applies(targets, result.GetValue(hops), result.GetValue(network))
                && NotYetWholeHost(result) is { Count: > 0 } given)
            {
                // Said, not ignored: the whole-host engine (no target, several targets, --network) does not take these yet.
                result.AddError($"{string.Join(", ", given)} {(given.Count == 1 ? "works" : "work")} with one target (or --hop) only, not yet with the whole-host engine (no target, several targets or --network)");
            }
        });
        List<string> NotYetWholeHost(System.CommandLine.Parsing.CommandResult result)
        {
            var given = new List<string>();
            foreach (Option option in (Option[])[html, sample])
            {
                if (result.GetResult(option) is { Implicit: false })
                {
                    given.Add(option.Name);
                }
            }
            return given;
        }
        command.SetAction(async (parseResult, cancel) =>
        {
            // Up front, before Docker is asked anything: every hop needs CAP_NET_RAW and CAP_NET_ADMIN. Whether
            // CAP_SYS_ADMIN is needed too (setns) is known once the target is resolved; FollowCommand checks that.
            if (VethTrace.Capture.Live.Capabilities.Missing(entersNamespaces: false) is { } missing)
            {
                error.WriteLine($"vethtrace: {missing}");
                return (int)ExitCode.CaptureFailed;
            }
            string[] targets = parseResult.GetValue(target) ?? [];
            if (WholeHostFollow.Applies(targets, parseResult.GetValue(hops), parseResult.GetValue(network)))
            {
                return (int)WholeHostFollow.Execute(WholeHostSettings(parseResult, record), output, error, cancel);
            }
            string? single = targets.Length == 1 ? targets[0] : null;
            var resolved = await LiveTargets.ResolveHopsAsync(single, parseResult.GetValue(hops), parseResult.GetValue(egress),
                parseResult.GetValue(format) == ReplayCommand.Format.Json, output, error, cancel, parseResult.GetValue(engine));
            if (resolved.Exit is { } exit)
            {
                return (int)exit;
            }
            var (hopTargets, description) = (resolved.Hops!, resolved.Description!);
            bool terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
            PrometheusSettings? metrics = record ? null : prometheus.Read(parseResult,
                PrometheusOptions.ContainersOf(hopTargets, resolved.Container, LiveTargets.ParseHops(parseResult.GetValue(hops), parseResult.GetValue(egress))));
            var settings = new FollowCommand.Settings(hopTargets, description, parseResult.GetValue(format),
                DurationOf(parseResult), CommonOptions.WindowNs(parseResult, window), parseResult.GetValue(filter),
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                record ? parseResult.GetValue(file) : null,
                Terminal: terminal,
                Reresolve: single is { } name
                    ? token => LiveTargets.Reresolve(name, parseResult.GetValue(hops), parseResult.GetValue(egress), token, parseResult.GetValue(engine) ?? resolved.Engine)
                    : null,
                WaitForever: parseResult.GetValue(all),
                SnapLength: parseResult.GetValue(snapLength) ?? (record ? FollowCommand.RecordSnapLength : FollowCommand.FollowSnapLength),
                BufferBytes: (parseResult.GetValue(bufferSize) ?? LiveCapture.DefaultBufferBytes / 1024) * 1024,
                Rotation: record ? recordFiles.Read(parseResult) : null)
            {
                FlowTimeouts = record ? FlowTimeouts.Default : CommonOptions.FlowTimeoutsOf(parseResult, flowTimeout),
                NatDetail = !record && parseResult.GetValue(natDetail),
                HtmlPath = record ? null : parseResult.GetValue(html),
                Roles = CommonOptions.RoleMap(parseResult, role),
                Sample = record ? 1 : CommonOptions.SampleOf(parseResult.GetValue(sample)) ?? 1,
                Prometheus = metrics,
                Quiet = !record && Quiet(parseResult, metrics, terminal),
            };
            return (int)FollowCommand.Execute(settings, output, error, cancel);
        });
        return command;

        // --duration, already validated: the capture's length, or null (until Ctrl-C).
        TimeSpan? DurationOf(ParseResult parseResult)
        {
            if (parseResult.GetValue(duration) is not { } text)
            {
                return null;
            }
            Durations.TryParseNanoseconds(text, out long ns);
            return TimeSpan.FromTicks(ns / 100);
        }

        WholeHostFollow.Settings WholeHostSettings(ParseResult parseResult, bool recording)
        {
            bool terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
            // No hop list: every container's label comes from the veths the run attaches.
            PrometheusSettings? metrics = recording ? null : prometheus.Read(parseResult, []);
            return new WholeHostFollow.Settings(parseResult.GetValue(target) ?? [], parseResult.GetValue(network), parseResult.GetValue(egress),
                parseResult.GetValue(format), DurationOf(parseResult), CommonOptions.WindowNs(parseResult, window),
                parseResult.GetValue(filter), new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                recording ? parseResult.GetValue(file) : null, recording ? recordFiles.Read(parseResult) : null,
                Terminal: terminal,
                SnapLength: parseResult.GetValue(snapLength) ?? (recording ? FollowCommand.RecordSnapLength : FollowCommand.FollowSnapLength),
                BufferBytes: parseResult.GetValue(bufferSize) is { } kib ? kib * 1024 : HostCapture.DefaultBufferBytes)
            {
                FlowTimeouts = recording ? FlowTimeouts.Default : CommonOptions.FlowTimeoutsOf(parseResult, flowTimeout),
                NatDetail = !recording && parseResult.GetValue(natDetail),
                Roles = CommonOptions.RoleMap(parseResult, role),
                Focus = recording ? null : parseResult.GetValue(focus),
                Engine = parseResult.GetValue(engine),
                Prometheus = metrics,
                Quiet = !recording && Quiet(parseResult, metrics, terminal),
            };
        }

        // An agent: --quiet, or serving metrics to no terminal with no output format asked for.
        bool Quiet(ParseResult parseResult, PrometheusSettings? metrics, bool terminal) =>
            parseResult.GetValue(prometheus.Quiet) || metrics is not null && !terminal && parseResult.GetResult(format) is null or { Implicit: true };
    }

    public sealed record Settings(
        IReadOnlyList<HopTarget> Hops,
        string Description,
        ReplayCommand.Format OutputFormat,
        TimeSpan? Duration,
        long WindowNs,
        string? Filter,
        ParserOptions Parser,
        string? RecordPath = null,
        bool Terminal = false,
        Func<CancellationToken, IReadOnlyList<HopTarget>>? Reresolve = null,
        bool WaitForever = false,
        int SnapLength = FollowSnapLength,
        int BufferBytes = LiveCapture.DefaultBufferBytes,
        RotationOptions? Rotation = null)
    {
        /// <summary>Idle timeouts of per-flow state (<c>--flow-timeout</c>).</summary>
        public FlowTimeouts FlowTimeouts { get; init; } = FlowTimeouts.Default;

        /// <summary>Every NAT translation, not only the aggregate (<c>--nat-detail</c>).</summary>
        public bool NatDetail { get; init; }

        /// <summary>--role: roles given by interface name, over the topology's.</summary>
        public IReadOnlyDictionary<string, InterfaceRole> Roles { get; init; } = new Dictionary<string, InterfaceRole>();

        /// <summary>--sample 1/N: N.</summary>
        public int Sample { get; init; } = 1;
        /// <summary>--html: where to write the final report as a page too.</summary>
        public string? HtmlPath { get; init; }

        /// <summary>--prometheus: serve /metrics while following (<see cref="FollowAgent"/>).</summary>
        public PrometheusSettings? Prometheus { get; init; }

        /// <summary>No live view and no progress lines (--quiet, or an agent).</summary>
        public bool Quiet { get; init; }
    }

    /// <summary>
    /// What follow keeps of each packet: the deepest header stack it parses (outer Ethernet + IPv6 + UDP + VXLAN,
    /// then an inner Ethernet + IPv6 with extension headers + TCP with 40 bytes of options) plus the 8 payload bytes
    /// of the fingerprint fits in 256. Copying 64 KiB TSO super-packets into the ring at line rate is what a full
    /// snapshot would cost.
    /// </summary>
    public const int FollowSnapLength = 256;

    /// <summary>What record keeps: whole packets, as tcpdump and dumpcap do.</summary>
    public const int RecordSnapLength = 262_144;

    /// <summary>How long follow waits for a stopped container to come back (a restart) before it ends, without --all.</summary>
    public static readonly TimeSpan RestartWait = TimeSpan.FromSeconds(15);

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error, CancellationToken cancel)
    {
        if (VethTrace.Capture.Live.Capabilities.Missing(settings.Hops.Any(h => h.NetworkNamespace is not null)) is { } missing)
        {
            error.WriteLine($"vethtrace: {missing}");
            return ExitCode.CaptureFailed;
        }
        // follow filters in the session, as replay does: a journey is kept when any of its copies matches, so a filter on
        // a container's address keeps the copies NAT rewrote (libpcap on each hop would drop them). record hands the
        // expression to libpcap instead: its file holds what tcpdump -w would write with it.
        using HtmlReportFile? html = settings.HtmlPath is null ? null : HtmlReportFile.Create(settings.HtmlPath, error);
        if (settings.HtmlPath is not null && html is null)
        {
            return ExitCode.CaptureFailed;
        }
        bool recording = settings.RecordPath is not null;
        using PacketFilter? filter = recording || settings.Filter is null ? null : PacketFilter.TryCreate(settings.Filter, out _);
        // The route lookup for losses (issue 14 §1): the host's routes to the egress hops captured in this namespace.
        using HostEgressRoutes? routes = HostEgressRoutes.TryCreate(settings.Hops
            .Where(h => h.NetworkNamespace is null && (settings.Roles.TryGetValue(h.Interface, out InterfaceRole given) ? given : h.Role) == InterfaceRole.Egress)
            .Select(h => h.Interface));
        var session = new TraceSession(new TraceSessionOptions
        {
            WindowNs = settings.WindowNs, Roles = settings.Roles, Parser = settings.Parser, Filter = filter, FlowTimeouts = settings.FlowTimeouts,
            NatDetail = settings.NatDetail, Sample = settings.Sample, EgressRoutes = routes,
        });
        LiveCapture live;
        try
        {
            live = new LiveCapture(settings.Hops, session, recording ? settings.Filter : null, settings.SnapLength, settings.BufferBytes);
        }
        catch (LiveCaptureException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
            return ExitCode.CaptureFailed;
        }
        catch (SharpPcap.PcapException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {Permissions.Explain(e.Message)}"));
            return ExitCode.CaptureFailed;
        }
        using (live)
        using (RecordingSink? recorder = settings.RecordPath is null ? null
            : RecordingSink.Create(settings.RecordPath, settings.Rotation ?? RotationOptions.None, live, settings.Hops, settings.Description, settings.SnapLength, error))
        {
            if (recording && recorder is null)
            {
                return ExitCode.CaptureFailed;
            }
            live.Sink = recorder;
            using FollowAgent? agent = settings.Prometheus is { } served ? FollowAgent.Start(served, session, error) : null;
            if (settings.Prometheus is not null && agent is null)
            {
                return ExitCode.CaptureFailed;
            }
            IReadOnlyList<string> names = session.Interfaces.Names;
            bool json = settings.OutputFormat == ReplayCommand.Format.Json;
            if (!json)
            {
                output.WriteLine(TerminalText.Escape(settings.Description));
                output.WriteLine("opening " + string.Join(", ", TerminalText.EscapeAll(names)) + (settings.Duration is { } d ? $" for {d.TotalSeconds:0.#} s" : "; Ctrl-C to stop"));
            }
            live.Start();
            if (json)
            {
                // Tells a consumer (or a test) that every handle is capturing from here on.
                output.WriteLine(StartRecord(settings.Description, names));
            }
            else
            {
                output.WriteLine("capturing.");
            }
            output.Flush();
            var clock = Stopwatch.StartNew();
            if (settings.Quiet)
            {
                while (Tick(settings, live, clock, cancel, error) && recorder?.Failure is null)
                {
                    agent?.Update(live);
                }
            }
            else if (settings.Terminal && !json)
            {
                // A terminal gets the live view, redrawn in place; anything else gets one plain line a second.
                AnsiConsole.Live(new Markup("starting…")).AutoClear(false).Start(context =>
                {
                    while (Tick(settings, live, clock, cancel, error) && recorder?.Failure is null)
                    {
                        agent?.Update(live);
                        context.UpdateTarget(LiveView.Render(settings.Description, clock.Elapsed, session.Report(), names, session.Interfaces.RoleOf, live.Statistics(), session.Interfaces));
                    }
                });
            }
            else
            {
                while (Tick(settings, live, clock, cancel, error) && recorder?.Failure is null)
                {
                    agent?.Update(live);
                    WriteProgress(output, json, clock.Elapsed, live);
                }
            }
            live.Stop();
            // The file is complete before the report is built: a second signal, or a kill while the report is
            // printed, finds it closed.
            recorder?.Dispose();
            if (recorder?.Failure is { } failure)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {recorder.FailedPath}: {failure.Message}; recording stopped " +
                    "(the file ends at the last whole packet written)"));
            }
            CorrelationReport report = session.Report();
            IReadOnlyList<HopStatistics> statistics = live.Statistics();
            // The endpoint's last figures are the final report's (served until follow exits).
            agent?.Update(live, report, statistics);
            long kernelDropped = statistics.Sum(h => Math.Max(0, h.KernelDropped));
            if (kernelDropped > 0)
            {
                // A packet the capture dropped is missing from its journey like one the network dropped: say so.
                error.WriteLine($"vethtrace: the kernel dropped {kernelDropped} packets before VethTrace could read them (capture buffer full); " +
                    "journeys reported lost may have been lost by the capture, not the network: " +
                    // follow filters in the engine, after the capture, so only record's --filter (libpcap's) lightens it.
                    (recorder is null ? "lower --snaplen or raise --buffer-size" : "narrow --filter, lower --snaplen"));
            }
            if (live.LatePackets > 0)
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"vethtrace: {live.LatePackets} packets came more than {LiveCapture.OrderSlackNs / 1_000_000} ms out of time order (at most {live.OutOfOrderMaxNs / 1e6:0.###} ms): their journeys may have been matched without them"));
            }
            if (json)
            {
                ReplayJson.Write(output, report, names, session.Interfaces);
                foreach (HopStatistics hop in statistics)
                {
                    output.WriteLine(TerminalText.EscapeJson(string.Create(CultureInfo.InvariantCulture,
                        $"{{\"type\":\"capture\",\"interface\":{JsonSerializer.Serialize(hop.DisplayName, CliJsonContext.Default.String)},\"packets\":{hop.Packets},\"kernel_dropped\":{hop.KernelDropped},\"interface_dropped\":{hop.InterfaceDropped}}}")));
                }
            }
            else
            {
                output.WriteLine();
                ReplayTable.Write(output, report, names, session.Interfaces.RoleOf, session.Interfaces);
                output.WriteLine();
                output.WriteLine("Capture (packets seen, dropped by the kernel)");
                foreach (HopStatistics hop in statistics)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {TerminalText.Escape(hop.DisplayName),-30}{hop.Packets,10}{hop.KernelDropped,10} dropped"));
                }
            }
            if (html is not null)
            {
                if (!html.Write(report, names, session.Interfaces, new HtmlReportContext(settings.Description, "follow") { Capture = statistics }, error))
                {
                    return ExitCode.CaptureFailed;
                }
                if (!json)
                {
                    output.WriteLine();
                    output.WriteLine(TerminalText.Escape($"HTML report written to {html.Path}"));
                }
            }
            if (recorder is not null && !json)
            {
                output.WriteLine();
                output.WriteLine(TerminalText.Escape(recorder.Summary(settings.Hops.Count)));
            }
            return recorder?.Failure is null ? ExitCode.Success : ExitCode.CaptureFailed;
        }
    }

    /// <summary>
    /// <c>record</c>: every captured packet into one pcapng (or a rotation of them), an Interface Description Block
    /// per hop with its name (as the live report names it, so a replay of the file reports the same hops), its role
    /// and the target in if_description, and nanosecond if_tsresol. Flushed every half second, so a killed process
    /// loses at most that; a write error stops the recording (<see cref="Failure"/>), never the capture threads.
    /// </summary>
    private sealed class RecordingSink : IPacketSink, IDisposable
    {
        private readonly RotatingPcapngWriter _writer;
        private readonly int[] _interfaces;
        private readonly RotationOptions _rotation;
        private readonly string _path;

        private RecordingSink(RotatingPcapngWriter writer, int[] interfaces, RotationOptions rotation, string path)
        {
            _writer = writer;
            _interfaces = interfaces;
            _rotation = rotation;
            _path = path;
        }

        public IOException? Failure => _writer.Failure;

        public string? FailedPath => _writer.FailedPath;

        public static RecordingSink? Create(string path, RotationOptions rotation, LiveCapture live, IReadOnlyList<HopTarget> hops, string description, int snapLength, TextWriter error)
        {
            RotatingPcapngWriter writer;
            try
            {
                writer = new RotatingPcapngWriter(path, rotation);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {RotatingPcapngWriter.FileName(path, 0, rotation)}: {e.Message}"));
                return null;
            }
            var ids = new int[hops.Count];
            for (int hop = 0; hop < hops.Count; hop++)
            {
                string role = hops[hop].Role switch
                {
                    InterfaceRole.Container => "container interface",
                    InterfaceRole.Veth => "host veth",
                    InterfaceRole.Bridge => "bridge",
                    InterfaceRole.Tunnel => "tunnel",
                    _ => "egress",
                };
                ids[hop] = writer.AddInterface(hops[hop].DisplayName, $"{role} of {description}", live.LinkTypeOf(hop), snapLength);
            }
            // The section and interface blocks at once: from here on the file is a pcapng that reads (with no packets yet).
            writer.Flush();
            if (writer.Failure is { } failure)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {writer.FailedPath}: {failure.Message}"));
                writer.Dispose();
                return null;
            }
            return new RecordingSink(writer, ids, rotation, path);
        }

        public void Write(int hop, LinkType linkType, long timestampNs, ReadOnlySpan<byte> data, int originalLength, PacketDirection direction) =>
            _writer.WritePacket(_interfaces[hop], timestampNs, data, Math.Max(originalLength, data.Length), direction);

        /// <summary>The closing line: how many packets went where.</summary>
        public string Summary(int interfaces)
        {
            int files = _writer.FilesStarted;
            string where = files == 1
                ? _writer.CurrentPath
                : _rotation.MaxFiles > 0 && files > _rotation.MaxFiles
                    ? $"{files} files in turn, the last {_rotation.MaxFiles} kept ({RotatingPcapngWriter.FileName(_path, 0, _rotation)} to {RotatingPcapngWriter.FileName(_path, _rotation.MaxFiles - 1, _rotation)}; the newest is {_writer.CurrentPath})"
                    : $"{files} files ({RotatingPcapngWriter.FileName(_path, 0, _rotation)} to {_writer.CurrentPath})";
            return string.Create(CultureInfo.InvariantCulture, $"wrote {_writer.PacketsInFiles} packets on {interfaces} interfaces to {where}");
        }

        public void Dispose() => _writer.Dispose();
    }

    /// <summary>
    /// Waits up to a second (less at the end of --duration), moves what arrived into the correlator, and says whether
    /// to go on: false at the end of the duration, on Ctrl-C, or when a hop's interface went away.
    /// </summary>
    /// <summary>How often follow moves what the capture threads queued on to the correlator (twice a capture thread's gathering time).</summary>
    private static readonly TimeSpan PumpEvery = TimeSpan.FromMilliseconds(2 * LiveCapture.GatherMs);

    private static bool Tick(Settings settings, LiveCapture live, Stopwatch clock, CancellationToken cancel, TextWriter error)
    {
        if (cancel.IsCancellationRequested || settings.Duration is { } limit && clock.Elapsed >= limit)
        {
            return false;
        }
        TimeSpan wait = TimeSpan.FromSeconds(1);
        if (settings.Duration is { } total && total - clock.Elapsed < wait)
        {
            wait = total - clock.Elapsed;
        }
        // Pump every PumpEvery within the second: the session's clock follows the rings (LiveCapture.Pump), so what
        // the capture threads queued goes on to the correlator a tenth of a second later, not in one burst a second,
        // while it is still in the cache.
        TimeSpan until = clock.Elapsed + (wait < TimeSpan.Zero ? TimeSpan.Zero : wait);
        while (true)
        {
            TimeSpan left = until - clock.Elapsed;
            if (left <= TimeSpan.Zero || cancel.WaitHandle.WaitOne(left < PumpEvery ? left : PumpEvery))
            {
                break;
            }
            live.Pump();
            if (live.LostHops.Count > 0)
            {
                break;
            }
        }
        live.Pump();
        if (live.LostHops.Count > 0)
        {
            string lost = string.Join(", ", live.LostHops.Distinct());
            string? daemonDown = null;
            if (settings.Reresolve is null || !Reattach(settings, live, clock, cancel, error, lost, out daemonDown))
            {
                error.WriteLine(TerminalText.Escape(daemonDown is null
                    ? $"vethtrace: {lost} went away (the container stopped or restarted); final report follows"
                    : $"vethtrace: {lost} went away and the Docker daemon stopped answering ({daemonDown}); final report follows"));
                return false;
            }
        }
        return !cancel.IsCancellationRequested && (settings.Duration is not { } end || clock.Elapsed < end - TimeSpan.FromMilliseconds(50));
    }

    /// <summary>
    /// The container's interfaces went away: wait for it to run again (a restart gives it a new namespace and a new
    /// veth; --all waits as long as the capture lasts, otherwise <see cref="RestartWait"/>), then capture on the new
    /// interfaces, keeping the correlation. False when it did not come back.
    /// </summary>
    private static bool Reattach(Settings settings, LiveCapture live, Stopwatch clock, CancellationToken cancel, TextWriter error, string lost, out string? daemonDown)
    {
        daemonDown = null;
        error.WriteLine(TerminalText.Escape($"vethtrace: {lost} went away; waiting for the container to come back"));
        var waited = Stopwatch.StartNew();
        while (!cancel.IsCancellationRequested && (settings.WaitForever || waited.Elapsed < RestartWait)
            && (settings.Duration is not { } limit || clock.Elapsed < limit))
        {
            try
            {
                IReadOnlyList<HopTarget> hops = settings.Reresolve!(cancel);
                if (live.Reattach(hops))
                {
                    error.WriteLine(TerminalText.Escape("vethtrace: the container is back; following " + string.Join(", ", live.Session.Interfaces.Names)));
                    return true;
                }
                return false;
            }
            catch (VethTrace.Capture.Docker.DockerException e) when (e.Kind is DockerErrorKind.SocketMissing or DockerErrorKind.DaemonUnavailable)
            {
                // The daemon itself is gone (stopping dockerd stops its containers, unless live-restore is on): say so
                // once, and keep waiting, for it may be restarting.
                if (daemonDown is null)
                {
                    error.WriteLine(TerminalText.Escape($"vethtrace: the Docker daemon is not answering ({e.Message}); waiting for it and the container"));
                }
                daemonDown = e.Message;
            }
            catch (Exception e) when (e is VethTrace.Capture.Docker.DockerException or VethTrace.Capture.Topology.TopologyException or LiveCaptureException)
            {
                // Not running yet, or its interfaces are not up yet: try again shortly.
                daemonDown = null;
            }
            cancel.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(500));
        }
        return false;
    }

    /// <summary>
    /// The JSON <c>start</c> record: the target as follow describes it and the interfaces it captures on (none when the
    /// target has no network).
    /// </summary>
    internal static string StartRecord(string target, IEnumerable<string> interfaces) => TerminalText.EscapeJson(
        "{\"type\":\"start\",\"target\":" + JsonSerializer.Serialize(target, CliJsonContext.Default.String)
        + ",\"interfaces\":[" + string.Join(",", interfaces.Select(n => JsonSerializer.Serialize(n, CliJsonContext.Default.String))) + "]}");

    /// <summary>One line a second when stdout is not a terminal: plain text (names escaped), or a JSON summary record.</summary>
    private static void WriteProgress(TextWriter output, bool json, TimeSpan elapsed, LiveCapture live)
    {
        var statistics = live.Statistics();
        Correlator correlator = live.Session.Correlator;
        if (json)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{{\"type\":\"summary\",\"live\":true,\"elapsed_s\":{elapsed.TotalSeconds:0.0},\"packets\":{statistics.Sum(s => s.Packets)},\"journeys\":{correlator.Journeys},\"open\":{correlator.OpenJourneys},\"kernel_dropped\":{statistics.Sum(s => Math.Max(0, s.KernelDropped))}}}"));
            return;
        }
        string perHop = string.Join("  ", statistics.Select(s => string.Create(CultureInfo.InvariantCulture, $"{TerminalText.Escape(s.DisplayName)} {s.Packets}")));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"[{elapsed.TotalSeconds,5:0.0}s] {perHop} | journeys {correlator.Journeys} | drops {statistics.Sum(s => Math.Max(0, s.KernelDropped))}"));
    }
}

/// <summary>Turns libpcap's permission failures into the capability the user lacks.</summary>
public static class Permissions
{
    public static string Explain(string message) =>
        message.Contains("Operation not permitted", StringComparison.Ordinal) || message.Contains("permission", StringComparison.OrdinalIgnoreCase)
            ? $"{message} (capturing needs CAP_NET_RAW and CAP_NET_ADMIN; entering a container's namespace needs CAP_SYS_ADMIN: run as root or grant them)"
            : message;
}
