using System.Collections.Concurrent;

namespace VethTrace.Tracing;

/// <summary>
/// What one finished journey, sweep or change of roles asks of the correlator's accounting (<see cref="AccountingPipe"/>):
/// the kind, and for a journey where its parts lie in the batch's arrays.
/// </summary>
internal struct AccountRecord
{
    public AccountKind Kind;
    public bool Timeless;
    public bool Closing;
    /// <summary>The journey's steps (and their flows): <see cref="Steps"/> from <see cref="StepsFrom"/> of the batch's arrays.</summary>
    public int StepsFrom, Steps;
    /// <summary>The path for the flow's reach when a segmentation match extended it, from <see cref="ReachFrom"/>; 0: the steps.</summary>
    public int ReachFrom, ReachSteps;
    public int SideFrom, SideCopies;
    /// <summary>A sweep's time.</summary>
    public long TimeNs;
}

internal enum AccountKind : byte
{
    /// <summary>A journey of one sighting (<c>Correlator.AccountSingle</c>).</summary>
    Single,
    Journey,
    Sweep,
    /// <summary>The roles changed: the accounting takes the next copy (<see cref="AccountingPipe.TakeRoles"/>).</summary>
    Roles,
}

/// <summary>
/// A batch of records for the accounting thread, with the parts of their journeys in arrays of their own, so the
/// accounting reads each journey's steps as one span where the matching thread wrote them (no copy on that side).
/// </summary>
internal sealed class AccountBatch
{
    public AccountRecord[] Records = new AccountRecord[256];
    public Sighting[] Steps = new Sighting[1024];
    internal Correlator.FlowBits[] Flows = new Correlator.FlowBits[1024];
    public Sighting[] Reach = new Sighting[256];
    public int[] Side = new int[256];
    public int RecordCount, StepCount, ReachCount, SideCount;

    /// <summary>Whether a journey of these parts fits.</summary>
    public bool Fits(int steps, int reach, int side) =>
        RecordCount < Records.Length && StepCount + steps <= Steps.Length && ReachCount + reach <= Reach.Length && SideCount + side <= Side.Length;

    /// <summary>Makes room in an empty batch for a journey larger than its arrays (rare: a journey's steps are at most its interfaces).</summary>
    public void Grow(int steps, int reach, int side)
    {
        if (steps > Steps.Length)
        {
            Array.Resize(ref Steps, steps);
            Array.Resize(ref Flows, steps);
        }
        if (reach > Reach.Length)
        {
            Array.Resize(ref Reach, reach);
        }
        if (side > Side.Length)
        {
            Array.Resize(ref Side, side);
        }
    }

    public void Clear() => RecordCount = StepCount = ReachCount = SideCount = 0;
}

/// <summary>
/// Hands the correlator's finished journeys from the matching thread to the accounting thread, in order, in
/// <see cref="AccountBatch"/>es that cycle between the two (nothing allocated per journey; at most <c>depth</c> full
/// batches wait, so memory is bounded). One lock per batch, and a side that has to wait sleeps on the lock's monitor
/// at once instead of spinning and yielding first (<c>BlockingCollection</c>'s semaphore did, and with three threads
/// on two cores each yield was a context switch). The accounting is the fastest of replay's three threads, so it would
/// wait for nearly every batch: a consumer that finds nothing sleeps until half the depth is full, and a producer that
/// finds no room until half of it is free, each woken once per several batches, not per batch. The consumer may stop
/// (its failure): further records are dropped and the producer never waits for room.
/// </summary>
internal sealed class AccountingPipe : IDisposable
{
    private readonly Queue<AccountBatch> _full = new();
    private readonly Stack<AccountBatch> _free = new();
    private readonly ConcurrentQueue<InterfaceRole[]> _roles = new();
    private readonly int _depth;
    /// <summary>A consumer that found nothing waits until this many batches are full (or the stream ends).</summary>
    private readonly int _wakeConsumerAt;
    /// <summary>A producer waiting for room is woken when the full batches are down to this many.</summary>
    private readonly int _resumeAt;
    private bool _completed, _stopped, _consumerWaits, _producerWaits;
    private AccountBatch _filling = new();

    public AccountingPipe(int depth = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        _depth = depth;
        _wakeConsumerAt = Math.Max(1, depth / 2);
        _resumeAt = depth / 2;
    }

    /// <summary>Producer: the batch to write the next record into, with room for a journey of these parts (the full one sent first).</summary>
    public AccountBatch Room(int steps = 0, int reach = 0, int side = 0)
    {
        if (!_filling.Fits(steps, reach, side))
        {
            if (_filling.RecordCount > 0)
            {
                _filling = Post(_filling);
            }
            _filling.Grow(steps, reach, side);
        }
        return _filling;
    }

    /// <summary>Producer: a change of roles; the accounting takes <paramref name="roles"/> when it reaches this point.</summary>
    public void SendRoles(InterfaceRole[] roles)
    {
        _roles.Enqueue(roles);
        AccountBatch batch = Room();
        batch.Records[batch.RecordCount++] = new AccountRecord { Kind = AccountKind.Roles };
    }

    /// <summary>Consumer: the roles of a <see cref="AccountKind.Roles"/> record.</summary>
    public InterfaceRole[] TakeRoles() => _roles.TryDequeue(out InterfaceRole[]? roles) ? roles : throw new InvalidOperationException("No roles sent.");

    /// <summary>Producer: sends what is filled and ends the stream.</summary>
    public void Complete()
    {
        if (_filling.RecordCount > 0)
        {
            _filling = Post(_filling);
        }
        lock (_full)
        {
            _completed = true;
            Monitor.PulseAll(_full);
        }
    }

    /// <summary>Consumer: hands each batch to <paramref name="take"/>, in order, until the producer completes or <see cref="Stop"/>.</summary>
    public void Consume(Action<AccountBatch> take)
    {
        AccountBatch? done = null;
        while (true)
        {
            AccountBatch batch;
            lock (_full)
            {
                if (done is not null)
                {
                    _free.Push(done);
                    done = null;
                    if (_producerWaits && _full.Count <= _resumeAt)
                    {
                        Monitor.PulseAll(_full);
                    }
                }
                if (_full.Count == 0)
                {
                    while (_full.Count < _wakeConsumerAt && !_completed && !_stopped)
                    {
                        _consumerWaits = true;
                        Monitor.Wait(_full);
                        _consumerWaits = false;
                    }
                }
                if (_full.Count == 0 || _stopped)
                {
                    return;
                }
                batch = _full.Dequeue();
                if (_producerWaits && _full.Count <= _resumeAt)
                {
                    Monitor.PulseAll(_full);
                }
            }
            take(batch);
            batch.Clear();
            done = batch;
        }
    }

    /// <summary>Consumer: no more records are wanted (a producer waiting for room is released, its records dropped from then on).</summary>
    public void Stop()
    {
        lock (_full)
        {
            _stopped = true;
            Monitor.PulseAll(_full);
        }
    }

    public void Dispose()
    {
    }

    /// <summary>Hands a full batch over (waiting while <c>depth</c> wait) and returns an empty one to fill.</summary>
    private AccountBatch Post(AccountBatch batch)
    {
        lock (_full)
        {
            while (_full.Count >= _depth && !_stopped)
            {
                _producerWaits = true;
                Monitor.Wait(_full);
                _producerWaits = false;
            }
            if (_stopped)
            {
                batch.Clear();
                return batch;
            }
            _full.Enqueue(batch);
            if (_consumerWaits && _full.Count >= _wakeConsumerAt)
            {
                Monitor.PulseAll(_full);
            }
            return _free.Count > 0 ? _free.Pop() : new AccountBatch();
        }
    }
}
