using System.Runtime.CompilerServices;

namespace VethTrace.Tracing;

/// <summary>
/// Where live capture threads leave their observations for the session's pump (<see cref="TraceSession.Pump"/>), and
/// how the pump takes them back in time order: one <see cref="ArrivalQueue"/> per feed (a capture thread), written in
/// place by that thread alone and read by the pump, and a merge of the queues by timestamp.
/// </summary>
/// <remarks>
/// The first design queued every feed's observations in one shared queue and let the <see cref="TimeOrderer"/> sort
/// them. Each capture thread reads its ring about every 50 ms (<c>HopDevice</c>), so the shared queue held 50 ms runs
/// of each hop in turn, and every run but the newest arrived behind the orderer's tail: three observations in four of
/// follow's four hops went through the orderer's heap, 112-byte values moved up and down a heap of a second's packets.
/// That and the garbage of the shared queue's segments (a new one as it grew, every pump) were half of follow's CPU
/// under iperf3 (docs/performance.md, "Follow's cost per packet"). Each queue here is already in time order (one ring,
/// filled in time order), so merging the queues' heads gives the orderer its observations in sequence, and the queues'
/// chunks are reused, never collected.
/// </remarks>
public sealed class ArrivalMerge
{
    /// <summary>Chunks not in use, shared by the queues (a queue takes one per <see cref="ArrivalQueue.ChunkSize"/> observations).</summary>
    private readonly Stack<ArrivalQueue.Chunk> _spares = new();
    private ArrivalQueue[] _queues = [];

    /// <summary>A queue for one more producer thread.</summary>
    public ArrivalQueue Open()
    {
        lock (_spares)
        {
            var queue = new ArrivalQueue(this, _queues.Length);
            _queues = [.. _queues, queue];
            return queue;
        }
    }

    /// <summary>Observations queued and not yet handed on (a snapshot: producers go on adding).</summary>
    public long Pending => Volatile.Read(ref _queues).Sum(q => q.Pending);

    internal ArrivalQueue.Chunk Rent()
    {
        lock (_spares)
        {
            if (_spares.TryPop(out ArrivalQueue.Chunk? chunk))
            {
                chunk.Reset();
                return chunk;
            }
        }
        Interlocked.Increment(ref _chunksCreated);
        return new ArrivalQueue.Chunk();
    }

    private int _chunksCreated;

    /// <summary>Chunks made so far (the rest of what the queues took were spares): bounded by what is queued at once.</summary>
    internal int ChunksCreated => Volatile.Read(ref _chunksCreated);

    internal void Return(ArrivalQueue.Chunk chunk)
    {
        lock (_spares)
        {
            _spares.Push(chunk);
        }
    }

    /// <summary>
    /// Hands <paramref name="orderer"/>, in (timestamp, order) sequence across the queues, every queued observation
    /// stamped before <paramref name="beforeNs"/> (each queue's stamps as a running maximum, so what is handed on is a
    /// prefix of each queue even where its ring put two packets a few microseconds out of order). With
    /// <paramref name="leadNs"/> &gt; 0 the orderer's clock is moved along as the merge goes, to <paramref name="leadNs"/>
    /// past the stamp handed on: the orderer then lets go of what it holds as the merge goes instead of holding all of a
    /// pump's observations at once (the caller makes sure nothing later than that lead can still come). Returns how many
    /// were handed on.
    /// </summary>
    public long Release(long beforeNs, long leadNs, TimeOrderer orderer)
    {
        ArrivalQueue[] queues = Volatile.Read(ref _queues);
        long released = 0;
        if (queues.Length == 1)
        {
            // One producer (whole-host follow's one ring): nothing to merge.
            ArrivalQueue queue = queues[0];
            while (queue.TryPeek(out long stamp) && stamp < beforeNs)
            {
                if (leadNs > 0 && (released & 63) == 0)
                {
                    orderer.Advance(stamp + leadNs);
                }
                orderer.Add(in queue.Head);
                queue.Pop();
                released++;
            }
            return released;
        }
        while (true)
        {
            // The queue whose head comes first (a handful of hops: a scan).
            ArrivalQueue? first = null;
            long firstStamp = 0, firstOrder = 0;
            foreach (ArrivalQueue queue in queues)
            {
                if (!queue.TryPeek(out long stamp) || stamp >= beforeNs)
                {
                    continue;
                }
                long order = queue.Head.Order;
                if (first is null || stamp < firstStamp || stamp == firstStamp && order < firstOrder)
                {
                    (first, firstStamp, firstOrder) = (queue, stamp, order);
                }
            }
            if (first is null)
            {
                return released;
            }
            if (leadNs > 0 && (released & 63) == 0)
            {
                orderer.Advance(firstStamp + leadNs);
            }
            orderer.Add(in first.Head);
            first.Pop();
            released++;
        }
    }
}

/// <summary>
/// One producer thread's observations on their way to the pump: chunks of <see cref="ChunkSize"/> written in place
/// (<see cref="Reserve"/>, <see cref="Commit"/>) and published one at a time with a release write, read by one
/// consumer. Nothing is allocated per observation, and chunks go back to the <see cref="ArrivalMerge"/>'s spares.
/// </summary>
public sealed class ArrivalQueue
{
    public const int ChunkSize = 1024;

    private readonly ArrivalMerge _merge;
    // Producer side.
    private Chunk _tail;
    private int _tailCount;
    private long _newestNs = long.MinValue;
    private long _added;
    // Consumer side.
    private Chunk _head;
    private int _headIndex;
    private int _headLimit;
    private long _taken;

    internal ArrivalQueue(ArrivalMerge merge, int index)
    {
        _merge = merge;
        Index = index;
        _head = _tail = merge.Rent();
    }

    /// <summary>The queue's place among its merge's queues: 0 for the first opened, then 1, 2…</summary>
    public int Index { get; }

    /// <summary>
    /// The most queues whose <see cref="NextOrder"/> values stay apart: the queue's index takes the top 15 bits of
    /// the order, below the sign.
    /// </summary>
    public const int MaxQueues = 1 << 15;

    private long _ordered;

    /// <summary>
    /// Producer: a capture order for the next observation, unique across the merge's queues without a counter they
    /// share (an interlocked increment per packet on one cache line, bounced between the capture threads' cores):
    /// the queue's <see cref="Index"/> in the top bits, its own count below. Equal timestamps on two queues are then
    /// told apart by the order the queues were opened in (a hop's place on the path), and on one queue by arrival.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, on the capture thread
    public long NextOrder() => (long)(Index % MaxQueues) << 48 | ++_ordered;

    /// <summary>Observations added and not yet taken (a snapshot).</summary>
    public long Pending => Volatile.Read(ref _added) - Volatile.Read(ref _taken);

    /// <summary>Producer: where to write the next observation; <see cref="Commit"/> then publishes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, on the capture thread
    public ref Observation Reserve()
    {
        if (_tailCount == ChunkSize)
        {
            Chunk next = _merge.Rent();
            Volatile.Write(ref _tail.Next, next);
            _tail = next;
            _tailCount = 0;
        }
        return ref _tail.Items[_tailCount];
    }

    /// <summary>Producer: publishes the observation written at <see cref="Reserve"/>, stamped <paramref name="timestampNs"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, on the capture thread
    public void Commit(long timestampNs)
    {
        if (timestampNs > _newestNs)
        {
            _newestNs = timestampNs;
        }
        _tail.Stamps[_tailCount] = _newestNs;
        Volatile.Write(ref _tail.Count, ++_tailCount);
        Volatile.Write(ref _added, _added + 1);
    }

    /// <summary>Consumer: the oldest observation not taken, valid after <see cref="TryPeek"/> said there is one.</summary>
    internal ref Observation Head => ref _head.Items[_headIndex];

    /// <summary>Consumer: whether an observation waits, and its stamp (the newest stamp of the queue up to it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryPeek(out long stamp)
    {
        if (_headIndex < _headLimit || Refresh())
        {
            stamp = _head.Stamps[_headIndex];
            return true;
        }
        stamp = 0;
        return false;
    }

    /// <summary>Consumer: drops the head observation (after <see cref="TryPeek"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Pop()
    {
        _headIndex++;
        Volatile.Write(ref _taken, _taken + 1);
    }

    /// <summary>Looks for more published observations: in the head chunk, else in the next one (the head chunk goes back).</summary>
    private bool Refresh()
    {
        while (true)
        {
            _headLimit = Volatile.Read(ref _head.Count);
            if (_headIndex < _headLimit)
            {
                return true;
            }
            if (_headIndex < ChunkSize || Volatile.Read(ref _head.Next) is not { } next)
            {
                return false;
            }
            Chunk done = _head;
            _head = next;
            _headIndex = 0;
            _headLimit = 0;
            _merge.Return(done);
        }
    }

    internal sealed class Chunk
    {
        public readonly Observation[] Items = new Observation[ChunkSize];
        /// <summary>Each observation's stamp as a running maximum over its queue: never decreasing.</summary>
        public readonly long[] Stamps = new long[ChunkSize];
        public int Count;
        public Chunk? Next;

        public void Reset()
        {
            Count = 0;
            Next = null;
        }
    }
}
