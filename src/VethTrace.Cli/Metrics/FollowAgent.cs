using VethTrace.Capture.Live;
using VethTrace.Cli.Commands;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Metrics;

/// <summary>
/// follow's side of <c>--prometheus</c>: the <see cref="FollowMetrics"/> told of every journey by the session's
/// correlator, refreshed from the capture once a tick, and the <see cref="PrometheusEndpoint"/> that serves them.
/// Kept out of <see cref="FollowCommand"/>, which calls <see cref="Start(PrometheusSettings, TraceSession, TextWriter)"/>,
/// <see cref="Update(LiveCapture)"/> and disposes it. Another engine over a <see cref="TraceSession"/> (whole-host
/// follow, <see cref="WholeHostFollow"/>) plugs in with <see cref="Start(PrometheusSettings, TraceSession, Func{int, string?}, TextWriter)"/>,
/// its own interface-to-container map, <see cref="Attribute"/> for losses and NAT rows, and
/// <see cref="Update(CorrelationReport, IReadOnlyList{ValueTuple{string, string, long, long?}}, IEnumerable{string})"/>.
/// </summary>
public sealed class FollowAgent : IDisposable
{
    private readonly FollowMetrics _metrics;
    private readonly PrometheusEndpoint _endpoint;
    private readonly PrometheusSettings _settings;

    private FollowAgent(FollowMetrics metrics, PrometheusEndpoint endpoint, PrometheusSettings settings)
    {
        _metrics = metrics;
        _endpoint = endpoint;
        _settings = settings;
    }

    /// <summary>Starts serving for follow's hops (their containers in <see cref="PrometheusSettings.Containers"/>).</summary>
    public static FollowAgent? Start(PrometheusSettings settings, TraceSession session, TextWriter error) =>
        Start(settings, session, id => id < settings.Containers.Count ? settings.Containers[id] : null, error);

    /// <summary>
    /// Starts serving and hooks the session's correlator, before the first packet; null after printing why it could not
    /// listen. <paramref name="containerOf"/>: the container an interface is the own interface or veth of, or null.
    /// </summary>
    public static FollowAgent? Start(PrometheusSettings settings, TraceSession session, Func<int, string?> containerOf, TextWriter error)
    {
        var metrics = new FollowMetrics(session.Interfaces.RoleOf, session.Interfaces.Names, containerOf);
        PrometheusEndpoint? endpoint = PrometheusEndpoint.Start(settings.Endpoint, settings.Host, metrics, out string? problem);
        if (endpoint is null)
        {
            metrics.Dispose();
            error.WriteLine(TerminalText.Escape($"vethtrace: {problem}"));
            return null;
        }
        session.Correlator.Observer = metrics;
        return new FollowAgent(metrics, endpoint, settings);
    }

    /// <summary>
    /// Losses and NAT rows attributed as the caller's report attributes them (whole-host follow: by the containers'
    /// interfaces and addresses it knows), not by follow's hops. On the thread that pumps the session.
    /// </summary>
    public void Attribute(Func<LossReport, string?> lossOwner, Func<string, string?> natOwner)
    {
        _metrics.LossOwner = lossOwner;
        _metrics.NatOwner = natOwner;
    }

    /// <summary>Refreshes the snapshot the scrape reads (on the thread that pumps the session).</summary>
    public void Update(LiveCapture live) => Update(live, live.Session.Report(), live.Statistics());

    public void Update(LiveCapture live, CorrelationReport report, IReadOnlyList<HopStatistics> statistics) =>
        Update(report, [.. statistics.Select((s, hop) => (s.DisplayName, InterfaceRoles.Name(live.Session.Interfaces.RoleOf(hop)), s.Packets, (long?)s.KernelDropped))],
            _settings.Containers.OfType<string>().Distinct());

    /// <summary>Refreshes the snapshot from a report, each capture handle's counts and the containers captured now.</summary>
    public void Update(CorrelationReport report, IReadOnlyList<(string Interface, string Role, long Packets, long? KernelDrops)> captures,
        IEnumerable<string> capturedContainers) => _metrics.Update(report, captures, capturedContainers);

    public void Dispose()
    {
        _endpoint.Dispose();
        _metrics.Dispose();
    }
}
