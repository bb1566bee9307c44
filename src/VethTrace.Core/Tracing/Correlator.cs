using System.Runtime.InteropServices;
using VethTrace.Flows;

namespace VethTrace.Tracing;

/// <summary>
/// The matching engine shared by replay and live capture. Observations arrive in time order; those with one
/// fingerprint within <see cref="CorrelatorOptions.WindowNs"/> form a journey (one packet's path through the
/// host). A journey ends when its window passes, when the same interface sees the fingerprint again (a new packet,
/// or a hairpin), or at <see cref="Complete"/>. Ended journeys feed per-hop latency histograms, the NAT table and
/// per-flow reach, from which losses are derived. Memory for open journeys is bounded by the window; the
/// aggregates grow with the number of hops, flows and NAT mappings, not with packets.
/// </summary>
public sealed class Correlator
{
    private readonly CorrelatorOptions _options;
    private readonly Func<int, InterfaceRole> _roleOf;
    private readonly Dictionary<ulong, Journey> _open = [];
    private readonly Queue<(Journey Journey, int Generation)> _byStart = new();
    private readonly Stack<Journey> _free = new();
    private readonly Dictionary<(int From, int To), LatencyHistogram> _hops = [];
    private readonly Dictionary<PathKey, PathStats> _paths = [];
    private readonly NatTable _nat = new();
    private readonly Dictionary<FlowKey, FlowReach> _flows = [];
    private readonly List<Observation> _scratch = [];
    private readonly List<Observation> _ties = [];
    private readonly Dictionary<ulong, Queue<Observation>> _segments = [];
    private readonly Stack<Queue<Observation>> _freeSegmentQueues = new();
    /// <summary>Every interface that has carried TCP data, in order of first appearance: few, so a list.</summary>
    private readonly List<int> _dataInterfaces = [];
    private readonly Queue<Observation> _segmentAges = new();
    private readonly Dictionary<(int From, int To), long> _segmentEdges = [];

    public Correlator(CorrelatorOptions options, Func<int, InterfaceRole> roleOf)
    {
        _options = options;
        _roleOf = roleOf;
    }

    public long Observations { get; private set; }

    public long Journeys { get; private set; }

    /// <summary>Journeys seen on more than one interface.</summary>
    public long MultiHopJourneys { get; private set; }

    public int OpenJourneys => _open.Count;

    /// <summary>Journeys dropped because a filter selected none of their copies.</summary>
    public long Unselected { get; private set; }

    /// <summary>TCP journeys that reached further hops as other packets: coalesced by GRO or cut by GSO.</summary>
    public long MatchedBySequenceRange { get; private set; }

    public void Add(in Observation observation)
    {
        Observations++;
        Expire(observation.TimestampNs - _options.WindowNs);
        if (observation.IsTcpData)
        {
            IndexSegment(observation);
        }
        if (_open.TryGetValue(observation.Fingerprint, out Journey? journey))
        {
            if (!journey.Visited(observation.Interface))
            {
                journey.Sightings.Add(observation);
                return;
            }
            // The same interface again: a retransmitted copy, a hairpin or a collision. Close and start anew.
            Finish(journey);
        }
        journey = _free.Count > 0 ? _free.Pop() : new Journey();
        journey.Start(observation);
        _open[observation.Fingerprint] = journey;
        _byStart.Enqueue((journey, journey.Generation));
    }

    /// <summary>Ends every open journey (end of input, or a live stop).</summary>
    public void Complete() => Expire(long.MaxValue);

    public CorrelationReport Report()
    {
        var hops = _hops.Select(h => new HopReport(h.Key.From, h.Key.To, h.Value)).OrderByDescending(h => h.Histogram.Count).ToList();
        var paths = _paths.Values.OrderByDescending(p => p.Journeys).ToList();
        var losses = new List<LossReport>();
        long lost = 0;
        foreach (var (flow, reach) in _flows)
        {
            foreach (var (lastInterface, count) in reach.EndedAt)
            {
                if (reach.IsShortOf(lastInterface))
                {
                    losses.Add(new LossReport(flow, lastInterface, count));
                    lost += count;
                }
            }
        }
        losses.Sort((a, b) => b.Packets.CompareTo(a.Packets));
        var segmentation = _segmentEdges.Select(e => new SegmentationReport(e.Key.From, e.Key.To, e.Value)).OrderByDescending(e => e.Journeys).ToList();
        return new CorrelationReport(Observations, Journeys, MultiHopJourneys, Journeys - lost, lost, hops, paths, _nat.Mappings(), losses)
        {
            MatchedBySequenceRange = MatchedBySequenceRange,
            Segmentation = segmentation,
            Unselected = Unselected,
        };
    }

    private void Expire(long before)
    {
        while (_byStart.Count > 0)
        {
            var (journey, generation) = _byStart.Peek();
            if (journey.Generation != generation)
            {
                _byStart.Dequeue(); // already finished early and reused
                continue;
            }
            if (journey.FirstTimestampNs >= before)
            {
                break;
            }
            _byStart.Dequeue();
            Finish(journey);
        }
    }

    private void Finish(Journey journey)
    {
        _open.Remove(journey.Fingerprint);
        List<Observation> sightings = journey.Sightings;
        if (!sightings.Exists(static s => s.Selected))
        {
            Unselected++;
            journey.Reset();
            _free.Push(journey);
            return;
        }
        Order(sightings);
        Journeys++;
        if (sightings.Count > 1)
        {
            MultiHopJourneys++;
            for (int i = 1; i < sightings.Count; i++)
            {
                Observation from = sightings[i - 1], to = sightings[i];
                if (!_hops.TryGetValue((from.Interface, to.Interface), out var histogram))
                {
                    _hops[(from.Interface, to.Interface)] = histogram = new LatencyHistogram();
                }
                histogram.Record(to.TimestampNs - from.TimestampNs);
                _nat.Observe(from.Flow, to.Flow, from.TimestampNs);
            }
            PathKey key = PathKey.Of(sightings);
            if (!_paths.TryGetValue(key, out var path))
            {
                _paths[key] = path = new PathStats(sightings.Select(s => s.Interface).ToArray());
            }
            path.Journeys++;
        }
        if (sightings[0].IsTcpData && FindSegmentContinuation(sightings))
        {
            MatchedBySequenceRange++;
        }
        FlowKey entry = sightings[0].Flow;
        if (!entry.IsEmpty)
        {
            if (!_flows.TryGetValue(entry, out var reach))
            {
                _flows[entry] = reach = new FlowReach();
            }
            reach.Add(_scratch.Count > 0 ? _scratch : sightings);
        }
        _scratch.Clear();
        journey.Reset();
        _free.Push(journey);
    }

    /// <summary>
    /// GRO coalesces segments into one super-packet and GSO cuts one into segments, so one hop's packet is
    /// several packets on the next, with other fingerprints. A TCP journey that overlaps, by sequence range
    /// within the same segment key, TCP data seen on interfaces it did not visit continued there. Those
    /// interfaces are appended (in time order) to the path used for loss decisions, in <see cref="_scratch"/>;
    /// latency histograms keep to exact matches.
    /// </summary>
    private bool FindSegmentContinuation(List<Observation> sightings)
    {
        _scratch.Clear();
        Observation first = sightings[0];
        if (VisitsAll(sightings, _dataInterfaces) || !_segments.TryGetValue(first.SegmentKey, out var candidates))
        {
            // A candidate must be on an interface the journey did not visit. When it visited every interface that ever
            // carried TCP data (always, in a capture of one interface), none can be: skip the walk over the candidates.
            return false;
        }
        // Plain loops, no lambdas: a lambda capturing the loop variable allocated a closure (holding a copy of the
        // observation) on every iteration, dozens per TCP packet of a bulk stream.
        foreach (Observation candidate in candidates)
        {
            if (Math.Abs(candidate.TimestampNs - first.TimestampNs) > _options.WindowNs || candidate.Fingerprint == first.Fingerprint
                || !Overlaps(first, candidate) || Visits(sightings, candidate.Interface) || Visits(_scratch, candidate.Interface))
            {
                continue;
            }
            _scratch.Add(candidate);
        }
        if (_scratch.Count == 0)
        {
            return false;
        }
        _scratch.InsertRange(0, sightings);
        _scratch.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
        // Count each step of the extended path that a segmentation match made, in time order.
        for (int i = 1; i < _scratch.Count; i++)
        {
            long before = _scratch[i - 1].Order, after = _scratch[i].Order;
            if (!Contains(sightings, before) || !Contains(sightings, after))
            {
                var edge = (_scratch[i - 1].Interface, _scratch[i].Interface);
                _segmentEdges[edge] = _segmentEdges.GetValueOrDefault(edge) + 1;
            }
        }
        return true;
    }

    private static bool Visits(List<Observation> sightings, int interfaceId)
    {
        foreach (ref readonly Observation sighting in CollectionsMarshal.AsSpan(sightings))
        {
            if (sighting.Interface == interfaceId)
            {
                return true;
            }
        }
        return false;
    }

    private static bool VisitsAll(List<Observation> sightings, List<int> interfaceIds)
    {
        foreach (int interfaceId in CollectionsMarshal.AsSpan(interfaceIds))
        {
            if (!Visits(sightings, interfaceId))
            {
                return false;
            }
        }
        return true;
    }

    private static bool Contains(List<Observation> sightings, long order)
    {
        foreach (ref readonly Observation sighting in CollectionsMarshal.AsSpan(sightings))
        {
            if (sighting.Order == order)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether two sequence ranges share a byte, modulo 2^32 (RFC 9293 section 3.4 comparisons).</summary>
    private static bool Overlaps(in Observation a, in Observation b) =>
        (int)(a.TcpSequence - b.SequenceEnd) < 0 && (int)(b.TcpSequence - a.SequenceEnd) < 0;

    private void IndexSegment(in Observation observation)
    {
        // Forget what is older than two windows: a journey looks back at most one window from its start.
        long horizon = observation.TimestampNs - 2 * _options.WindowNs;
        while (_segmentAges.Count > 0 && _segmentAges.Peek().TimestampNs < horizon)
        {
            Observation old = _segmentAges.Dequeue();
            if (_segments.TryGetValue(old.SegmentKey, out var queue))
            {
                // Each key's queue fills in time order, so the oldest is first. A queue, not a list: RemoveAt(0)
                // moved every later entry, and one bulk TCP stream keeps dozens under one key (42 % of replay's time).
                queue.Dequeue();
                if (queue.Count == 0)
                {
                    _segments.Remove(old.SegmentKey);
                    _freeSegmentQueues.Push(queue);
                }
            }
        }
        if (!_dataInterfaces.Contains(observation.Interface))
        {
            _dataInterfaces.Add(observation.Interface);
        }
        if (!_segments.TryGetValue(observation.SegmentKey, out var entries))
        {
            _segments[observation.SegmentKey] = entries = _freeSegmentQueues.Count > 0 ? _freeSegmentQueues.Pop() : new Queue<Observation>();
        }
        entries.Enqueue(observation);
        _segmentAges.Enqueue(observation);
    }

    /// <summary>
    /// Time order. Equal timestamps (the kernel reuses the receive stamp along an ingress path) follow the topology:
    /// a tie after an earlier sighting goes outwards from it, nearest role first (after the egress: egress, tunnel,
    /// bridge, veth, container; after a container's interface the reverse), which also orders a journey that crosses
    /// from one host to another through a tunnel; a tie at the start ends nearest to the sighting after it. Equal
    /// roles keep capture order.
    /// </summary>
    private void Order(List<Observation> sightings)
    {
        if (sightings.Count < 2)
        {
            return;
        }
        sightings.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
        bool outwards = Outwards(sightings);
        for (int start = 0; start < sightings.Count;)
        {
            int end = start + 1;
            while (end < sightings.Count && sightings[end].TimestampNs == sightings[start].TimestampNs)
            {
                end++;
            }
            if (end - start > 1)
            {
                // The neighbour the tie group hangs on: the sighting before it, else the one after it (then the
                // group is laid out backwards from it), else none (the whole journey is one tie).
                int anchor = start > 0 ? (int)_roleOf(sightings[start - 1].Interface) : end < sightings.Count ? (int)_roleOf(sightings[end].Interface) : -1;
                bool backwards = start == 0;
                _ties.Clear();
                _ties.AddRange(sightings.GetRange(start, end - start));
                _ties.Sort((a, b) =>
                {
                    int roleA = (int)_roleOf(a.Interface), roleB = (int)_roleOf(b.Interface);
                    if (anchor >= 0)
                    {
                        int byDistance = Math.Abs(roleA - anchor).CompareTo(Math.Abs(roleB - anchor));
                        if (byDistance != 0)
                        {
                            return backwards ? -byDistance : byDistance;
                        }
                    }
                    int byRole = roleA.CompareTo(roleB);
                    return byRole != 0 ? (outwards ? byRole : -byRole) : a.Order.CompareTo(b.Order);
                });
                for (int i = 0; i < _ties.Count; i++)
                {
                    sightings[start + i] = _ties[i];
                }
            }
            start = end;
        }
    }

    /// <summary>
    /// Whether a journey travels from the container towards the egress. A copy whose direction the capture recorded
    /// says it (sent by the container's interface or the egress, received by a veth or the bridge); otherwise the
    /// roles of the first and last sightings in time order do. Matters when every sighting has one timestamp (a
    /// macvlan child and its parent share the receive stamp).
    /// </summary>
    private bool Outwards(List<Observation> sightings)
    {
        foreach (Observation sighting in sightings)
        {
            if (sighting.Direction == HopDirection.Unknown)
            {
                continue;
            }
            InterfaceRole role = _roleOf(sighting.Interface);
            if (role == InterfaceRole.Tunnel)
            {
                continue;
            }
            bool sent = sighting.Direction == HopDirection.Outbound;
            return role is InterfaceRole.Container or InterfaceRole.Egress ? sent : !sent;
        }
        return (int)_roleOf(sightings[0].Interface) <= (int)_roleOf(sightings[^1].Interface);
    }

    private sealed class Journey
    {
        public List<Observation> Sightings { get; } = new(8);

        public ulong Fingerprint { get; private set; }

        public long FirstTimestampNs { get; private set; }

        public int Generation { get; private set; }

        public void Start(in Observation first)
        {
            Fingerprint = first.Fingerprint;
            FirstTimestampNs = first.TimestampNs;
            Sightings.Add(first);
        }

        public bool Visited(int interfaceId) => Visits(Sightings, interfaceId);

        public void Reset()
        {
            Sightings.Clear();
            Generation++;
        }
    }
}

/// <summary>
/// A path as a value: up to 8 interface ids below 256 packed in one word (the common case, no allocation), else a
/// hash of them all with the length (a collision merges two rare paths' counts, nothing else).
/// </summary>
internal readonly record struct PathKey(ulong Packed, int Length)
{
    public static PathKey Of(List<Observation> sightings)
    {
        ulong packed = 0;
        bool fits = sightings.Count <= 8;
        ulong hash = Flows.StableHash.Seed;
        foreach (Observation sighting in sightings)
        {
            fits &= (uint)sighting.Interface < 256;
            packed = packed << 8 | (byte)sighting.Interface;
            hash = Flows.StableHash.Add(hash, (ulong)sighting.Interface);
        }
        return new PathKey(fits ? packed : Flows.StableHash.Finish(hash), fits ? sightings.Count : -sightings.Count);
    }
}

/// <summary>Matching settings.</summary>
public sealed record CorrelatorOptions
{
    /// <summary>
    /// How long after its first sighting a journey may still gain hops. 1 s: three orders of magnitude above the
    /// slowest hop seen in the lab (a 5 ms netem delay), and short enough to keep memory small at line rate.
    /// </summary>
    public long WindowNs { get; init; } = 1_000_000_000;
}

/// <summary>How often each sequence of interfaces was a journey's path.</summary>
public sealed class PathStats(int[] interfaces)
{
    public IReadOnlyList<int> Interfaces { get; } = interfaces;

    public long Journeys { get; set; }
}

/// <summary>
/// How far the journeys of one flow (as first seen) got: the longest path any of them took, and where each
/// journey ended. A journey that ended on an interface before the end of the longest path was lost there.
/// </summary>
internal sealed class FlowReach
{
    private int[] _longest = [];

    public Dictionary<int, long> EndedAt { get; } = [];

    public void Add(List<Observation> sightings)
    {
        if (sightings.Count > _longest.Length)
        {
            _longest = sightings.Select(s => s.Interface).ToArray();
        }
        int last = sightings[^1].Interface;
        EndedAt[last] = EndedAt.GetValueOrDefault(last) + 1;
    }

    /// <summary>True when the longest path goes on past <paramref name="interfaceId"/>.</summary>
    public bool IsShortOf(int interfaceId)
    {
        int position = Array.IndexOf(_longest, interfaceId);
        return position >= 0 && position < _longest.Length - 1;
    }
}

public sealed record HopReport(int From, int To, LatencyHistogram Histogram);

/// <summary>Journeys whose packet continued from <see cref="From"/> to <see cref="To"/> as other packets (GRO/GSO).</summary>
public sealed record SegmentationReport(int From, int To, long Journeys);

public sealed record LossReport(FlowKey Flow, int LastSeen, long Packets);

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

    /// <summary>TCP journeys that continued on further hops as coalesced or cut packets (GRO/GSO), matched by sequence range.</summary>
    public long MatchedBySequenceRange { get; init; }

    public IReadOnlyList<SegmentationReport> Segmentation { get; init; } = [];

    /// <summary>Journeys left out because a packet filter matched none of their copies.</summary>
    public long Unselected { get; init; }

    /// <summary>The tunnels (VXLAN) interfaces carried packets in, with their outer headers.</summary>
    public IReadOnlyList<TunnelReport> Tunnels { get; init; } = [];
}
