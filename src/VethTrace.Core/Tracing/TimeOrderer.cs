using System.Runtime.CompilerServices;

namespace VethTrace.Tracing;

/// <summary>
/// Puts observations back in timestamp order before they reach the <see cref="Correlator"/>, which needs time order
/// to close journeys. Live handles deliver independently, and a capture file written from several handles (dumpcap
/// with several -i, vethtrace record) holds its packets in arrival order, not time order. Observations wait up to
/// <see cref="SlackNs"/> behind the newest timestamp seen; memory is bounded by that slack.
/// </summary>
/// <remarks>
/// Most input is already in order (one file from one handle, or a merge of such files), so observations that
/// arrive in (timestamp, order) sequence wait in a FIFO (a ring handed to the correlator by reference), which costs
/// O(1) and copies each observation once; only
/// the ones that arrive late go to a heap. The two are merged on release by the same key, so the correlator sees
/// exactly the sequence a single heap would give (the keys are unique: <see cref="Observation.Order"/> is).
/// </remarks>
public sealed class TimeOrderer(IObservationSink correlator, long slackNs)
{
    /// <summary>The correlator to read ahead for, when the observations go straight to one (not through a pipe to its thread).</summary>
    private readonly Correlator? _readAhead = correlator as Correlator;
    private readonly SequenceRing<Observation> _inOrder = new();
    private readonly PriorityQueue<Observation, (long, long)> _late = new();
    private (long TimestampNs, long Order) _tail = (long.MinValue, long.MinValue);
    private long _newest = long.MinValue;
    /// <summary>The in-order observations before this one have been anticipated.</summary>
    private long _anticipated;

    /// <summary>The default slack: a live handle was seen delivering more than a second late in the lab.</summary>
    public const long DefaultSlackNs = 2_000_000_000;

    public long SlackNs { get; } = slackNs;

    public int Pending => (int)_inOrder.Count + _late.Count;

    /// <summary>
    /// Observations that arrived more than <see cref="SlackNs"/> behind the newest timestamp before them. While this
    /// is 0 the correlator has seen every observation in exact (timestamp, order) sequence, the same sequence any larger
    /// slack would have given: an observation is released only when it is more than the slack older than the newest,
    /// so a later arrival that is at most the slack late is newer than everything already released.
    /// </summary>
    public long Overtaken { get; private set; }

    public void Add(in Observation observation)
    {
        if (_newest != long.MinValue && observation.TimestampNs < _newest - SlackNs)
        {
            Overtaken++;
        }
        var key = (observation.TimestampNs, observation.Order);
        if (key.CompareTo(_tail) >= 0)
        {
            _inOrder.Push(in observation);
            _tail = key;
            AnticipateInOrder();
        }
        else
        {
            _late.Enqueue(observation, key);
        }
        Advance(observation.TimestampNs);
    }

    /// <summary>
    /// Lets the correlator read ahead (<see cref="Correlator.Anticipate"/>) for the observations that arrived in order
    /// since the last time, 16 at a time, when the orderer feeds a correlator directly (live capture); replay's pipe
    /// hands its observations to the correlator's thread, which reads ahead there.
    /// </summary>
    private void AnticipateInOrder()
    {
        const int Batch = 16;
        if (_readAhead is null)
        {
            return;
        }
        long from = Math.Max(_anticipated, _inOrder.Head);
        if (_inOrder.Tail - from < Batch)
        {
            return;
        }
        for (long sequence = from; sequence < _inOrder.Tail; sequence++)
        {
            _readAhead.Anticipate(_inOrder[sequence].Fingerprint);
        }
        _anticipated = _inOrder.Tail;
    }

    /// <summary>Moves the clock (for example to the wall clock when live traffic pauses) and releases what is old enough.</summary>
    public void Advance(long nowNs)
    {
        _newest = Math.Max(_newest, nowNs);
        Release(_newest - SlackNs);
    }

    /// <summary>Releases everything (end of input).</summary>
    public void Flush() => Release(long.MaxValue, everything: true);

    /// <summary>Hands the correlator, in (timestamp, order) sequence, every observation stamped before <paramref name="before"/> (or all).</summary>
    private void Release(long before, bool everything = false)
    {
        while (true)
        {
            bool haveInOrder = _inOrder.Count > 0;
            ref Observation next = ref haveInOrder ? ref _inOrder[_inOrder.Head] : ref Unsafe.NullRef<Observation>();
            if (_late.Count > 0 && _late.TryPeek(out Observation late, out var lateKey)
                && (!haveInOrder || lateKey.CompareTo((next.TimestampNs, next.Order)) < 0))
            {
                if (late.TimestampNs >= before && !everything)
                {
                    return;
                }
                _late.Dequeue();
                correlator.Add(in late);
                continue;
            }
            if (!haveInOrder || next.TimestampNs >= before && !everything)
            {
                return;
            }
            correlator.Add(in next);
            _inOrder.DropBefore(_inOrder.Head + 1);
        }
    }
}

/// <summary>
/// Where a <see cref="TimeOrderer"/> releases observations in time order: the <see cref="Correlator"/>, or a pipe to
/// the thread that runs it (which reads ahead there itself).
/// </summary>
public interface IObservationSink
{
    /// <summary>The next observation in (timestamp, order) sequence.</summary>
    void Add(in Observation observation);
}
