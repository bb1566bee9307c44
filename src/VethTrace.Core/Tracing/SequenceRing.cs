namespace VethTrace.Tracing;

/// <summary>
/// A queue of value-type entries addressed by a sequence number that never repeats (<see cref="Tail"/> counts every
/// push). The correlator keeps its open journeys and their sightings here instead of in objects and lists per journey:
/// entries are written and read back in order, so the memory a packet touches a window later is next to the memory of
/// the packets around it (prefetched), not a pooled object somewhere on the heap.
/// </summary>
/// <remarks>
/// The entries live in chunks of <see cref="ChunkBytes"/> outside the GC heap (<see cref="LargeMemory.AllocatePages"/>),
/// found through a small directory indexed by the sequence number's high bits. The ring holds the chunks its entries
/// fill, not a power of two of them: it takes a chunk when the tail enters one and gives it back when the head leaves
/// it, keeping it as a spare, so memory follows what the window holds as it grows and shrinks. Nothing is copied to
/// grow, and a chunk given back and taken again is memory the process already has (no page faults, no clearing).
/// Spares are returned to the kernel only when a whole period of chunk moves went by without needing them (see
/// <see cref="Moved"/>): a ring whose length swings with the traffic by more than a few chunks, which it does in every
/// capture, kept mapping fresh chunks while it kept only four, and a fresh page costs a fault and its clearing (up to
/// 10 % of replay's samples on a multi-hop capture, in `clear_page_erms`, on the VM the lab runs on).
/// </remarks>
internal sealed unsafe class SequenceRing<T> : IDisposable
    where T : unmanaged
{
    /// <summary>The memory of one chunk, at most (entries per chunk are a power of two, in whole pages).</summary>
    public const int ChunkBytes = 64 << 10;
    /// <summary>Spares kept however long they go unused.</summary>
    private const int MinSpares = 4;
    /// <summary>The fewest chunk moves (taken or given back) in a period of <see cref="Moved"/>; a period is also at least twice the chunks live.</summary>
    private const int MinPeriodMoves = 64;

    private readonly int _shift;
    private readonly long _mask;
    /// <summary>The bytes of one chunk: its entries, in whole pages.</summary>
    private readonly nuint _chunkBytes;
    /// <summary>The chunk of each chunk number, at <c>number &amp; (length - 1)</c>; the live chunks are those from the head's to the tail's.</summary>
    private nint[] _directory = new nint[4];
    private readonly Stack<nint> _spares = new();
    /// <summary>The live chunks: numbers <see cref="_firstChunk"/> to <see cref="_firstChunk"/> + <see cref="_chunks"/> - 1, the last the tail's.</summary>
    private long _firstChunk;
    private int _chunks;
    /// <summary>Chunk moves since the period began, and the fewest spares held during it.</summary>
    private int _moves, _fewestSpares;

    public SequenceRing()
    {
        int entries = Math.Max(1, ChunkBytes / sizeof(T));
        _shift = System.Numerics.BitOperations.Log2((uint)entries);
        _mask = (1L << _shift) - 1;
        _chunkBytes = ((nuint)((1 << _shift) * sizeof(T)) + 4095) & ~(nuint)4095;
    }

    /// <summary>The oldest entry kept; entries before it may be overwritten.</summary>
    public long Head { get; private set; }

    /// <summary>The sequence number the next <see cref="Push"/> returns.</summary>
    public long Tail { get; private set; }

    public long Count => Tail - Head;

    /// <summary>The bytes of the chunks held, live and spare (outside the GC heap).</summary>
    public long Bytes => (_chunks + _spares.Count) * (long)_chunkBytes;

    /// <summary>Chunks mapped from the kernel so far (not taken from the spares): each is fresh memory, a page fault per page.</summary>
    public long ChunksMapped { get; private set; }

    /// <summary>The entry numbered <paramref name="sequence"/>, which must lie in [<see cref="Head"/>, <see cref="Tail"/>).</summary>
    public ref T this[long sequence]
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)] // several per observation
        get => ref ((T*)_directory[(sequence >> _shift) & (_directory.Length - 1)])[sequence & _mask];
    }

    /// <summary>
    /// Asks the CPU to bring entry <paramref name="sequence"/> into cache, when it lies in [<see cref="Head"/>,
    /// <see cref="Tail"/>): for a reader that walks the ring a window behind its writer, where every entry is a miss.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)] // in read-ahead loops
    public void Prefetch(long sequence)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && sequence >= Head && sequence < Tail)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref this[sequence]));
        }
    }

    public long Push(in T item)
    {
        PushRef(out long sequence) = item;
        return sequence;
    }

    /// <summary>Appends an entry to be written in place through the returned reference (no copy of a whole entry).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)] // once per observation, per ring
    public ref T PushRef(out long sequence)
    {
        sequence = Tail;
        if ((sequence & _mask) == 0 || _chunks == 0)
        {
            TakeChunk(sequence >> _shift);
        }
        Tail = sequence + 1;
        T* entry = (T*)_directory[(sequence >> _shift) & (_directory.Length - 1)] + (sequence & _mask);
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && ((sequence + WriteAhead) & _mask) > (sequence & _mask))
        {
            // The entries ahead of the tail were last written a ring's length ago (a chunk comes back as a spare): out of
            // cache, and a write that misses waits for the line (the first store into a slot was the most sampled
            // instruction of ObservationSlot.Store). Ask for the line a few pushes ahead, within the tail's chunk.
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(entry + WriteAhead);
        }
        return ref *entry;
    }

    /// <summary>How many entries ahead of the tail <see cref="PushRef"/> asks for the memory to be fetched.</summary>
    private static int WriteAhead
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => sizeof(T) >= 128 ? 4 : 512 / sizeof(T);
    }

    /// <summary>Forgets the entries before <paramref name="sequence"/> (at most <see cref="Tail"/>; never moves back).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)] // per journey and per observation
    public void DropBefore(long sequence)
    {
        if (sequence <= Head)
        {
            return;
        }
        Head = Math.Min(sequence, Tail);
        // Give back the chunks the head left; the tail's chunk stays (the next push may write into it).
        while (_chunks > 1 && _firstChunk < Head >> _shift)
        {
            GiveBack();
        }
    }

    public void Dispose()
    {
        while (_chunks > 0)
        {
            GiveBack();
        }
        while (_spares.TryPop(out nint spare))
        {
            LargeMemory.FreePages((void*)spare, _chunkBytes);
        }
        GC.SuppressFinalize(this);
    }

    ~SequenceRing()
    {
        foreach (nint chunk in _directory)
        {
            if (chunk != 0)
            {
                LargeMemory.FreePages((void*)chunk, _chunkBytes);
            }
        }
        foreach (nint spare in _spares)
        {
            LargeMemory.FreePages((void*)spare, _chunkBytes);
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)] // once per chunk
    private void TakeChunk(long number)
    {
        if (_chunks == 0)
        {
            _firstChunk = number;
        }
        else if (_chunks == _directory.Length)
        {
            // Re-place the live chunks in a directory twice as long.
            var bigger = new nint[_directory.Length * 2];
            for (long live = _firstChunk; live < number; live++)
            {
                bigger[live & (bigger.Length - 1)] = _directory[live & (_directory.Length - 1)];
            }
            _directory = bigger;
        }
        if (!_spares.TryPop(out nint chunk))
        {
            // Populated in the call: the chunk is written through entry by entry from now on, and a page fault per page
            // on the way cost 5-6 % of the matching thread on a multi-hop capture (as its rings grew to a window).
            chunk = (nint)LargeMemory.AllocatePages(_chunkBytes, out _, populate: true);
            ChunksMapped++;
        }
        _directory[number & (_directory.Length - 1)] = chunk;
        _chunks++;
        Moved();
    }

    /// <summary>Gives back the oldest live chunk.</summary>
    private void GiveBack()
    {
        ref nint slot = ref _directory[_firstChunk & (_directory.Length - 1)];
        _spares.Push(slot);
        slot = 0;
        _firstChunk++;
        _chunks--;
        Moved();
    }

    /// <summary>
    /// Counts a chunk move, and at the end of a period (at least <see cref="MinPeriodMoves"/> moves and twice the chunks
    /// live: about a window's worth of entries passing through) frees the spares beyond <see cref="MinSpares"/> that the
    /// whole period left unused (the fewest held during it). A ring that swings keeps what its swings need; after a
    /// burst, what the burst took goes back within a period or two.
    /// </summary>
    private void Moved()
    {
        _fewestSpares = Math.Min(_fewestSpares, _spares.Count);
        if (++_moves < Math.Max(MinPeriodMoves, 2 * _chunks))
        {
            return;
        }
        for (int unused = _fewestSpares - MinSpares; unused > 0; unused--)
        {
            LargeMemory.FreePages((void*)_spares.Pop(), _chunkBytes);
        }
        _moves = 0;
        _fewestSpares = _spares.Count;
    }
}
