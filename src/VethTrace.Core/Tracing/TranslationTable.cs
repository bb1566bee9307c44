using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace VethTrace.Tracing;

/// <summary>
/// The NAT translations held now, for <see cref="NatTable"/>: 12 bytes per translation outside the GC heap (16 when
/// the rows are kept, <see cref="KeepsRows"/>), no object per entry. A translation is known by a 64-bit hash of its
/// (protocol, inside, outside, peer); the slot keeps 60 bits of it with the kind of its first journey, its timeout
/// class and whether it is closing, and its last time in units of <see cref="UnitNs"/> (32 bits). Its aggregate row
/// is kept beside it only when asked (for <see cref="NatTable.InUse"/>, the live view's translations in use per
/// row); otherwise <see cref="NatTable"/> finds the row again from the translation's key and first kind.
/// </summary>
/// <remarks>
/// <para>Open addressing with linear probing in <see cref="ShardCount"/> shards chosen by the hash's top bits. A shard
/// has any number of slots (the home slot is the hash's middle bits scaled to the length, not masked), and grows or
/// shrinks alone: rehashing one shard needs its old and new slots at once, a sixteenth of the table, not the whole
/// table twice over as a doubling <see cref="Dictionary{TKey, TValue}"/> does. Its load stays between
/// <see cref="ShrinkBelow"/> and <see cref="GrowAbove"/> (<see cref="DenseGrowAbove"/> for large shards).</para>
/// <para><see cref="Sweep"/> deletes in place by shifting the rest of a probe run back (no tombstones), so a table whose
/// translations come and go at a steady rate keeps its size.</para>
/// <para>The last time is rounded up to a power of two of nanoseconds chosen so that the longest timeout is at most 2^30
/// units (about 0.5 ms with conntrack's 5 days for TCP): a translation may be kept up to two units longer than its
/// timeout. Times wrap at 2^32 units; an entry more than 2^31 units old counts as expired, so only a gap of more than
/// 2^32 units (about 26 days with the defaults) between two sweeps could make an old entry look recent.</para>
/// <para>Two translations whose hashes agree in the 60 bits kept are one translation: their packets are counted in the
/// first one's row and the second does not count as a flow. Among a million translations held at once the chance of
/// any such pair is about 4 × 10^-7 (10^12 / 2 pairs over 2^60).</para>
/// </remarks>
internal sealed unsafe class TranslationTable : IDisposable
{
    public const int ShardCount = 16;
    private const int ShardShift = 60;
    private const int MinimumSlots = 64;
    private const double GrowAbove = 0.8;
    private const double ShrinkBelow = 0.2;
    /// <summary>
    /// The load a shard is rebuilt to: a shard that grows doubles. Its pages cost the same at any step (the rebuild is
    /// made in the spare range, <see cref="_spareSlots"/>: only the growth takes new pages), so larger steps only save
    /// rehashing: with 0.6 (steps of a third) a shard of the 1M many-flows file was rebuilt 16 times, each translation
    /// moved about three times (the accounting thread's samples in Resize: 65 of 1,110). Costs a lower load at the end
    /// for tables below <see cref="DenseFrom"/> (the 1M file's: 20.9 MB instead of 18 MB).
    /// </summary>
    private const double Rebuilt = 0.4;

    /// <summary>
    /// From this many slots on (1.5 MiB, about 1.5 million translations in the 16 shards) a shard is denser: it grows
    /// above <see cref="DenseGrowAbove"/> and is rebuilt to <see cref="DenseRebuilt"/>. A table that large misses the
    /// caches anyway, and its size is the run's largest part (3.3 million translations held at once on the 10M
    /// many-flows file: 57 MB at the sparser loads, 49 MB at these); smaller ones keep the shorter probe runs and the
    /// fewer rebuilds of the sparser loads (the 1M file's million translations).
    /// </summary>
    private const int DenseFrom = 1 << 17;
    private const double DenseGrowAbove = 0.85;
    private const double DenseRebuilt = 0.7;

    /// <summary>The low bits of <see cref="Slot.Key"/> that are not the hash.</summary>
    private const ulong FlagBits = 0xF;
    private const ulong ClosingBit = 1;
    private const ulong DnatBit = 2;
    private const int ClassShift = 2;

    private readonly Shard[] _shards = new Shard[ShardCount];
    /// <summary>log2 of <see cref="UnitNs"/>.</summary>
    private readonly int _unitShift;

    public TranslationTable(FlowTimeouts timeouts, bool keepRows = true)
    {
        KeepsRows = keepRows;
        long longest = Math.Max(Math.Max(timeouts.TcpNs, timeouts.TcpClosingNs), Math.Max(Math.Max(timeouts.UdpNs, timeouts.IcmpNs), timeouts.OtherNs));
        while (longest >> _unitShift > 1L << 30)
        {
            _unitShift++;
        }
        for (int i = 0; i < ShardCount; i++)
        {
            _shards[i] = NewShard(MinimumSlots);
        }
    }

    /// <summary>Whether each translation's aggregate row is kept beside it (<see cref="LastRow"/>, <see cref="CountByRow"/>).</summary>
    public bool KeepsRows { get; }

    /// <summary>The row of the slot <see cref="FindOrAdd"/> returned last (only when <see cref="KeepsRows"/>), valid as long as that slot.</summary>
    public ref int LastRow => ref _lastShard!.Rows[_lastIndex];

    private Shard? _lastShard;
    private int _lastIndex;
    private int _lastShardNumber;

    /// <summary>
    /// Where the slot <see cref="FindOrAdd"/> returned last is: its shard's number and its index there, valid while
    /// <see cref="Epoch"/> stays the same (<see cref="Touch"/>).
    /// </summary>
    public (int Shard, int Index) LastPlace => (_lastShardNumber, _lastIndex);

    /// <summary>
    /// Changes whenever a slot may have moved or been emptied: a shard rebuilt (<see cref="Resize"/>, growing or
    /// shrinking) or a <see cref="Sweep"/>. Adding a translation moves none (linear probing only fills an empty slot),
    /// so a place from <see cref="LastPlace"/> stays the place of its translation until this changes. Never 0.
    /// </summary>
    public long Epoch { get; private set; } = 1;

    /// <summary>
    /// What <see cref="FindOrAdd"/> does to a translation it finds, given its place (<see cref="LastPlace"/>) instead of
    /// its hash: seen at <paramref name="timestampNs"/>, closing when <paramref name="closing"/>. False (and nothing
    /// done) unless <paramref name="epoch"/> is still <see cref="Epoch"/> and the slot there still holds
    /// <paramref name="key"/> (the slot's <see cref="Slot.Key"/> as it was, flags included or not).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Touch(int shard, int index, ulong key, long epoch, long timestampNs, bool closing)
    {
        if (epoch != Epoch)
        {
            return false;
        }
        Shard held = _shards[shard];
        if ((uint)index >= (uint)held.Length)
        {
            return false;
        }
        ref Slot slot = ref held.Slots[index];
        if (((slot.Key ^ key) & ~FlagBits) != 0 || slot.Key == 0)
        {
            return false;
        }
        uint seen = Units(timestampNs);
        if ((int)(seen - slot.LastSeen) > 0)
        {
            slot.LastSeen = seen;
        }
        slot.Key |= closing ? ClosingBit : 0;
        return true;
    }

    /// <summary>The resolution of the last times kept.</summary>
    public long UnitNs => 1L << _unitShift;

    /// <summary>The translations held.</summary>
    public int Count { get; private set; }

    /// <summary>The bytes of the shards' slots (outside the GC heap); not the spare range (<see cref="_spareSlots"/>: at most one shard's earlier size).</summary>
    public long Bytes
    {
        get
        {
            long bytes = 0;
            foreach (Shard shard in _shards)
            {
                bytes += (long)shard.UsableBytes;
            }
            return bytes;
        }
    }

    /// <summary>Which timeout applies to a translation, from its protocol (<see cref="FlowTimeouts.For"/>).</summary>
    public enum TimeoutClass
    {
        Tcp,
        Udp,
        Icmp,
        Other,
    }

    /// <summary>
    /// The slot of the translation <paramref name="hash"/> (<paramref name="found"/>), or a new one made for it with
    /// <paramref name="kind"/> and <paramref name="timeoutClass"/>; either way seen at <paramref name="timestampNs"/>
    /// (the later of its times is kept) and closing when <paramref name="closing"/>. The reference is valid until the
    /// next call of any method.
    /// </summary>
    public ref Slot FindOrAdd(ulong hash, NatKind kind, TimeoutClass timeoutClass, long timestampNs, bool closing, out bool found)
    {
        ulong key = KeyOf(hash);
        Shard shard = _shards[hash >> ShardShift];
        if (shard.Count + 1 > shard.GrowAt)
        {
            shard = Resize((int)(hash >> ShardShift), RebuiltLength(shard.Count + 1));
        }
        Slot* slots = shard.Slots;
        int length = shard.Length;
        int index = Home(hash, length);
        while (true)
        {
            ref Slot slot = ref slots[index];
            if (slot.Key == 0)
            {
                break;
            }
            if ((slot.Key & ~FlagBits) == key)
            {
                found = true;
                uint seen = Units(timestampNs);
                if ((int)(seen - slot.LastSeen) > 0)
                {
                    slot.LastSeen = seen;
                }
                slot.Key |= closing ? ClosingBit : 0;
                _lastShard = shard;
                _lastIndex = index;
                _lastShardNumber = (int)(hash >> ShardShift);
                return ref slot;
            }
            if (++index == length)
            {
                index = 0;
            }
        }
        found = false;
        shard.Count++;
        Count++;
        ref Slot made = ref slots[index];
        made.Key = key | (kind == NatKind.Dnat ? DnatBit : 0) | (ulong)timeoutClass << ClassShift | (closing ? ClosingBit : 0);
        made.LastSeen = Units(timestampNs);
        _lastShard = shard;
        _lastIndex = index;
        _lastShardNumber = (int)(hash >> ShardShift);
        return ref made;
    }

    /// <summary>
    /// Asks for the cache line of <paramref name="hash"/>'s home slot, for a <see cref="FindOrAdd"/> a few steps later
    /// (<see cref="NatTable"/> delays its lookups for this). A hint: a shard resized in between only wastes it. Where
    /// there is no prefetch instruction, nothing.
    /// </summary>
    public void Prefetch(ulong hash)
    {
        if (Sse.IsSupported)
        {
            Shard shard = _shards[hash >> ShardShift];
            Sse.Prefetch0(shard.Slots + Home(hash, shard.Length));
        }
    }

    /// <summary>
    /// Removes every translation idle at <paramref name="nowNs"/> for longer than its timeout, shrinking shards left
    /// mostly empty; false when none was removed.
    /// </summary>
    public bool Sweep(long nowNs, FlowTimeouts timeouts)
    {
        // A closing TCP translation has the TCP-closing timeout: class Tcp with the closing bit.
        Epoch++;
        long tcp = timeouts.TcpNs, tcpClosing = timeouts.TcpClosingNs, udp = timeouts.UdpNs, icmp = timeouts.IcmpNs, other = timeouts.OtherNs;
        uint now = (uint)(nowNs >> _unitShift);
        int removedAll = 0;
        bool shrunk = false;
        for (int s = 0; s < ShardCount; s++)
        {
            Shard shard = _shards[s];
            if (shard.Count == 0)
            {
                continue;
            }
            Slot* slots = shard.Slots;
            int length = shard.Length;
            // Start after an empty slot, so no probe run wraps past the start: a deletion then only moves entries the
            // scan has not reached yet into the place it is at, which it looks at again.
            int start = 0;
            while (slots[start].Key != 0)
            {
                start++;
            }
            int removed = 0;
            for (int step = 1; step <= length; step++)
            {
                int index = start + step;
                if (index >= length)
                {
                    index -= length;
                }
                while (true)
                {
                    ulong key = slots[index].Key;
                    if (key == 0)
                    {
                        break;
                    }
                    long timeout = (TimeoutClass)((key >> ClassShift) & 3) switch
                    {
                        TimeoutClass.Tcp => (key & ClosingBit) != 0 ? tcpClosing : tcp,
                        TimeoutClass.Udp => udp,
                        TimeoutClass.Icmp => icmp,
                        _ => other,
                    };
                    // The idle time in whole units, at least the true one less a unit (times are rounded up); below -1, a
                    // time more than 2^31 units ago.
                    int idle = (int)(now - slots[index].LastSeen);
                    if (idle >= -1 && (long)idle << _unitShift <= timeout)
                    {
                        break;
                    }
                    Delete(slots, shard.Rows, length, index);
                    removed++;
                }
            }
            shard.Count -= removed;
            removedAll += removed;
            if (shard.Length > MinimumSlots && shard.Count < shard.Length * ShrinkBelow)
            {
                Resize(s, RebuiltLength(shard.Count));
                shrunk = true;
            }
        }
        if (shrunk)
        {
            // A table that shrank keeps no spare memory of its larger size: the spare ranges stay, their pages go back.
            _spareSlots?.Trim();
            _spareRows?.Trim();
        }
        Count -= removedAll;
        return removedAll > 0;
    }

    public static NatKind KindOf(in Slot slot) => (slot.Key & DnatBit) != 0 ? NatKind.Dnat : NatKind.Snat;

    /// <summary>A time in units, rounded up, modulo 2^32.</summary>
    private uint Units(long timestampNs) => (uint)(((timestampNs - 1) >> _unitShift) + 1);

    public void Dispose()
    {
        foreach (Shard shard in _shards)
        {
            shard.Dispose();
        }
        _spareSlots?.Dispose();
        _spareRows?.Dispose();
    }

    /// <summary>The hash as kept: its low bits make room for the flags, and 0 means an empty slot.</summary>
    private static ulong KeyOf(ulong hash)
    {
        ulong key = hash & ~FlagBits;
        return key == 0 ? FlagBits + 1 : key;
    }

    /// <summary>Where a hash's probe starts in a shard of <paramref name="length"/> slots: 32 bits below the shard bits, scaled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Home(ulong hash, int length) => (int)((hash >> (ShardShift - 32) & 0xFFFF_FFFF) * (ulong)length >> 32);

    /// <summary>Empties slot <paramref name="hole"/> and moves back the entries after it that probed past it (Knuth's algorithm R).</summary>
    private static void Delete(Slot* slots, int* rows, int length, int hole)
    {
        int index = hole;
        while (true)
        {
            if (++index == length)
            {
                index = 0;
            }
            if (slots[index].Key == 0)
            {
                break;
            }
            int home = Home(slots[index].Key, length);
            // The entry stays if its home lies cyclically in (hole, index]: the hole is not on its probe path.
            bool stays = hole <= index ? hole < home && home <= index : hole < home || home <= index;
            if (!stays)
            {
                slots[hole] = slots[index];
                if (rows is not null)
                {
                    rows[hole] = rows[index];
                }
                hole = index;
            }
        }
        slots[hole] = default;
    }

    /// <summary>The slots a shard of <paramref name="count"/> translations is rebuilt with: to <see cref="Rebuilt"/>, or <see cref="DenseRebuilt"/> from <see cref="DenseFrom"/> slots on.</summary>
    private static int RebuiltLength(int count)
    {
        double sparse = count / Rebuilt;
        return (int)Math.Max(MinimumSlots, sparse < DenseFrom ? sparse : count / DenseRebuilt);
    }

    private Shard Resize(int shardIndex, int wanted)
    {
        Shard old = _shards[shardIndex];
        Shard resized = NewShard(Math.Max(MinimumSlots, wanted));
        Slot* slots = resized.Slots;
        int* rows = resized.Rows;
        int length = resized.Length;
        for (int i = 0; i < old.Length; i++)
        {
            if (old.Slots[i].Key != 0)
            {
                int index = Home(old.Slots[i].Key, length);
                while (slots[index].Key != 0)
                {
                    if (++index == length)
                    {
                        index = 0;
                    }
                }
                slots[index] = old.Slots[i];
                if (rows is not null)
                {
                    rows[index] = old.Rows[i];
                }
            }
        }
        resized.Count = old.Count;
        // The old slots become the spare the next rebuild (of any shard) is made in.
        GiveBack(ref _spareSlots, old.SlotRange);
        GiveBack(ref _spareRows, old.RowRange);
        _shards[shardIndex] = resized;
        _lastShard = null;
        Epoch++;
        return resized;
    }

    /// <summary>
    /// The range of the slots (and the rows) a shard rebuilt or made last gave up, kept for the next rebuild instead of
    /// given back to the kernel (<see cref="LargeMemory.ReusableRange"/>): the shards grow in step, by a third at a
    /// time, so the range one shard left is rebuilt into by the next to grow, and only the third more takes new pages.
    /// Costs one shard's memory (a sixteenth of the table) beyond the shards; a <see cref="Sweep"/> that shrinks a shard
    /// gives the spare's pages back.
    /// </summary>
    private LargeMemory.ReusableRange? _spareSlots, _spareRows;

    /// <summary>A shard of at least <paramref name="minimumSlots"/> empty slots, in the spare ranges when they are large enough.</summary>
    private Shard NewShard(int minimumSlots)
    {
        LargeMemory.ReusableRange slots = Take(ref _spareSlots, (nuint)minimumSlots * (nuint)sizeof(Slot), out nuint slotBytes);
        int length = (int)Math.Min(int.MaxValue, slotBytes / (nuint)sizeof(Slot));
        LargeMemory.ReusableRange? rows = null;
        nuint rowBytes = 0;
        if (KeepsRows)
        {
            rows = Take(ref _spareRows, (nuint)length * sizeof(int), out rowBytes);
        }
        return new Shard(slots, rows, length, slotBytes + rowBytes);
    }

    /// <summary>The spare range made ready for <paramref name="bytes"/>, or a new one when there is none or it is too small (then the spare is freed); <paramref name="usable"/>: whole pages.</summary>
    private static LargeMemory.ReusableRange Take(ref LargeMemory.ReusableRange? spare, nuint bytes, out nuint usable)
    {
        LargeMemory.ReusableRange? range = spare;
        spare = null;
        if (range is not null)
        {
            if (range.TryPrepare(bytes, out usable))
            {
                return range;
            }
            range.Dispose();
        }
        usable = (bytes + 4095) & ~(nuint)4095;
        return new LargeMemory.ReusableRange(bytes);
    }

    /// <summary>Keeps <paramref name="range"/> as the spare (a spare there still is, is freed).</summary>
    private static void GiveBack(ref LargeMemory.ReusableRange? spare, LargeMemory.ReusableRange? range)
    {
        if (range is not null)
        {
            spare?.Dispose();
            spare = range;
        }
    }

    /// <summary>12 bytes (4-byte aligned): 5.3 slots per cache line.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct Slot
    {
        /// <summary>The hash's top 60 bits; below them the timeout class (2 bits), DNAT first, closing. 0: empty.</summary>
        public ulong Key;
        /// <summary>The last time, in units rounded up, modulo 2^32.</summary>
        public uint LastSeen;
    }

    /// <summary>Adds one to <paramref name="counts"/> at each translation's row (only when <see cref="KeepsRows"/>).</summary>
    public void CountByRow(long[] counts)
    {
        if (!KeepsRows)
        {
            throw new InvalidOperationException("the translations' rows are not kept");
        }
        foreach (Shard shard in _shards)
        {
            for (int i = 0; i < shard.Length; i++)
            {
                if (shard.Slots[i].Key != 0)
                {
                    counts[shard.Rows[i]]++;
                }
            }
        }
    }

    /// <summary>
    /// One shard's slots: zeroed pages in a <see cref="LargeMemory.ReusableRange"/> (huge pages from 2 MiB on), all of
    /// them used; with rows, a second range of one 4-byte row per slot, at the same index.
    /// </summary>
    private sealed class Shard(LargeMemory.ReusableRange slots, LargeMemory.ReusableRange? rows, int length, nuint usableBytes) : IDisposable
    {
        public LargeMemory.ReusableRange SlotRange { get; } = slots;

        public LargeMemory.ReusableRange? RowRange { get; } = rows;

        public Slot* Slots { get; } = (Slot*)slots.Start;

        /// <summary>The aggregate row of each slot's translation, or null when rows are not kept.</summary>
        public int* Rows { get; } = rows is null ? null : (int*)rows.Start;

        public int Length { get; } = length;

        /// <summary>The most translations the shard holds before it grows: <see cref="GrowAbove"/> or <see cref="DenseGrowAbove"/> of its slots.</summary>
        public int GrowAt { get; } = (int)(length * (length >= DenseFrom ? DenseGrowAbove : GrowAbove));

        /// <summary>The bytes of the slots and the rows.</summary>
        public nuint UsableBytes { get; } = usableBytes;

        public int Count;

        public void Dispose()
        {
            SlotRange.Dispose();
            RowRange?.Dispose();
        }
    }
}
