using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

public sealed class LatencyHistogramTests
{
    /// <summary>The nearest-rank percentile over the raw values: the reference the histogram must reproduce.</summary>
    private static long NearestRank(long[] sorted, double percent) => sorted[Math.Max(1, (int)Math.Ceiling(percent / 100 * sorted.Length)) - 1];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Percentile_RandomLatencies_WithinOneMicrosecondBelowEightMilliseconds(int seed)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, 10_000).Select(_ => (long)Math.Exp(random.NextDouble() * Math.Log(8_000_000))).ToArray();
        var histogram = new LatencyHistogram();
        foreach (long value in values)
        {
            histogram.Record(value);
        }
        Array.Sort(values);

        foreach (double percent in new[] { 1.0, 50, 90, 99, 99.9, 100 })
        {
            long exact = NearestRank(values, percent);
            long reported = histogram.Percentile(percent);
            Assert.True(Math.Abs(reported - exact) < 1000, $"p{percent}: exact {exact} ns, reported {reported} ns");
            Assert.True(reported <= exact, "the histogram reports its bucket's lowest value");
        }
        Assert.Equal(values[^1], histogram.Max);
        Assert.Equal(values[0], histogram.Min);
        Assert.Equal(values.Length, histogram.Count);
    }

    [Fact]
    public void Percentile_SmallValues_Exact()
    {
        var histogram = new LatencyHistogram();
        foreach (long value in new long[] { 0, 0, 291, 8_025, 8_191 })
        {
            histogram.Record(value);
        }

        Assert.Equal(0, histogram.Percentile(40));
        Assert.Equal(291, histogram.Percentile(50));
        Assert.Equal(8_025, histogram.Percentile(80));
        Assert.Equal(8_191, histogram.Percentile(100));
        Assert.Equal(2, histogram.Zeros);
    }

    [Fact]
    public void Add_FewValuesJustRecorded_MergedIntoTheOther()
    {
        // Record defers each increment a few records (its bucket is prefetched meanwhile): merging a histogram must make
        // the other's pending increments first, or the merged one counts values it has no bucket for.
        var few = new LatencyHistogram();
        foreach (long value in new long[] { 1_500, 2_500, 3_500 })
        {
            few.Record(value);
        }
        var merged = new LatencyHistogram();
        merged.Record(500);
        merged.Add(few);

        Assert.Equal(4, merged.Count);
        Assert.Equal(1_500, merged.Percentile(50));
        Assert.Equal(2_500, merged.Percentile(75));
        Assert.Equal([1, 3], merged.CountBelow([1_000]));
        Assert.Equal(2_500, few.Percentile(50));
    }

    [Fact]
    public void Record_NegativeDelta_CountsAsZero()
    {
        var histogram = new LatencyHistogram();
        histogram.Record(-5);

        Assert.Equal(0, histogram.Max);
        Assert.Equal(1, histogram.Zeros);
    }

    [Fact]
    public void Record_HugeValue_DoesNotThrowAndKeepsRelativePrecision()
    {
        var histogram = new LatencyHistogram();
        histogram.Record(long.MaxValue);
        histogram.Record(3_600_000_000_000); // an hour

        long p50 = histogram.Percentile(50);
        Assert.InRange(p50, 3_600_000_000_000 - 3_600_000_000_000 / 8192, 3_600_000_000_000);
        Assert.Equal(long.MaxValue, histogram.Percentile(100));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void CountBelow_ValuesUnderEightMicroseconds_CountsOfTheRawValues(int seed)
    {
        // Below 8192 ns every value has a bucket of its own, so the counts per range are exact.
        var random = new Random(seed);
        long[] values = [.. Enumerable.Range(0, 5_000).Select(_ => random.NextInt64(8_192))];
        long[] edges = [1, 10, 100, 126, 1_000, 4_000, 8_000];
        var histogram = new LatencyHistogram();
        foreach (long value in values)
        {
            histogram.Record(value);
        }

        long[] counts = histogram.CountBelow(edges);

        Assert.Equal(edges.Length + 1, counts.Length);
        for (int i = 0; i <= edges.Length; i++)
        {
            long low = i == 0 ? long.MinValue : edges[i - 1], high = i == edges.Length ? long.MaxValue : edges[i];
            Assert.Equal(values.Count(v => v >= low && v < high), counts[i]);
        }
    }

    [Fact]
    public void LowestAboveZero_ZerosAndValues_SmallestPositive()
    {
        var histogram = new LatencyHistogram();
        Assert.Equal(0, histogram.LowestAboveZero());
        histogram.Record(0);
        Assert.Equal(0, histogram.LowestAboveZero());
        histogram.Record(40_000);
        histogram.Record(123_456);
        Assert.Equal(40_000, histogram.LowestAboveZero());
        histogram.Record(7);
        Assert.Equal(7, histogram.LowestAboveZero());
    }

    [Fact]
    public void Bytes_MicrosecondLatenciesOfOneHost_PagesNotWholeOctaves()
    {
        // The many-flows file's through-host times: 12..75 µs in whole microseconds, over 4 octaves (8-16, 16-32,
        // 32-64, 64-128 µs). Whole octaves of 8192 counts would hold 4 x 64 KiB; pages hold only where values fell.
        var histogram = new LatencyHistogram();
        for (int i = 0; i < 100_000; i++)
        {
            histogram.Record((12 + i % 64) * 1_000L);
        }

        Assert.InRange(histogram.Bytes, 1, 64 * 1024);
        Assert.Equal(100_000, histogram.Count);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void Add_SpreadOverManyOctaves_SameAnswersAsOneHistogramOfEveryValue(int seed)
    {
        // Values from 1 ns to 1 s, split in two histograms at random: merging them must give what recording all in one
        // gives, at every percentile, and each must stay within the layout's precision of the raw nearest rank.
        var random = new Random(seed);
        var values = Enumerable.Range(0, 20_000).Select(_ => (long)Math.Exp(random.NextDouble() * Math.Log(1e9))).ToArray();
        LatencyHistogram all = new(), left = new(), right = new();
        foreach (long value in values)
        {
            all.Record(value);
            (random.Next(2) == 0 ? left : right).Record(value);
        }
        left.Add(right);
        Array.Sort(values);

        for (double percent = 0.5; percent <= 100; percent += 0.5)
        {
            long exact = NearestRank(values, percent);
            Assert.Equal(all.Percentile(percent), left.Percentile(percent));
            long reported = all.Percentile(percent);
            Assert.True(reported <= exact && exact - reported <= exact >> LatencyHistogram.SubBucketBits, $"p{percent}: exact {exact} ns, reported {reported} ns");
        }
        long[] edges = [1_000, 10_000, 100_000, 1_000_000, 10_000_000];
        Assert.Equal(all.CountBelow(edges), left.CountBelow(edges));
        Assert.Equal(all.LowestAboveZero(), left.LowestAboveZero());
    }
}
