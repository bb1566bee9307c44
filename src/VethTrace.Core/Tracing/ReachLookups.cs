using System.Numerics;
using System.Runtime.CompilerServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// Equality of flow keys for the per-flow reach (<see cref="Correlator"/>'s <c>_flows</c>), with a cheaper hash than the
/// record's own (which combines every field through its type's default comparer, and each address through
/// <see cref="HashCode"/>): the two addresses' halves, ports, protocol and versions folded by multiply and rotate. A
/// dictionary's order of enumeration is its order of insertion (and of reuse after removals), never its hash's, so
/// nothing it reports changes; the record's hash is seeded per process anyway.
/// </summary>
internal sealed class FlowKeyComparer : IEqualityComparer<FlowKey>
{
    public static readonly FlowKeyComparer Instance = new();

    public bool Equals(FlowKey x, FlowKey y) =>
        x.SourcePort == y.SourcePort && x.DestinationPort == y.DestinationPort && x.Source.Equals(y.Source)
        && x.Destination.Equals(y.Destination) && x.Protocol.Value == y.Protocol.Value;

    public int GetHashCode(FlowKey key) => Hash(in key);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Hash(in FlowKey key)
    {
        const ulong K1 = 0x9E3779B97F4A7C15, K2 = 0xC2B2AE3D27D4EB4F, K3 = 0x165667B19E3779F9;
        UInt128 source = key.Source.Value, destination = key.Destination.Value;
        ulong sourceHigh = Unsafe.Add(ref Unsafe.As<UInt128, ulong>(ref source), 1), destinationHigh = Unsafe.Add(ref Unsafe.As<UInt128, ulong>(ref destination), 1);
        ulong rest = key.SourcePort | (ulong)key.DestinationPort << 16 | (ulong)key.Protocol.Value << 32
            | (ulong)key.Source.Version << 40 | (ulong)key.Destination.Version << 48;
        ulong h = (ulong)source * K1;
        h = BitOperations.RotateLeft(h ^ sourceHigh * K2, 31) * K1;
        h = BitOperations.RotateLeft(h ^ (ulong)destination * K2, 29) * K3;
        h = BitOperations.RotateLeft(h ^ destinationHigh * K1, 27) * K2;
        h = BitOperations.RotateLeft(h ^ rest * K3, 33) * K1;
        h ^= h >> 29;
        return (int)h ^ (int)(h >> 32);
    }
}

/// <summary>
/// The reaches of the flows last looked up (<see cref="Correlator"/>'s <c>HasReach</c> and <c>ReachOf</c>), and the flows
/// last found to have none: with many short flows at once (containers taking turns) the journeys of a few flows
/// alternate, and each asked the dictionary (a hash, and a cache miss or two in a table of every flow of the last
/// timeouts). Each entry keeps its key's hash (<see cref="FlowKeyComparer.Hash"/>), so a look-up compares 8 integers
/// before any key. What it holds is what the dictionary holds: a reach until a sweep removes flows (<see cref="Clear"/>),
/// "none" until a reach is made for that flow (<see cref="Set"/> replaces the entry).
/// </summary>
internal sealed class RecentReaches
{
    /// <summary>How many flows are remembered (the oldest replaced).</summary>
    public const int Capacity = 8;

    private readonly int[] _hashes = new int[Capacity];
    private readonly FlowKey[] _flows = new FlowKey[Capacity];
    private readonly FlowReach?[] _reaches = new FlowReach?[Capacity];
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
    public int Last(in FlowKey flow)
    {
        if (_last >= 0 && FlowKeyComparer.Instance.Equals(_flows[_last], flow))
        {
            return _last;
        }
        if (_previous >= 0 && FlowKeyComparer.Instance.Equals(_flows[_previous], flow))
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
    public int Find(in FlowKey flow, int hash)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_hashes[i] == hash && FlowKeyComparer.Instance.Equals(_flows[i], flow))
            {
                Touched(i);
                return i;
            }
        }
        return -1;
    }

    /// <summary>The reach of entry <paramref name="index"/> (null: the flow has none).</summary>
    public FlowReach? ReachAt(int index) => _reaches[index];

    /// <summary>Remembers <paramref name="flow"/>'s reach (or that it has none), in its entry if it has one, else the oldest's.</summary>
    public void Set(in FlowKey flow, int hash, FlowReach? reach) => SetAt(Find(in flow, hash), in flow, hash, reach);

    /// <summary>
    /// <see cref="Set"/> for a caller that has just looked <paramref name="flow"/> up: <paramref name="index"/> is what
    /// <see cref="Find"/> returned (-1: not here), so the entries are not searched a second time.
    /// </summary>
    public void SetAt(int index, in FlowKey flow, int hash, FlowReach? reach)
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
        Array.Clear(_reaches);
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
