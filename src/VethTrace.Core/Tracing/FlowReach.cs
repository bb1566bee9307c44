using System.Runtime.InteropServices;

namespace VethTrace.Tracing;

/// <summary>
/// How far the journeys of one flow (as first seen) got: the longest path any of them took, and where each
/// journey ended. A journey that ended on an interface before the end of the longest path was lost there.
/// </summary>
internal sealed class FlowReach
{
    private int[] _longest = [];
    private readonly Dictionary<int, long> _endedAt = [];
    /// <summary>Journeys of this flow mostly end on one interface in a row: counted here, added to the dictionary on a change.</summary>
    private (int Interface, long Count) _endedRun = (-1, 0);

    /// <summary>How many journeys ended on each interface, in order of the first to end there.</summary>
    public Dictionary<int, long> EndedAt
    {
        get
        {
            FlushEndedRun();
            return _endedAt;
        }
    }

    public void Add(List<Observation> sightings)
    {
        if (sightings.Count > _longest.Length)
        {
            _longest = sightings.Select(s => s.Interface).ToArray();
        }
        Ended(sightings[^1].Interface);
    }

    /// <summary><see cref="Add(List{Observation})"/> for a journey seen on one interface.</summary>
    public void Add(int interfaceId)
    {
        if (_longest.Length == 0)
        {
            _longest = [interfaceId];
        }
        Ended(interfaceId);
    }

    private void Ended(int interfaceId)
    {
        if (interfaceId == _endedRun.Interface)
        {
            _endedRun.Count++;
            return;
        }
        FlushEndedRun();
        CollectionsMarshal.GetValueRefOrAddDefault(_endedAt, interfaceId, out _)++; // the first of a run: keeps the order of first appearance
        _endedRun = (interfaceId, 0);
    }

    private void FlushEndedRun()
    {
        if (_endedRun.Count > 0)
        {
            _endedAt[_endedRun.Interface] += _endedRun.Count;
            _endedRun.Count = 0;
        }
    }

    /// <summary>True when the longest path goes on past <paramref name="interfaceId"/>.</summary>
    public bool IsShortOf(int interfaceId)
    {
        int position = Array.IndexOf(_longest, interfaceId);
        return position >= 0 && position < _longest.Length - 1;
    }
}
