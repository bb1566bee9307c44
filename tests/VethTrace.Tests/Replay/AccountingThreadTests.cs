using VethTrace.Capture.Files;
using VethTrace.Cli.Output;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// Replay gives the correlator's accounting (hops, NAT, paths, flow reach, sweeps) a thread of its own, fed through a
/// pipe in the order the journeys finish (<see cref="Correlator.StartAccounting"/>): every answer must be what one
/// thread gives, and the sweeps must see the journeys finished before them, no more and no fewer.
/// </summary>
public sealed class AccountingThreadTests
{
    /// <summary>Every shipped replay capture (one at a time, and the per-hop sets together), but the bulk one (one interface: no hops).</summary>
    public static TheoryData<string> Captures()
    {
        var data = new TheoryData<string>();
        foreach (string name in CaptureCorpus.Files().Select(file => Path.GetRelativePath(CaptureCorpus.CapturesDirectory, file)))
        {
            if (name.StartsWith("replay", StringComparison.Ordinal) && Path.GetDirectoryName(name) == "replay" || name == "masquerade-multi.pcapng" || name == "any-sll2.pcap")
            {
                data.Add(name);
            }
        }
        foreach (string set in new[] { "replay/per-hop", "replay/free-names", "replay/free-names-tied", "replay/split" })
        {
            data.Add(set + "/");
        }
        return data;
    }

    private static string Json(string name, bool accountingThread, FlowTimeouts timeouts)
    {
        string path = CaptureCorpus.PathOf(name);
        string[] files = name.EndsWith('/') ? [.. Directory.GetFiles(path, "*.pcap").Order(StringComparer.Ordinal)] : [path];
        // AccountingThreadWhenHeavy off: the thread starts with the first multi-hop journey (these captures are far too small
        // for the weight test of two-core machines ever to start it).
        FileTraceResult result = FileTrace.Run(files, new TraceSessionOptions
        {
            AccountingThread = accountingThread, AccountingThreadWhenHeavy = false, FlowTimeouts = timeouts, NatDetail = true,
        });
        var output = new StringWriter();
        ReplayJson.Write(output, result.Report!, result.Interfaces!.Names, result.Interfaces);
        return output.ToString();
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Replay_AccountingOnItsOwnThread_SameJsonAsOnOne(string name)
    {
        // Once with conntrack's timeouts, once with timeouts of a millisecond: then a sweep runs every eighth of a
        // millisecond of trace time, settling flows and forgetting NAT translations between journeys, so a sweep
        // accounted for before or after the journeys around it would change the losses and the NAT rows.
        var shortTimeouts = new FlowTimeouts { TcpNs = 1_000_000, TcpClosingNs = 1_000_000, UdpNs = 1_000_000, IcmpNs = 1_000_000, OtherNs = 1_000_000 };
        foreach (FlowTimeouts timeouts in new[] { FlowTimeouts.Default, shortTimeouts })
        {
            string one = Json(name, accountingThread: false, timeouts);
            string two = Json(name, accountingThread: true, timeouts);
            Assert.Contains("\"type\":\"summary\"", one);
            Assert.Equal(one, two);
        }
    }

    [Fact]
    public void AccountingThread_SweepAfterJourneys_SeesThemAll()
    {
        // The scenario of CorrelatorTests.Sweep_FinAfterTheFlowGotAReach_ClosingTimeoutApplies with the accounting on its
        // own thread. TCP flow A: a segment reaches the egress, one stops at the bridge (A now has a reach), flow C stops
        // at the bridge, A's FIN reaches the egress (A is closing). 200 s later (past tcp-closing's 120 s, short of tcp's
        // 5 days) a sweep forgets A and keeps C. A sweep accounted for before the four journeys would find no flow to
        // forget, and A's reach would still be held at the end.
        var correlator = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
        correlator.StartAccounting();
        Assert.True(correlator.AccountingThread);
        CorrelatorTests.FinAfterTheFlowGotAReach(correlator);
        correlator.Complete();
        Assert.Throws<InvalidOperationException>(() => correlator.Report()); // not while the accounting runs
        correlator.StopAccounting();
        Assert.False(correlator.AccountingThread);
        Assert.Equal(1, correlator.ActiveFlows); // C's reach; A's went with the sweep
        CorrelationReport report = correlator.Report();
        Assert.Equal(5, report.Journeys);
        Assert.Equal(2, report.Lost); // A's segment at the bridge and C's, both short of the way to the egress
        Assert.Equal(5, report.MultiHopJourneys);
        Assert.Equal(5, report.Hops.Single(h => h.From == 0 && h.To == 1).Histogram.Count);
        Assert.Equal(3, report.Hops.Single(h => h.From == 2 && h.To == 3).Histogram.Count); // journeys 1, 4 and 5 reached the egress
    }

    /// <summary>
    /// <paramref name="journeys"/> two-hop journeys, 10 µs apart, each of its own flow (<paramref name="distinctFlows"/>:
    /// many short flows, as containers' requests) or all of one (a bulk transfer).
    /// </summary>
    private static CorrelationReport TwoHopJourneys(Correlator correlator, int journeys, bool distinctFlows)
    {
        long order = 0;
        for (int j = 0; j < journeys; j++)
        {
            ushort port = distinctFlows ? (ushort)(1024 + j % 60_000) : (ushort)40_000;
            var flow = new FlowKey(IpProtocol.Udp, IpAddress.FromV4(0xAC11_0002u + (uint)(j / 60_000)), port, IpAddress.Parse("198.51.100.2"), 53);
            for (int hop = 0; hop < 2; hop++)
            {
                correlator.Add(new Observation(1_000_000 + j * 10_000L + hop * 1_000, hop, order++, (ulong)j + 1, flow, 100));
            }
        }
        correlator.Complete();
        if (correlator.AccountingThread)
        {
            correlator.StopAccounting();
        }
        return correlator.Report();
    }

    [Fact]
    public void AccountingThread_WhenHeavy_StartsForManyFlows_NotForOneLongOne_SameReport()
    {
        // Two cores (TraceSessionOptions.AccountingThreadWhenHeavy): the thread starts only once, over a window of multi-hop
        // journeys, the accounting met a new flow at least once in 16. One flow's journeys never start it; a new flow per
        // journey starts it after the first window. Either way the report is the one thread gives.
        const int Journeys = 3 * Correlator.AccountingTrialJourneys + 100;
        foreach (bool distinct in new[] { false, true })
        {
            var heavyOnly = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
            heavyOnly.StartAccountingWithFirstMultiHopJourney(whenHeavy: true);
            CorrelationReport adaptive = TwoHopJourneys(heavyOnly, Journeys, distinct);
            Assert.Equal(distinct, heavyOnly.AccountingThreadStarted);

            var inline = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
            CorrelationReport one = TwoHopJourneys(inline, Journeys, distinct);
            Assert.False(inline.AccountingThreadStarted);
            Assert.Equal((long)Journeys, adaptive.MultiHopJourneys);
            Assert.Equal((one.Journeys, one.MultiHopJourneys, one.Lost), (adaptive.Journeys, adaptive.MultiHopJourneys, adaptive.Lost));
            Assert.Equal(one.Hops.Single().Histogram.Count, adaptive.Hops.Single().Histogram.Count);
            Assert.Equal(one.Hops.Single().Histogram.Percentile(50), adaptive.Hops.Single().Histogram.Percentile(50));

            var atOnce = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
            atOnce.StartAccountingWithFirstMultiHopJourney();
            TwoHopJourneys(atOnce, 10, distinct);
            Assert.True(atOnce.AccountingThreadStarted); // without whenHeavy: with the first multi-hop journey, as before
        }
    }

    [Fact]
    public void AccountingThread_StartsWithTheFirstMultiHopJourney_NotForOneInterface()
    {
        // Journeys of one hop (a capture of one interface) give the accounting too little for a thread: none starts.
        // The first journey on two hops starts it, and the figures are those of one thread: the single-hop journeys
        // accounted for before it, the multi-hop ones after, one report.
        var flow = new FlowKey(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 53);
        var correlator = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
        correlator.StartAccountingWithFirstMultiHopJourney();
        long order = 0;
        for (ulong fingerprint = 1; fingerprint <= 100; fingerprint++)
        {
            correlator.Add(new Observation((long)fingerprint * 1_000_000, 0, order++, fingerprint, flow, 100));
        }
        correlator.Advance(10_000_000_000); // every one-hop journey finished
        Assert.False(correlator.AccountingThreadStarted);
        for (ulong fingerprint = 101; fingerprint <= 110; fingerprint++)
        {
            for (int hop = 0; hop < 4; hop++)
            {
                correlator.Add(new Observation(20_000_000_000 + (long)fingerprint * 1_000_000 + hop * 1_000, hop, order++, fingerprint, flow, 100));
            }
        }
        correlator.Complete();
        Assert.True(correlator.AccountingThreadStarted);
        correlator.StopAccounting();
        CorrelationReport report = correlator.Report();
        Assert.Equal((110L, 10L), (report.Journeys, report.MultiHopJourneys));
        Assert.Equal(10, report.Hops.Single(h => h.From == 2 && h.To == 3).Histogram.Count);

        // Stopped before any multi-hop journey: no thread starts later.
        var quiet = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
        quiet.StartAccountingWithFirstMultiHopJourney();
        quiet.StopAccounting();
        for (int hop = 0; hop < 2; hop++)
        {
            quiet.Add(new Observation(hop * 1_000, hop, hop, 7, flow, 100));
        }
        quiet.Complete();
        Assert.False(quiet.AccountingThreadStarted);
        Assert.Equal(1, quiet.Report().MultiHopJourneys);
    }
}
