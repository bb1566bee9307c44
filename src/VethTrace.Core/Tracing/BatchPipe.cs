using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace VethTrace.Tracing;

/// <summary>
/// Hands values from one producer thread to one consumer in fixed-size batches, so two stages of a pipeline run on two
/// cores: replay reads and parses on one thread while the other puts observations in time order and matches them. The
/// batches are allocated once and cycle between the two sides (nothing is allocated per value), and at most
/// <c>depth</c> full batches wait, so memory is bounded whatever the speeds of the two sides. One synchronisation per
/// batch, not per value.
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

    private readonly BlockingCollection<(T[] Items, int Count)> _full;
    private readonly ConcurrentQueue<T[]> _free = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly int _batchSize;
    private T[] _filling;
    private int _count;
    private ExceptionDispatchInfo? _failure;

    public BatchPipe(int batchSize = 1024, int depth = 4)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        _batchSize = batchSize;
        _full = new BlockingCollection<(T[], int)>(depth);
        _filling = new T[batchSize];
    }

    /// <summary>How many values a batch holds.</summary>
    public int BatchSize => _batchSize;

    /// <summary>Whether the consumer has stopped: the producer may end early (<see cref="Add"/> would only drop values).</summary>
    public bool Stopped => _stop.IsCancellationRequested;

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
        _full.CompleteAdding();
    }

    /// <summary>
    /// Consumer: hands each batch's values to <paramref name="consume"/> in order until the producer completes or the
    /// consumer calls <see cref="Stop"/>; then rethrows what the producer threw, if anything.
    /// </summary>
    public void Consume<TConsumer>(ref TConsumer consume)
        where TConsumer : struct, IBatchConsumer<T>
    {
        try
        {
            foreach ((T[] items, int count) in _full.GetConsumingEnumerable(_stop.Token))
            {
                consume.Take(items.AsSpan(0, count));
                Recycle(items);
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return;
        }
        _failure?.Throw();
    }

    /// <summary>Consumer: no more values are wanted. A producer waiting for room is released, and its further values dropped.</summary>
    public void Stop() => _stop.Cancel();

    public void Dispose()
    {
        _stop.Dispose();
        _full.Dispose();
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
        if (_stop.IsCancellationRequested)
        {
            Recycle(batch); // nobody is listening: reuse the batch
            return;
        }
        try
        {
            _full.Add((batch, count), _stop.Token);
        }
        catch (OperationCanceledException)
        {
            Recycle(batch);
        }
    }
}

/// <summary>What <see cref="BatchPipe{T}.Consume"/> hands the values to: a struct, so the call per batch is direct.</summary>
public interface IBatchConsumer<T>
{
    /// <summary>The next values, in the order the producer added them; valid only during the call.</summary>
    void Take(ReadOnlySpan<T> values);
}
