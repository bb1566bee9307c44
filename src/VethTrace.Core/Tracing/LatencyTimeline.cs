using System.Numerics;

namespace VethTrace.Tracing;

/// <summary>
/// One hop's latency over time, in at most <see cref="MaxBuckets"/> equal time buckets, so its memory does not grow with
/// the length of a run: when a time falls outside the buckets, their width doubles (neighbours merge) until the whole
/// run fits. Each bucket keeps a coarse log-linear histogram (8 sub-buckets per power of two, so a percentile is known
/// to within 12.5 %), the exact maximum and the count of reused timestamps (0 ns): enough to draw a median and a max
/// line and see a spike. Worst case 120 × 2.2 KB per hop; a bucket's histogram is allocated when first used.
/// </summary>
public sealed class LatencyTimeline
{
    public const int MaxBuckets = 120;

    /// <summary>The narrowest bucket: 1 µs, so a capture of a few milliseconds still spreads over many buckets.</summary>
    public const long InitialWidthNs = 1_000;

    private const int SubBucketBits = 3;
    private const int SubBuckets = 1 << SubBucketBits;

    // Octave 0 holds 0..7 exactly, octave k >= 1 holds [2^(k+2), 2^(k+3)); values from 2^36 ns (69 s) on share the top slot.
    private const int TopBit = 35;
    private const int Slots = (TopBit - SubBucketBits + 2) * SubBuckets;

    // Times are kept in [0, 2^62] so that differences and doublings never overflow.
    private const long LatestTime = 1L << 62;

    private Bucket?[] _buckets = new Bucket?[MaxBuckets];
    private bool _started;
    private int _first;
    private int _last;

    /// <summary>The width of every bucket now, in ns: <see cref="InitialWidthNs"/> times a power of two.</summary>
    public long BucketWidthNs { get; private set; } = InitialWidthNs;

    /// <summary>The start of bucket 0, a multiple of <see cref="BucketWidthNs"/>.</summary>
    public long OriginNs { get; private set; }

    /// <summary>Records one latency at the time its packet entered the hop (same clock as the capture's timestamps).</summary>
    public void Record(long timeNs, long latencyNs)
    {
        timeNs = Math.Clamp(timeNs, 0, LatestTime);
        if (!_started)
        {
            _started = true;
            OriginNs = AlignDown(timeNs, BucketWidthNs);
            _first = _last = (int)((timeNs - OriginNs) / BucketWidthNs);
        }
        else if (timeNs < OriginNs || (timeNs - OriginNs) / BucketWidthNs >= MaxBuckets)
        {
            Rescale(timeNs);
        }
        int index = (int)((timeNs - OriginNs) / BucketWidthNs);
        _first = Math.Min(_first, index);
        _last = Math.Max(_last, index);
        (_buckets[index] ??= new Bucket()).Record(Math.Max(0, latencyNs));
    }

    /// <summary>The buckets that hold a latency, oldest first.</summary>
    public IReadOnlyList<TimelinePoint> Points()
    {
        var points = new List<TimelinePoint>();
        if (!_started)
        {
            return points;
        }
        for (int i = _first; i <= _last; i++)
        {
            if (_buckets[i] is { } bucket)
            {
                points.Add(new TimelinePoint(OriginNs + i * BucketWidthNs, bucket.Count, bucket.Percentile(50), bucket.Percentile(99), bucket.Max, bucket.Zeros));
            }
        }
        return points;
    }

    /// <summary>Widens the buckets (by powers of two) and moves the origin so that the recorded span and <paramref name="timeNs"/> fit.</summary>
    private void Rescale(long timeNs)
    {
        long width = BucketWidthNs;
        long low = Math.Min(timeNs, OriginNs + _first * width);
        long high = Math.Max(timeNs, OriginNs + _last * width);
        long newWidth = width;
        while ((AlignDown(high, newWidth) - AlignDown(low, newWidth)) / newWidth >= MaxBuckets)
        {
            newWidth *= 2;
        }
        long newOrigin = AlignDown(low, newWidth);
        // Both origins are multiples of their widths and the new width a multiple of the old: each old bucket lies
        // wholly inside one new bucket.
        var merged = new Bucket?[MaxBuckets];
        int first = MaxBuckets, last = 0;
        for (int i = _first; i <= _last; i++)
        {
            if (_buckets[i] is not { } bucket)
            {
                continue;
            }
            int to = (int)((OriginNs + i * width - newOrigin) / newWidth);
            if (merged[to] is { } existing)
            {
                existing.Add(bucket);
            }
            else
            {
                merged[to] = bucket;
            }
            first = Math.Min(first, to);
            last = Math.Max(last, to);
        }
        _buckets = merged;
        BucketWidthNs = newWidth;
        OriginNs = newOrigin;
        _first = first;
        _last = last;
    }

    private static long AlignDown(long time, long width) => time - time % width;

    private static int Slot(long value)
    {
        if (value < SubBuckets)
        {
            return (int)value;
        }
        int top = 63 - BitOperations.LeadingZeroCount((ulong)value);
        if (top > TopBit)
        {
            return Slots - 1;
        }
        int octave = top - (SubBucketBits - 1);
        return octave * SubBuckets + (int)((value - (1L << top)) >> (top - SubBucketBits));
    }

    private static long LowestValue(int slot)
    {
        int octave = slot / SubBuckets, index = slot % SubBuckets;
        return octave == 0 ? index : (1L << (octave + SubBucketBits - 1)) + ((long)index << (octave - 1));
    }

    private sealed class Bucket
    {
        private readonly long[] _slots = new long[Slots];

        public long Count { get; private set; }

        public long Min { get; private set; } = long.MaxValue;

        public long Max { get; private set; }

        public long Zeros { get; private set; }

        public void Record(long value)
        {
            _slots[Slot(value)]++;
            Count++;
            Min = Math.Min(Min, value);
            Max = Math.Max(Max, value);
            if (value == 0)
            {
                Zeros++;
            }
        }

        public void Add(Bucket other)
        {
            for (int i = 0; i < Slots; i++)
            {
                _slots[i] += other._slots[i];
            }
            Count += other.Count;
            Min = Math.Min(Min, other.Min);
            Max = Math.Max(Max, other.Max);
            Zeros += other.Zeros;
        }

        /// <summary>The nearest-rank percentile, as <see cref="LatencyHistogram.Percentile"/> gives it, to the coarser slot.</summary>
        public long Percentile(double percent)
        {
            long rank = Math.Max(1, (long)Math.Ceiling(percent / 100.0 * Count));
            if (rank >= Count)
            {
                return Max;
            }
            long seen = 0;
            for (int slot = 0; slot < Slots; slot++)
            {
                seen += _slots[slot];
                if (seen >= rank)
                {
                    return Math.Clamp(LowestValue(slot), Min, Max);
                }
            }
            return Max;
        }
    }
}

/// <summary>One time bucket of a <see cref="LatencyTimeline"/>: latencies recorded from <see cref="StartNs"/> on, for one bucket width.</summary>
public readonly record struct TimelinePoint(long StartNs, long Count, long P50Ns, long P99Ns, long MaxNs, long Zeros);
