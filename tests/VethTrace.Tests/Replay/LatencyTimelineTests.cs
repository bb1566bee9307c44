using VethTrace.Tests.Captures;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

public sealed class LatencyTimelineTests
{
    /// <summary>
    /// The reference: the raw (time, latency) pairs cut into the timeline's own buckets (its final width and origin),
    /// each bucket's count, exact nearest-rank median and maximum computed from the raw values.
    /// </summary>
    private static Dictionary<long, (long Count, long Median, long Max)> Reference(IEnumerable<(long Time, long Latency)> values, LatencyTimeline timeline) =>
        values.GroupBy(v => timeline.OriginNs + (v.Time - timeline.OriginNs) / timeline.BucketWidthNs * timeline.BucketWidthNs)
            .ToDictionary(g => g.Key, g =>
            {
                long[] sorted = [.. g.Select(v => v.Latency).Order()];
                return ((long)sorted.Length, sorted[Math.Max(1, (int)Math.Ceiling(0.5 * sorted.Length)) - 1], sorted[^1]);
            });

    [Theory]
    [InlineData(1, 3_600_000_000_000L)] // an hour
    [InlineData(2, 40_000_000L)]        // 40 ms
    [InlineData(3, 90_000L)]            // 90 µs: under the narrowest buckets' span, so no merging
    public void Record_RandomRun_BoundedBucketsAndFiguresOfTheRawValues(int seed, long span)
    {
        var random = new Random(seed);
        long start = 1_764_000_000_000_000_000L;
        var values = Enumerable.Range(0, 50_000)
            .Select(_ => (Time: start + random.NextInt64(span), Latency: (long)Math.Exp(random.NextDouble() * Math.Log(50_000_000))))
            .ToList();
        var timeline = new LatencyTimeline();
        foreach (var (time, latency) in values)
        {
            timeline.Record(time, latency);
        }

        var points = timeline.Points();
        var reference = Reference(values, timeline);
        Assert.InRange(points.Count, 1, LatencyTimeline.MaxBuckets);
        Assert.Equal(0, timeline.BucketWidthNs % LatencyTimeline.InitialWidthNs);
        Assert.True(long.IsPow2(timeline.BucketWidthNs / LatencyTimeline.InitialWidthNs));
        // The narrowest width that holds the span: half of it would not.
        Assert.True(span / (timeline.BucketWidthNs / 2) >= LatencyTimeline.MaxBuckets - 1 || timeline.BucketWidthNs == LatencyTimeline.InitialWidthNs);
        Assert.Equal(reference.Keys.Order(), points.Select(p => p.StartNs));
        foreach (TimelinePoint point in points)
        {
            var (count, median, max) = reference[point.StartNs];
            Assert.Equal(count, point.Count);
            Assert.Equal(max, point.MaxNs);
            Assert.InRange(point.P50Ns, median * 0.875, median); // the lowest value of the median's slot, 8 slots a power of two
        }
    }

    [Fact]
    public void Record_SpikeInTheMiddleOfAMinute_OnlyItsBucketsRise()
    {
        // 10 µs every millisecond for 60 s, but 5 ms from 30 s to 31 s.
        var timeline = new LatencyTimeline();
        long start = 1_000_000_000_000L;
        for (long ms = 0; ms < 60_000; ms++)
        {
            timeline.Record(start + ms * 1_000_000, ms is >= 30_000 and < 31_000 ? 5_000_000 : 10_000);
        }

        var points = timeline.Points();
        Assert.InRange(points.Count, LatencyTimeline.MaxBuckets / 2, LatencyTimeline.MaxBuckets);
        foreach (TimelinePoint point in points)
        {
            long end = point.StartNs + timeline.BucketWidthNs;
            bool overlapsSpike = point.StartNs < start + 31_000_000_000L && end > start + 30_000_000_000L;
            Assert.Equal(overlapsSpike ? 5_000_000 : 10_000, point.MaxNs);
        }
        Assert.Equal(60_000, points.Sum(p => p.Count));
    }

    [Fact]
    public void Record_EarlierTimesAfterTheFirst_OriginMovesBackNothingLost()
    {
        // Journeys finish out of order (the matching window): a time before the first one recorded must still count.
        var timeline = new LatencyTimeline();
        timeline.Record(10_000_000, 5);
        timeline.Record(9_000_000, 7);
        timeline.Record(12_000_000, 0);
        timeline.Record(1_000, 3);

        var points = timeline.Points();
        Assert.Equal(4, points.Sum(p => p.Count));
        Assert.Equal(1, points.Sum(p => p.Zeros));
        Assert.True(timeline.OriginNs <= 1_000);
        Assert.Equal(3, points[0].MaxNs);
        Assert.Equal(0, points[^1].MaxNs);
    }

    [Fact]
    public void Record_ExtremeTimes_ClampedWithoutOverflow()
    {
        var timeline = new LatencyTimeline();
        timeline.Record(long.MinValue, 1);
        timeline.Record(long.MaxValue, 2);
        timeline.Record(1_764_000_000_000_000_000L, 3);

        var points = timeline.Points();
        Assert.Equal(3, points.Sum(p => p.Count));
        Assert.True(points.Count <= LatencyTimeline.MaxBuckets);
    }

    [Fact]
    public void Replay_ShippedCapture_EachHopsTimelineCountsItsPacketsAndKeepsItsMax()
    {
        var result = VethTrace.Capture.Files.FileTrace.Run([CaptureCorpus.PathOf("replay/delay-egress.pcapng")], new TraceSessionOptions(), new Dictionary<int, string>());

        Assert.NotNull(result.Report);
        Assert.NotEmpty(result.Report.Hops);
        foreach (HopReport hop in result.Report.Hops)
        {
            var points = hop.Timeline!.Points();
            Assert.Equal(hop.Histogram.Count, points.Sum(p => p.Count));
            Assert.Equal(hop.Histogram.Max, points.Max(p => p.MaxNs));
            Assert.Equal(hop.Histogram.Zeros, points.Sum(p => p.Zeros));
        }
    }

    [Fact]
    public void Record_TwoHopsOneGrid_BucketsLineUpAndAWideningByOneMergesTheOther()
    {
        var grid = new TimelineGrid();
        var early = new LatencyTimeline(grid);
        var late = new LatencyTimeline(grid);
        for (long us = 0; us < 100; us++)
        {
            early.Record(1_000_000_000 + us * 1_000, 10 + us);
        }
        Assert.Equal(1_000, early.BucketWidthNs);
        Assert.Equal(100, early.Points().Count);

        // The other hop records a second later: the shared width must grow to hold both, and the first hop's buckets merge.
        late.Record(2_000_000_000, 7);

        Assert.Equal(late.BucketWidthNs, early.BucketWidthNs);
        Assert.True(grid.WidthNs * TimelineGrid.MaxBuckets > 1_000_000_000);
        var points = early.Points();
        Assert.Equal(100, points.Sum(p => p.Count));
        Assert.Equal(109, points.Max(p => p.MaxNs));
        Assert.All(points.Concat(late.Points()), p => Assert.Equal(0, (p.StartNs - grid.OriginNs) % grid.WidthNs));
        Assert.Equal(2_000_000_000 - (2_000_000_000 - grid.OriginNs) % grid.WidthNs, Assert.Single(late.Points()).StartNs);
    }

    /// <summary>
    /// A hop's latencies span a few octaves, so a bucket keeps only those slots: a run with one hop per container
    /// (hundreds of hops, every bucket filled) must not hold the 2.2 KB of every slot per bucket. Here 120 buckets of
    /// latencies between 20 and 80 µs (two octaves, 16 slots) take well under 120 × 2.2 KB (the old layout: 264 KB).
    /// </summary>
    [Fact]
    public void Record_LatenciesInTwoOctaves_BucketsHoldOnlyTheirSlots()
    {
        var timeline = new LatencyTimeline();
        var random = new Random(7);
        timeline.Record(0, 30_000); // the first record makes the grid; warm the code path before measuring
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 120_000; i++)
        {
            timeline.Record(i, 20_000 + random.NextInt64(60_000));
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        var points = timeline.Points();
        Assert.Equal(120, points.Count); // 120 µs of packets in the first grid's 1 µs buckets: no widening, no merging
        Assert.Equal(120_001, points.Sum(p => p.Count));
        Assert.InRange(allocated, 1, 120 * 600);
    }

    /// <summary>
    /// Each widening of the grid merges about half of a hop's buckets into the other half, and as many new buckets start
    /// before the next widening. The emptied buckets (and their histogram arrays) are reused and the merge array is kept:
    /// after the first widenings, a run that widens 20 times more allocates nothing per bucket. Without the reuse this
    /// run allocates about 20 × 60 new buckets with an array each (about 170 KB) and a 120-entry array per widening.
    /// </summary>
    [Fact]
    public void Record_ManyWidenings_EmptiedBucketsAreReusedNotAllocatedAgain()
    {
        var timeline = new LatencyTimeline();
        // 240 times per doubling of the time since the start: every doubling widens the grid once.
        void Octave(int k)
        {
            for (int j = 0; j < 240; j++)
            {
                timeline.Record((1L << k) * 1_000 + (1L << k) * 1_000 * j / 240, 20_000 + j * 100);
            }
        }
        for (int k = 0; k < 10; k++)
        {
            Octave(k);
        }
        long widthBefore = timeline.BucketWidthNs;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int k = 10; k < 30; k++)
        {
            Octave(k);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(timeline.BucketWidthNs >= widthBefore << 19, $"{timeline.BucketWidthNs} after {widthBefore}: the grid should widen about 20 times");
        Assert.Equal(30 * 240, timeline.Points().Sum(p => p.Count));
        Assert.InRange(allocated, 0, 8 * 1024);
    }

    /// <summary>
    /// Reused buckets give the figures a fresh bucket gives: the count, the maximum and the zeros exactly, the median and
    /// the 99th percentile as the lowest value of their slot (8 slots a power of two: the value with all but its 4 top
    /// bits cleared), clamped to the bucket's minimum and maximum; computed here from the raw values. The latencies
    /// change octaves over time (and include zeros and outliers), so reused buckets carry arrays shaped by other times.
    /// </summary>
    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public void Record_ReusedBuckets_FiguresOfTheRawValues(int seed)
    {
        var random = new Random(seed);
        var timeline = new LatencyTimeline();
        var values = new List<(long Time, long Latency)>();
        long time = 1_000_000;
        for (int i = 0; i < 200_000; i++)
        {
            time += random.Next(1, 2_000) * (1L + i / 20_000);
            int octave = 4 + i / 20_000 + random.Next(3);
            long latency = random.Next(100) switch
            {
                0 => 0,
                1 => random.NextInt64(1L << 34),
                _ => (1L << octave) + random.NextInt64(1L << octave),
            };
            values.Add((time, latency));
            timeline.Record(time, latency);
        }

        static long SlotLow(long value)
        {
            if (value < 8)
            {
                return value;
            }
            int drop = 63 - (int)long.LeadingZeroCount(value) - 3;
            return value >> drop << drop;
        }
        var points = timeline.Points();
        var byBucket = values.GroupBy(v => timeline.OriginNs + (v.Time - timeline.OriginNs) / timeline.BucketWidthNs * timeline.BucketWidthNs)
            .ToDictionary(g => g.Key, g => g.Select(v => v.Latency).Order().ToArray());
        Assert.Equal(byBucket.Keys.Order(), points.Select(p => p.StartNs));
        foreach (TimelinePoint point in points)
        {
            long[] sorted = byBucket[point.StartNs];
            long Rank(double percent) => sorted[Math.Max(1, (int)Math.Ceiling(percent / 100 * sorted.Length)) - 1];
            long Expected(double percent)
            {
                long rank = Math.Max(1, (long)Math.Ceiling(percent / 100 * sorted.Length));
                return rank >= sorted.Length ? sorted[^1] : Math.Clamp(SlotLow(Rank(percent)), sorted[0], sorted[^1]);
            }
            Assert.Equal(sorted.Length, point.Count);
            Assert.Equal(sorted[^1], point.MaxNs);
            Assert.Equal(sorted.Count(v => v == 0), point.Zeros);
            Assert.Equal(Expected(50), point.P50Ns);
            Assert.Equal(Expected(99), point.P99Ns);
        }
    }
}
