using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace VethTrace.Tracing;

/// <summary>
/// A log-linear histogram of nanosecond latencies (the HdrHistogram layout): each power of two is cut into
/// 2^<see cref="SubBucketBits"/> equal buckets, so a recorded value is known to a relative precision of 2^-13
/// (under 1 µs for any latency below 8 ms, and always better than 0.013 %). The buckets are held in pages of
/// <see cref="PageBuckets"/>, allocated when a value first falls in one, so memory grows with the spread of the
/// values, never with their number: latencies in whole microseconds from 12 to 75 µs take 64 pages (32 KiB), where
/// whole octaves took 256 KiB (a histogram per path, hundreds of paths on a host with hundreds of containers).
/// </summary>
public sealed class LatencyHistogram
{
    public const int SubBucketBits = 13;
    private const int SubBuckets = 1 << SubBucketBits;
    private const int Octaves = 64 - SubBucketBits;
    private const int PageBits = 6;

    /// <summary>The buckets of one page: 64 counts, 512 bytes.</summary>
    public const int PageBuckets = 1 << PageBits;
    private const int PagesPerOctave = SubBuckets / PageBuckets;

    // Octave 0 holds 0 .. 8191 exactly; octave k (k >= 1) holds [2^(k+12), 2^(k+13)) in 8192 buckets of 2^(k-1).
    // Octave -> page -> bucket: the page tables and pages are made when first used.
    private readonly long[]?[]?[] _octaves = new long[]?[]?[Octaves + 1];

    /// <summary>
    /// The values recorded and not counted yet: <see cref="Record"/> only stores a value, and the values are counted
    /// <see cref="BatchSize"/> at a time (<see cref="CountBatch"/>): every value's bucket found and asked for first (a
    /// hop's buckets spread over tens of kilobytes, exact nanoseconds below 8 µs, and an increment made at once waited
    /// for memory: 4 % of replay's samples once), then the increments, with the count, least, largest and zeros kept in
    /// registers. Every figure a reader asks for counts what waits first (<see cref="Flush"/>): no reader sees the batch.
    /// </summary>
    private const int BatchSize = 32;
    private readonly long[] _batch = new long[BatchSize];
    private int _batched;
    private long _count, _min = long.MaxValue, _max, _zeros, _bytes;

    /// <summary>The bytes of the counts held (pages and page tables), for memory figures.</summary>
    public long Bytes
    {
        get
        {
            Flush();
            return _bytes;
        }
    }

    public long Count => _count + _batched;

    public long Min
    {
        get
        {
            Flush();
            return _min;
        }
    }

    public long Max
    {
        get
        {
            Flush();
            return _max;
        }
    }

    /// <summary>How many recorded values were exactly 0: a timestamp the kernel reused along the path.</summary>
    public long Zeros
    {
        get
        {
            Flush();
            return _zeros;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Record(long valueNs)
    {
        int batched = _batched;
        _batch[batched] = valueNs;
        _batched = ++batched;
        if (batched == BatchSize)
        {
            CountBatch();
        }
    }

    /// <summary>Counts the values waiting in <see cref="_batch"/> and empties it.</summary>
    private void CountBatch()
    {
        int batched = _batched;
        Span<int> places = stackalloc int[BatchSize];
        long[] batch = _batch;
        long min = _min, max = _max, zeros = 0;
        for (int i = 0; i < batched; i++)
        {
            long value = batch[i];
            if (value < 0)
            {
                value = 0; // a clock step backwards between hops; the hop took no measurable time
            }
            min = Math.Min(min, value);
            max = Math.Max(max, value);
            zeros += value == 0 ? 1 : 0;
            (int octave, int index) = Locate(value);
            long[] page = Page(octave, index >> PageBits);
            Prefetch(page, index & (PageBuckets - 1));
            places[i] = octave << SubBucketBits | index;
        }
        for (int i = 0; i < batched; i++)
        {
            int place = places[i];
            int index = place & (SubBuckets - 1);
            _octaves[place >> SubBucketBits]![index >> PageBits]![index & (PageBuckets - 1)]++;
        }
        _count += batched;
        _min = min;
        _max = max;
        _zeros += zeros;
        _batched = 0;
    }

    /// <summary>
    /// A prefetch instruction for <paramref name="page"/>[<paramref name="bucket"/>] where there is one. The address is
    /// computed from the array's reference and the runtime's array layout (the length, padded to a pointer, after the
    /// type pointer) without reading the array: a reference to its data made the compiler check the array for null by
    /// reading it, which waited for memory as the increment had. A hint only: the array moving meanwhile costs the hint.
    /// </summary>
    private static unsafe void Prefetch(long[] page, int bucket)
    {
        if (Sse.IsSupported)
        {
            nint data = Unsafe.As<long[], nint>(ref page) + 2 * IntPtr.Size;
            Sse.Prefetch0((void*)(data + bucket * sizeof(long)));
        }
    }

    /// <summary>Counts the values <see cref="Record"/> left waiting.</summary>
    private void Flush()
    {
        if (_batched > 0)
        {
            CountBatch();
        }
    }

    /// <summary>
    /// The nearest-rank percentile: the smallest recorded value v such that at least p % of the values are ≤ v,
    /// reported as the lowest value of v's bucket (exact below 8192 ns), clamped to the recorded max.
    /// </summary>
    public long Percentile(double percent)
    {
        if (Count == 0)
        {
            return 0;
        }
        long rank = Math.Max(1, (long)Math.Ceiling(percent / 100.0 * Count));
        if (rank >= Count)
        {
            return Max; // the top rank is the largest value, which is kept exactly
        }
        long seen = 0;
        foreach (var (octave, index, count) in Buckets())
        {
            seen += count;
            if (seen >= rank)
            {
                return Math.Clamp(LowestValue(octave, index), Min, Max);
            }
        }
        return Max;
    }

    /// <summary>Adds every value <paramref name="other"/> holds (a container's paths merged into its figures).</summary>
    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Count == 0)
        {
            return;
        }
        other.Flush();
        for (int octave = 0; octave < other._octaves.Length; octave++)
        {
            if (other._octaves[octave] is not { } pages)
            {
                continue;
            }
            for (int page = 0; page < pages.Length; page++)
            {
                if (pages[page] is not { } buckets)
                {
                    continue;
                }
                long[] into = Page(octave, page);
                for (int index = 0; index < buckets.Length; index++)
                {
                    into[index] += buckets[index];
                }
            }
        }
        Flush();
        _count += other._count;
        _zeros += other._zeros;
        _min = Math.Min(_min, other._min);
        _max = Math.Max(_max, other._max);
    }

    /// <summary>Counts per range, for a histogram: <paramref name="edges"/> are upper bounds in ns, in ascending order.</summary>
    public long[] CountBelow(ReadOnlySpan<long> edges)
    {
        var counts = new long[edges.Length + 1];
        // Buckets come in ascending order of value: the range a bucket falls in never moves back.
        int slot = 0;
        foreach (var (octave, index, count) in Buckets())
        {
            if (count == 0)
            {
                continue;
            }
            long value = LowestValue(octave, index);
            while (slot < edges.Length && value >= edges[slot])
            {
                slot++;
            }
            counts[slot] += count;
        }
        return counts;
    }

    /// <summary>The smallest recorded value above 0 (to its bucket's lowest value), or 0 when every value was 0 or none was recorded.</summary>
    public long LowestAboveZero()
    {
        foreach (var (octave, index, count) in Buckets())
        {
            if (count != 0 && (octave != 0 || index != 0))
            {
                return Math.Max(LowestValue(octave, index), Min);
            }
        }
        return 0;
    }

    /// <summary>The page <paramref name="page"/> of <paramref name="octave"/>, made (with its table) when first used.</summary>
    private long[] Page(int octave, int page)
    {
        long[]?[]? pages = _octaves[octave];
        if (pages is null)
        {
            _octaves[octave] = pages = new long[]?[PagesPerOctave];
            _bytes += PagesPerOctave * sizeof(long);
        }
        long[]? buckets = pages[page];
        if (buckets is null)
        {
            pages[page] = buckets = new long[PageBuckets];
            _bytes += PageBuckets * sizeof(long);
        }
        return buckets;
    }

    /// <summary>The buckets held, in ascending order of value: (octave, index in the octave, count).</summary>
    private BucketWalk Buckets()
    {
        Flush();
        return new BucketWalk(_octaves);
    }

    /// <summary>
    /// The walk over the buckets held, for <c>foreach</c>: a struct, not an iterator method, whose interface call per bucket
    /// (empty ones included) was most of <see cref="CountBelow"/>, which the replay table calls for every hop after
    /// matching (about 1 % of a multihop-mixed replay, on the thread the run waits for).
    /// </summary>
    private ref struct BucketWalk
    {
        private readonly long[]?[]?[] _octaves;
        private long[]? _buckets;
        private int _octave;
        private int _page;
        private int _index;

        public BucketWalk(long[]?[]?[] octaves)
        {
            _octaves = octaves;
            _buckets = null;
            _octave = 0;
            _page = 0;
            _index = -1;
        }

        public readonly BucketWalk GetEnumerator() => this;

        public readonly (int Octave, int Index, long Count) Current
        {
            [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
            get => (_octave, _page << PageBits | _index, _buckets![_index]);
        }

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public bool MoveNext()
        {
            if (_buckets is not null)
            {
                if (++_index < _buckets.Length)
                {
                    return true;
                }
                _page++;
            }
            for (; _octave < _octaves.Length; _octave++, _page = 0)
            {
                if (_octaves[_octave] is not { } pages)
                {
                    continue;
                }
                for (; _page < pages.Length; _page++)
                {
                    if (pages[_page] is { } buckets)
                    {
                        _buckets = buckets;
                        _index = 0;
                        return true;
                    }
                }
            }
            _buckets = null;
            return false;
        }
    }

    private static (int Octave, int Index) Locate(long value)
    {
        if (value < SubBuckets)
        {
            return (0, (int)value);
        }
        int top = 63 - BitOperations.LeadingZeroCount((ulong)value); // floor(log2 value), at least SubBucketBits
        int octave = top - (SubBucketBits - 1);
        return (octave, (int)((value - (1L << top)) >> (octave - 1)));
    }

    private static long LowestValue(int octave, int index) =>
        octave == 0 ? index : (1L << (octave + SubBucketBits - 1)) + ((long)index << (octave - 1));
}
