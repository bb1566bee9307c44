using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace VethTrace.Tracing;

/// <summary>
/// Hands values from one producer thread to one consumer in fixed-size batches, so two stages of a pipeline run on two
/// cores: replay reads and parses on one thread while the other puts observations in time order and matches them. The
/// batches are allocated once and cycle between the two sides (nothing is allocated per value), and at most
/// <c>depth</c> full batches wait, so memory is bounded whatever the speeds of the two sides. One lock per batch, not
/// per value; a side that has to wait sleeps on the lock's monitor at once, and a producer waiting for room sleeps until
/// half of it is free. <c>BlockingCollection</c>'s semaphores spun and yielded first and woke the producer for each batch
/// taken: with replay's three threads on two cores, a tenth of the reading thread went to spinning, yielding and
/// waking (session 11's profile).
/// </summary>
/// <remarks>
/// The consumer may stop early (<see cref="Stop"/>), and whatever the producer throws is rethrown to the consumer when it
/// reaches the end, with the producer's stack.
/// </remarks>
public sealed class BatchPipe<T> : IDisposable
    where T : struct
{
    /// <summary>Batches kept for reuse at most; more (after a burst held many for order) are left to the collector.</summary>
    private const int MaxSpares = 64;

    /// <summary>Full batches waiting, oldest first; guarded by itself, as are the flags below.</summary>
    private readonly Queue<(T[] Items, int Count)> _full = new();
    private readonly ConcurrentQueue<T[]> _free = new();
    private readonly int _batchSize;
    private readonly int _depth;
    /// <summary>A producer waiting for room is woken when the waiting batches are down to this many.</summary>
    private readonly int _resumeAt;
    private T[] _filling;
    private int _count;
    private ExceptionDispatchInfo? _failure;
    private volatile bool _stopped;
    private bool _completed, _consumerWaits, _producerWaits;

    public BatchPipe(int batchSize = 1024, int depth = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        _batchSize = batchSize;
        _depth = depth;
        _resumeAt = depth / 2;
        _filling = new T[batchSize];
    }

    /// <summary>How many values a batch holds.</summary>
    public int BatchSize => _batchSize;

    /// <summary>Whether the consumer has stopped: the producer may end early (<see cref="Add"/> would only drop values).</summary>
    public bool Stopped => _stopped;

    /// <summary>Producer: adds one value (a copy). Sends the batch when it is full.</summary>
    public void Add(in T value)
    {
        _filling[_count] = value;
        if (++_count == _batchSize)
        {
            SendFilling();
        }
    }

    /// <summary>
    /// Producer: an empty batch of <see cref="BatchSize"/> to write values into in place (a spare, else a new one), for
    /// <see cref="Send"/> or <see cref="Recycle"/>. A producer that holds values before it knows their order (the time
    /// orderer) writes each once, into the batch that crosses to the consumer.
    /// </summary>
    public T[] Rent() => _free.TryDequeue(out T[]? free) ? free : new T[_batchSize];

    /// <summary>Producer: gives back a rented batch unsent.</summary>
    public void Recycle(T[] batch)
    {
        if (_free.Count < MaxSpares)
        {
            _free.Enqueue(batch);
        }
    }

    /// <summary>
    /// Producer: sends the first <paramref name="count"/> values of a rented batch, after the values <see cref="Add"/>
    /// added before it. The batch belongs to the pipe from then on.
    /// </summary>
    public void Send(T[] batch, int count)
    {
        if (_count > 0)
        {
            SendFilling();
        }
        if (count > 0)
        {
            Post(batch, count);
        }
        else
        {
            Recycle(batch);
        }
    }

    /// <summary>
    /// Producer: sends the partial batch and ends the stream. <paramref name="failure"/> (what the producer threw) reaches
    /// the consumer after the values before it, at the end of <see cref="Consume"/>.
    /// </summary>
    public void Complete(Exception? failure = null)
    {
        if (failure is not null)
        {
            _failure = ExceptionDispatchInfo.Capture(failure);
        }
        if (_count > 0)
        {
            SendFilling();
        }
        lock (_full)
        {
            _completed = true;
            Monitor.PulseAll(_full);
        }
    }

    /// <summary>
    /// Consumer: hands each batch's values to <paramref name="consume"/> in order until the producer completes or the
    /// consumer calls <see cref="Stop"/>; then rethrows what the producer threw, if anything.
    /// </summary>
    public void Consume<TConsumer>(ref TConsumer consume)
        where TConsumer : struct, IBatchConsumer<T>
    {
        while (true)
        {
            T[] items;
            int count;
            lock (_full)
            {
                while (_full.Count == 0 && !_completed && !_stopped)
                {
                    _consumerWaits = true;
                    Monitor.Wait(_full);
                    _consumerWaits = false;
                }
                if (_stopped)
                {
                    return;
                }
                if (_full.Count == 0)
                {
                    break;
                }
                (items, count) = _full.Dequeue();
                // The producer sleeps until half the room is free, not one batch: it then fills several in a row
                // instead of waking for each (with the matching thread the slower side, it waits for nearly every one).
                if (_producerWaits && _full.Count <= _resumeAt)
                {
                    Monitor.Pulse(_full);
                }
            }
            consume.Take(items.AsSpan(0, count));
            Recycle(items);
            if (_stopped)
            {
                return;
            }
        }
        _failure?.Throw();
    }

    /// <summary>Consumer: no more values are wanted. A producer waiting for room is released, and its further values dropped.</summary>
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

    private void SendFilling()
    {
        T[] batch = _filling;
        int count = _count;
        _count = 0;
        _filling = Rent();
        Post(batch, count);
    }

    /// <summary>Hands a batch to the consumer, waiting while <c>depth</c> batches wait; drops it when nobody listens.</summary>
    private void Post(T[] batch, int count)
    {
        lock (_full)
        {
            while (_full.Count >= _depth && !_stopped)
            {
                _producerWaits = true;
                Monitor.Wait(_full);
                _producerWaits = false;
            }
            if (!_stopped)
            {
                _full.Enqueue((batch, count));
                if (_consumerWaits)
                {
                    Monitor.Pulse(_full);
                }
                return;
            }
        }
        Recycle(batch); // nobody is listening: reuse the batch
    }
}

/// <summary>What <see cref="BatchPipe{T}.Consume"/> hands the values to: a struct, so the call per batch is direct.</summary>
public interface IBatchConsumer<T>
{
    /// <summary>The next values, in the order the producer added them; valid only during the call.</summary>
    void Take(ReadOnlySpan<T> values);
}
