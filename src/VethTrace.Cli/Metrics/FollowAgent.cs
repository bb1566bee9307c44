using VethTrace.Capture.Live;
using VethTrace.Cli.Commands;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Metrics;

/// <summary>
/// follow's side of <c>--prometheus</c>: the <see cref="FollowMetrics"/> told of every journey by the session's
/// correlator, refreshed from the live capture once a tick, and the <see cref="PrometheusEndpoint"/> that serves them.
/// Kept out of <see cref="FollowCommand"/>, which calls <see cref="Start"/>, <see cref="Update(LiveCapture)"/> and
/// disposes it.
/// </summary>
public sealed class FollowAgent : IDisposable
{
    private readonly FollowMetrics _metrics;
    private readonly PrometheusEndpoint _endpoint;
    private readonly IReadOnlyList<HopTarget> _hops;
    private readonly PrometheusSettings _settings;

    private FollowAgent(FollowMetrics metrics, PrometheusEndpoint endpoint, IReadOnlyList<HopTarget> hops, PrometheusSettings settings)
    {
        _metrics = metrics;
        _endpoint = endpoint;
        _hops = hops;
        _settings = settings;
    }

    /// <summary>Starts serving and hooks the session's correlator; null after printing why it could not listen.</summary>
    public static FollowAgent? Start(PrometheusSettings settings, IReadOnlyList<HopTarget> hops, TraceSession session, TextWriter error)
    {
        var metrics = new FollowMetrics(session.Interfaces.RoleOf, session.Interfaces.Names,
            id => id < settings.Containers.Count ? settings.Containers[id] : null);
        PrometheusEndpoint? endpoint = PrometheusEndpoint.Start(settings.Endpoint, settings.Host, metrics, out string? problem);
        if (endpoint is null)
        {
            metrics.Dispose();
            error.WriteLine(TerminalText.Escape($"vethtrace: {problem}"));
            return null;
        }
        session.Correlator.Observer = metrics;
        return new FollowAgent(metrics, endpoint, hops, settings);
    }

    /// <summary>Refreshes the snapshot the scrape reads (on the thread that pumps the session).</summary>
    public void Update(LiveCapture live) => Update(live, live.Session.Report(), live.Statistics());

    public void Update(LiveCapture live, CorrelationReport report, IReadOnlyList<HopStatistics> statistics)
    {
        var captures = statistics.Select((s, hop) => (s.DisplayName, live.Session.Interfaces.RoleOf(hop), s.Packets, s.KernelDropped)).ToList();
        _metrics.Update(report, captures, _settings.Containers.OfType<string>().Distinct());
    }

    public void Dispose()
    {
        _endpoint.Dispose();
        _metrics.Dispose();
    }
}
