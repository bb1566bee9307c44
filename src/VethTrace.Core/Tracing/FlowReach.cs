namespace VethTrace.Tracing;

/// <summary>
/// How far the journeys of one flow (as first seen) got: the longest path any of them took, and where each
/// journey ended. A journey that ended on an interface before the end of the longest path was lost there; so was one
/// that started on the inside and ended short of the egress that other packets to its destination reached from the
/// interface it ended on (<see cref="Correlator"/>, docs/DESIGN.md "Losses"). Kept until the flow has been idle
/// for its protocol's timeout (<see cref="FlowTimeouts"/>).
/// </summary>
/// <remarks>
/// A struct held inline in its entry of <see cref="ReachTable"/> (session 14): as a class every inbound flow of many
/// short flows allocated one, and the collections that moved them were ~3 % of the accounting thread. The default value
/// is a flow with no journey yet.
/// </remarks>
internal struct FlowReach
{
    /// <summary>The longest path; null: none yet (an empty path).</summary>
    private int[]? _longest;
    /// <summary>Journeys of a flow mostly end on one interface: the first such interface (plus one; 0: none) and count inline, others in a dictionary made when needed.</summary>
    private int _firstEndPlusOne;
    private long _firstEndCount;
    private Dictionary<int, long>? _otherEnds;

    /// <summary>The first sighting time of the flow's latest journey.</summary>
    public long LastSeenNs;

    /// <summary>A TCP FIN or RST went by: the closing timeout applies.</summary>
    public bool Closing;

    /// <summary>The flow's first journey started on a container, veth or bridge (not the egress or a tunnel).</summary>
    public bool StartsInside;

    /// <summary>The interface the first journey to end ended on, or -1 (none yet).</summary>
    public readonly int FirstEnd => _firstEndPlusOne - 1;

    /// <summary>How many journeys ended on <see cref="FirstEnd"/>.</summary>
    public readonly long FirstEndCount => _firstEndCount;

    /// <summary>How many journeys ended on each other interface, in order of the first to end there (null: none).</summary>
    public readonly Dictionary<int, long>? OtherEnds => _otherEnds;

    /// <summary>How many journeys ended on each interface, in order of the first to end there (for tests).</summary>
    internal readonly List<(int Interface, long Count)> EndedAt()
    {
        var ends = new List<(int, long)>();
        if (_firstEndPlusOne > 0)
        {
            ends.Add((FirstEnd, _firstEndCount));
        }
        if (_otherEnds is not null)
        {
            foreach (var (interfaceId, count) in _otherEnds)
            {
                ends.Add((interfaceId, count));
            }
        }
        return ends;
    }

    /// <summary>
    /// A journey along <paramref name="path"/> (its interfaces in path order). The array is kept, not copied, when it is the
    /// longest so far: the caller hands the same array to every flow that took that path and never changes it
    /// (<see cref="PathInterfaces"/>), so a flow costs no array of its own.
    /// </summary>
    public void Add(int[] path)
    {
        if (path.Length > (_longest?.Length ?? 0))
        {
            _longest = path;
        }
        Ended(path[^1]);
    }

    /// <summary><see cref="Add(int[])"/> for a journey seen on one interface.</summary>
    public void Add(int interfaceId)
    {
        if (_longest is null || _longest.Length == 0)
        {
            _longest = [interfaceId];
        }
        Ended(interfaceId);
    }

    /// <summary>The longest path kept (the array given to <see cref="Add(int[])"/>; for tests).</summary>
    internal readonly int[] Longest => _longest ?? [];

    private void Ended(int interfaceId)
    {
        if (_firstEndPlusOne == 0 || _firstEndPlusOne == interfaceId + 1)
        {
            _firstEndPlusOne = interfaceId + 1;
            _firstEndCount++;
            return;
        }
        _otherEnds ??= [];
        _otherEnds[interfaceId] = _otherEnds.GetValueOrDefault(interfaceId) + 1;
    }

    /// <summary>
    /// The interface of the longest path nearest the container (a container's own interface, else a veth), or -1 when it
    /// crossed neither: whose flow this is, for a loss counted per container (<see cref="LossReport.Inside"/>).
    /// </summary>
    public readonly int Innermost(Func<int, InterfaceRole> roleOf)
    {
        int best = -1;
        foreach (int id in Longest)
        {
            InterfaceRole role = roleOf(id);
            if (role == InterfaceRole.Container)
            {
                return id;
            }
            if (role == InterfaceRole.Veth && best < 0)
            {
                best = id;
            }
        }
        return best;
    }

    /// <summary>True when the longest path goes on past <paramref name="interfaceId"/>.</summary>
    public readonly bool IsShortOf(int interfaceId)
    {
        int[] longest = Longest;
        int position = Array.IndexOf(longest, interfaceId);
        return position >= 0 && position < longest.Length - 1;
    }
}
