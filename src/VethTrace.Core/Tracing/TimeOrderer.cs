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
        }
        else
        {
            _late.Enqueue(observation, key);
        }
        Advance(observation.TimestampNs);
    }

    /// <summary>
    /// How far ahead of the observation it releases the orderer lets the correlator read ahead
    /// (<see cref="Correlator.ReadAhead"/>), when it feeds a correlator directly (live capture); replay's pipe hands its
    /// observations to the correlator's thread, which reads ahead there. Reading ahead for each observation as it came in
    /// order was thousands of places early in follow, which holds a pump's worth: evicted again before its turn.
    /// </summary>
    private const int ReadAheadDistance = 8;

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
            if (_readAhead is not null && _inOrder.Count > ReadAheadDistance)
            {
                // The correlator's memory for the observation a few places on, as replay's matching stage reads ahead.
                _readAhead.ReadAhead(in _inOrder[_inOrder.Head + ReadAheadDistance]);
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

/// <summary>
/// The <see cref="TimeOrderer"/> of a pipelined run (<see cref="TraceSession.RunPipelined"/>), which releases into a
/// <see cref="BatchPipe{T}"/> to the matching thread: the same sequence, released at the same moments, but each
/// observation is written once, in place (<see cref="Reserve"/>), into the batch that crosses to the other thread, and
/// a batch whose observations are all released crosses whole. The first design wrote each observation into the orderer's
/// ring and copied it again into the pipe's batch on release: two copies of 112 bytes per packet, a tenth of the reading
/// thread (session 8's profile).
/// </summary>
/// <remarks>
/// Observations that arrive in (timestamp, order) sequence are kept in the batches they were written into, oldest
/// first; the others go to a heap, as in <see cref="TimeOrderer"/>. Releasing moves a cursor over the head batch. When a
/// late observation is released between two of the head batch's, that batch is copied out (the released part, the late
/// one, then each of the rest as it is released) instead of sent whole: seldom (323 of 3.8 million in the
/// <c>-i any</c> benchmark capture, none in the others).
/// </remarks>
internal sealed class PipedOrderer(BatchPipe<Observation> pipe, long slackNs)
{
    private readonly PriorityQueue<Observation, (long, long)> _late = new();
    /// <summary>Full batches of in-order observations not yet sent, oldest first; the batch being filled comes after them.</summary>
    private readonly Queue<Held> _full = new();
    /// <summary>Timestamp arrays of batches sent, for reuse.</summary>
    private readonly Stack<long[]> _spareStamps = new();
    private Held _filling = new(pipe.Rent(), new long[pipe.BatchSize]);
    private int _count;
    /// <summary>The observations of the head batch (the oldest full one, else the filling one) released so far.</summary>
    private int _released;
    /// <summary>The observations of the head batch copied into the pipe; -1 while it is to be sent whole.</summary>
    private int _copied = -1;
    private (long TimestampNs, long Order) _tail = (long.MinValue, long.MinValue);
    private long _newest = long.MinValue;
    /// <summary>The last timestamp of the oldest full batch (long.MaxValue while there is none): it is sent once older than the slack.</summary>
    private long _headLast = long.MaxValue;
    /// <summary>
    /// <see cref="_released"/> lags: the common case (<see cref="Commit"/> without late observations) sends full batches
    /// without counting their observations released one by one; <see cref="CatchUp"/> counts them when it matters.
    /// </summary>
    private bool _behind;

    /// <summary>
    /// A batch of in-order observations, and their timestamps beside them: releasing reads one timestamp per
    /// observation, eight to a cache line instead of one observation's line each.
    /// </summary>
    private readonly record struct Held(Observation[] Items, long[] Stamps);

    public long SlackNs { get; } = slackNs;

    /// <inheritdoc cref="TimeOrderer.Overtaken"/>
    public long Overtaken { get; private set; }

    /// <summary>Where to write the next observation; <see cref="Commit"/> then adds it.</summary>
    public ref Observation Reserve() => ref _filling.Items[_count];

    /// <summary>Adds the observation written at <see cref="Reserve"/>, as <see cref="TimeOrderer.Add"/> does.</summary>
    public void Commit()
    {
        ref Observation observation = ref _filling.Items[_count];
        long timestampNs = observation.TimestampNs;
        if (_newest != long.MinValue && timestampNs < _newest - SlackNs)
        {
            Overtaken++;
        }
        if (timestampNs > _tail.TimestampNs || timestampNs == _tail.TimestampNs && observation.Order >= _tail.Order)
        {
            _tail = (timestampNs, observation.Order);
            _filling.Stamps[_count] = timestampNs;
            if (++_count == _filling.Items.Length)
            {
                _full.Enqueue(_filling);
                if (_full.Count == 1)
                {
                    _headLast = timestampNs;
                }
                _filling = new Held(pipe.Rent(), _spareStamps.TryPop(out long[]? stamps) ? stamps : new long[pipe.BatchSize]);
                _count = 0;
            }
        }
        else
        {
            _late.Enqueue(observation, (timestampNs, observation.Order));
        }
        if (timestampNs > _newest)
        {
            _newest = timestampNs;
        }
        long before = _newest - SlackNs;
        if (_late.Count == 0 && _copied < 0)
        {
            // The common case, without the general loop: a full batch whose observations are all old enough is sent
            // whole. Which of the head batch's observations are released matters only once a late observation is to
            // be placed among them (below), so they are counted then, not one by one here.
            if (_headLast < before)
            {
                SendReleased(before);
            }
            _behind = true;
            return;
        }
        CatchUp(before);
        Release(before);
        _headLast = _full.Count > 0 ? _full.Peek().Stamps[^1] : long.MaxValue;
    }

    /// <summary>Sends, oldest first, the full batches whose every observation is older than <paramref name="before"/>.</summary>
    private void SendReleased(long before)
    {
        while (_full.Count > 0)
        {
            Held head = _full.Peek();
            if (head.Stamps[^1] >= before)
            {
                _headLast = head.Stamps[^1];
                return;
            }
            _full.Dequeue();
            pipe.Send(head.Items, head.Items.Length);
            _spareStamps.Push(head.Stamps);
            _released = 0;
        }
        _headLast = long.MaxValue;
    }

    /// <summary>
    /// Counts the in-order observations released while <see cref="_released"/> lagged (<see cref="_behind"/>): the state
    /// releasing each as it became old enough would have left. <paramref name="before"/> is the bound of the last
    /// release: a late observation does not move the newest timestamp, and an in-order one is never older than it.
    /// </summary>
    private void CatchUp(long before)
    {
        if (_behind)
        {
            _behind = false;
            ReleaseInOrder(before);
            _headLast = _full.Count > 0 ? _full.Peek().Stamps[^1] : long.MaxValue;
        }
    }

    /// <summary><see cref="Release"/> when no late observation waits and the head batch is to be sent whole.</summary>
    private void ReleaseInOrder(long before)
    {
        while (true)
        {
            if (_full.Count == 0)
            {
                // The head is the batch being filled: released up to where it is old enough, sent when full.
                long[] stamps = _filling.Stamps;
                while (_released < _count && stamps[_released] < before)
                {
                    _released++;
                }
                return;
            }
            Held head = _full.Peek();
            while (_released < head.Stamps.Length && head.Stamps[_released] < before)
            {
                _released++;
            }
            if (_released < head.Items.Length)
            {
                return;
            }
            _full.Dequeue();
            pipe.Send(head.Items, head.Items.Length);
            _spareStamps.Push(head.Stamps);
            _released = 0;
        }
    }

    /// <summary>Releases everything (end of input) and sends it; the caller then completes the pipe.</summary>
    public void Flush()
    {
        CatchUp(_newest - SlackNs);
        Release(long.MaxValue, everything: true);
        if (_copied < 0)
        {
            pipe.Send(_filling.Items, _count);
        }
        else
        {
            pipe.Recycle(_filling.Items);
        }
        _filling = new Held([], []);
        _count = 0;
    }

    /// <summary>Releases, in (timestamp, order) sequence, every observation stamped before <paramref name="before"/> (or all).</summary>
    private void Release(long before, bool everything = false)
    {
        while (true)
        {
            bool fromFull = _full.Count > 0;
            Held head = fromFull ? _full.Peek() : _filling;
            int headCount = fromFull ? head.Items.Length : _count;
            bool haveInOrder = _released < headCount;
            if (_late.Count > 0 && _late.TryPeek(out Observation late, out var lateKey)
                && (!haveInOrder || lateKey.CompareTo((head.Stamps[_released], head.Items[_released].Order)) < 0))
            {
                if (late.TimestampNs >= before && !everything)
                {
                    return;
                }
                // Between two of the head batch's observations, or after all of them: the batch is copied out from here.
                CopyReleased(head.Items);
                _late.Dequeue();
                pipe.Add(in late);
                continue;
            }
            if (!haveInOrder || head.Stamps[_released] >= before && !everything)
            {
                return;
            }
            _released++;
            if (_copied >= 0)
            {
                CopyReleased(head.Items);
            }
            if (_released == head.Items.Length)
            {
                // The oldest full batch is all released (the filling one never is: it is moved first when full).
                _full.Dequeue();
                if (_copied < 0)
                {
                    pipe.Send(head.Items, head.Items.Length);
                }
                else
                {
                    pipe.Recycle(head.Items);
                }
                _spareStamps.Push(head.Stamps);
                _released = 0;
                _copied = -1;
            }
        }
    }

    /// <summary>Copies the head batch's released observations not copied yet into the pipe.</summary>
    private void CopyReleased(Observation[] head)
    {
        for (int i = Math.Max(_copied, 0); i < _released; i++)
        {
            pipe.Add(in head[i]);
        }
        _copied = _released;
    }
}
