using System.Runtime.InteropServices;

namespace VethTrace.Tracing;

/// <summary>
/// A fixed array of unmanaged entries outside the GC heap, for the correlator's rings and its open-journey table. On
/// Linux the memory is an anonymous mapping advised for transparent huge pages (<c>madvise(MADV_HUGEPAGE)</c>), so the
/// first write to each 2 MiB takes one page fault instead of 512. Each fault costs about 7 µs on the lab's VM (a
/// Firecracker guest: 16,385 faults to touch 64 MiB, 219 ms, against 32 faults and 103 ms with the advice), and in a
/// profile of replay the faults on fresh ring memory were the largest single cost of the matching thread (12 % of the
/// process). Elsewhere, or where the kernel declines, the memory is ordinary: zeroed native memory.
/// </summary>
/// <remarks>Freed by <see cref="Dispose"/> or, failing that, by the finalizer.</remarks>
internal sealed unsafe class LargeBuffer<T> : IDisposable
    where T : unmanaged
{
    private void* _base;
    private nuint _mappedBytes;
    private nuint _usableBytes;
    private readonly T* _items;

    /// <summary>
    /// At least <paramref name="minimumLength"/> entries, a power of two (the rings and the table index with a mask).
    /// When the memory comes in huge pages, <see cref="Length"/> is the largest power of two they hold: the rest of a
    /// huge page would be resident but unused.
    /// </summary>
    public LargeBuffer(int minimumLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minimumLength, 1);
        int length = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)minimumLength);
        _base = LargeMemory.Allocate((nuint)length * (nuint)sizeof(T), out _mappedBytes, out void* items, out _usableBytes);
        // The largest power of two that fits (at least length, since length entries were asked for), at most 2^30.
        Length = 1 << Math.Min(30, System.Numerics.BitOperations.Log2((ulong)(_usableBytes / (nuint)sizeof(T))));
        _items = (T*)items;
    }

    /// <summary>Zeroed when made.</summary>
    public Span<T> Span => new(_items, Length);

    public int Length { get; }

    /// <summary>The bytes this buffer holds outside the GC heap.</summary>
    public long Bytes => (long)_usableBytes;

    /// <summary>Where the entries start (for tests: which mapping they are in).</summary>
    public nuint Address => (nuint)_items;

    /// <summary>The entry at <paramref name="index"/>, which the caller keeps in [0, <see cref="Length"/>).</summary>
    public ref T this[long index] => ref _items[index];

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~LargeBuffer() => Free();

    private void Free()
    {
        if (_base is not null)
        {
            LargeMemory.Free(_base, _mappedBytes);
            _base = null;
        }
    }
}

/// <summary>
/// A fixed array of unmanaged entries in pages of its own outside the GC heap (<see cref="LargeMemory.AllocatePages"/>),
/// for a table that grows by doubling: the old array is given back to the kernel as soon as the table has moved, where
/// an array on the GC heap of 85,000 bytes or more stays on the large-object heap until a full collection, and the
/// heap's committed memory with it (the ways to the egress and the NAT row slots of the 10M many-flows file: 3 MiB of
/// tables and 3 MiB of old copies). Zeroed when made; any length from 1 (a small one still takes a whole 4 KiB page).
/// </summary>
/// <remarks>Freed by <see cref="Dispose"/> or, failing that, by the finalizer.</remarks>
internal sealed unsafe class NativeArray<T> : IDisposable
    where T : unmanaged
{
    private T* _items;
    private readonly nuint _bytes;

    public NativeArray(int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        _items = (T*)LargeMemory.AllocatePages((nuint)length * (nuint)sizeof(T), out _bytes);
        Length = length;
    }

    public int Length { get; }

    /// <summary>The bytes of its pages.</summary>
    public long Bytes => (long)_bytes;

    /// <summary>The entry at <paramref name="index"/>, which the caller keeps in [0, <see cref="Length"/>).</summary>
    public ref T this[int index] => ref _items[index];

    /// <summary>Where entry <paramref name="index"/> is, for a prefetch.</summary>
    public T* At(int index) => _items + index;

    public Span<T> Span => new(_items, Length);

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~NativeArray() => Free();

    private void Free()
    {
        if (_items is not null)
        {
            LargeMemory.FreePages(_items, _bytes);
            _items = null;
        }
    }
}

/// <summary>The memory under <see cref="LargeBuffer{T}"/>.</summary>
internal static unsafe class LargeMemory
{
    private const nuint HugePage = 2 << 20;

    /// <summary>From this size on, memory comes in whole huge pages; below it a huge page would be mostly unused.</summary>
    private const nuint HugePageThreshold = 256 << 10;

    /// <summary>
    /// At least <paramref name="bytes"/> of zeroed memory at <paramref name="items"/>, <paramref name="usable"/> bytes in
    /// all (whole huge pages from <see cref="HugePageThreshold"/> on). Returns what to pass to <see cref="Free"/> with
    /// <paramref name="mappedBytes"/> (0 when it is not a mapping).
    /// </summary>
    public static void* Allocate(nuint bytes, out nuint mappedBytes, out void* items, out nuint usable)
    {
        if (OperatingSystem.IsLinux() && bytes >= HugePageThreshold)
        {
            usable = (bytes + HugePage - 1) & ~(HugePage - 1);
            // Map a huge page more than used, so the entries can start on a 2 MiB boundary.
            nuint mapped = usable + HugePage;
            void* address = Mmap(null, mapped, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
            if (address != MapFailed)
            {
                mappedBytes = mapped;
                items = (void*)(((nuint)address + HugePage - 1) & ~(HugePage - 1));
                _ = Madvise(items, usable, MadvHugePage); // advice: if refused, ordinary pages
                return address;
            }
        }
        usable = bytes;
        mappedBytes = 0;
        items = NativeMemory.AllocZeroed(Math.Max(bytes, 1));
        return items;
    }

    /// <summary>
    /// At least <paramref name="bytes"/> of zeroed memory in ordinary pages (<paramref name="usable"/>: whole 4 KiB pages),
    /// for memory that grows and shrinks by small steps (a <see cref="SequenceRing{T}"/>'s chunks, the slots of a
    /// <see cref="NativeArray{T}"/>), where whole huge pages would hold much unused memory: a mapping of its own on
    /// Linux, so that <see cref="FreePages"/> gives it back to the kernel (a freed malloc block of this size may stay with
    /// the allocator). With <paramref name="populate"/>, for memory written through at once, the kernel provides every
    /// page in the call (<c>MAP_POPULATE</c>) instead of one page fault per page at its first write.
    /// </summary>
    public static void* AllocatePages(nuint bytes, out nuint usable, bool populate = false)
    {
        usable = (bytes + 4095) & ~(nuint)4095;
        bytes = usable;
        if (OperatingSystem.IsLinux())
        {
            void* address = Mmap(null, bytes, ProtRead | ProtWrite, MapPrivate | MapAnonymous | (populate ? MapPopulate : 0), -1, 0);
            if (address != MapFailed)
            {
                return address;
            }
            throw new OutOfMemoryException($"mmap of {bytes} bytes failed");
        }
        return NativeMemory.AllocZeroed(bytes);
    }

    /// <summary>
    /// A range of address space for a table that is rebuilt again and again at growing sizes (a
    /// <see cref="TranslationTable"/>'s shards), used again instead of given back: <see cref="TryPrepare"/> zeroes the
    /// part already written and leaves the rest as the kernel's zero pages, so a table rebuilt from <c>n</c> to
    /// <c>2 n</c> slots in a range that held <c>n</c> before takes new pages for the other <c>n</c> only. A fresh
    /// mapping per rebuild faulted on every page of every size the table had (four times its last size with the steps of
    /// a third it grew by then, twice with doubling), and
    /// each <c>munmap</c> of the old one, in a process of several threads, interrupts the other CPUs to flush their TLBs.
    /// </summary>
    /// <remarks>
    /// On Linux the range is a mapping of address space (<see cref="MinimumReserved"/> at least), 2 MiB aligned, of
    /// which only the pages written take memory. A table read at random wants huge pages (a random access into many
    /// megabytes otherwise misses the TLB as well as the cache, and in a VM a page walk is dear): from 2 MiB on, its
    /// whole 2 MiB ranges are advised for them (<see cref="HugeBytes"/>). The kernel
    /// gives a huge page only where no ordinary page was ever mapped (the page table stays), so when a size wants advice
    /// where ordinary pages were written, the use moves on to a part of the range never written, 2 MiB aligned, and
    /// the pages it leaves go back to the kernel. Elsewhere it is zeroed native memory of the first size asked for,
    /// used again only up to that size.
    /// </remarks>
    public sealed class ReusableRange : IDisposable
    {
        private void* _mapped;
        private readonly nuint _mappedBytes;
        private readonly byte* _end;
        /// <summary>The bytes from <see cref="Start"/> that may have been written: beyond them the range is zero and takes no memory.</summary>
        private nuint _touched;
        /// <summary>The bytes from <see cref="Start"/> advised for huge pages.</summary>
        private nuint _advised;

        /// <summary>A range for at least <paramref name="bytes"/>, zeroed (<see cref="TryPrepare"/> is not needed before the first use).</summary>
        public ReusableRange(nuint bytes)
        {
            bytes = (bytes + 4095) & ~(nuint)4095;
            if (OperatingSystem.IsLinux())
            {
                // Room for growth: the range is address space, not memory, until written.
                nuint reserved = (Math.Max(MinimumReserved, bytes * 4) + HugePage - 1) & ~(HugePage - 1);
                _mappedBytes = reserved + HugePage;
                _mapped = Mmap(null, _mappedBytes, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
                if (_mapped == MapFailed)
                {
                    throw new OutOfMemoryException($"mmap of {_mappedBytes} bytes failed");
                }
                Start = (byte*)(((nuint)_mapped + HugePage - 1) & ~(HugePage - 1));
                _end = (byte*)Start + reserved;
            }
            else
            {
                _mapped = NativeMemory.AllocZeroed(bytes);
                Start = _mapped;
                _end = (byte*)Start + bytes;
            }
            Advise(bytes);
            Populate(0, bytes);
            _touched = bytes;
        }

        /// <summary>Address space kept for growth at least (16 MiB: a shard of 1.4 million translations).</summary>
        public const nuint MinimumReserved = 16 << 20;

        /// <summary>Where the use starts: moves on when the use comes to want huge pages where ordinary ones were written.</summary>
        public void* Start { get; private set; }

        /// <summary><see cref="Start"/> as a number (for tests).</summary>
        public nint Address => (nint)Start;

        /// <summary>The bytes from <see cref="Start"/> that take memory now, at most (written, or advised and touched).</summary>
        public nuint Touched => _touched;

        /// <summary>
        /// Makes <paramref name="bytes"/> from <see cref="Start"/> (which may move) zero for a new use, and gives back
        /// the memory of anything written beyond them; <paramref name="usable"/>: the bytes given, whole 4 KiB pages.
        /// False when the range is too small: then it is as it was.
        /// </summary>
        public bool TryPrepare(nuint bytes, out nuint usable)
        {
            usable = bytes = (bytes + 4095) & ~(nuint)4095;
            if (HugeBytes(bytes) > _advised && _touched > _advised)
            {
                // Advice where ordinary pages were written would not take: move on past them.
                byte* next = (byte*)(((nuint)Start + _touched + HugePage - 1) & ~(HugePage - 1));
                if (next + bytes > _end)
                {
                    return false;
                }
                _ = Madvise(Start, _touched, MadvDontNeed);
                Start = next;
                _touched = 0;
                _advised = 0;
            }
            if ((byte*)Start + bytes > _end)
            {
                return false;
            }
            NativeMemory.Clear(Start, Math.Min(_touched, bytes));
            if (_touched > bytes && OperatingSystem.IsLinux())
            {
                _ = Madvise((byte*)Start + bytes, _touched - bytes, MadvDontNeed);
            }
            Advise(bytes);
            if (bytes > _touched)
            {
                Populate(_touched, bytes);
            }
            _touched = bytes;
            return true;
        }

        /// <summary>Gives the memory written back to the kernel, keeping the range (a spare no longer needed at its size).</summary>
        public void Trim()
        {
            if (_touched > 0 && OperatingSystem.IsLinux())
            {
                _ = Madvise(Start, _touched, MadvDontNeed);
                _touched = 0;
            }
        }

        /// <summary>
        /// The bytes from the start a use of <paramref name="bytes"/> advises for huge pages: its whole 2 MiB ranges (the
        /// tail stays in ordinary pages, so nothing more is used than asked for). None where the advice does not exist.
        /// </summary>
        /// <remarks>
        /// Not the first 2 MiB of a smaller table: a huge page saves TLB misses, but the kernel zeroes its 2 MiB at the
        /// first touch, and on the lab's VM that was dear: with the 1M many-flows file's shards of 1.1 MB each in one
        /// huge page, the accounting thread spent 0.27 s in <c>clear_page_erms</c> (542 of its 1,933 samples), more than
        /// the TLB misses saved (TranslationTable.Prefetch 145 → 103 samples), and the peak RSS was 13 MB higher.
        /// </remarks>
        public static nuint HugeBytes(nuint bytes) => OperatingSystem.IsLinux() ? bytes & ~(HugePage - 1) : 0;

        /// <summary>
        /// Maps the pages from <paramref name="from"/> to <paramref name="to"/> (bytes from <see cref="Start"/>) writable
        /// at once (<c>MADV_POPULATE_WRITE</c>, Linux 5.14): a table rebuilt into them reads each slot before it writes
        /// one, and a read of a page never written maps the shared zero page, so each new page took two faults, a read
        /// and then a write (the accounting thread's page faults in <c>Resize</c> were twice its pages). One call maps
        /// them all, zeroed, with no fault. Where the advice is not known the pages fault in as before.
        /// </summary>
        private void Populate(nuint from, nuint to)
        {
            if (OperatingSystem.IsLinux())
            {
                _ = Madvise((byte*)Start + from, to - from, MadvPopulateWrite);
            }
        }

        /// <summary>Advises the huge-page ranges of a use of <paramref name="bytes"/> (<see cref="HugeBytes"/>) not advised yet.</summary>
        private void Advise(nuint bytes)
        {
            nuint huge = HugeBytes(bytes);
            if (huge > _advised)
            {
                _ = Madvise((byte*)Start + _advised, huge - _advised, MadvHugePage); // advice: if refused, ordinary pages
                _advised = huge;
            }
        }

        public void Dispose()
        {
            Free();
            GC.SuppressFinalize(this);
        }

        ~ReusableRange() => Free();

        private void Free()
        {
            if (_mapped is not null)
            {
                if (OperatingSystem.IsLinux())
                {
                    _ = Munmap(_mapped, _mappedBytes);
                }
                else
                {
                    NativeMemory.Free(_mapped);
                }
                _mapped = null;
            }
        }
    }

    /// <summary>
    /// Maps the whole pages within <paramref name="bytes"/> from <paramref name="address"/> writable at once
    /// (<c>MADV_POPULATE_WRITE</c>, Linux 5.14), for memory about to be written through: one call instead of a page
    /// fault per page. A hint: where the advice is not known the pages fault in as they are written.
    /// </summary>
    public static void PopulateWrite(void* address, nuint bytes)
    {
        nuint from = ((nuint)address + 4095) & ~(nuint)4095, to = ((nuint)address + bytes) & ~(nuint)4095;
        if (OperatingSystem.IsLinux() && to > from)
        {
            _ = Madvise((void*)from, to - from, MadvPopulateWrite);
        }
    }

    public static void FreePages(void* address, nuint bytes)
    {
        if (OperatingSystem.IsLinux())
        {
            _ = Munmap(address, bytes);
        }
        else
        {
            NativeMemory.Free(address);
        }
    }

    public static void Free(void* address, nuint mappedBytes)
    {
        if (mappedBytes > 0)
        {
            _ = Munmap(address, mappedBytes);
        }
        else
        {
            NativeMemory.Free(address);
        }
    }

    private const int ProtRead = 1, ProtWrite = 2, MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000, MapPopulate = 0x8000,
        MadvDontNeed = 4, MadvHugePage = 14, MadvPopulateWrite = 23;
    private static readonly void* MapFailed = (void*)-1;

    [DllImport("libc", EntryPoint = "mmap")]
    private static extern void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "munmap")]
    private static extern int Munmap(void* address, nuint length);

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(void* address, nuint length, int advice);
}
