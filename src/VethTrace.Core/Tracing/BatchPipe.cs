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
    private readonly BlockingCollection<Batch> _full;
    private readonly ConcurrentQueue<Batch> _free = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly int _batchSize;
    private Batch _filling;
    private ExceptionDispatchInfo? _failure;

    public BatchPipe(int batchSize = 1024, int depth = 4)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        _batchSize = batchSize;
        _full = new BlockingCollection<Batch>(depth);
        _filling = new Batch(batchSize);
    }

    /// <summary>Whether the consumer has stopped: the producer may end early (<see cref="Add"/> would only drop values).</summary>
    public bool Stopped => _stop.IsCancellationRequested;

    /// <summary>Producer: adds one value (a copy). Sends the batch when it is full.</summary>
    public void Add(in T value)
    {
        _filling.Items[_filling.Count] = value;
        if (++_filling.Count == _batchSize)
        {
            Send();
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
        if (_filling.Count > 0)
        {
            Send();
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
            foreach (Batch batch in _full.GetConsumingEnumerable(_stop.Token))
            {
                consume.Take(batch.Items.AsSpan(0, batch.Count));
                batch.Count = 0;
                _free.Enqueue(batch);
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

    private void Send()
    {
        if (_stop.IsCancellationRequested)
        {
            _filling.Count = 0; // nobody is listening: reuse the batch
            return;
        }
        try
        {
            _full.Add(_filling, _stop.Token);
        }
        catch (OperationCanceledException)
        {
            _filling.Count = 0;
            return;
        }
        _filling = _free.TryDequeue(out Batch? free) ? free : new Batch(_batchSize);
    }

    private sealed class Batch(int size)
    {
        public readonly T[] Items = new T[size];
        public int Count;
    }
}

/// <summary>What <see cref="BatchPipe{T}.Consume"/> hands the values to: a struct, so the call per batch is direct.</summary>
public interface IBatchConsumer<T>
{
    /// <summary>The next values, in the order the producer added them; valid only during the call.</summary>
    void Take(ReadOnlySpan<T> values);
}
