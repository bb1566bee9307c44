using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace VethTrace.Tracing;

/// <summary>
/// The open journey of each fingerprint, as its number in the correlator's journey ring: an open-addressing table
/// (linear probing) whose entries die by themselves. A journey leaves the ring in start order when it expires, so an
/// entry pointing below the ring's head (<c>oldestOpen</c>) is dead and its slot is taken by the next insert that
/// probes past it; nothing is removed when a journey ends. The dictionary this replaces paid a second random memory
/// access per journey, a window after the first, to remove it (a quarter of replay's time in a profile).
/// </summary>
/// <remarks>
/// The segment index keeps the last entry of each segment key in one too (<see cref="SegmentIndex"/>): any key whose
/// values are numbers in a ring that forgets its oldest first.
/// Dead entries keep probe runs long until a rebuild: when used slots pass three quarters of the table, it is
/// rebuilt from the live entries only (at least two slots per live one), so each insert costs O(1) amortised.
/// </remarks>
internal sealed unsafe class OpenJourneyTable
{
    private const long Unused = -1;
    private LargeBuffer<Slot> _slots = NewSlots(1024);
    /// <summary>
    /// <see cref="_slots"/>' entries and their count less one, read directly: through the buffer's indexer the probe
    /// loop and <see cref="Touch"/> made a call per slot (the compiler did not inline it).
    /// </summary>
    private Slot* _items;
    private int _mask;
    /// <summary>64 minus log2 of the table's length: <see cref="Home"/> keeps the product's top bits.</summary>
    private int _shift;
    /// <summary>
    /// The table before the last rebuild, kept for the next one of the same size: a rebuild every few window's worth of
    /// journeys that took a fresh array each time spent more in page faults (a fresh large array is new memory to the
    /// kernel) than in the rebuild itself.
    /// </summary>
    private LargeBuffer<Slot>? _spare;
    private int _used;

    /// <summary>The bytes of the table and its spare (outside the GC heap).</summary>
    public long Bytes => _slots.Bytes + (_spare?.Bytes ?? 0);

    public OpenJourneyTable() => Use(_slots);

    private void Use(LargeBuffer<Slot> slots)
    {
        _slots = slots;
        _items = (Slot*)Unsafe.AsPointer(ref slots[0]);
        _mask = slots.Length - 1;
        _shift = 64 - System.Numerics.BitOperations.Log2((uint)slots.Length);
    }

    /// <summary>
    /// The slot of <paramref name="fingerprint"/>'s open journey (<paramref name="found"/>), or else the slot to store
    /// a new one in; the reference is valid until the next call. Journeys numbered below <paramref name="oldestOpen"/>
    /// have ended.
    /// </summary>
    public ref long Find(ulong fingerprint, long oldestOpen, out bool found)
    {
        Slot* items = _items;
        int mask = _mask;
        int index = Home(fingerprint, _shift);
        int free = -1;
        while (true)
        {
            ref Slot slot = ref items[index];
            if (slot.Journey == Unused)
            {
                if (free < 0)
                {
                    if (++_used > (mask + 1) / 4 * 3)
                    {
                        Rebuild(oldestOpen);
                        return ref Find(fingerprint, oldestOpen, out found);
                    }
                    free = index;
                }
                break;
            }
            if (slot.Journey >= oldestOpen)
            {
                if (slot.Fingerprint == fingerprint)
                {
                    found = true;
                    return ref slot.Journey;
                }
            }
            else if (free < 0)
            {
                free = index; // dead: reusable, but the fingerprint may still be further along the run
            }
            index = (index + 1) & mask;
        }
        found = false;
        items[free].Fingerprint = fingerprint;
        return ref items[free].Journey;
    }

    /// <summary>
    /// The journey stored for <paramref name="fingerprint"/> if it has not ended (is not below <paramref name="oldestOpen"/>),
    /// without adding one when there is none.
    /// </summary>
    public bool TryGet(ulong fingerprint, long oldestOpen, out long journey)
    {
        int mask = _mask;
        for (int index = Home(fingerprint, _shift); ; index = (index + 1) & mask)
        {
            ref Slot slot = ref _items[index];
            if (slot.Journey == Unused)
            {
                journey = -1;
                return false;
            }
            if (slot.Journey >= oldestOpen && slot.Fingerprint == fingerprint)
            {
                journey = slot.Journey;
                return true;
            }
        }
    }

    /// <summary>
    /// Asks the CPU to bring the slot <paramref name="fingerprint"/> hashes to into cache, so it is there when
    /// <see cref="Find"/> comes. A prefetch instruction, not a load: an ordinary load that missed held up every
    /// instruction after it until memory answered (a profile put the stall on the load instead of in
    /// <see cref="Find"/>, no faster). Where there is no prefetch instruction, nothing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per observation
    public void Touch(ulong fingerprint)
    {
        if (Sse.IsSupported)
        {
            // The probe may run on past the home slot's line (up to three quarters of the slots are taken): the next line too.
            int home = Home(fingerprint, _shift);
            Sse.Prefetch0(_items + home);
            Sse.Prefetch0(_items + ((home + 4) & _mask));
        }
    }

    /// <summary>Where a fingerprint's probe starts: Fibonacci hashing, the top bits of the product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Home(ulong fingerprint, int shift) => (int)(fingerprint * 0x9E3779B97F4A7C15UL >> shift);

    private void Rebuild(long oldestOpen)
    {
        LargeBuffer<Slot> old = _slots;
        int live = 0;
        foreach (ref readonly Slot slot in old.Span)
        {
            if (slot.Journey >= oldestOpen)
            {
                live++;
            }
        }
        Use(TableForRebuild(live, new Slot { Journey = Unused }, _spare));
        _spare = old;
        _used = 0;
        foreach (ref readonly Slot slot in old.Span)
        {
            if (slot.Journey >= oldestOpen)
            {
                int index = Home(slot.Fingerprint, _shift);
                while (_items[index].Journey != Unused)
                {
                    index = (index + 1) & _mask;
                }
                _items[index] = slot;
                _used++;
            }
        }
    }

    /// <summary>
    /// The table a rebuild moves <paramref name="live"/> entries into, every slot <paramref name="empty"/>: twice the
    /// live entries rounded up to a power of two (1,024 at least). The <paramref name="spare"/> (the table of the rebuild
    /// before) will do if it is large enough and not so large that clearing it costs more than a new table; otherwise it
    /// is disposed and a new one made. The caller keeps the table it leaves as the next spare. Shared with
    /// <see cref="OpenJourneyIndex"/>.
    /// </summary>
    internal static LargeBuffer<T> TableForRebuild<T>(int live, T empty, LargeBuffer<T>? spare)
        where T : unmanaged
    {
        int wanted = Math.Max(1024, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)live * 2));
        if (spare is not null && spare.Length >= wanted && spare.Length <= wanted * 4)
        {
            spare.Span.Fill(empty);
            return spare;
        }
        spare?.Dispose();
        var table = new LargeBuffer<T>(wanted);
        table.Span.Fill(empty);
        return table;
    }

    private static LargeBuffer<Slot> NewSlots(int size)
    {
        var slots = new LargeBuffer<Slot>(size);
        slots.Span.Fill(new Slot { Journey = Unused });
        return slots;
    }

    private struct Slot
    {
        public ulong Fingerprint;
        public long Journey;
    }
}
