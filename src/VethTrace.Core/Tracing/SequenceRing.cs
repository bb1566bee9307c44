namespace VethTrace.Tracing;

/// <summary>
/// A queue of value-type entries addressed by a sequence number that never repeats (<see cref="Tail"/> counts every
/// push), in a power-of-two array that doubles when full. The correlator keeps its open journeys and their sightings
/// here instead of in objects and lists per journey: entries are written and read back in order, so the memory a
/// packet touches a window later is next to the memory of the packets around it (prefetched), not a pooled object
/// somewhere on the heap.
/// </summary>
/// <remarks>The entries live in a <see cref="LargeBuffer{T}"/> (huge pages where the kernel gives them).</remarks>
internal sealed class SequenceRing<T>
    where T : unmanaged
{
    private LargeBuffer<T> _items = new(256);
    private long _mask = 255;

    /// <summary>The oldest entry kept; entries before it may be overwritten.</summary>
    public long Head { get; private set; }

    /// <summary>The sequence number the next <see cref="Push"/> returns.</summary>
    public long Tail { get; private set; }

    public long Count => Tail - Head;

    /// <summary>The bytes of the entries' memory (outside the GC heap).</summary>
    public long Bytes => _items.Bytes;

    /// <summary>The entry numbered <paramref name="sequence"/>, which must lie in [<see cref="Head"/>, <see cref="Tail"/>).</summary>
    public ref T this[long sequence] => ref _items[sequence & _mask];

    public long Push(in T item)
    {
        if (Tail - Head == _items.Length)
        {
            Grow();
        }
        _items[Tail & _mask] = item;
        return Tail++;
    }

    /// <summary>Appends an entry to be written in place through the returned reference (no copy of a whole entry).</summary>
    public ref T PushRef(out long sequence)
    {
        if (Tail - Head == _items.Length)
        {
            Grow();
        }
        sequence = Tail++;
        return ref _items[sequence & _mask];
    }

    /// <summary>Forgets the entries before <paramref name="sequence"/> (at most <see cref="Tail"/>; never moves back).</summary>
    public void DropBefore(long sequence)
    {
        if (sequence > Head)
        {
            Head = Math.Min(sequence, Tail);
        }
    }

    private void Grow()
    {
        var bigger = new LargeBuffer<T>(_items.Length * 2);
        long biggerMask = bigger.Length - 1;
        for (long sequence = Head; sequence < Tail; sequence++)
        {
            bigger[sequence & biggerMask] = _items[sequence & _mask];
        }
        _items.Dispose();
        _items = bigger;
        _mask = biggerMask;
    }
}
