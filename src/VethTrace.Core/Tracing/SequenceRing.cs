namespace VethTrace.Tracing;

/// <summary>
/// A queue of value-type entries addressed by a sequence number that never repeats (<see cref="Tail"/> counts every
/// push), in a power-of-two array that doubles when full. The correlator keeps its open journeys and their sightings
/// here instead of in objects and lists per journey: entries are written and read back in order, so the memory a
/// packet touches a window later is next to the memory of the packets around it (prefetched), not a pooled object
/// somewhere on the heap.
/// </summary>
internal sealed class SequenceRing<T>
    where T : struct
{
    private T[] _items = new T[256];

    /// <summary>The oldest entry kept; entries before it may be overwritten.</summary>
    public long Head { get; private set; }

    /// <summary>The sequence number the next <see cref="Push"/> returns.</summary>
    public long Tail { get; private set; }

    public long Count => Tail - Head;

    /// <summary>The entry numbered <paramref name="sequence"/>, which must lie in [<see cref="Head"/>, <see cref="Tail"/>).</summary>
    public ref T this[long sequence] => ref _items[sequence & (_items.Length - 1)];

    public long Push(in T item)
    {
        if (Tail - Head == _items.Length)
        {
            Grow();
        }
        _items[Tail & (_items.Length - 1)] = item;
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
        return ref _items[sequence & (_items.Length - 1)];
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
        var bigger = new T[_items.Length * 2];
        for (long sequence = Head; sequence < Tail; sequence++)
        {
            bigger[sequence & (bigger.Length - 1)] = _items[sequence & (_items.Length - 1)];
        }
        _items = bigger;
    }
}
