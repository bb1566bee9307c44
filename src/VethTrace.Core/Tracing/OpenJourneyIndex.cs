using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace VethTrace.Tracing;

/// <summary>
/// The correlator's open journey of each fingerprint (<see cref="OpenJourneyTable"/>'s scheme: linear probing, entries
/// that die when the journey ring's head passes them, rebuilt from the live ones at three quarters full) in 8-byte slots
/// instead of 16, so a window's table takes half the cache: the table of a multi-hop capture's window is about 2 MiB
/// in 16-byte slots, and its probe was 9 % of the matching thread (docs/performance.md, "Replay matching thread, round 4").
/// </summary>
/// <remarks>
/// A slot holds a <b>tag</b> in its high 32 bits, the top 32 bits of the fingerprint's Fibonacci hash with the lowest bit
/// set (so no used slot is 0, the unused value, and fresh memory is an empty table), and the journey's number modulo
/// 2^32 in its low 32 bits. The home slot is the tag's top bits, so a rebuild places an entry without its fingerprint.
/// The number is read back relative to the ring's head (<c>oldestOpen</c>): exact while every number in the table lies
/// within 2^31 of it, which holds because the table is rebuilt (dead entries dropped) whenever the head has moved
/// <see cref="EpochJourneys"/> since the last rebuild: every number in it is then at least the head of that rebuild, and
/// between two lookups the head moves by at most the journeys open at the first (the tail moves by one per lookup), far
/// fewer than 2^30 (a window's journeys; 2^30 of them would take 48 GiB of journey ring). A tag is
/// not the fingerprint: a live entry whose tag matches is confirmed against the journey's own fingerprint (the
/// caller's ring, through <see cref="IFingerprints"/>), the entry the caller reads next anyway.
/// </remarks>
internal sealed unsafe class OpenJourneyIndex
{
    /// <summary>Where the numbers a slot holds come from: the fingerprint of a live journey.</summary>
    public interface IFingerprints
    {
        ulong FingerprintOf(long journey);
    }

    private const ulong Unused = 0;
    /// <summary>How far the head may move between rebuilds, at most (half of the 2^31 a 32-bit number can be read back over).</summary>
    internal const long EpochJourneys = 1L << 30;

    private LargeBuffer<ulong> _slots = NewSlots(1024);
    private ulong* _items;
    private int _mask;
    /// <summary>32 minus log2 of the table's length: the home slot is the tag shifted right by it.</summary>
    private int _tagShift;
    /// <summary>The table before the last rebuild, kept for the next one of the same size (<see cref="OpenJourneyTable"/>'s spare).</summary>
    private LargeBuffer<ulong>? _spare;
    private int _used;
    /// <summary><c>oldestOpen</c> at the last rebuild: every number in the table is at least this.</summary>
    private long _epoch;

    /// <summary>The bytes of the table and its spare (outside the GC heap).</summary>
    public long Bytes => _slots.Bytes + (_spare?.Bytes ?? 0);

    /// <summary>The table's length in slots.</summary>
    internal int Length => _mask + 1;

    /// <summary>Rebuilds so far (tests).</summary>
    internal int Rebuilds { get; private set; }

    public OpenJourneyIndex() => Use(_slots);

    private void Use(LargeBuffer<ulong> slots)
    {
        _slots = slots;
        _items = (ulong*)Unsafe.AsPointer(ref slots[0]);
        _mask = slots.Length - 1;
        _tagShift = 32 - System.Numerics.BitOperations.Log2((uint)slots.Length);
    }

    /// <summary>The tag of <paramref name="fingerprint"/>: the top 32 bits of its Fibonacci hash, the lowest set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Tag(ulong fingerprint) => (uint)(fingerprint * 0x9E3779B97F4A7C15UL >> 32) | 1;

    /// <summary>
    /// Looks up <paramref name="fingerprint"/>'s open journey: its number in <paramref name="journey"/> (-1 for none) and
    /// the slot's index, to <see cref="Set"/> a journey into (the found one's slot, else a free one). The index is valid
    /// until the next call. Journeys numbered below <paramref name="oldestOpen"/> have ended; those from it on must be
    /// readable through <paramref name="fingerprints"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per observation
    public int Find<TFingerprints>(ulong fingerprint, long oldestOpen, TFingerprints fingerprints, out long journey)
        where TFingerprints : struct, IFingerprints
    {
        if ((ulong)(oldestOpen - _epoch) >= EpochJourneys)
        {
            Rebuild(oldestOpen); // before a dead number could be read back as a live one
        }
        uint tag = Tag(fingerprint);
        ulong* items = _items;
        int mask = _mask;
        uint oldest = (uint)oldestOpen;
        int index = (int)(tag >> _tagShift);
        int free = -1;
        while (true)
        {
            ulong slot = items[index];
            if (slot == Unused)
            {
                break;
            }
            int ahead = (int)((uint)slot - oldest);
            if (ahead >= 0)
            {
                if ((uint)(slot >> 32) == tag && fingerprints.FingerprintOf(oldestOpen + ahead) == fingerprint)
                {
                    journey = oldestOpen + ahead;
                    return index;
                }
            }
            else if (free < 0)
            {
                free = index; // dead: reusable, but the fingerprint may still be further along the run
            }
            index = (index + 1) & mask;
        }
        journey = -1;
        if (free >= 0)
        {
            return free;
        }
        if (++_used > (mask + 1) / 4 * 3)
        {
            return Grown(fingerprint, oldestOpen, fingerprints, out journey);
        }
        return index;
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // once per rebuild
    private int Grown<TFingerprints>(ulong fingerprint, long oldestOpen, TFingerprints fingerprints, out long journey)
        where TFingerprints : struct, IFingerprints
    {
        Rebuild(oldestOpen);
        return Find(fingerprint, oldestOpen, fingerprints, out journey);
    }

    /// <summary>
    /// Stores <paramref name="journey"/> (at least the <c>oldestOpen</c> of the <see cref="Find"/> that gave
    /// <paramref name="index"/>, and within 2^31 of it) as <paramref name="fingerprint"/>'s open journey, in the slot
    /// <see cref="Find"/> gave for that fingerprint.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set(int index, ulong fingerprint, long journey) => _items[index] = (ulong)Tag(fingerprint) << 32 | (uint)journey;

    /// <summary>
    /// Asks the CPU to bring the slots <paramref name="fingerprint"/>'s probe starts at into cache, so they are there when
    /// <see cref="Find"/> comes (<see cref="OpenJourneyTable.Touch"/>): the home slot's line, and the next when the home
    /// slot is not the first of its line (a run of up to eight slots).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per observation
    public void Touch(ulong fingerprint)
    {
        if (Sse.IsSupported)
        {
            int home = (int)(Tag(fingerprint) >> _tagShift);
            Sse.Prefetch0(_items + home);
            Sse.Prefetch0(_items + ((home + 7) & _mask));
        }
    }

    private void Rebuild(long oldestOpen)
    {
        Rebuilds++;
        LargeBuffer<ulong> old = _slots;
        uint oldest = (uint)oldestOpen;
        int live = 0;
        foreach (ulong slot in old.Span)
        {
            if (slot != Unused && (int)((uint)slot - oldest) >= 0)
            {
                live++;
            }
        }
        Use(OpenJourneyTable.TableForRebuild(live, Unused, _spare));
        _spare = old;
        _used = 0;
        _epoch = oldestOpen;
        foreach (ulong slot in old.Span)
        {
            if (slot != Unused && (int)((uint)slot - oldest) >= 0)
            {
                int index = (int)((uint)(slot >> 32) >> _tagShift);
                while (_items[index] != Unused)
                {
                    index = (index + 1) & _mask;
                }
                _items[index] = slot;
                _used++;
            }
        }
    }

    private static LargeBuffer<ulong> NewSlots(int size)
    {
        var slots = new LargeBuffer<ulong>(size);
        slots.Span.Clear();
        return slots;
    }
}
