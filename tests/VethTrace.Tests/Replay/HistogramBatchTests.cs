using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <see cref="LatencyHistogram"/> counts its values in batches (session 13, acct17): every figure read between two
/// batches must already include the values recorded since the last one.
/// </summary>
public sealed class HistogramBatchTests
{
    [Fact]
    public void Figures_ReadBetweenBatches_IncludeEveryValueRecorded()
    {
        var histogram = new LatencyHistogram();
        var values = new List<long>();
        var random = new Random(1713);
        for (int i = 0; i < 200; i++)
        {
            long value = random.Next(10) == 0 ? 0 : random.Next(3) == 0 ? -5 : random.NextInt64(1, 1L << (1 + random.Next(40)));
            histogram.Record(value);
            values.Add(Math.Max(0, value));
            if (i % 7 == 3 || i < 5)
            {
                // Each figure read alone (a fresh copy of the run so far), so none relies on another's flush.
                Assert.Equal(values.Count, Copy(values).Count);
                Assert.Equal(values.Min(), Copy(values).Min);
                Assert.Equal(values.Max(), Copy(values).Max);
                Assert.Equal(values.Count(v => v == 0), Copy(values).Zeros);
                Assert.True(Copy(values).Bytes > 0);
                Assert.Equal(Percentile(values, 50), Copy(values).Percentile(50));
                Assert.Equal(values.Count(v => v < 1_000), Copy(values).CountBelow([1_000])[0]);
                var into = new LatencyHistogram();
                into.Add(Copy(values));
                Assert.Equal((values.Count, values.Min(), values.Max()), (into.Count, into.Min, into.Max));
            }
        }
    }

    /// <summary>The values recorded into a new histogram, nothing read.</summary>
    private static LatencyHistogram Copy(List<long> values)
    {
        var histogram = new LatencyHistogram();
        foreach (long value in values)
        {
            histogram.Record(value);
        }
        return histogram;
    }

    /// <summary>The nearest-rank percentile as the histogram gives it: exact below 8,192 ns, else the lowest value of the value's bucket.</summary>
    private static long Percentile(List<long> values, double percent)
    {
        var sorted = values.Order().ToList();
        long rank = Math.Max(1, (long)Math.Ceiling(percent / 100.0 * sorted.Count));
        if (rank >= sorted.Count)
        {
            return sorted[^1];
        }
        long value = sorted[(int)rank - 1];
        if (value < 8192)
        {
            return value;
        }
        int top = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)value);
        int shift = top - 13;
        return Math.Clamp(value >> shift << shift, sorted[0], sorted[^1]);
    }
}
