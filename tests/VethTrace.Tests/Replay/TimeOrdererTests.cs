using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

public sealed class TimeOrdererTests
{
    private static readonly FlowKey Flow = new(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 53);

    private static Observation At(long ns, int iface, ulong fingerprint, long order) => new(ns, iface, order, fingerprint, Flow, 100);

    /// <summary>Observations out of order by at most a few microseconds (as one handle's file is).</summary>
    private static List<Observation> LocallyShuffled()
    {
        var random = new Random(5);
        var observations = new List<Observation>();
        for (int i = 0; i < 5_000; i++)
        {
            long ns = i * 100_000L + random.Next(0, 20_000);
            observations.Add(At(ns, i % 3, (ulong)(i / 3) + 1, i));
        }
        return observations;
    }

    private static (CorrelationReport Report, long Overtaken) Run(List<Observation> observations, long slackNs)
    {
        var correlator = new Correlator(new CorrelatorOptions { WindowNs = 1_000_000 }, id => (InterfaceRole)id);
        var orderer = new TimeOrderer(correlator, slackNs);
        foreach (Observation observation in observations)
        {
            orderer.Add(in observation);
        }
        orderer.Flush();
        correlator.Complete();
        return (correlator.Report(), orderer.Overtaken);
    }

    [Fact]
    public void Add_LateByLessThanTheSlack_NotOvertakenAndSameAsTheDefaultSlack()
    {
        var observations = LocallyShuffled();
        var (shortSlack, overtaken) = Run(observations, 30_000);
        var (defaultSlack, _) = Run(observations, TimeOrderer.DefaultSlackNs);

        Assert.Equal(0, overtaken);
        Assert.Equal(defaultSlack.Journeys, shortSlack.Journeys);
        Assert.Equal(defaultSlack.MultiHopJourneys, shortSlack.MultiHopJourneys);
        Assert.Equal(defaultSlack.Hops.Select(h => (h.From, h.To, h.Histogram.Count, h.Histogram.Percentile(50))),
            shortSlack.Hops.Select(h => (h.From, h.To, h.Histogram.Count, h.Histogram.Percentile(50))));
    }

    [Fact]
    public void Add_LateByMoreThanTheSlack_CountedAsOvertaken()
    {
        var correlator = new Correlator(new CorrelatorOptions(), id => (InterfaceRole)id);
        var orderer = new TimeOrderer(correlator, 1_000);
        orderer.Add(At(10_000, 0, 1, 0));
        orderer.Add(At(9_500, 1, 1, 1)); // 500 ns late: within the slack
        Assert.Equal(0, orderer.Overtaken);
        orderer.Add(At(8_000, 2, 1, 2)); // 2 µs behind the newest
        Assert.Equal(1, orderer.Overtaken);
    }
}
