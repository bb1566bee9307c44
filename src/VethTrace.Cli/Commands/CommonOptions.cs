using System.CommandLine;
using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>The options several commands share, built once so that each has one meaning (and one default) everywhere.</summary>
internal static class CommonOptions
{
    public static Argument<string[]> Files()
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


    /// <summary>--html: the HTML report, written at the end of the run (docs/html-report.md).</summary>
    public static Option<string?> Html(string when) => new("--html")
    {
        Description = "Also write the report as one self-contained HTML page to FILE " + when + ": the path diagram, per-hop latency " +
            "distributions and latency over time as inline SVG, the NAT table and the losses; no script, nothing fetched, so it opens offline",
        HelpName = "FILE",
    };

    /// <summary>--filter, compiled while the command line is checked: a typo is a usage error before anything starts.</summary>
    public static Option<string?> Filter(string description)
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


    /// <summary>
    /// --engine docker|podman: which engine's default socket names the containers. Without it, DOCKER_HOST, else the
    /// first of /var/run/docker.sock and /run/podman/podman.sock whose daemon answers; nothing is started.
    /// </summary>
    public static Option<string?> Engine()
    {
        var engine = new Option<string?>("--engine")
        {
            Description = "The container engine whose API names containers: docker (/var/run/docker.sock) or podman (/run/podman/podman.sock). " +
                "Default: DOCKER_HOST when set, else each of those two sockets whose daemon answers, Docker's first (nothing is started)",
        };
        engine.AcceptOnlyFromAmong("docker", "podman");
        return engine;
    }


    public static Option<int> VxlanPort()
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


    public static Option<string[]> Ifname()
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


    /// <summary>
    /// --role NAME=ROLE (repeatable): an interface's role, over what its name, the topology or the traffic would
    /// decide (docs/DESIGN.md, "Roles").
    /// </summary>
    public static Option<string[]> Role()
    {
        var role = new Option<string[]>("--role")
        {
            Description = "An interface's role on the path when its name does not tell: NAME=container|veth|bridge|egress|tunnel, repeatable " +
                "(overrides the name, the topology and what is inferred from the traffic; e.g. --role wan=egress --role if34=veth)",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        role.Validators.Add(result =>
        {
            foreach (string text in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (TryParseRole(text, out _, out _) is { } problem)
                {
                    result.AddError(problem);
                }
            }
        });
        return role;
    }

    /// <summary>The roles given with --role, by interface name (validated while the command line was checked).</summary>
    public static Dictionary<string, InterfaceRole> RoleMap(ParseResult parseResult, Option<string[]> role)
    {
        var map = new Dictionary<string, InterfaceRole>(StringComparer.Ordinal);
        foreach (string text in parseResult.GetValue(role) ?? [])
        {
            if (TryParseRole(text, out string name, out InterfaceRole parsed) is null)
            {
                map[name] = parsed;
            }
        }
        return map;
    }

    /// <summary>NAME=ROLE; null when it parses, else the problem, one line.</summary>
    public static string? TryParseRole(string text, out string name, out InterfaceRole role)
    {
        int equals = text.LastIndexOf('=');
        name = equals > 0 ? text[..equals] : "";
        role = InterfaceRole.Egress;
        if (equals <= 0 || !InterfaceRoles.TryParse(text[(equals + 1)..], out role))
        {
            return $"--role expects NAME=container|veth|bridge|egress|tunnel; got '{VethTrace.Text.TerminalText.Escape(text)}'";
        }
        return null;
    }


    public static Dictionary<int, string> InterfaceMap(ParseResult parseResult, Option<string[]> ifname)
    {
        var map = new Dictionary<int, string>();
        foreach (string text in parseResult.GetValue(ifname) ?? [])
        {
            InterfaceNames.TryParseMapping(text, map);
        }
        return map;
    }


    public static Option<ReplayCommand.Format> Format(string description) => new("--format", "-f")
    {
        Description = description,
        DefaultValueFactory = _ => ReplayCommand.Format.Table,
    };


    /// <summary>A positive duration (500ms, 1s, 250us), given as text and parsed by <see cref="Durations"/> in the action.</summary>
    public static Option<string> Duration(string name, string alias, string description, string defaultValue, string examples)
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

    /// <summary>
    /// --window, the same for replay and follow: how long after its first sighting a packet may still reach another hop
    /// (<see cref="TraceSessionOptions.DefaultWindowNs"/> unless given).
    /// </summary>
    public static Option<string> Window() => Duration("--window", "-w",
        "How long after its first sighting a packet may still reach another hop: 250ms, 1s, 1500us, or a bare number of seconds (0.5)",
        Durations.Format(TraceSessionOptions.DefaultWindowNs), "500ms, 1s, 250us or 0.5");

    /// <summary>The window given, in nanoseconds (validated while the command line was checked).</summary>
    public static long WindowNs(ParseResult parseResult, Option<string> window) =>
        parseResult.GetValue(window) is { } text && Durations.TryParseNanoseconds(text, out long ns) is null ? ns : TraceSessionOptions.DefaultWindowNs;

    /// <summary>--nat-detail (replay, follow): every NAT translation in the report, not only the aggregate rows.</summary>
    public static Option<bool> NatDetail() => new("--nat-detail")
    {
        Description = "List every NAT translation (one per flow, as conntrack holds them) instead of one row per (kind, proto, inside address, outside address, peer address:port) with flow and packet counts",
    };

    /// <summary>--flow-timeout PROTO=DURATION (replay, follow), repeatable: the idle timeouts of per-flow state.</summary>
    public static Option<string[]> FlowTimeout()
    {
        var defaults = VethTrace.Tracing.FlowTimeouts.Default;
        var option = new Option<string[]>("--flow-timeout")
        {
            Description = "How long a flow's state (its losses, its NAT translation) is kept after its last packet, as conntrack does: PROTO=DURATION, " +
                $"PROTO one of {string.Join(", ", VethTrace.Tracing.FlowTimeouts.Names)}; repeatable. Defaults are conntrack's: tcp={Durations.Format(defaults.TcpNs)}, " +
                $"tcp-closing={Durations.Format(defaults.TcpClosingNs)} (after a FIN or RST), udp={Durations.Format(defaults.UdpNs)}, " +
                $"icmp={Durations.Format(defaults.IcmpNs)}, other={Durations.Format(defaults.OtherNs)}",
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        option.Validators.Add(result =>
        {
            foreach (string text in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (ParseFlowTimeout(VethTrace.Tracing.FlowTimeouts.Default, text) is null)
                {
                    result.AddError($"--flow-timeout expects PROTO=DURATION with PROTO one of {string.Join(", ", VethTrace.Tracing.FlowTimeouts.Names)} and a positive duration such as udp=30s; got '{text}'");
                }
            }
        });
        return option;
    }

    /// <summary>The timeouts given with --flow-timeout (validated while the command line was checked), over conntrack's defaults.</summary>
    public static FlowTimeouts FlowTimeoutsOf(ParseResult parseResult, Option<string[]> option)
    {
        var timeouts = VethTrace.Tracing.FlowTimeouts.Default;
        foreach (string text in parseResult.GetValue(option) ?? [])
        {
            timeouts = ParseFlowTimeout(timeouts, text) ?? timeouts;
        }
        return timeouts;
    }

    private static FlowTimeouts? ParseFlowTimeout(FlowTimeouts timeouts, string text)
    {
        int equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0 || Durations.TryParseNanoseconds(text[(equals + 1)..], out long ns) is not null || ns <= 0)
        {
            return null;
        }
        return timeouts.With(text[..equals], ns);
    }
}
