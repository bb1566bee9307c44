using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>What a <see cref="TraceSession"/> is told, the same for replay and follow.</summary>
public sealed record TraceSessionOptions
{
    /// <summary>
    /// How long after its first sighting a journey may still gain hops, by default: 1 s, three orders of magnitude above
    /// the slowest hop seen in the lab (a 5 ms netem delay), and short enough to keep memory small at line rate.
    /// </summary>
    public const long DefaultWindowNs = 1_000_000_000;

    /// <summary>The matching window (<c>--window</c>; docs/DESIGN.md, "Journeys and ordering").</summary>
    public long WindowNs { get; init; } = DefaultWindowNs;

    /// <summary>The interface named as the host's egress (<c>--egress</c>): its role is given, not guessed.</summary>
    public string? Egress { get; init; }

    /// <summary>
    /// Roles given by interface name (<c>--role NAME=ROLE</c>): they override the name's rules, the topology and
    /// inference (docs/DESIGN.md, "Roles").
    /// </summary>
    public IReadOnlyDictionary<string, InterfaceRole> Roles { get; init; } = new Dictionary<string, InterfaceRole>();

    public ParserOptions Parser { get; init; } = ParserOptions.Default;

    /// <summary>Idle timeouts of per-flow state, per protocol (<c>--flow-timeout</c>; conntrack's defaults).</summary>
    public FlowTimeouts FlowTimeouts { get; init; } = FlowTimeouts.Default;

    /// <summary>Keep every NAT translation for the report, not only the aggregate rows (<c>--nat-detail</c>).</summary>
    public bool NatDetail { get; init; }

    /// <summary>
    /// <c>--filter</c>: a journey is reported when any of its copies on any hop matches, so a filter on a container's
    /// address follows its packets past NAT. Null traces everything.
    /// </summary>
    public IPacketSelector? Filter { get; init; }

    /// <summary>
    /// <c>--sample 1/N</c>: trace about one journey in N, whole (<see cref="JourneySampling"/>); the others are counted as
    /// read and go no further than the parser. 1 traces everything.
    /// </summary>
    public int Sample { get; init; } = 1;

    /// <summary>
    /// The host's routes to the egress (follow: the route lookup), for losses of flows no packet got through; null
    /// when unknown (replay).
    /// </summary>
    public IEgressRoutes? EgressRoutes { get; init; }

    /// <summary>
    /// Keep each path's through-host times (<see cref="PathStats.Through"/>), which only the per-container figures
    /// (and the JSON path records of a run with containers) read. Off, the paths are counted but their histograms stay
    /// empty: replay turns it off for files that name no containers, where recording into a histogram per path was a
    /// cache miss per journey on a host with hundreds of containers (docs/performance.md, "Many flows").
    /// </summary>
    public bool PathLatency { get; init; } = true;

    /// <summary>
    /// Count the NAT translations held now per row (<see cref="CorrelationReport.NatInUse"/>), which only follow's
    /// metrics read: each translation then keeps its row beside it, 16 bytes instead of 12. Replay turns it off: on
    /// the 10M many-flows file about 3.3 million translations are held at once (docs/performance.md, "Many flows").
    /// </summary>
    public bool NatInUse { get; init; } = true;

    /// <summary>
    /// Give the correlator's accounting (hops, NAT, paths, losses) a thread of its own in a pipelined run (files:
    /// <see cref="TraceSession.RunPipelined"/>, <see cref="Correlator.StartAccounting"/>); the answers are the same
    /// either way. On by default with more than one processor (<see cref="Correlator.StartAccountingWithFirstMultiHopJourney"/>:
    /// it starts with the first journey on two or more hops): on two cores it took a third off the longest thread but not
    /// the CPU sum; in session 10's quiet runs it led on the `-i any`, mixed and many-flows captures every time, and on the
    /// per-interface iperf3 capture it led in one A/B and trailed in the next (docs/performance.md, "Replay matching
    /// thread (session 10, match16e)"). The environment variable <c>VETHTRACE_ACCOUNTING_THREAD=0</c> turns it off. With
    /// two processors it starts later, once the accounting proves heavy (<see cref="AccountingThreadWhenHeavy"/>).
    /// </summary>
    public bool AccountingThread { get; init; } = DefaultAccountingThread;

    private static bool DefaultAccountingThread { get; } =
        Environment.ProcessorCount > 1 && Environment.GetEnvironmentVariable("VETHTRACE_ACCOUNTING_THREAD") != "0";

    /// <summary>
    /// With <see cref="AccountingThread"/>: start the thread only once the accounting proves heavy (many flows), not with
    /// the first multi-hop journey. On by default with two processors, where a third busy thread cost the captures of a
    /// few long flows 5-9 % of CPU for no gain in time, while the many-flow captures need it (docs/performance.md, "The
    /// accounting thread on 2 cores, again"). <c>VETHTRACE_ACCOUNTING_THREAD=1</c> starts it at once, as before.
    /// </summary>
    public bool AccountingThreadWhenHeavy { get; init; } = DefaultAccountingThreadWhenHeavy;

    private static bool DefaultAccountingThreadWhenHeavy { get; } =
        Environment.ProcessorCount <= 2 && Environment.GetEnvironmentVariable("VETHTRACE_ACCOUNTING_THREAD") != "1";
}

/// <summary>Decides whether one copy of a packet is selected (a compiled pcap-filter expression, in practice).</summary>
public interface IPacketSelector
{
    /// <summary>
    /// Whether the frame matches. <paramref name="originalLength"/> is the packet's length on the wire (what pcap-filter's
    /// <c>len</c>, <c>greater</c> and <c>less</c> test, as tcpdump does), or 0 when unknown: then the captured length.
    /// Called on the threads that feed the session, several at once for follow.
    /// </summary>
    bool Matches(ReadOnlySpan<byte> frame, int originalLength, LinkType linkType);
}
