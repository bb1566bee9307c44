using System.Runtime.InteropServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// The matching engine shared by replay and live capture. Observations arrive in time order; those with one
/// fingerprint within <see cref="CorrelatorOptions.WindowNs"/> form a journey (one packet's path through the
/// host). A journey ends when its window passes, when the same interface sees the fingerprint again (a new packet,
/// or a hairpin), or at <see cref="Complete"/>. Ended journeys feed per-hop latency histograms, the NAT table and
/// per-flow reach, from which losses are derived. Memory for open journeys is bounded by the window; the
/// aggregates grow with the number of hops, flows and NAT mappings, not with packets.
/// </summary>
/// <remarks>
/// Each observation is copied once, into <see cref="_observations"/>, a ring in arrival order; a journey is a small
/// entry in <see cref="_journeys"/> (a ring in start order, which is also expiry order) that chains its sightings
/// through the ring. The <see cref="SegmentIndex"/> keeps a 48-byte entry per TCP data packet in a third ring,
/// chained per segment key. Everything a packet writes is read back in the same order a window later, so
/// the reads stream through memory instead of chasing one pooled object and list per journey (a profile of the
/// earlier design: 17 % of replay's time in <see cref="Expire"/> alone, waiting for journeys to come back from memory).
/// </remarks>
public sealed class Correlator : IObservationSink
{
    private readonly CorrelatorOptions _options;
    private readonly Func<int, InterfaceRole> _roleOf;
    /// <summary>The open journey of each fingerprint, as its number in <see cref="_journeys"/>.</summary>
    private readonly OpenJourneyTable _open = new();
    private int _openCount;
    private readonly SequenceRing<JourneyEntry> _journeys = new();
    private readonly SequenceRing<ObservationSlot> _observations = new();
    private readonly Dictionary<(int From, int To), (LatencyHistogram Histogram, LatencyTimeline Timeline)> _hops = [];

    // One grid of time buckets for every hop's timeline, so their buckets line up.
    private readonly TimelineGrid _timelineGrid = new();
    private readonly Dictionary<PathKey, PathStats> _paths = [];
    private readonly NatTable _nat;
    /// <summary>
    /// Per-flow reach, for losses (docs/DESIGN.md "Losses"): only flows that may have lost something, since a journey
    /// from the inside that ended at the egress is described by <see cref="_ways"/>. Expired by <see cref="Sweep"/>.
    /// </summary>
    private readonly Dictionary<FlowKey, FlowReach> _flows = [];
    /// <summary>
    /// The ways to the egress packets showed: (destination, an inside interface a packet to it crossed before the egress)
    /// with the time last shown. A journey to that destination that ended on that interface instead was lost there.
    /// </summary>
    private readonly Dictionary<(IpAddress Destination, int Interface), long> _ways = [];
    /// <summary>The losses of flows already expired, by (flow, last interface).</summary>
    private readonly Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)> _settledLosses = [];
    private long _nextSweepNs = long.MinValue;
    /// <summary>The flows of the last two journeys finished, with their reach: consecutive journeys mostly share a flow, or
    /// alternate between a connection's two directions (data and acknowledgments).</summary>
    private (FlowKey Flow, FlowReach? Reach) _lastFlow, _previousFlow;
    /// <summary>The journey being finished, its sightings copied out of the ring in arrival order.</summary>
    private readonly List<Observation> _sightings = [];
    private readonly List<Observation> _scratch = [];
    private readonly List<Observation> _ties = [];
    /// <summary>TCP data of the last two windows, for segmentation matches (docs/DESIGN.md, "Segmentation (GRO and GSO)").</summary>
    private readonly SegmentIndex _segmentIndex;
    private readonly Dictionary<(int From, int To), long> _segmentEdges = [];
    /// <summary>Decides the roles no name decided, from the first window's journeys; null when roles come only from <c>roleOf</c>.</summary>
    private readonly RoleInference? _inference;
    private readonly Func<int, bool>? _roleKnown;
    /// <summary>The interfaces whose role was not known when a tie group with them was ordered.</summary>
    private readonly SortedSet<int> _unknownTied = [];
    /// <summary>The bridge copies <see cref="SetAsideBridgeCopies"/> took out of the journey being finished.</summary>
    private readonly List<int> _side = [];
    /// <summary>One more than the largest interface id observed: the interfaces inference may decide.</summary>
    private int _interfacesSeen;

    /// <summary>
    /// A correlator whose roles come from <paramref name="roleOf"/>; with <paramref name="registry"/>, the roles it does
    /// not know are inferred from the traffic (<see cref="RoleInference"/>) before the first journey is ordered.
    /// </summary>
    public Correlator(CorrelatorOptions options, Func<int, InterfaceRole> roleOf, InterfaceRegistry? registry = null)
    {
        _options = options;
        _roleOf = roleOf;
        _nat = new NatTable(options.NatDetail, options.Timeouts);
        _segmentIndex = new SegmentIndex(options.WindowNs);
        if (registry is not null)
        {
            _inference = new RoleInference(registry);
            _roleKnown = registry.IsKnown;
        }
    }

    /// <summary>Groups of equal timestamps ordered while an interface in them had no known role (a guess; the report warns).</summary>
    public long TiesWithUnknownRole { get; private set; }

    /// <summary>Bridge copies of bridged frames set aside: not hops (docs/DESIGN.md, "Bridge copies").</summary>
    public long BridgeSideCopies { get; private set; }

    public long Observations { get; private set; }

    public long Journeys { get; private set; }

    /// <summary>Journeys seen on more than one interface.</summary>
    public long MultiHopJourneys { get; private set; }

    public int OpenJourneys => _openCount;

    /// <summary>Flows whose reach is held (those that may have lost a packet), until idle for their timeout.</summary>
    public int ActiveFlows => _flows.Count;

    /// <summary>NAT translations held, until idle for their timeout.</summary>
    public int ActiveTranslations => _nat.ActiveTranslations;

    /// <summary>The (destination, interface) ways to the egress held (<see cref="_ways"/>).</summary>
    public int KnownWays => _ways.Count;

    /// <summary>
    /// The memory its rings and open-journey table hold outside the GC heap (<see cref="LargeBuffer{T}"/>): a memory
    /// benchmark adds it to what the GC counts.
    /// </summary>
    public long NativeBytes => _open.Bytes + _journeys.Bytes + _observations.Bytes + _segmentIndex.Bytes + _nat.Bytes;

    /// <summary>Journeys dropped because a filter selected none of their copies.</summary>
    public long Unselected { get; private set; }

    /// <summary>Told of every journey counted (<c>follow --prometheus</c>); set before the first observation.</summary>
    public IJourneyObserver? Observer { get; set; }

    /// <summary>TCP journeys that reached further hops as other packets: coalesced by GRO or cut by GSO.</summary>
    public long MatchedBySequenceRange { get; private set; }

    /// <summary>
    /// Told, on the matching thread, when a copy joins an open journey on an interface the journey had not visited:
    /// the journey's first interface, this copy's, and whether the journey is selected already (its first copy or this
    /// one passed the filter). Told before the journey's window closes: the match stands (the window can only add
    /// copies; a second copy on a visited interface starts another journey), its figures are counted when the window
    /// closes. Whole-host follow's <c>first_journey</c> event. Null: nothing is told.
    /// </summary>
    public Action<int, int, bool>? Joined { get; set; }

    /// <summary>
    /// Reads, ahead of <see cref="Add"/>, the memory the observation's fingerprint will be looked up in. The
    /// <see cref="TimeOrderer"/> calls it when the observation arrives and adds it milliseconds later, so the
    /// lookup (a random access into a table of a window's journeys, larger than the caches) finds it in cache.
    /// </summary>
    public void Anticipate(ulong fingerprint) => _open.Touch(fingerprint);

    public void Add(in Observation observation)
    {
        Observations++;
        if (observation.Interface >= _interfacesSeen)
        {
            _interfacesSeen = observation.Interface + 1;
        }
        Expire(observation.TimestampNs - _options.WindowNs);
        if (observation.TimestampNs >= _nextSweepNs)
        {
            if (_nextSweepNs != long.MinValue)
            {
                Sweep(observation.TimestampNs);
            }
            _nextSweepNs = observation.TimestampNs + Math.Max(1, _options.Timeouts.ShortestNs / SweepsPerTimeout);
        }
        // Only open journeys refer to the ring, and the oldest of them started no earlier than the oldest kept.
        _observations.DropBefore(_journeys.Count > 0 ? _journeys[_journeys.Head].First : _observations.Tail);
        ref ObservationSlot slot = ref _observations.PushRef(out long sequence);
        slot.Store(in observation);
        if (observation.IsTcpData)
        {
            _segmentIndex.Add(in observation);
        }
        ref long open = ref _open.Find(observation.Fingerprint, _journeys.Head, out bool exists);
        if (exists)
        {
            ref JourneyEntry journey = ref _journeys[open];
            bool visited = Visited(in journey, observation.Interface);
            if (!visited && (!observation.Flow.IsLinkScoped || OnOneLink(in journey, in observation)))
            {
                _observations[journey.Last].Chain(journey.Last, sequence);
                journey.Last = sequence;
                journey.Visit(observation.Interface);
                _inference?.Observe(observation.Interface, open);
                if (Joined is { } joined)
                {
                    ref ObservationSlot first = ref _observations[journey.First];
                    joined(first.Interface, observation.Interface, first.Selected || observation.Selected);
                }
                return;
            }
            if (visited)
            {
                // The same interface again: a retransmitted copy, a hairpin or a collision. Close and start anew.
                Finish(ref journey);
            }
            // Otherwise link-scoped control traffic from another link (an MLD report each interface sends with the
            // same bytes): a journey of its own; the other stays open until its window ends.
        }
        var started = new JourneyEntry { Fingerprint = observation.Fingerprint, FirstTimestampNs = observation.TimestampNs, First = sequence, Last = sequence };
        started.Visit(observation.Interface);
        open = _journeys.Push(in started);
        _inference?.Observe(observation.Interface, open);
        _openCount++;
    }

    /// <summary>
    /// Ends every open journey (end of input, or a live stop), whatever its timestamp: a reader saturates a timestamp
    /// it cannot represent to <see cref="long.MaxValue"/>, and such a journey must still be counted.
    /// </summary>
    public void Complete() => Expire(long.MaxValue, everything: true);

    /// <summary>
    /// Moves the correlator's clock without an observation: every journey whose window ended before
    /// <paramref name="timestampNs"/> ends now. Live capture calls it as the wall clock goes on (the time orderer
    /// will hand it nothing older), so a quiet container's last journeys are counted when their window passes, not
    /// when the next packet comes.
    /// </summary>
    public void Advance(long timestampNs)
    {
        if (_journeys.Count > 0)
        {
            Expire(timestampNs - _options.WindowNs);
        }
    }

    public CorrelationReport Report()
    {
        var hops = _hops.Select(h => new HopReport(h.Key.From, h.Key.To, h.Value.Histogram) { Timeline = h.Value.Timeline }).OrderByDescending(h => h.Histogram.Count).ToList();
        var paths = _paths.Values.OrderByDescending(p => p.Journeys).ToList();
        var lostBy = new Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)>(_settledLosses);
        foreach (var (flow, reach) in _flows)
        {
            Settle(in flow, reach, lostBy);
        }
        var losses = lostBy.Select(l => new LossReport(l.Key.Flow, l.Key.LastSeen, l.Value.Packets) { Inside = l.Value.Inside }).ToList();
        long lost = losses.Sum(l => l.Packets);
        losses.Sort((a, b) => b.Packets.CompareTo(a.Packets));
        var segmentation = _segmentEdges.Select(e => new SegmentationReport(e.Key.From, e.Key.To, e.Value)).OrderByDescending(e => e.Journeys).ToList();
        return new CorrelationReport(Observations, Journeys, MultiHopJourneys, Journeys - lost, lost, hops, paths, _nat.Mappings(), losses)
        {
            MatchedBySequenceRange = MatchedBySequenceRange,
            Segmentation = segmentation,
            Unselected = Unselected,
            NatAggregates = _nat.Aggregates(),
            NatInUse = _nat.InUse(),
            BridgeSideCopies = BridgeSideCopies,
            TiesWithUnknownRole = TiesWithUnknownRole,
            UnknownRoleTied = [.. _unknownTied],
        };
    }

    /// <summary>
    /// The losses of one flow: its journeys that ended on an interface its own longest journey went past, and, for a
    /// flow that started on the inside (container, veth, bridge), those that ended short of the egress on an interface
    /// from which other packets to the same destination went on to the egress (<see cref="_ways"/>): a port blocked
    /// outright, where no packet of the flow got further; and, in follow, those that ended on the inside when the host
    /// routes their destination out of the egress (<see cref="CorrelatorOptions.EgressRoutes"/>), though nothing showed the way.
    /// </summary>
    private void Settle(in FlowKey flow, FlowReach reach, Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)> lost)
    {
        foreach (var (lastInterface, count) in reach.EndedAt)
        {
            if (reach.IsShortOf(lastInterface)
                || reach.StartsInside && _roleOf(lastInterface) != InterfaceRole.Egress && _ways.ContainsKey((flow.Destination, lastInterface))
                || reach.StartsInside && IsInside(_roleOf(lastInterface)) && _options.EgressRoutes?.LeavesByEgress(flow.Destination) == true)
            {
                lost[(flow, lastInterface)] = (lost.GetValueOrDefault((flow, lastInterface)).Packets + count, reach.Innermost(_roleOf));
            }
        }
    }

    /// <summary>
    /// Forgets the per-flow state idle for longer than its protocol's timeout (<see cref="FlowTimeouts"/>), as conntrack
    /// does: a flow's losses are settled when it goes, a NAT translation leaves its counts in its aggregate row, a way
    /// to the egress goes after the generic timeout. Run <see cref="SweepsPerTimeout"/> times per shortest timeout of trace
    /// time, so what is held is at most an eighth more than what is active (at a steady rate of new flows).
    /// </summary>
    private const int SweepsPerTimeout = 8;

    private void Sweep(long nowNs)
    {
        FlowTimeouts timeouts = _options.Timeouts;
        foreach (var (flow, reach) in _flows)
        {
            if (nowNs - reach.LastSeenNs > timeouts.For(flow.Protocol, reach.Closing))
            {
                Settle(in flow, reach, _settledLosses);
                _flows.Remove(flow); // allowed while enumerating (.NET Core 3.0 and later)
            }
        }
        _lastFlow = _previousFlow = default;
        foreach (var (way, lastNs) in _ways)
        {
            if (nowNs - lastNs > timeouts.OtherNs)
            {
                _ways.Remove(way);
            }
        }
        _nat.Sweep(nowNs, timeouts);
    }

    /// <summary>
    /// Whether a link-scoped copy may join a journey: link-local addresses and link-scoped multicast never cross a
    /// router, so only a copy with the same addresses, on the same side of the routing step (the bridge's side, or the
    /// egress), within <see cref="LinkWindowNs"/> (identical control messages repeat).
    /// </summary>
    private bool OnOneLink(in JourneyEntry journey, in Observation observation)
    {
        ref ObservationSlot first = ref _observations[journey.First];
        return observation.TimestampNs - journey.FirstTimestampNs <= LinkWindowNs
            && first.Flow.Equals(observation.Flow)
            && (_roleOf(first.Interface) == InterfaceRole.Egress) == (_roleOf(observation.Interface) == InterfaceRole.Egress);
    }

    /// <summary>How long after its first copy a link-scoped packet may still be seen on the link's other interfaces: copies are microseconds apart, repeats (MLD reports are sent twice) much further.</summary>
    private const long LinkWindowNs = 10_000_000;

    private void Expire(long before, bool everything = false)
    {
        while (_journeys.Count > 0)
        {
            ref JourneyEntry journey = ref _journeys[_journeys.Head];
            if (journey.Finished)
            {
                _journeys.DropBefore(_journeys.Head + 1); // already finished early: its fingerprint has a newer journey
                continue;
            }
            if (journey.FirstTimestampNs >= before && !everything)
            {
                break;
            }
            if (_inference is not null && (_inference.IsPending(_interfacesSeen) || _inference.IsDue(_journeys.Head)))
            {
                Infer();
            }
            // Finished while still in the ring (dropping it may give its memory back); dropping it also ends its entry in _open.
            Finish(ref journey);
            _journeys.DropBefore(_journeys.Head + 1);
        }
    }

    /// <summary>
    /// Hands <see cref="_inference"/> every journey still open (at most <see cref="RoleInference.MaxJourneys"/> of them:
    /// the first window's, when the first is due, or the window that starts with the journey in which an interface of
    /// unknown role first showed after a decision) and lets it decide, before any of them is ordered.
    /// </summary>
    private void Infer()
    {
        int learnt = 0;
        for (long number = _journeys.Head; number < _journeys.Tail && learnt < RoleInference.MaxJourneys; number++)
        {
            ref JourneyEntry journey = ref _journeys[number];
            if (journey.Finished || journey.First == journey.Last)
            {
                continue;
            }
            _ties.Clear();
            for (long sighting = journey.First; sighting >= 0; sighting = _observations[sighting].Next(sighting))
            {
                _ties.Add(_observations[sighting].ToObservation(journey.Fingerprint));
            }
            _ties.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
            _inference!.Learn(CollectionsMarshal.AsSpan(_ties));
            learnt++;
        }
        _ties.Clear();
        _inference!.Decide(_interfacesSeen);
        // The inference copied the window's journeys (a few hundred thousand observations at high rates) and let them
        // go: collect them now, once, so the heap the GC keeps committed for the rest of the run does not include them.
        if (_journeys.Count > 10_000)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        }
    }

    /// <summary>
    /// A bridge forwards a frame from one port to another (veth to veth east-west, veth to a VXLAN port) before it hands
    /// its own copy up (br_forward, then br_pass_frame_up, because capturing made it promiscuous): that copy is not a
    /// step between the ports. A bridge sighting is such a side copy when the journey was seen on two or more ports
    /// (veth or tunnel roles) with the bridge copy's TTL, i.e. on its L2 segment, not routed. It is taken out of
    /// <paramref name="sightings"/> into <see cref="_side"/>. A packet that goes up to the host's IP layer (routed to
    /// the egress, NATed, delivered to the host) crosses one port only, so its bridge copy stays on the path.
    /// </summary>
    private void SetAsideBridgeCopies(List<Observation> sightings)
    {
        _side.Clear();
        int kept = 0;
        for (int i = 0; i < sightings.Count; i++)
        {
            Observation sighting = sightings[i];
            // A TTL of 0 was not read (no IP layer parsed it): no evidence of bridged or routed, so the copy stays.
            if (sighting.Ttl != 0 && _roleOf(sighting.Interface) == InterfaceRole.Bridge)
            {
                int ports = 0;
                foreach (ref readonly Observation other in CollectionsMarshal.AsSpan(sightings))
                {
                    if (other.Ttl == sighting.Ttl && _roleOf(other.Interface) is InterfaceRole.Veth or InterfaceRole.Tunnel)
                    {
                        ports++;
                    }
                }
                if (ports >= 2)
                {
                    _side.Add(sighting.Interface);
                    continue;
                }
            }
            sightings[kept++] = sighting;
        }
        if (kept < sightings.Count)
        {
            sightings.RemoveRange(kept, sightings.Count - kept);
            BridgeSideCopies += _side.Count;
        }
    }

    private bool Visited(in JourneyEntry journey, int interfaceId)
    {
        if ((uint)interfaceId < 64)
        {
            return (journey.VisitedBelow64 & 1UL << interfaceId) != 0;
        }
        for (long sighting = journey.First; sighting >= 0; sighting = _observations[sighting].Next(sighting))
        {
            if (_observations[sighting].Interface == interfaceId)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Ends a journey (the caller drops it from the ring or gives its fingerprint a new one) and records what it found.</summary>
    private void Finish(ref JourneyEntry journey)
    {
        journey.Finished = true;
        _openCount--;
        if (journey.First == journey.Last && FinishSingle(_observations[journey.First].ToObservation(journey.Fingerprint)))
        {
            return;
        }
        List<Observation> sightings = _sightings;
        sightings.Clear();
        bool selected = false;
        bool timeless = false;
        TcpFlags flags = 0;
        for (long sighting = journey.First; sighting >= 0; sighting = _observations[sighting].Next(sighting))
        {
            Observation observation = _observations[sighting].ToObservation(journey.Fingerprint);
            selected |= observation.Selected;
            timeless |= observation.TimestampInvalid;
            flags |= observation.TcpFlags;
            sightings.Add(observation);
        }
        if (!selected)
        {
            Unselected++;
            return;
        }
        if (timeless)
        {
            PlaceByTopology(sightings);
        }
        _side.Clear();
        if (sightings.Count > 2)
        {
            SetAsideBridgeCopies(sightings);
        }
        Order(sightings);
        Journeys++;
        bool linkScoped = sightings[0].Flow.IsLinkScoped;
        bool closing = (flags & (TcpFlags.Fin | TcpFlags.Rst)) != 0;
        if (sightings.Count > 1)
        {
            MultiHopJourneys++;
            Span<Observation> steps = CollectionsMarshal.AsSpan(sightings);
            for (int i = 1; i < steps.Length; i++)
            {
                ref readonly Observation from = ref steps[i - 1];
                ref readonly Observation to = ref steps[i];
                // A copy without a valid capture time (Observation.TimestampInvalid) has no latency to give.
                if (!from.TimestampInvalid && !to.TimestampInvalid)
                {
                    if (!_hops.TryGetValue((from.Interface, to.Interface), out var hop))
                    {
                        _hops[(from.Interface, to.Interface)] = hop = (new LatencyHistogram(), new LatencyTimeline(_timelineGrid));
                    }
                    hop.Histogram.Record(to.TimestampNs - from.TimestampNs);
                    hop.Timeline.Record(from.TimestampNs, to.TimestampNs - from.TimestampNs);
                }
                if (!linkScoped)
                {
                    // Link-local addresses are never NATed: two link-scoped copies never tell of a translation.
                    _nat.Observe(from.Flow, to.Flow, from.TimestampNs, closing);
                }
            }
            PathKey key = PathKey.Of(sightings);
            if (!_paths.TryGetValue(key, out var path))
            {
                _paths[key] = path = new PathStats(sightings.Select(s => s.Interface).ToArray());
            }
            path.Journeys++;
            if (!timeless && _options.PathLatency)
            {
                path.Through.Record(sightings[^1].TimestampNs - sightings[0].TimestampNs);
            }
            foreach (int side in _side)
            {
                path.AddSideCopy(side);
            }
        }
        bool segmented = sightings[0].IsTcpData && FindSegmentContinuation(sightings);
        if (segmented)
        {
            MatchedBySequenceRange++;
        }
        Observer?.Journey(CollectionsMarshal.AsSpan(sightings), segmented);
        FlowKey entry = sightings[0].Flow;
        if (!entry.IsEmpty && !linkScoped)
        {
            Reached(in entry, _scratch.Count > 0 ? _scratch : sightings, closing);
        }
        _scratch.Clear();
    }

    /// <summary>
    /// <see cref="Finish"/> for a journey of one sighting (every journey of a one-interface capture) without copying it
    /// out of the ring; false when it needs the general path (TCP data that other interfaces may have carried on).
    /// </summary>
    private bool FinishSingle(in Observation only)
    {
        if (only.IsTcpData && !_segmentIndex.IsOnlyDataInterface(only.Interface))
        {
            return false;
        }
        if (!only.Selected)
        {
            Unselected++;
            return true;
        }
        Journeys++;
        Observer?.Journey(new ReadOnlySpan<Observation>(in only), segmented: false);
        if (!only.Flow.IsEmpty && !only.Flow.IsLinkScoped)
        {
            FlowReach reach = ReachOf(only.Flow, only.TimestampNs, only.Interface);
            reach.Closing |= (only.TcpFlags & (TcpFlags.Fin | TcpFlags.Rst)) != 0;
            reach.Add(only.Interface);
        }
        return true;
    }

    /// <summary>
    /// Records how far a journey of <paramref name="flow"/> got. A journey from the inside that ended at the egress
    /// shows the way to its destination from every inside interface it crossed (<see cref="_ways"/>) and needs no
    /// state of its own, unless its flow has some already (an earlier journey ended short); any other journey is
    /// kept in its flow's <see cref="FlowReach"/>.
    /// </summary>
    private void Reached(in FlowKey flow, List<Observation> path, bool closing)
    {
        long firstNs = path[0].TimestampNs;
        if (IsInside(_roleOf(path[0].Interface)) && _roleOf(path[^1].Interface) == InterfaceRole.Egress)
        {
            int egress = 0;
            while (_roleOf(path[egress].Interface) != InterfaceRole.Egress)
            {
                egress++; // the last is the egress
            }
            if (egress == path.Count - 1)
            {
                for (int i = 0; i < egress; i++)
                {
                    if (IsInside(_roleOf(path[i].Interface)))
                    {
                        _ways[(flow.Destination, path[i].Interface)] = firstNs;
                    }
                }
                if (!HasReach(in flow, out FlowReach? known))
                {
                    return;
                }
                known.LastSeenNs = Math.Max(known.LastSeenNs, firstNs);
                known.Closing |= closing;
                known.Add(path);
                return;
            }
        }
        FlowReach reach = ReachOf(in flow, firstNs, path[0].Interface);
        reach.Closing |= closing;
        reach.Add(path);
    }

    private static bool IsInside(InterfaceRole role) => role is InterfaceRole.Container or InterfaceRole.Veth or InterfaceRole.Bridge;

    private bool HasReach(in FlowKey flow, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FlowReach? reach)
    {
        if (_lastFlow.Reach is not null && _lastFlow.Flow.Equals(flow))
        {
            reach = _lastFlow.Reach;
            return true;
        }
        return _flows.TryGetValue(flow, out reach);
    }

    /// <summary>The reach of <paramref name="flow"/>, made on its first journey (which says whether it starts on the inside).</summary>
    private FlowReach ReachOf(in FlowKey flow, long firstNs, int firstInterface)
    {
        FlowReach reach = ReachOf(in flow);
        if (reach.LastSeenNs == 0)
        {
            reach.StartsInside = IsInside(_roleOf(firstInterface));
        }
        reach.LastSeenNs = Math.Max(reach.LastSeenNs, firstNs);
        return reach;
    }

    private FlowReach ReachOf(in FlowKey flow)
    {
        // Compare with the last two before hashing the 56-byte key.
        if (_lastFlow.Reach is not null && _lastFlow.Flow.Equals(flow))
        {
            return _lastFlow.Reach;
        }
        if (_previousFlow.Reach is not null && _previousFlow.Flow.Equals(flow))
        {
            (_lastFlow, _previousFlow) = (_previousFlow, _lastFlow);
            return _lastFlow.Reach;
        }
        if (!_flows.TryGetValue(flow, out var reach))
        {
            _flows[flow] = reach = new FlowReach();
        }
        _previousFlow = _lastFlow;
        _lastFlow = (flow, reach);
        return reach;
    }

    /// <summary>
    /// GRO coalesces segments into one super-packet and GSO cuts one into segments, so one hop's packet is
    /// several packets on the next, with other fingerprints. A TCP journey that overlaps, by sequence range
    /// within the same segment key, TCP data seen on interfaces it did not visit continued there (the
    /// <see cref="SegmentIndex"/> finds those). Those interfaces are appended (in time order) to the path used for loss
    /// decisions, in <see cref="_scratch"/>; latency histograms keep to exact matches.
    /// </summary>
    private bool FindSegmentContinuation(List<Observation> sightings)
    {
        _scratch.Clear();
        if (!_segmentIndex.FindContinuations(sightings, _scratch))
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

    /// <summary>
    /// A sighting whose capture time was invalid (<see cref="Observation.TimestampInvalid"/>) carries a stand-in time,
    /// so its place in the path cannot come from it: it takes the time of the valid sighting nearest to it by role, and
    /// <see cref="Order"/> lays the two out as any tie, by topology. Only this journey's copy of the list changes.
    /// </summary>
    private void PlaceByTopology(List<Observation> sightings)
    {
        for (int i = 0; i < sightings.Count; i++)
        {
            if (!sightings[i].TimestampInvalid)
            {
                continue;
            }
            int role = (int)_roleOf(sightings[i].Interface);
            int nearest = -1;
            for (int j = 0; j < sightings.Count; j++)
            {
                if (!sightings[j].TimestampInvalid
                    && (nearest < 0 || Math.Abs((int)_roleOf(sightings[j].Interface) - role) < Math.Abs((int)_roleOf(sightings[nearest].Interface) - role)))
                {
                    nearest = j;
                }
            }
            if (nearest >= 0)
            {
                sightings[i] = sightings[i] with { TimestampNs = sightings[nearest].TimestampNs };
            }
        }
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
        if (!InTimeOrder(sightings))
        {
            sightings.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
        }
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
                if (_roleKnown is not null)
                {
                    bool unknown = false;
                    for (int i = start; i < end; i++)
                    {
                        if (!_roleKnown(sightings[i].Interface))
                        {
                            unknown = true;
                            _unknownTied.Add(sightings[i].Interface);
                        }
                    }
                    if (unknown)
                    {
                        TiesWithUnknownRole++;
                    }
                }
                int anchor = start > 0 ? (int)_roleOf(sightings[start - 1].Interface) : end < sightings.Count ? (int)_roleOf(sightings[end].Interface) : -1;
                bool backwards = start == 0;
                // Insertion sort in place: a tie group is a few copies, and the order is total (Order is unique).
                Span<Observation> group = CollectionsMarshal.AsSpan(sightings)[start..end];
                for (int i = 1; i < group.Length; i++)
                {
                    Observation moving = group[i];
                    int j = i - 1;
                    while (j >= 0 && CompareTied(in group[j], in moving, anchor, backwards, outwards) > 0)
                    {
                        group[j + 1] = group[j];
                        j--;
                    }
                    group[j + 1] = moving;
                }
            }
            start = end;
        }
    }

    /// <summary>The order of two sightings with one timestamp (<see cref="Order"/>).</summary>
    private int CompareTied(in Observation a, in Observation b, int anchor, bool backwards, bool outwards)
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
    }

    /// <summary>Whether the sightings are in (timestamp, order) sequence already, as they arrive unless a time was placed by topology.</summary>
    private static bool InTimeOrder(List<Observation> sightings)
    {
        Span<Observation> span = CollectionsMarshal.AsSpan(sightings);
        for (int i = 1; i < span.Length; i++)
        {
            if (span[i].TimestampNs < span[i - 1].TimestampNs || span[i].TimestampNs == span[i - 1].TimestampNs && span[i].Order < span[i - 1].Order)
            {
                return false;
            }
        }
        return true;
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
            if (sighting.Direction == PacketDirection.Unknown)
            {
                continue;
            }
            InterfaceRole role = _roleOf(sighting.Interface);
            if (role == InterfaceRole.Tunnel)
            {
                continue;
            }
            bool sent = sighting.Direction == PacketDirection.Outbound;
            return role is InterfaceRole.Container or InterfaceRole.Egress ? sent : !sent;
        }
        return (int)_roleOf(sightings[0].Interface) <= (int)_roleOf(sightings[^1].Interface);
    }

    /// <summary>
    /// An open (or finished, not yet expired) journey: its sightings are chained through <see cref="_observations"/>
    /// from <see cref="First"/> to <see cref="Last"/> by <see cref="ObservationSlot.Next"/>.
    /// </summary>
    private struct JourneyEntry
    {
        public ulong Fingerprint;
        public long FirstTimestampNs;
        public long First;
        public long Last;
        /// <summary>The interfaces below 64 the journey visited, as bits; larger ids are looked up along the chain.</summary>
        public ulong VisitedBelow64;
        public bool Finished;

        public void Visit(int interfaceId)
        {
            if ((uint)interfaceId < 64)
            {
                VisitedBelow64 |= 1UL << interfaceId;
            }
        }
    }

    /// <summary>
    /// An observation as the ring keeps it, 88 bytes instead of 128: the addresses as their halves with one byte for both
    /// versions (an <see cref="IpAddress"/> pads its version byte to 8), no fingerprint (the journey's), the link to the
    /// journey's next sighting as a distance, the small fields packed.
    /// </summary>
    private struct ObservationSlot
    {
        private long _timestampNs;
        private long _order;
        private ulong _segmentKey;
        private ulong _sourceHigh, _sourceLow, _destinationHigh, _destinationLow;
        private uint _tcpSequence;
        private int _tcpPayload;
        private int _length;
        /// <summary>The journey's next sighting, as the distance in sequence numbers to it; 0 for none.</summary>
        private int _next;
        private ushort _sourcePort, _destinationPort;
        private TcpFlags _tcpFlags;
        private byte _protocol;
        /// <summary>The source's IP version in the high nibble, the destination's in the low.</summary>
        private byte _versions;
        private byte _ttl;
        /// <summary><see cref="Observation.Selected"/>, <see cref="Observation.TimestampInvalid"/>, <see cref="Observation.Tunnelled"/>, and the direction above them.</summary>
        private byte _flags;

        public int Interface { get; private set; }

        /// <summary><see cref="Observation.Selected"/> of the observation stored.</summary>
        public readonly bool Selected => (_flags & 1) != 0;

        public readonly FlowKey Flow => new(new IpProtocol(_protocol), Address(_sourceHigh, _sourceLow, _versions >> 4), _sourcePort,
            Address(_destinationHigh, _destinationLow, _versions & 0xF), _destinationPort);

        public void Store(in Observation observation)
        {
            _timestampNs = observation.TimestampNs;
            _order = observation.Order;
            _segmentKey = observation.SegmentKey;
            FlowKey flow = observation.Flow;
            UInt128 source = flow.Source.Value, destination = flow.Destination.Value;
            _sourceHigh = (ulong)(source >> 64);
            _sourceLow = (ulong)source;
            _destinationHigh = (ulong)(destination >> 64);
            _destinationLow = (ulong)destination;
            _sourcePort = flow.SourcePort;
            _destinationPort = flow.DestinationPort;
            _protocol = flow.Protocol.Value;
            _versions = (byte)(flow.Source.Version << 4 | flow.Destination.Version);
            _tcpSequence = observation.TcpSequence;
            _tcpPayload = observation.TcpPayload;
            _length = observation.Length;
            _next = 0;
            _tcpFlags = observation.TcpFlags;
            _ttl = observation.Ttl;
            _flags = (byte)((observation.Selected ? 1 : 0) | (observation.TimestampInvalid ? 2 : 0) | (observation.Tunnelled ? 4 : 0) | (int)observation.Direction << 3);
            Interface = observation.Interface;
        }

        /// <summary>Links the sighting numbered <paramref name="sequence"/> (this one) to <paramref name="next"/>.</summary>
        public void Chain(long sequence, long next) => _next = checked((int)(next - sequence));

        /// <summary>The number of the journey's sighting after this one (numbered <paramref name="sequence"/>), or -1.</summary>
        public readonly long Next(long sequence) => _next == 0 ? -1 : sequence + _next;

        /// <summary>The observation stored, with the fingerprint of its journey.</summary>
        public readonly Observation ToObservation(ulong fingerprint) => new(_timestampNs, Interface, _order, fingerprint, Flow, _length,
            (_flags & 1) != 0, _segmentKey, _tcpSequence, _tcpPayload, (PacketDirection)(_flags >> 3), (_flags & 2) != 0, _ttl, (_flags & 4) != 0, _tcpFlags);

        private static IpAddress Address(ulong high, ulong low, int version)
        {
            switch (version)
            {
                case 4:
                    return IpAddress.FromV4((uint)low);
                case 6:
                    Span<byte> bytes = stackalloc byte[16];
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, high);
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], low);
                    return IpAddress.ReadV6(bytes);
                default:
                    return default;
            }
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
    /// <summary>How long after its first sighting a journey may still gain hops (<see cref="TraceSessionOptions.DefaultWindowNs"/>).</summary>
    public long WindowNs { get; init; } = TraceSessionOptions.DefaultWindowNs;

    /// <summary>How long idle per-flow state is kept (conntrack's defaults unless given).</summary>
    public FlowTimeouts Timeouts { get; init; } = FlowTimeouts.Default;

    /// <summary>Keep every NAT translation for the report, besides the aggregate rows (<c>--nat-detail</c>).</summary>
    public bool NatDetail { get; init; }

    /// <summary>The host's routes to the egress (follow), for the losses of flows no packet got through; null in replay.</summary>
    public IEgressRoutes? EgressRoutes { get; init; }

    /// <summary>Record each path's through-host time (<see cref="PathStats.Through"/>); <see cref="TraceSessionOptions.PathLatency"/>.</summary>
    public bool PathLatency { get; init; } = true;
}

