using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// Replay's orderer, which writes each observation once into the batch that crosses to the matching thread, must hand
/// over exactly the sequence <see cref="TimeOrderer"/> gives (the definition of time order this engine keeps): in
/// order, late within the slack, and late beyond it (overtaken, where the sequence depends on when each observation
/// was released).
/// </summary>
public sealed class PipedOrdererTests
{
    private static readonly FlowKey Flow = new(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 53);

    private struct Collect : IBatchConsumer<Observation>
    {
        public List<(long, long)> Seen;
        public int Batches;

        public void Take(ReadOnlySpan<Observation> values)
        {
            Batches++;
            foreach (Observation observation in values)
            {
                Seen.Add((observation.TimestampNs, observation.Order));
            }
        }
    }

    /// <summary>
    /// <paramref name="count"/> observations 1 µs apart, each moved by up to <paramref name="jitterNs"/>, in arrival
    /// order; equal timestamps too (every fifth repeats its predecessor's).
    /// </summary>
    private static List<Observation> Arrivals(int count, long jitterNs, int seed)
    {
        var random = new Random(seed);
        var observations = new List<Observation>();
        long previous = 0;
        for (int i = 0; i < count; i++)
        {
            long ns = i % 5 == 4 ? previous : 1_000_000 + i * 1_000L + (jitterNs == 0 ? 0 : random.NextInt64(-jitterNs, jitterNs + 1));
            previous = ns;
            observations.Add(new Observation(ns, i % 3, i, (ulong)i + 1, Flow, 100));
        }
        return observations;
    }

    private static (List<(long, long)> Seen, long Overtaken) ThroughTimeOrderer(List<Observation> arrivals, long slackNs)
    {
        var recorder = new ObservationRecorder();
        var orderer = new TimeOrderer(recorder, slackNs);
        foreach (Observation observation in arrivals)
        {
            orderer.Add(in observation);
        }
        orderer.Flush();
        return (recorder.Seen, orderer.Overtaken);
    }

    private static (List<(long, long)> Seen, long Overtaken, int Batches) ThroughPipe(List<Observation> arrivals, long slackNs, int batchSize)
    {
        // Deep enough that the producer never waits: one thread plays both sides.
        using var pipe = new BatchPipe<Observation>(batchSize, depth: arrivals.Count + 2);
        var orderer = new PipedOrderer(pipe, slackNs);
        foreach (Observation observation in arrivals)
        {
            orderer.Reserve() = observation;
            orderer.Commit();
        }
        orderer.Flush();
        pipe.Complete();
        var collect = new Collect { Seen = [] };
        pipe.Consume(ref collect);
        return (collect.Seen, orderer.Overtaken, collect.Batches);
    }

    [Theory]
    [InlineData(0, 10_000L, 8)]             // in order
    [InlineData(0, 10_000L, 1)]
    [InlineData(3_000, 100_000L, 8)]         // late within the slack
    [InlineData(3_000, 100_000L, 1024)]
    [InlineData(3_000, 4_000L, 8)]           // late beyond it: overtaken
    [InlineData(40_000, 30_000L, 16)]
    [InlineData(40_000, 30_000L, 1)]
    [InlineData(500_000, 100_000L, 64)]
    public void Commit_AnyArrivalOrder_SameSequenceAsTimeOrderer(long jitterNs, long slackNs, int batchSize)
    {
        for (int seed = 0; seed < 4; seed++)
        {
            List<Observation> arrivals = Arrivals(5_000, jitterNs, seed);
            var (expected, expectedOvertaken) = ThroughTimeOrderer(arrivals, slackNs);
            var (seen, overtaken, _) = ThroughPipe(arrivals, slackNs, batchSize);

            Assert.Equal(arrivals.Count, seen.Count);
            Assert.Equal(expectedOvertaken, overtaken);
            Assert.Equal(expected, seen);
        }
    }

    [Theory]
    [InlineData(20_000L, 16)]  // late within the slack
    [InlineData(3_000L, 16)]   // late beyond it: overtaken
    [InlineData(3_000L, 1)]
    public void Commit_MostlyInOrder_SameSequenceAsTimeOrderer(long slackNs, int batchSize)
    {
        // In order but for one observation in a hundred, 10 µs late: whole batches are sent between the late ones
        // (without counting their observations released one by one), and each late one must still land where
        // releasing each observation as it became old enough would have put it.
        for (int seed = 0; seed < 4; seed++)
        {
            var random = new Random(seed);
            List<Observation> arrivals = Arrivals(5_000, 0, seed);
            for (int i = 0; i < arrivals.Count; i++)
            {
                if (random.Next(100) == 0)
                {
                    arrivals[i] = arrivals[i] with { TimestampNs = arrivals[i].TimestampNs - 10_000 };
                }
            }
            var (expected, expectedOvertaken) = ThroughTimeOrderer(arrivals, slackNs);
            var (seen, overtaken, _) = ThroughPipe(arrivals, slackNs, batchSize);

            Assert.Equal(expectedOvertaken, overtaken);
            Assert.Equal(expected, seen);
        }
    }

    [Fact]
    public void Commit_Overtaken_ReleasedWhereTimeOrdererReleasesIt()
    {
        // Out of order beyond the slack: the sequence is not sorted, and only releasing at the same moments gives it.
        List<Observation> arrivals = Arrivals(5_000, 40_000, seed: 9);
        var (expected, overtaken) = ThroughTimeOrderer(arrivals, 20_000);
        var (seen, _, _) = ThroughPipe(arrivals, 20_000, 32);

        Assert.True(overtaken > 0);
        Assert.NotEqual(expected.Order().ToList(), expected);
        Assert.Equal(expected, seen);
    }

    [Fact]
    public void Commit_InOrder_WholeBatchesCross()
    {
        // Nothing late: every batch the orderer wrote crosses as it is (full ones, then the last partial one).
        List<Observation> arrivals = Arrivals(1_000, 0, seed: 1);
        var (seen, overtaken, batches) = ThroughPipe(arrivals, 5_000, 64);

        Assert.Equal(0, overtaken);
        Assert.Equal(arrivals.Select(o => (o.TimestampNs, o.Order)), seen);
        Assert.Equal((1_000 + 63) / 64, batches);
    }
}
