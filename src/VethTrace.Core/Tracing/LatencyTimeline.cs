using System.Numerics;

namespace VethTrace.Tracing;

/// <summary>
/// The time buckets every hop's <see cref="LatencyTimeline"/> shares: at most <see cref="MaxBuckets"/> of one width,
/// so the hops' buckets line up and a spike on one hop can be set beside the others at the same time. When a time
/// falls outside them, the width doubles (and the origin moves) until every time recorded so far fits; each timeline
/// merges its own buckets to the new grid when it is next touched (old buckets nest in new ones: every width is
/// <see cref="InitialWidthNs"/> times a power of two and every origin a multiple of its width).
/// </summary>
public sealed class TimelineGrid
{
    public const int MaxBuckets = 120;

    /// <summary>The narrowest bucket: 1 µs, so a capture of a few milliseconds still spreads over many buckets.</summary>
    public const long InitialWidthNs = 1_000;

    // Times are kept in [0, 2^62] so that differences and doublings never overflow.
    private const long LatestTime = 1L << 62;

    private bool _started;
    private long _lastStart;
    private int _lastIndex;
    private long _lowest;
    private long _highest;

    public long WidthNs { get; private set; } = InitialWidthNs;

    /// <summary>The start of bucket 0, a multiple of <see cref="WidthNs"/>.</summary>
    public long OriginNs { get; private set; }

    /// <summary>Changes whenever the width or the origin does.</summary>
    public int Version { get; private set; }

    /// <summary>The bucket of <paramref name="timeNs"/>, after widening or moving the grid if it falls outside.</summary>
    public int Place(long timeNs)
    {
        // Times come nearly in order: most fall in the bucket of the last one, found without a division.
        if (_started && (ulong)(timeNs - _lastStart) < (ulong)WidthNs)
        {
            return _lastIndex;
        }
        int index = PlaceSlow(timeNs);
        _lastIndex = index;
        _lastStart = OriginNs + index * WidthNs;
        return index;
    }

    private int PlaceSlow(long timeNs)
    {
        timeNs = Math.Clamp(timeNs, 0, LatestTime);
        if (!_started)
        {
            _started = true;
            _lowest = _highest = timeNs;
            OriginNs = AlignDown(timeNs, WidthNs);
            Version++;
        }
        else if (timeNs < OriginNs || (timeNs - OriginNs) / WidthNs >= MaxBuckets)
        {
            _lowest = Math.Min(_lowest, timeNs);
            _highest = Math.Max(_highest, timeNs);
            long width = WidthNs;
            while ((AlignDown(_highest, width) - AlignDown(_lowest, width)) / width >= MaxBuckets)
            {
                width *= 2;
            }
            WidthNs = width;
            OriginNs = AlignDown(_lowest, width);
            Version++;
        }
        else
        {
            _lowest = Math.Min(_lowest, timeNs);
            _highest = Math.Max(_highest, timeNs);
        }
        return (int)((timeNs - OriginNs) / WidthNs);
    }

    private static long AlignDown(long time, long width) => time - time % width;
}

/// <summary>
/// One hop's latency over time, in the buckets of a <see cref="TimelineGrid"/> (shared by the hops of a correlation),
/// so its memory does not grow with the length of a run. Each bucket keeps a coarse log-linear histogram (8
/// sub-buckets per power of two, so a percentile is known to within 12.5 %), the exact maximum and the count of reused
/// timestamps (0 ns): enough to draw a median and a max line and see a spike. A bucket's histogram is allocated
/// when first used and holds only the slots between its lowest and highest latency: at most 120 × 2.2 KB per hop, a few
/// hundred bytes per bucket in practice.
/// </summary>
public sealed class LatencyTimeline(TimelineGrid grid)
{
    public const int MaxBuckets = TimelineGrid.MaxBuckets;

    public const long InitialWidthNs = TimelineGrid.InitialWidthNs;

    private const int SubBucketBits = 3;
    private const int SubBuckets = 1 << SubBucketBits;

    // Octave 0 holds 0..7 exactly, octave k >= 1 holds [2^(k+2), 2^(k+3)); values from 2^36 ns (69 s) on share the top slot.
    private const int TopBit = 35;
    private const int Slots = (TopBit - SubBucketBits + 2) * SubBuckets;

    private Bucket?[] _buckets = new Bucket?[MaxBuckets];
    /// <summary>The array <see cref="Follow"/> merges into, swapped with <see cref="_buckets"/>: no new array per widening.</summary>
    private Bucket?[]? _merging;
    /// <summary>
    /// Buckets emptied by a merge, reused by the next buckets to start (<see cref="Start"/>). At each widening of the grid
    /// about half of a hop's buckets merge into the other half, and the same number start again before the next one:
    /// without reuse that was a new bucket and histogram array each time, on the 10M many-flows file 156,000 arrays (14 MB)
    /// and as many buckets, most of what the whole run allocated after its start, each of it new memory to the process
    /// until the next collection (the GC's first generation there holds up to 16 MB).
    /// </summary>
    private readonly Stack<Bucket> _emptied = new();
    private int _version = -1;
    private long _width;
    private long _origin;

    /// <summary>A timeline with a grid of its own.</summary>
    public LatencyTimeline() : this(new TimelineGrid())
    {
    }

    /// <summary>The width of every bucket, in ns: <see cref="TimelineGrid.InitialWidthNs"/> times a power of two.</summary>
    public long BucketWidthNs => grid.WidthNs;

    /// <summary>The start of bucket 0 of the grid.</summary>
    public long OriginNs => grid.OriginNs;

    /// <summary>Records one latency at the time its packet entered the hop (same clock as the capture's timestamps).</summary>
    public void Record(long timeNs, long latencyNs)
    {
        int index = grid.Place(timeNs);
        Follow();
        (_buckets[index] ??= Start()).Record(Math.Max(0, latencyNs));
    }

    /// <summary>A bucket for a time that has none yet: an emptied one if there is one.</summary>
    private Bucket Start()
    {
        if (_emptied.TryPop(out Bucket? bucket))
        {
            bucket.Clear();
            return bucket;
        }
        return new Bucket();
    }

    /// <summary>The buckets that hold a latency, oldest first.</summary>
    public IReadOnlyList<TimelinePoint> Points()
    {
        Follow();
        var points = new List<TimelinePoint>();
        for (int i = 0; i < MaxBuckets; i++)
        {
            if (_buckets[i] is { } bucket)
            {
                points.Add(new TimelinePoint(_origin + i * _width, bucket.Count, bucket.Percentile(50), bucket.Percentile(99), bucket.Max, bucket.Zeros));
            }
        }
        return points;
    }

    /// <summary>Merges this hop's buckets into the grid's current ones, when the grid has moved since.</summary>
    private void Follow()
    {
        if (_version == grid.Version)
        {
            return;
        }
        long width = grid.WidthNs, origin = grid.OriginNs;
        if (_version >= 0)
        {
            Bucket?[] merged = _merging ?? new Bucket?[MaxBuckets];
            for (int i = 0; i < MaxBuckets; i++)
            {
                if (_buckets[i] is not { } bucket)
                {
                    continue;
                }
                _buckets[i] = null;
                int to = (int)((_origin + i * _width - origin) / width);
                if (merged[to] is { } existing)
                {
                    existing.Add(bucket);
                    _emptied.Push(bucket);
                }
                else
                {
                    merged[to] = bucket;
                }
            }
            _merging = _buckets;
            _buckets = merged;
        }
        _version = grid.Version;
        _width = width;
        _origin = origin;
    }

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

    /// <summary>
    /// One time bucket's histogram. It holds only the slots from its lowest to its highest latency (a hop's latencies
    /// span a few octaves: 1-100 µs is 7 octaves, 56 slots), grown when a latency falls outside them, so a run with
    /// hundreds of hops (one per container) keeps hundreds of bytes per bucket, not the 2.2 KB of every slot.
    /// </summary>
    private sealed class Bucket
    {
        private long[] _slots = [];
        private int _lowestSlot;

        public long Count { get; private set; }

        public long Min { get; private set; } = long.MaxValue;

        public long Max { get; private set; }

        public long Zeros { get; private set; }

        /// <summary>
        /// Empties the bucket for reuse. Its histogram array is kept (zeroed) when it spans at most
        /// <see cref="KeptSlots"/>: the next time's latencies on the same hop mostly fall in the same octaves. Slots
        /// held beyond the values recorded change no figure (<see cref="Percentile"/> counts from the lowest slot held).
        /// </summary>
        public void Clear()
        {
            if (_slots.Length > KeptSlots)
            {
                _slots = [];
                _lowestSlot = 0;
            }
            else
            {
                Array.Clear(_slots);
            }
            Count = 0;
            Min = long.MaxValue;
            Max = 0;
            Zeros = 0;
        }

        /// <summary>Four octaves (256 bytes): a hop's usual spread; a wider array (an outlier's) is not kept for reuse.</summary>
        private const int KeptSlots = 4 * SubBuckets;

        public void Record(long value)
        {
            int slot = Slot(value);
            if ((uint)(slot - _lowestSlot) >= (uint)_slots.Length)
            {
                Cover(slot, slot + 1); // outside the slots held (or none held yet)
            }
            _slots[slot - _lowestSlot]++;
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
            if (other._slots.Length > 0)
            {
                Cover(other._lowestSlot, other._lowestSlot + other._slots.Length);
                for (int i = 0; i < other._slots.Length; i++)
                {
                    _slots[other._lowestSlot + i - _lowestSlot] += other._slots[i];
                }
            }
            Count += other.Count;
            Min = Math.Min(Min, other.Min);
            Max = Math.Max(Max, other.Max);
            Zeros += other.Zeros;
        }

        /// <summary>Makes the slots [<paramref name="from"/>, <paramref name="to"/>) part of the held range, in whole octaves.</summary>
        private void Cover(int from, int to)
        {
            int heldTo = _lowestSlot + _slots.Length;
            if (_slots.Length > 0 && from >= _lowestSlot && to <= heldTo)
            {
                return;
            }
            int low = _slots.Length == 0 ? from : Math.Min(from, _lowestSlot);
            int high = _slots.Length == 0 ? to : Math.Max(to, heldTo);
            low -= low % SubBuckets;
            high = Math.Min(Slots, (high + SubBuckets - 1) / SubBuckets * SubBuckets);
            var slots = new long[high - low];
            if (_slots.Length > 0)
            {
                _slots.CopyTo(slots, _lowestSlot - low);
            }
            _slots = slots;
            _lowestSlot = low;
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
            for (int i = 0; i < _slots.Length; i++)
            {
                seen += _slots[i];
                if (seen >= rank)
                {
                    return Math.Clamp(LowestValue(_lowestSlot + i), Min, Max);
                }
            }
            return Max;
        }
    }
}

/// <summary>One time bucket of a <see cref="LatencyTimeline"/>: latencies recorded from <see cref="StartNs"/> on, for one bucket width.</summary>
public readonly record struct TimelinePoint(long StartNs, long Count, long P50Ns, long P99Ns, long MaxNs, long Zeros);
