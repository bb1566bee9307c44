namespace VethTrace.Tracing;

/// <summary>
/// How far the journeys of one flow (as first seen) got: the longest path any of them took, and where each
/// journey ended. A journey that ended on an interface before the end of the longest path was lost there; so was one
/// that started on the inside and ended short of the egress that other packets to its destination reached from the
/// interface it ended on (<see cref="Correlator"/>, docs/DESIGN.md "Losses"). Kept until the flow has been idle
/// for its protocol's timeout (<see cref="FlowTimeouts"/>).
/// </summary>
internal sealed class FlowReach
{
    private int[] _longest = [];
    /// <summary>Journeys of a flow mostly end on one interface: the first such interface and count inline, others in a dictionary made when needed.</summary>
    private int _firstEnd = -1;
    private long _firstEndCount;
    private Dictionary<int, long>? _otherEnds;

    /// <summary>The first sighting time of the flow's latest journey.</summary>
    public long LastSeenNs { get; set; }

    /// <summary>A TCP FIN or RST went by: the closing timeout applies.</summary>
    public bool Closing { get; set; }

    /// <summary>The flow's first journey started on a container, veth or bridge (not the egress or a tunnel).</summary>
    public bool StartsInside { get; set; }

    /// <summary>A journey of the flow reached an egress after the inside.</summary>
    public bool ReachedEgress { get; set; }

    /// <summary>How many journeys ended on each interface, in order of the first to end there.</summary>
    public IEnumerable<(int Interface, long Count)> EndedAt
    {
        get
        {
            if (_firstEnd >= 0)
            {
                yield return (_firstEnd, _firstEndCount);
            }
            if (_otherEnds is not null)
            {
                foreach (var (interfaceId, count) in _otherEnds)
                {
                    yield return (interfaceId, count);
                }
            }
        }
    }

    /// <summary>
    /// A journey along <paramref name="path"/> (its interfaces in path order). The array is kept, not copied, when it is the
    /// longest so far: the caller hands the same array to every flow that took that path and never changes it
    /// (<see cref="PathInterfaces"/>), so a flow costs no array of its own.
    /// </summary>
    public void Add(int[] path)
    {
        if (path.Length > _longest.Length)
        {
            _longest = path;
        }
        Ended(path[^1]);
    }

    /// <summary><see cref="Add(int[])"/> for a journey seen on one interface.</summary>
    public void Add(int interfaceId)
    {
        if (_longest.Length == 0)
        {
            _longest = [interfaceId];
        }
        Ended(interfaceId);
    }

    /// <summary>The longest path kept (the array given to <see cref="Add(int[])"/>; for tests).</summary>
    internal int[] Longest => _longest;

    private void Ended(int interfaceId)
    {
        if (_firstEnd < 0 || _firstEnd == interfaceId)
        {
            _firstEnd = interfaceId;
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
    public int Innermost(Func<int, InterfaceRole> roleOf)
    {
        int best = -1;
        foreach (int id in _longest)
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
    public bool IsShortOf(int interfaceId)
    {
        int position = Array.IndexOf(_longest, interfaceId);
        return position >= 0 && position < _longest.Length - 1;
    }
}
