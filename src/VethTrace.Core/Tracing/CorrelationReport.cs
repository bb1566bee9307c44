using VethTrace.Flows;

namespace VethTrace.Tracing;

/// <summary>How often each sequence of interfaces was a journey's path.</summary>
public sealed class PathStats(int[] interfaces)
{
    private readonly SortedDictionary<int, long> _sideCopies = [];

    public IReadOnlyList<int> Interfaces { get; } = interfaces;

    public long Journeys { get; set; }

    /// <summary>
    /// The time from the first to the last hop of these journeys (through the host), for those whose every copy had a
    /// valid time; a per-container figure is these merged over the container's paths. Empty when the run did not
    /// keep them (<see cref="TraceSessionOptions.PathLatency"/>).
    /// </summary>
    public LatencyHistogram Through { get; } = new();

    /// <summary>
    /// The bridges whose own copy of these journeys' frames was set aside (a bridged frame: not a hop), with how many
    /// journeys had one; shown beside the chain as <c>docker0 (copy)</c>.
    /// </summary>
    public IReadOnlyDictionary<int, long> SideCopies => _sideCopies;

    public void AddSideCopy(int bridge) => _sideCopies[bridge] = _sideCopies.GetValueOrDefault(bridge) + 1;
}

public sealed record HopReport(int From, int To, LatencyHistogram Histogram)
{
    /// <summary>The hop's latency over time (bounded: <see cref="LatencyTimeline.MaxBuckets"/> buckets); null when none was kept.</summary>
    public LatencyTimeline? Timeline { get; init; }
}

/// <summary>Journeys whose packet continued from <see cref="From"/> to <see cref="To"/> as other packets (GRO/GSO).</summary>
public sealed record SegmentationReport(int From, int To, long Journeys);

public sealed record LossReport(FlowKey Flow, int LastSeen, long Packets)
{
    /// <summary>
    /// The interface of the flow's longest path nearest the container (its own interface, else its veth), or -1: which
    /// container the flow belongs to, though the loss was on a shared hop (the bridge, the egress).
    /// </summary>
    public int Inside { get; init; } = -1;
}

/// <summary>
/// What a correlation found. <see cref="Packets"/> counts every packet read (the correlator's observations until a
/// caller sets it), <see cref="NotIp"/> those that were not IP and so not traced.
/// </summary>
public sealed record CorrelationReport(
    long Packets,
    long Journeys,
    long MultiHopJourneys,
    long Complete,
    long Lost,
    IReadOnlyList<HopReport> Hops,
    IReadOnlyList<PathStats> Paths,
    IReadOnlyList<NatMapping> Nat,
    IReadOnlyList<LossReport> Losses)
{
    public long NotIp { get; init; }

    /// <summary>--sample 1/N: N (1 when everything was traced), and the IP packets it left out (counted in <see cref="Packets"/>).</summary>
    public int Sample { get; init; } = 1;

    public long SampledOut { get; init; }

    /// <summary>TCP journeys that continued on further hops as coalesced or cut packets (GRO/GSO), matched by sequence range.</summary>
    public long MatchedBySequenceRange { get; init; }

    public IReadOnlyList<SegmentationReport> Segmentation { get; init; } = [];

    /// <summary>Journeys left out because a packet filter matched none of their copies.</summary>
    public long Unselected { get; init; }

    /// <summary>Bridge copies of bridged frames, set aside beside their journeys' chains instead of counted as hops.</summary>
    public long BridgeSideCopies { get; init; }

    /// <summary>Groups of equal timestamps ordered while an interface in them had no known role: their order is a guess.</summary>
    public long TiesWithUnknownRole { get; init; }

    /// <summary>The interfaces without a known role in those groups.</summary>
    public IReadOnlyList<int> UnknownRoleTied { get; init; } = [];

    /// <summary>The tunnels (VXLAN) interfaces carried packets in, with their outer headers.</summary>
    public IReadOnlyList<TunnelReport> Tunnels { get; init; } = [];

    /// <summary>
    /// NAT for people: one row per (kind, protocol, inside address, outside address, peer address:port), most flows
    /// first. <see cref="Nat"/> holds every translation only when asked (<see cref="CorrelatorOptions.NatDetail"/>).
    /// </summary>
    public IReadOnlyList<NatAggregate> NatAggregates { get; init; } = [];

    /// <summary>The NAT translations held when the report was taken, by kind, protocol and inside address (<c>vethtrace_nat_mappings</c>).</summary>
    public IReadOnlyList<NatInUse> NatInUse { get; init; } = [];
}
