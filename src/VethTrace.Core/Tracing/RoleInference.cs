using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// Decides the roles that no name, option or topology decided (<see cref="RoleSource.Default"/>: <c>if34</c> of a
/// <c>tcpdump -i any</c> file, per-hop files named <c>c1-eth0.pcap</c> or <c>wan.pcap</c>) from the journeys of the
/// trace's first window (docs/DESIGN.md, "Roles"):
/// <list type="number">
/// <item>Copies of one packet with equal TTL (hop limit) were on one L2 segment; a lower TTL means routing came
/// between. Interfaces that carried copies with equal TTL form a segment.</item>
/// <item>Which segment is inside (containers, veths, bridge) and which outside (egress): a name that decides a role
/// says it; otherwise the NAT rewrite does: along a routed step, a rewritten source means the packet left the inside
/// (MASQUERADE, or a DNAT's reply), a rewritten destination that it entered (a published port, or an SNAT's reply).</item>
/// <item>Inside, strict timestamp orders across journeys place each interface by its distance from the router
/// (outbound the container's copy is first, inbound last): nearest the bridge, then the veth, then the container.
/// Equal timestamps say nothing and are not counted.</item>
/// <item>Among interfaces equally near the router, one that carried the inside addresses of several containers is the
/// bridge, one that carried a single container's is its veth (issue 14 §2: "one container's addresses against many").</item>
/// </list>
/// Outside interfaces, and interfaces that carried copies inside a tunnel (VXLAN's underlay), become egress. An interface with no evidence stays unknown, and the correlator counts the ties
/// it orders with it (<see cref="Correlator.TiesWithUnknownRole"/>).
/// </summary>
/// <remarks>
/// The correlator calls <see cref="Learn"/> with the journeys open when the first journey is due (a window after the
/// first packet, or at the end of input), then <see cref="Decide"/>, before it orders any of them; again (at most
/// <see cref="MaxLaterDecisions"/> times) when an interface with an unknown role shows after a decision, with the
/// window that starts at the journey it showed in (<see cref="Observe"/>). The evidence is the ring's own journeys: nothing is kept per packet.
/// </remarks>
public sealed class RoleInference(InterfaceRegistry registry)
{
    /// <summary>Decisions after the first one, at most: each copies a window's journeys, so a run that keeps meeting
    /// interfaces no evidence decides stops asking.</summary>
    public const int MaxLaterDecisions = 8;

    /// <summary>The journeys one decision learns from, at most (the first of a window, at line rate a million).</summary>
    public const int MaxJourneys = 100_000;

    /// <summary>The journeys learnt since the last decision, one after another, outside the GC heap: a window holds up to
    /// <see cref="MaxJourneys"/> of them (tens of megabytes), and copying each into an array of its own cost a hundred
    /// thousand allocations and a full collection to give them back. Freed by each decision.</summary>
    private readonly LearntJourneys _journeys = new();
    /// <summary>How many interfaces the last decision saw.</summary>
    private int _examined;
    private int _decisions;
    /// <summary>The interfaces observed since the last decision, by id.</summary>
    private bool[] _observed = new bool[16];
    /// <summary>The journey in which an interface whose role is unknown first showed after a decision; -1 when none.</summary>
    private long _decideAt = -1;

    /// <summary>
    /// Called by the correlator for each observation, with the number of the journey it joined or started: the first
    /// sighting, after a decision, of an interface whose role is still unknown (a container started mid-capture, a hop
    /// whose first packet comes late) asks for another decision once that journey is due (<see cref="IsDue"/>), so it
    /// learns from the window that starts there. Costs one array read per observation.
    /// </summary>
    public void Observe(int interfaceId, long journey)
    {
        if ((uint)interfaceId < (uint)_observed.Length && _observed[interfaceId])
        {
            return;
        }
        if (interfaceId >= _observed.Length)
        {
            Array.Resize(ref _observed, Math.Max(interfaceId + 1, _observed.Length * 2));
        }
        _observed[interfaceId] = true;
        if (_decisions > 0 && _decisions <= MaxLaterDecisions && _decideAt < 0 && !registry.IsKnown(interfaceId))
        {
            _decideAt = journey;
        }
    }

    /// <summary>Whether a later decision is due: the journey <see cref="Observe"/> noted is the next to finish, or finished.</summary>
    public bool IsDue(long nextJourney) => _decideAt >= 0 && nextJourney >= _decideAt;

    /// <summary>
    /// Whether the first decision is due: some role of the interfaces the correlator has seen observations of (ids
    /// below <paramref name="seen"/>) is not known. A function of the input, so the decisions do not depend on how
    /// far ahead the reading thread has registered interfaces. Later decisions come from <see cref="Observe"/>.
    /// </summary>
    public bool IsPending(int seen)
    {
        if (seen <= _examined || _decisions > 0)
        {
            return false;
        }
        for (int id = 0; id < seen; id++)
        {
            if (!registry.IsKnown(id))
            {
                return true;
            }
        }
        _examined = seen;
        return false;
    }

    /// <summary>One journey's sightings, in time order.</summary>
    public void Learn(ReadOnlySpan<Observation> sightings)
    {
        if (sightings.Length > 1)
        {
            _journeys.Add(sightings);
        }
    }

    /// <summary>Decides the roles of the interfaces below <paramref name="seen"/> from the journeys learnt, and forgets them.</summary>
    public void Decide(int seen)
    {
        int count = seen;
        _examined = count;
        _decisions++;
        _decideAt = -1;
        Array.Clear(_observed);
        try
        {
            DecideFrom(count);
        }
        finally
        {
            _journeys.Release();
        }
    }

    private void DecideFrom(int count)
    {
        // 1. Segments: interfaces that carried copies of one packet with the same TTL.
        int[] parent = new int[count];
        for (int i = 0; i < count; i++)
        {
            parent[i] = i;
        }
        int Find(int x)
        {
            while (parent[x] != x)
            {
                x = parent[x] = parent[parent[x]];
            }
            return x;
        }
        foreach (ReadOnlySpan<Observation> journey in _journeys)
        {
            for (int i = 0; i < journey.Length; i++)
            {
                for (int j = i + 1; j < journey.Length; j++)
                {
                    if (journey[i].Ttl == journey[j].Ttl && journey[i].Ttl != 0 && journey[i].Interface < count && journey[j].Interface < count)
                    {
                        parent[Find(journey[i].Interface)] = Find(journey[j].Interface);
                    }
                }
            }
        }

        // 2. Inside or outside, per segment: names first, then the NAT rewrites across a routed step.
        long[] named = new long[count], nat = new long[count];
        for (int id = 0; id < count; id++)
        {
            if (registry.IsKnown(id))
            {
                InterfaceRole role = registry.RoleOf(id);
                named[Find(id)] += role == InterfaceRole.Egress ? -1 : role == InterfaceRole.Tunnel ? 0 : 1;
            }
        }
        foreach (ReadOnlySpan<Observation> journey in _journeys)
        {
            foreach (ref readonly Observation before in journey)
            {
                foreach (ref readonly Observation after in journey)
                {
                    // Routing came between them: 'before' has the higher TTL, whatever the timestamps say.
                    if (before.Ttl <= after.Ttl || before.Interface >= count || after.Interface >= count)
                    {
                        continue;
                    }
                    // On the packed flows: building both keys for every pair was most of this loop (1 % of replay's CPU on multihop-mixed).
                    bool sourceRewritten = !before.FlowFields.SameSource(in after.FlowFields);
                    bool destinationRewritten = !before.FlowFields.SameDestination(in after.FlowFields);
                    if (sourceRewritten != destinationRewritten)
                    {
                        // Left the inside (source rewritten) or entered it (destination rewritten).
                        nat[Find(before.Interface)] += sourceRewritten ? 1 : -1;
                        nat[Find(after.Interface)] += sourceRewritten ? -1 : 1;
                    }
                }
            }
        }
        int SideOf(int id)
        {
            int segment = Find(id);
            return Math.Sign(named[segment] != 0 ? named[segment] : nat[segment]);
        }

        // 3. Inside: distance from the router by strict timestamp order, in journeys that cross the router.
        var farther = new Dictionary<(int, int), long>();
        // 4 (with 3). The inside addresses each interface carried (up to two): a container's eth0 and its veth carry that
        // one container's, a bridge those of every container behind it.
        var insideAddresses = new Dictionary<int, HashSet<IpAddress>>();
        var ordered = new HashSet<int>();
        foreach (ReadOnlySpan<Observation> journey in _journeys)
        {
            bool? outbound = null;
            foreach (ref readonly Observation a in journey)
            {
                foreach (ref readonly Observation b in journey)
                {
                    if (a.Ttl > b.Ttl && a.Interface < count && b.Interface < count && SideOf(a.Interface) != SideOf(b.Interface))
                    {
                        outbound = SideOf(a.Interface) > 0; // the inside copies came first
                    }
                }
            }
            if (outbound is not bool outwards)
            {
                continue;
            }
            foreach (ref readonly Observation sighting in journey)
            {
                // The inside endpoint: the source of an outbound copy, the destination of an inbound one (after DNAT).
                if (sighting.Interface < count && SideOf(sighting.Interface) > 0)
                {
                    if (!insideAddresses.TryGetValue(sighting.Interface, out HashSet<IpAddress>? addresses))
                    {
                        insideAddresses[sighting.Interface] = addresses = [];
                    }
                    if (addresses.Count < 2)
                    {
                        addresses.Add(outwards ? sighting.Flow.Source : sighting.Flow.Destination);
                    }
                }
            }
            for (int i = 0; i < journey.Length; i++)
            {
                for (int j = i + 1; j < journey.Length; j++)
                {
                    ref readonly Observation a = ref journey[i];
                    ref readonly Observation b = ref journey[j];
                    if (a.TimestampNs == b.TimestampNs || a.Ttl != b.Ttl || a.Interface >= count || b.Interface >= count
                        || SideOf(a.Interface) <= 0 || a.TimestampInvalid || b.TimestampInvalid)
                    {
                        continue;
                    }
                    // a strictly before b: outbound, a is farther from the router than b; inbound, nearer.
                    var key = outwards ? (a.Interface, b.Interface) : (b.Interface, a.Interface);
                    farther[key] = farther.GetValueOrDefault(key) + 1;
                    ordered.Add(a.Interface);
                    ordered.Add(b.Interface);
                }
            }
        }

        var underlay = new HashSet<int>();
        foreach (ReadOnlySpan<Observation> journey in _journeys)
        {
            foreach (ref readonly Observation sighting in journey)
            {
                if (sighting.Tunnelled)
                {
                    underlay.Add(sighting.Interface);
                }
            }
        }
        for (int id = 0; id < count; id++)
        {
            // An interface that carried the packet encapsulated is an underlay: beyond the tunnel device, as the egress is.
            if (!registry.IsKnown(id) && (SideOf(id) < 0 || underlay.Contains(id)))
            {
                registry.Decide(id, InterfaceRole.Egress, RoleSource.Inferred);
            }
        }
        // Per inside segment: group by how many others each is farther than (nearest the router first), then the
        // roles outwards from the bridge, anchored on the roles names decided.
        foreach (var segment in ordered.Where(id => SideOf(id) > 0).GroupBy(Find))
        {
            var members = segment.ToList();
            int Score(int x) => members.Count(y => y != x && farther.GetValueOrDefault((x, y)) > farther.GetValueOrDefault((y, x)));
            int next = (int)InterfaceRole.Bridge;
            int Carried(int id) => insideAddresses.TryGetValue(id, out HashSet<IpAddress>? addresses) ? addresses.Count : 0;
            foreach (var group in members.GroupBy(Score).OrderBy(g => g.Key))
            {
                var known = group.Where(registry.IsKnown).Select(id => (int)registry.RoleOf(id)).Where(r => r <= (int)InterfaceRole.Bridge).ToList();
                int level = known.Count > 0 ? known.Min() : next;
                // Equally near the router (ties say nothing: a veth's copy and the bridge's share one receive stamp on
                // the way out), but one carried many containers' addresses: that one is the bridge, and one that carried a
                // single container's is a port of it, its veth.
                bool many = level == (int)InterfaceRole.Bridge && group.Any(id => Carried(id) > 1);
                foreach (int id in group.Where(id => !registry.IsKnown(id)))
                {
                    registry.Decide(id, many && Carried(id) == 1 ? InterfaceRole.Veth : (InterfaceRole)level, RoleSource.Inferred);
                }
                next = Math.Max(level - 1, (int)InterfaceRole.Container);
            }
        }
    }
}

/// <summary>
/// Journeys of observations stored back to back in native memory (grown by doubling, freed by <see cref="Release"/>),
/// with the index where each ends; enumerated as one span per journey.
/// </summary>
internal sealed unsafe class LearntJourneys
{
    private Observation* _items;
    private int _length;
    private int _capacity;
    private readonly List<int> _ends = [];
    /// <summary>The bytes from the start mapped at once (<see cref="LargeMemory.PopulateWrite"/>); beyond, pages fault in.</summary>
    private nuint _populated;
    private const int PopulateAhead = 256 << 10;

    public int Count => _ends.Count;

    /// <summary>Where the journeys start, and the bytes from there mapped ahead of the writes (for tests).</summary>
    internal (nint Address, long Populated) Memory => ((nint)_items, (long)_populated);

    ~LearntJourneys() => System.Runtime.InteropServices.NativeMemory.Free(_items);

    public void Add(ReadOnlySpan<Observation> journey)
    {
        if (journey.Length > _capacity - _length)
        {
            int capacity = Math.Max(Math.Max(_capacity * 2, 1024), _length + journey.Length);
            _items = (Observation*)System.Runtime.InteropServices.NativeMemory.Realloc(_items, (nuint)capacity * (nuint)sizeof(Observation));
            _capacity = capacity;
        }
        nuint end = (nuint)(_length + journey.Length) * (nuint)sizeof(Observation);
        if (end > _populated)
        {
            // A decision learns up to 100,000 journeys (tens of megabytes, written once): their pages are mapped a
            // quarter of a megabyte at a time instead of faulting one by one (8,400 faults on the 1M many-flows file).
            nuint target = Math.Min((nuint)_capacity * (nuint)sizeof(Observation), end + PopulateAhead);
            LargeMemory.PopulateWrite((byte*)_items + _populated, target - _populated);
            _populated = target;
        }
        journey.CopyTo(new Span<Observation>(_items + _length, journey.Length));
        _length += journey.Length;
        _ends.Add(_length);
    }

    /// <summary>Forgets every journey and gives the memory back.</summary>
    public void Release()
    {
        System.Runtime.InteropServices.NativeMemory.Free(_items);
        _items = null;
        _length = _capacity = 0;
        _populated = 0;
        _ends.Clear();
        _ends.TrimExcess();
    }

    public Enumerator GetEnumerator() => new(this);

    public ref struct Enumerator(LearntJourneys journeys)
    {
        private int _index = -1;

        public readonly ReadOnlySpan<Observation> Current
        {
            get
            {
                int start = _index == 0 ? 0 : journeys._ends[_index - 1];
                return new ReadOnlySpan<Observation>(journeys._items + start, journeys._ends[_index] - start);
            }
        }

        public bool MoveNext() => ++_index < journeys._ends.Count;
    }
}
