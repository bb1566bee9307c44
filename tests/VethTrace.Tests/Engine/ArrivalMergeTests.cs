using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Replay;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// Follow's capture threads each write into a queue of their own (<see cref="ArrivalQueue"/>) and the pump merges the
/// queues by time before the <see cref="TimeOrderer"/>. The merge must not change what the correlator sees: the
/// sequence the orderer alone gives the same arrivals (the definition of time order this engine keeps), whatever runs
/// the threads deliver in, and a packet a ring put a little out of order must not be overtaken at a pump's boundary.
/// </summary>
public sealed class ArrivalMergeTests
{
    private static readonly FlowKey Flow = new(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 53);

    private static Observation At(long ns, int hop, long order) => new(ns, hop, order, (ulong)order + 1, Flow, 100);

    private static void Write(ArrivalQueue queue, in Observation observation)
    {
        queue.Reserve() = observation;
        queue.Commit(observation.TimestampNs);
    }

    /// <summary>
    /// Four hops see every packet 10 µs apart (hop i a few hundred ns after hop i-1, every fifth stamp shared by two
    /// hops), each thread handing over runs of 50 ms as HopDevice reads its ring; the pump runs every second of
    /// capture time with the session's bound and lead. The correlator's sequence is the orderer's for the same
    /// arrivals in the order the threads queued them, and nothing is overtaken.
    /// </summary>
    [Fact]
    public void Release_HopsInRunsOf50Ms_TheSequenceTheOrdererAloneGives()
    {
        const long Slack = TimeOrderer.DefaultSlackNs, Margin = Slack / 16;
        const int Hops = 4, Packets = 700_000;
        var arrivals = new List<Observation>();
        var runs = new List<Observation>[Hops];
        long order = 0;
        var merge = new ArrivalMerge();
        var queues = Enumerable.Range(0, Hops).Select(_ => merge.Open()).ToArray();
        var merged = new ObservationRecorder();
        var orderer = new TimeOrderer(merged, Slack);
        long nextPump = 1_000_000_000;
        for (long packet = 0; packet < Packets; packet++)
        {
            long ns = 10_000_000 + packet * 10_000;
            for (int hop = 0; hop < Hops; hop++)
            {
                (runs[hop] ??= []).Add(At(packet % 5 == 4 && hop == 1 ? ns : ns + hop * 300, hop, ++order));
            }
            if (ns % 50_000_000 == 0 || packet == Packets - 1)
            {
                // Each thread's run, one after the other, as they reach the shared queue of the first design.
                for (int hop = 0; hop < Hops; hop++)
                {
                    foreach (Observation observation in runs[hop])
                    {
                        arrivals.Add(observation);
                        Write(queues[hop], in observation);
                    }
                    runs[hop].Clear();
                }
            }
            if (ns >= nextPump)
            {
                merge.Release(ns - Slack + Margin, Slack - Margin, orderer);
                orderer.Advance(ns);
                nextPump += 1_000_000_000;
            }
        }
        merge.Release(long.MaxValue, 0, orderer);
        orderer.Flush();

        var alone = new ObservationRecorder();
        var reference = new TimeOrderer(alone, Slack);
        foreach (Observation observation in arrivals)
        {
            reference.Add(in observation);
        }
        reference.Flush();
        Assert.Equal(Hops * Packets, merged.Seen.Count);
        Assert.Equal(alone.Seen, merged.Seen);
        Assert.Equal(0, orderer.Overtaken);
        Assert.Equal(0, merge.Pending);
        // The queues' chunks were reused: about the two seconds held at once (800,000 observations), not one per 1,024
        // of the 2.8 million.
        Assert.InRange(merge.ChunksCreated, 1, 1_200_000 / ArrivalQueue.ChunkSize);
    }

    /// <summary>
    /// One ring put a packet 10 µs behind the one before it, and a pump's bound fell between the two: the later one
    /// is held for the next pump with the earlier (the stamps are a running maximum), and the orderer, moved along only
    /// to the lead, still takes the earlier in its place. Without the margin (the lead the whole slack) it would be
    /// overtaken.
    /// </summary>
    [Theory]
    [InlineData(100_000_000L, 0L)]
    [InlineData(0L, 1L)]
    public void Release_PacketOutOfOrderInItsRingAcrossTheBound_NotOvertakenWithTheMargin(long margin, long overtaken)
    {
        const long Slack = 1_000_000_000;
        var merge = new ArrivalMerge();
        ArrivalQueue a = merge.Open(), b = merge.Open();
        var seen = new ObservationRecorder();
        var orderer = new TimeOrderer(seen, Slack);
        Write(a, At(5_000_000_000, 0, 1));
        Write(a, At(4_999_990_000, 0, 3));
        Write(b, At(4_999_995_000, 1, 2));
        // The first pump's bound lies between the ring's two packets.
        merge.Release(4_999_996_000, Slack - margin, orderer);
        merge.Release(6_000_000_000, Slack - margin, orderer);
        orderer.Flush();
        Assert.Equal(overtaken, orderer.Overtaken);
        if (overtaken == 0)
        {
            Assert.Equal([(4_999_990_000L, 3L), (4_999_995_000L, 2L), (5_000_000_000L, 1L)], seen.Seen);
        }
    }

    /// <summary>
    /// Four producer threads and the pump at once, across many chunk boundaries: every observation reaches the orderer
    /// once, each thread's in the order it wrote them.
    /// </summary>
    [Fact]
    public void Release_FourThreadsWhileThePumpReads_EachObservationOnceInItsThreadsOrder()
    {
        const int Hops = 4, PerHop = 300_000;
        var merge = new ArrivalMerge();
        var queues = Enumerable.Range(0, Hops).Select(_ => merge.Open()).ToArray();
        var seen = new ObservationRecorder();
        var orderer = new TimeOrderer(seen, long.MaxValue / 4);
        var producers = Enumerable.Range(0, Hops).Select(hop => new Thread(() =>
        {
            for (int i = 0; i < PerHop; i++)
            {
                Write(queues[hop], At(1_000_000 + i * 10L + hop, hop, (long)i * Hops + hop));
            }
        })).ToArray();
        foreach (Thread producer in producers)
        {
            producer.Start();
        }
        while (producers.Any(p => p.IsAlive))
        {
            merge.Release(long.MaxValue, 0, orderer);
        }
        merge.Release(long.MaxValue, 0, orderer);
        orderer.Flush();
        Assert.Equal(Hops * PerHop, seen.Seen.Count);
        Assert.Equal(Hops * PerHop, seen.Seen.Select(s => s.Item2).Distinct().Count());
        for (int hop = 0; hop < Hops; hop++)
        {
            long[] orders = [.. seen.Seen.Where(s => s.Item2 % Hops == hop).Select(s => s.Item2)];
            Assert.Equal(PerHop, orders.Length);
            Assert.True(orders.Zip(orders.Skip(1)).All(p => p.First < p.Second), $"hop {hop}'s observations out of its order");
        }
    }
}
