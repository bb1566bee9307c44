using System.Numerics;
using System.Runtime.CompilerServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// The reaches of the flows last looked up (<see cref="Correlator"/>'s <c>HasReach</c> and <c>ReachOf</c>), as their
/// entries' indexes in the <see cref="ReachTable"/>, and the flows last found to have none: with many short flows at once
/// (containers taking turns) the journeys of a few flows alternate, and each asked the table (a hash, and a cache miss
/// or two in a table of every flow of the last timeouts). Each entry keeps its key's hash (<see cref="ReachTable.Hash"/>),
/// so a look-up compares 8 integers before any key. What it holds is what the table holds: an index until a sweep
/// removes flows (<see cref="Clear"/>; entries never move otherwise, growth keeps their indexes), "none" (-1) until a
/// reach is made for that flow (<see cref="SetAt"/> replaces the entry).
/// </summary>
internal sealed class RecentReaches
{
    /// <summary>How many flows are remembered (the oldest replaced).</summary>
    public const int Capacity = 8;

    private readonly int[] _hashes = new int[Capacity];
    private readonly Correlator.FlowBits[] _flows = new Correlator.FlowBits[Capacity];
    private readonly int[] _reaches = new int[Capacity];
    private int _count;
    private int _next;
    /// <summary>
    /// The entries found or set last and the one before (a long flow's journeys come one after another, or alternate
    /// between its data and its acknowledgments: no hash needed).
    /// </summary>
    private int _last = -1, _previous = -1;

    public int Count => _count;

    /// <summary>The index of the entry found or set last, or of the one before, if it is <paramref name="flow"/>'s, else -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Last(in Correlator.FlowBits flow)
    {
        if (_last >= 0 && _flows[_last].Equals(in flow))
        {
            return _last;
        }
        if (_previous >= 0 && _flows[_previous].Equals(in flow))
        {
            (_last, _previous) = (_previous, _last);
            return _last;
        }
        return -1;
    }

    private void Touched(int index)
    {
        if (index != _last)
        {
            _previous = _last;
            _last = index;
        }
    }

    /// <summary>The entry's index for <paramref name="flow"/> (whose hash is <paramref name="hash"/>), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in Correlator.FlowBits flow, int hash)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_hashes[i] == hash && _flows[i].Equals(in flow))
            {
                Touched(i);
                return i;
            }
        }
        return -1;
    }

    /// <summary>The reach of entry <paramref name="index"/>: its index in the <see cref="ReachTable"/>, or -1 (the flow has none).</summary>
    public int ReachAt(int index) => _reaches[index];

    /// <summary>Remembers <paramref name="flow"/>'s reach (or that it has none, -1), in its entry if it has one, else the oldest's.</summary>
    public void Set(in Correlator.FlowBits flow, int hash, int reach) => SetAt(Find(in flow, hash), in flow, hash, reach);

    /// <summary>
    /// <see cref="Set"/> for a caller that has just looked <paramref name="flow"/> up: <paramref name="index"/> is what
    /// <see cref="Find"/> returned (-1: not here), so the entries are not searched a second time.
    /// </summary>
    public void SetAt(int index, in Correlator.FlowBits flow, int hash, int reach)
    {
        if (index < 0)
        {
            index = _next;
            _next = (_next + 1) % Capacity;
            _count = Math.Min(Capacity, _count + 1);
            _hashes[index] = hash;
            _flows[index] = flow;
        }
        _reaches[index] = reach;
        Touched(index);
    }

    /// <summary>Forgets every entry (a sweep removed reaches).</summary>
    public void Clear()
    {
        _count = 0;
        _next = 0;
        _last = _previous = -1;
    }

    public RecentReaches CopyHere()
    {
        var copy = new RecentReaches { _count = _count, _next = _next, _last = _last, _previous = _previous };
        _hashes.CopyTo(copy._hashes, 0);
        _flows.CopyTo(copy._flows, 0);
        _reaches.CopyTo(copy._reaches, 0);
        return copy;
    }
}

/// <summary>
/// The per-flow reach (<see cref="Correlator"/>'s <c>_flows</c>; session 14): a hash table keyed by the flow as the ring
/// keeps it (<see cref="Correlator.FlowBits"/>, 40 bytes, compared as five words) with each flow's <see cref="FlowReach"/>
/// inline in its entry, in place of a <c>Dictionary&lt;FlowKey, FlowReach&gt;</c> (a 72-byte key, and an object per flow).
/// <para>
/// <b>Order</b>: enumerated by index (<see cref="End"/>, <see cref="Holds"/>), and its indexes are given out exactly as
/// <see cref="Dictionary{TKey,TValue}"/> gives out its entries', which is the order the loss report and the settled
/// losses follow: a new flow takes the entry removed last if any is free (the free entries are a stack: removal pushes,
/// insertion pops), else the next never used; growth copies the entries where they are. So the same inserts and
/// removals leave the same flows in the same order as a dictionary, whatever the capacities.
/// </para>
/// <para>
/// Chained buckets like the dictionary's (one-based heads, a next index per entry), a power of two of them (the hash's
/// high bits mixed in), as many buckets as entries. Each entry's hash and next index sit in an array of their own
/// (8 bytes an entry), its flow and reach in another, and a byte per bucket says which classes of hash its chain holds:
/// a look-up of a flow not held (every new flow's) mostly ends at that byte, else reads a bucket and links, and an entry
/// only when a hash matches. An index stays its flow's until the flow is removed.
/// </para>
/// </summary>
internal sealed class ReachTable
{
    /// <summary>An entry's hash and chain, apart from its flow and reach: a look-up that misses (a new flow) reads these 8 bytes, not an 80-byte entry.</summary>
    private struct Link
    {
        public int Hash;
        /// <summary>The next entry of the bucket's chain, or -1; a free entry: <see cref="FreeTop"/> minus the next free one.</summary>
        public int Next;
    }

    private struct Entry
    {
        public Correlator.FlowBits Key;
        public FlowReach Reach;
    }

    /// <summary>A free entry's <see cref="Link.Next"/> is <c>FreeTop - next free</c> (-1 ends): at most -2, never a chain's.</summary>
    private const int FreeTop = -3;
    private const int InitialCapacity = 16;

    private int[] _buckets = new int[InitialCapacity];
    /// <summary>
    /// Per bucket, one bit for each class of the hashes its chain holds (<see cref="TagOf"/>: the hash's top three bits):
    /// a look-up of a flow not held (most look-ups: every new flow, and every flow whose journeys all reach the egress)
    /// mostly ends here, on a byte per bucket that stays in cache, instead of on the bucket's and its chain's lines.
    /// </summary>
    private byte[] _tags = new byte[InitialCapacity];
    private Link[] _links = new Link[InitialCapacity];
    private Entry[] _entries = new Entry[InitialCapacity];
    private int _count;
    private int _freeList = -1;
    private int _freeCount;

    /// <summary>Flows held.</summary>
    public int Count => _count - _freeCount;

    /// <summary>One past the highest index used: enumerate 0 .. End - 1, skipping those not <see cref="Holds"/>.</summary>
    public int End => _count;

    /// <summary>Entries allocated (for tests: growth).</summary>
    internal int Capacity => _entries.Length;

    /// <summary>Whether entry <paramref name="index"/> (below <see cref="End"/>) holds a flow.</summary>
    public bool Holds(int index) => _links[index].Next >= -1;

    public ref readonly Correlator.FlowBits KeyAt(int index) => ref _entries[index].Key;

    /// <summary>The reach of the flow at <paramref name="index"/>, in place (valid until the next insertion: growth moves the entries' array).</summary>
    public ref FlowReach ReachAt(int index) => ref _entries[index].Reach;

    /// <summary>The flow's hash: its five words folded by multiply and rotate (the destination rotated, so a flow and its reverse differ).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Hash(in Correlator.FlowBits flow)
    {
        const ulong K1 = 0x9E3779B97F4A7C15, K2 = 0xC2B2AE3D27D4EB4F, K3 = 0x165667B19E3779F9;
        ulong h = (flow.SourceLow ^ BitOperations.RotateLeft(flow.DestinationLow, 32)) * K1;
        h = BitOperations.RotateLeft(h ^ flow.Rest * K2, 31) * K3;
        h ^= (flow.SourceHigh ^ BitOperations.RotateLeft(flow.DestinationHigh, 17)) * K2;
        h ^= h >> 29;
        h *= K1;
        return (int)(h >> 32);
    }

    /// <summary>The bit of <see cref="_tags"/> for a hash: one of 8 classes by its top bits (the bucket is chosen by its low bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte TagOf(int hash) => (byte)(1 << (int)((uint)hash >> 29));

    /// <summary>Whether a look-up of <paramref name="hash"/> goes past its bucket's tag (for tests: the tags after removals).</summary>
    internal bool MayHold(int hash) => (_tags[hash & (_buckets.Length - 1)] & TagOf(hash)) != 0;

    /// <summary>The index of <paramref name="flow"/>'s entry (its hash <paramref name="hash"/>), or -1.</summary>
    public int Find(in Correlator.FlowBits flow, int hash)
    {
        int home = hash & (_buckets.Length - 1);
        if ((_tags[home] & TagOf(hash)) == 0)
        {
            return -1; // no entry of this class in the bucket's chain
        }
        Link[] links = _links;
        int i = _buckets[home] - 1;
        while ((uint)i < (uint)links.Length)
        {
            ref Link link = ref links[i];
            if (link.Hash == hash && _entries[i].Key.Equals(in flow))
            {
                return i;
            }
            i = link.Next;
        }
        return -1;
    }

    /// <summary>
    /// The index of <paramref name="flow"/>'s entry, made (with a default reach: no journey yet) when it has none: then
    /// <paramref name="added"/>. The index given is the one a dictionary would give (the class's remarks).
    /// </summary>
    public int FindOrAdd(in Correlator.FlowBits flow, int hash, out bool added)
    {
        int found = Find(in flow, hash);
        if (found >= 0)
        {
            added = false;
            return found;
        }
        int index;
        if (_freeCount > 0)
        {
            index = _freeList;
            _freeList = FreeTop - _links[index].Next;
            _freeCount--;
        }
        else
        {
            if (_count == _entries.Length)
            {
                Grow();
            }
            index = _count++;
        }
        int home = hash & (_buckets.Length - 1);
        ref int bucket = ref _buckets[home];
        _tags[home] |= TagOf(hash);
        ref Entry entry = ref _entries[index];
        entry.Key = flow;
        entry.Reach = default;
        _links[index] = new Link { Hash = hash, Next = bucket - 1 };
        bucket = index + 1;
        added = true;
        return index;
    }

    /// <summary>Removes the flow at <paramref name="index"/> (which must hold one): its entry becomes the next one given out.</summary>
    public void RemoveAt(int index)
    {
        ref Link link = ref _links[index];
        int home = link.Hash & (_buckets.Length - 1);
        ref int bucket = ref _buckets[home];
        int i = bucket - 1, previous = -1;
        while (i != index)
        {
            previous = i;
            i = _links[i].Next;
        }
        if (previous < 0)
        {
            bucket = link.Next + 1;
        }
        else
        {
            _links[previous].Next = link.Next;
        }
        byte tags = 0; // the classes left in the chain
        for (int rest = bucket - 1; rest >= 0; rest = _links[rest].Next)
        {
            tags |= TagOf(_links[rest].Hash);
        }
        _tags[home] = tags;
        link.Next = FreeTop - _freeList;
        _entries[index].Reach = default; // let the paths and end counts go
        _freeList = index;
        _freeCount++;
    }

    /// <summary>Twice the entries, in the same places (only when none is free: every one below the count holds a flow), and as many buckets.</summary>
    private void Grow()
    {
        int size = _entries.Length * 2;
        var entries = new Entry[size];
        Array.Copy(_entries, entries, _count);
        var links = new Link[size];
        var buckets = new int[size];
        var tags = new byte[size];
        for (int i = 0; i < _count; i++)
        {
            int hash = _links[i].Hash;
            ref int bucket = ref buckets[hash & (size - 1)];
            links[i] = new Link { Hash = hash, Next = bucket - 1 };
            bucket = i + 1;
            tags[hash & (size - 1)] |= TagOf(hash);
        }
        _entries = entries;
        _links = links;
        _buckets = buckets;
        _tags = tags;
    }
}

/// <summary>
/// The interfaces of the paths journeys took, one array per path, handed to each <see cref="FlowReach"/> that took it
/// (<see cref="FlowReach.Add(int[])"/> keeps the array it is given): the last few paths are looked for before a new
/// array is made. The arrays are never changed.
/// </summary>
internal sealed class PathInterfaces
{
    public const int Capacity = 8;

    private readonly int[][] _paths = new int[Capacity][];
    private int _count;
    private int _last;
    private int _next;

    /// <summary>The array of <paramref name="sightings"/>' interfaces, in order.</summary>
    public int[] Of(ReadOnlySpan<Sighting> sightings)
    {
        if (_count > 0 && Same(_paths[_last], sightings))
        {
            return _paths[_last];
        }
        for (int i = 0; i < _count; i++)
        {
            if (Same(_paths[i], sightings))
            {
                _last = i;
                return _paths[i];
            }
        }
        var path = new int[sightings.Length];
        for (int i = 0; i < sightings.Length; i++)
        {
            path[i] = sightings[i].Interface;
        }
        if (_count < Capacity)
        {
            _last = _count++;
        }
        else
        {
            _last = _next; // the oldest made
            _next = (_next + 1) % Capacity;
        }
        _paths[_last] = path;
        return path;
    }

    private static bool Same(int[] path, ReadOnlySpan<Sighting> sightings)
    {
        if (path.Length != sightings.Length)
        {
            return false;
        }
        for (int i = 0; i < path.Length; i++)
        {
            if (path[i] != sightings[i].Interface)
            {
                return false;
            }
        }
        return true;
    }

    public PathInterfaces CopyHere()
    {
        var copy = new PathInterfaces { _count = _count, _last = _last, _next = _next };
        _paths.CopyTo(copy._paths, 0);
        return copy;
    }
}
