using System.CommandLine;
using System.Net;
using VethTrace.Capture.Live;
using VethTrace.Cli.Metrics;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>
/// follow's agent options: <c>--prometheus [ADDR:]PORT</c>, <c>--host-label</c> and <c>--quiet</c> (docs/prometheus.md).
/// </summary>
public sealed class PrometheusOptions
{
    public Option<string?> Prometheus { get; } = new("--prometheus")
    {
        Description = "Serve /metrics in the Prometheus text format on [ADDR:]PORT while following (default address 127.0.0.1; " +
            "0.0.0.0:PORT listens on every address): hop latency histograms, journeys, losses, NAT mappings and capture counters " +
            "per container and interface (docs/prometheus.md). Works with one target and with the whole host (no target, several targets, --network): " +
            "every container's series carry its container label, and the kernel drops are the one 'any' handle's (interface=\"any\"). " +
            "With it, and stdout not a terminal and no --format, follow runs as an agent (as --quiet)",
        HelpName = "[ADDR:]PORT",
    };

    public Option<string?> HostLabel { get; } = new("--host-label")
    {
        Description = "The value of the 'host' label on every metric (default: this machine's host name)",
        HelpName = "NAME",
    };

    public Option<bool> Quiet { get; } = new("--quiet", "-q")
    {
        Description = "No live view and no line a second: only the opening lines, whole-host follow's attach/detach events and the final report (an agent, with --prometheus)",
    };

    public PrometheusOptions()
    {
        Prometheus.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } text && PrometheusEndpoint.Parse(text, out _) is null)
            {
                PrometheusEndpoint.Parse(text, out string? problem);
                result.AddError(problem!);
            }
        });
        HostLabel.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } text && (text.Length == 0 || text.Any(char.IsControl)))
            {
                result.AddError("--host-label expects a non-empty name without control characters");
            }
        });
    }

    public void AddTo(Command command)
    {
        command.Options.Add(Prometheus);
        command.Options.Add(HostLabel);
        command.Options.Add(Quiet);
    }

    /// <summary>
    /// The settings, or null without --prometheus. <paramref name="containers"/>: the container each hop is the own
    /// interface or veth of (null for the bridge, the egress and hops given with --hop alone).
    /// </summary>
    public PrometheusSettings? Read(ParseResult parseResult, IReadOnlyList<string?> containers) =>
        parseResult.GetValue(Prometheus) is { } text && PrometheusEndpoint.Parse(text, out _) is { } endpoint
            ? new PrometheusSettings(endpoint, parseResult.GetValue(HostLabel) ?? Dns.GetHostName(), containers)
            : null;

    /// <summary>
    /// Which container each hop belongs to: the target's own interface and veth are its (by the name Docker gives it,
    /// or netns:NAME, pid:N); a hop given with --hop inside a namespace belongs to that namespace (its ip-netns name or
    /// PID); the bridge, the egress and other host interfaces to none.
    /// </summary>
    public static IReadOnlyList<string?> ContainersOf(IReadOnlyList<HopTarget> hops, string? target, IReadOnlyCollection<HopTarget> given) =>
        [.. hops.Select(hop =>
            hop.Role is not (InterfaceRole.Container or InterfaceRole.Veth) ? null
            : !given.Any(g => g.Interface == hop.Interface && g.NetworkNamespace == hop.NetworkNamespace) && target is not null ? target
            : hop.NetworkNamespace is { } netns ? LiveTargets.NamespaceLabel(netns)
            : null)];
}

/// <summary>Where to serve, the host label, and the container of each hop (by hop index, as the session numbers them).</summary>
public sealed record PrometheusSettings(IPEndPoint Endpoint, string Host, IReadOnlyList<string?> Containers);
