using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

public sealed class CorrelatorTests
{
    // Interfaces 0..3: container eth0, veth, bridge, egress.
    private static InterfaceRole Role(int id) => (InterfaceRole)id;

    // Interfaces 0..3: container eth0, veth, bridge, the host's egress (interface 3 is a tunnel in Role).
    internal static InterfaceRole RoleToEgress(int id) => id == 3 ? InterfaceRole.Egress : (InterfaceRole)id;

    private static readonly FlowKey Inside = new(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 53);
    private static readonly FlowKey Outside = new(IpProtocol.Udp, IpAddress.Parse("198.51.100.1"), 40000, IpAddress.Parse("198.51.100.2"), 53);

    private static Observation At(long ns, int iface, ulong fingerprint, long order, FlowKey? flow = null) =>
        new(ns, iface, order, fingerprint, flow ?? (iface == 3 ? Outside : Inside), 100);

    [Fact]
    public void Add_LongCapture_OpenJourneysBoundedByTheWindow()
    {
        var correlator = new Correlator(new CorrelatorOptions { WindowNs = 10_000_000 }, Role);
        int most = 0;
        for (int i = 0; i < 100_000; i++)
        {
            // One packet per millisecond, seen on two hops 5 µs apart.
            correlator.Add(At(i * 1_000_000L, 0, (ulong)i + 1, 2 * i));
            correlator.Add(At(i * 1_000_000L + 5_000, 3, (ulong)i + 1, 2 * i + 1));
            most = Math.Max(most, correlator.OpenJourneys);
        }
        correlator.Complete();

        Assert.InRange(most, 10, 12);
        var report = correlator.Report();
        Assert.Equal(100_000, report.Journeys);
        Assert.Equal(100_000, report.Hops.Single().Histogram.Count);
        Assert.Equal(5_000, report.Hops.Single().Histogram.Percentile(50));
    }

    [Fact]
    public void Advance_RoleChangedMeanwhile_LaterJourneysOrderedByTheNewRole()
    {
        // The correlator keeps its own copy of the roles (the registry's table is shared with the reading thread). Follow
        // may put another interface in a hop's place (InterfaceRegistry.Replace) while it runs: the journeys finished after
        // the clock moves on must be ordered by the new roles. A tie after the egress is laid out nearest role first.
        InterfaceRole[] roles = [InterfaceRole.Egress, InterfaceRole.Veth, InterfaceRole.Bridge];
        var correlator = new Correlator(new CorrelatorOptions { WindowNs = 1_000 }, id => roles[id]);
        correlator.Add(At(0, 0, 7, 0));
        correlator.Add(At(5, 1, 7, 1));
        correlator.Add(At(5, 2, 7, 2));
        correlator.Advance(10_000); // the journey's window has passed: ordered with interface 2 as the bridge
        (roles[1], roles[2]) = (InterfaceRole.Bridge, InterfaceRole.Veth);
        correlator.Advance(12_000);
        correlator.Add(At(20_000, 0, 8, 3));
        correlator.Add(At(20_005, 1, 8, 4));
        correlator.Add(At(20_005, 2, 8, 5));
        correlator.Complete();

        var paths = correlator.Report().Paths.Select(p => string.Join(",", p.Interfaces)).Order(StringComparer.Ordinal);
        Assert.Equal(["0,1,2", "0,2,1"], paths);
    }

    [Fact]
    public void Report_CopyWithInvalidTimestamp_MatchedAndCountedWithoutALatency()
    {
        // A pcap record whose sub-second field is out of range comes at its file position (the previous packet's
        // time, Observation.TimestampInvalid): it still joins its journey, but gives no latency.
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Add(At(0, 0, 5, 0));
        correlator.Add(At(3_000, 3, 5, 1));
        correlator.Add(At(10_000, 0, 6, 2));
        correlator.Add(At(10_000, 3, 6, 3) with { TimestampInvalid = true });
        correlator.Complete();

        var report = correlator.Report();
        Assert.Equal(2, report.MultiHopJourneys);
        var hop = Assert.Single(report.Hops);
        Assert.Equal(1, hop.Histogram.Count);
        Assert.Equal(3_000, hop.Histogram.Percentile(50));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Report_CopyWithInvalidTimestamp_PlacedInThePathByTopology(int invalid)
    {
        // An echo reply on its way in: egress (3), bridge (2), veth (1), container (0). The copy on `invalid` carries
        // a stand-in time from its file (earlier than all the others here): the path must not start with it.
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        long[] times = [40_000, 30_000, 20_000, 10_000]; // by interface id: container last
        foreach (int iface in new[] { 3, 2, 1, 0 })
        {
            bool flagged = iface == invalid;
            correlator.Add(At(flagged ? 1_000 : times[iface], iface, 8, 3 - iface) with { TimestampInvalid = flagged });
        }
        correlator.Complete();

        var path = Assert.Single(correlator.Report().Paths);
        Assert.Equal([3, 2, 1, 0], path.Interfaces);
    }

    [Fact]
    public void Add_SameInterfaceTwice_StartsANewJourney()
    {
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Add(At(0, 0, 7, 0));
        correlator.Add(At(1_000, 3, 7, 1));
        correlator.Add(At(2_000, 0, 7, 2)); // the same bytes again: a retransmission with equal invariants
        correlator.Complete();

        var report = correlator.Report();
        Assert.Equal(2, report.Journeys);
        Assert.Equal(1, report.MultiHopJourneys);
    }

    [Fact]
    public void Complete_TimestampSaturatedToMaxValue_JourneyStillCounted()
    {
        // A reader saturates a timestamp it cannot represent (a pcapng timestamp beyond 2262) to long.MaxValue. Found by
        // the replay fuzz target: Complete() expired journeys stamped before long.MaxValue only, so this one was never
        // finished and its packets were missing from every count (tests/fuzz/corpus/replay/max-timestamp.pcapng).
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Add(At(1_000, 0, 7, 0));
        correlator.Add(At(long.MaxValue, 0, 8, 1));
        correlator.Add(At(long.MaxValue, 3, 8, 2));
        correlator.Complete();

        var report = correlator.Report();
        Assert.Equal(0, correlator.OpenJourneys);
        Assert.Equal(2, report.Journeys);
        Assert.Equal(1, report.MultiHopJourneys);
        Assert.Equal(0, Assert.Single(report.Hops).Histogram.Max);
    }

    [Fact]
    public void Report_EqualTimestamps_OrderedByTopologyOutwards()
    {
        // The veth and the bridge carry one receive stamp; the bridge was read first from its file.
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Add(At(0, 0, 9, 0));
        correlator.Add(At(8_000, 2, 9, 1));
        correlator.Add(At(8_000, 1, 9, 2));
        correlator.Add(At(30_000, 3, 9, 3));
        correlator.Complete();

        var path = Assert.Single(correlator.Report().Paths);
        Assert.Equal([0, 1, 2, 3], path.Interfaces);
    }

    [Fact]
    public void Report_TiesOnTheDecapsulatingHost_LaidOutFromTheWireInwards()
    {
        // Host 1: container (0), veth (1), bridge (2), vxlan (3, tunnel), wire (4); then host 2's wire (14), vxlan (13),
        // bridge (12), veth (11), container (10). Host 2 stamps its wire, vxlan and bridge copies alike, and its handles
        // delivered the bridge's first.
        InterfaceRole RoleOf(int id) => (InterfaceRole)(id % 10);
        var correlator = new Correlator(new CorrelatorOptions(), RoleOf);
        long order = 0;
        foreach ((long ns, int iface) in new[] { (0L, 0), (5_000L, 1), (5_000L, 2), (20_000L, 3), (30_000L, 4), (33_000L, 12), (33_000L, 14), (33_000L, 13), (60_000L, 11), (62_000L, 10) })
        {
            correlator.Add(At(ns, iface, 5, order++, Inside));
        }
        correlator.Complete();

        Assert.Equal([0, 1, 2, 3, 4, 14, 13, 12, 11, 10], Assert.Single(correlator.Report().Paths).Interfaces);
    }

    [Fact]
    public void Report_WholeJourneyOneTimestamp_DirectionRecordedByTheCaptureDecides()
    {
        // A macvlan reply: the parent (egress, 4) and the child (container, 0) share the receive stamp, and the child's
        // handle delivered first. The parent's copy was received (inbound), so the journey runs inwards.
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Add(At(1_000, 0, 6, 0, Inside) with { Direction = PacketDirection.Inbound });
        correlator.Add(At(1_000, 4, 6, 1, Inside) with { Direction = PacketDirection.Inbound });
        correlator.Complete();

        Assert.Equal([4, 0], Assert.Single(correlator.Report().Paths).Interfaces);
    }

    [Fact]
    public void Report_JourneyStoppingShort_LostAtItsLastInterface_AndNatInferred()
    {
        var correlator = new Correlator(new CorrelatorOptions { NatDetail = true }, Role);
        for (int i = 0; i < 4; i++)
        {
            ulong fingerprint = (ulong)i + 100;
            long t = i * 1_000_000L;
            correlator.Add(At(t, 0, fingerprint, 4 * i));
            correlator.Add(At(t + 1_000, 1, fingerprint, 4 * i + 1));
            correlator.Add(At(t + 1_000, 2, fingerprint, 4 * i + 2));
            if (i % 2 == 0)
            {
                correlator.Add(At(t + 30_000, 3, fingerprint, 4 * i + 3)); // half are dropped after the bridge
            }
        }
        correlator.Complete();

        var report = correlator.Report();
        var loss = Assert.Single(report.Losses);
        Assert.Equal(2, loss.LastSeen);
        Assert.Equal(2, loss.Packets);
        Assert.Equal(2, report.Lost);
        var nat = Assert.Single(report.Nat);
        Assert.Equal(NatKind.Snat, nat.Kind);
        Assert.Equal("172.17.0.2:40000", nat.Inside);
        Assert.Equal("198.51.100.1:40000", nat.Outside);
        Assert.Equal("198.51.100.2:53", nat.Peer);
    }

    [Fact]
    public void Report_ReplyThroughMasquerade_JoinsTheSnatMapping()
    {
        var correlator = new Correlator(new CorrelatorOptions { NatDetail = true }, Role);
        correlator.Add(At(0, 2, 1, 0, Inside));
        correlator.Add(At(10_000, 3, 1, 1, Outside));
        // The reply: outside it is addressed to the host, inside to the container.
        correlator.Add(At(50_000, 3, 2, 2, Outside.Reversed));
        correlator.Add(At(55_000, 2, 2, 3, Inside.Reversed));
        correlator.Complete();

        var nat = Assert.Single(correlator.Report().Nat);
        Assert.Equal(NatKind.Snat, nat.Kind);
        Assert.Equal(2, nat.Packets);
    }
    [Fact]
    public void Report_SixFlowsThroughSnatInterleaved_EachTranslationCountsItsOwnPackets()
    {
        // Six connections from the bridge (2) out of the egress (3), each port p masqueraded to p + 1000, their journeys
        // interleaved three rounds over: more flows than the correlator keeps built keys for, so each round replaces
        // them all. Each translation must count its own three packets, under its own two endpoints.
        var correlator = new Correlator(new CorrelatorOptions { NatDetail = true }, RoleToEgress);
        long order = 0;
        ulong fingerprint = 1;
        for (int round = 0; round < 3; round++)
        {
            for (int flow = 0; flow < 6; flow++)
            {
                ushort port = (ushort)(41000 + flow);
                var inside = Inside with { Source = IpAddress.Parse("172.17.0.2"), SourcePort = port };
                var outside = Outside with { SourcePort = (ushort)(port + 1000) };
                long t = (round * 6 + flow) * 100_000L;
                correlator.Add(At(t, 2, fingerprint, order++, inside));
                correlator.Add(At(t + 10_000, 3, fingerprint, order++, outside));
                fingerprint++;
            }
        }
        correlator.Complete();

        var nat = correlator.Report().Nat.OrderBy(n => n.Inside, StringComparer.Ordinal).ToList();
        Assert.Equal(6, nat.Count);
        for (int flow = 0; flow < 6; flow++)
        {
            Assert.Equal(NatKind.Snat, nat[flow].Kind);
            Assert.Equal($"172.17.0.2:{41000 + flow}", nat[flow].Inside);
            Assert.Equal($"198.51.100.1:{42000 + flow}", nat[flow].Outside);
            Assert.Equal("198.51.100.2:53", nat[flow].Peer);
            Assert.Equal(3, nat[flow].Packets);
        }
    }

    [Fact]
    public void Report_PortBlockedJustAfterAJourneyShowedTheWay_LossCounted()
    {
        // Flow A from the container reaches the egress: it shows the way to 198.51.100.2 from the container (0), the veth
        // (1) and the bridge (2). Flow B to the same destination stops at the bridge, and the report is asked for at once:
        // B was lost at the bridge (a blocked port), since packets to that destination went on from there. The correlator
        // holds the last destination's ways before writing them to its table; the report must see them.
        var correlator = new Correlator(new CorrelatorOptions(), RoleToEgress);
        var blocked = Inside with { SourcePort = 40001 };
        correlator.Add(At(0, 0, 1, 0));
        correlator.Add(At(1_000, 1, 1, 1));
        correlator.Add(At(2_000, 2, 1, 2));
        correlator.Add(At(3_000, 3, 1, 3));
        correlator.Add(At(10_000, 0, 2, 4, blocked));
        correlator.Add(At(11_000, 1, 2, 5, blocked));
        correlator.Add(At(12_000, 2, 2, 6, blocked));
        correlator.Complete();

        var report = correlator.Report();
        var loss = Assert.Single(report.Losses);
        Assert.Equal(blocked, loss.Flow);
        Assert.Equal(2, loss.LastSeen);
        Assert.Equal(1, loss.Packets);
        Assert.Equal(1, report.Lost);
    }

    [Fact]
    public void Sweep_FinAfterTheFlowGotAReach_ClosingTimeoutApplies()
    {
        // TCP flow A: a segment reaches the egress (no per-flow state needed), one stops at the bridge (now A has a reach),
        // flow C stops at the bridge too, then A's FIN reaches the egress: A's reach must learn it is closing. 200 s later
        // (past tcp-closing's 120 s, far short of tcp's 5 days) a sweep forgets A and keeps C. The correlator remembers the
        // last flow it found no reach for; making A's reach must make it forget that.
        var correlator = new Correlator(new CorrelatorOptions(), RoleToEgress);
        FinAfterTheFlowGotAReach(correlator, afterFourFinished: () => Assert.Equal(2, correlator.ActiveFlows));
        Assert.Equal(1, correlator.ActiveFlows);
        correlator.Complete();
        Assert.Equal(2, correlator.Report().Lost); // A's segment at the bridge and C's, both short of the way to the egress
    }

    /// <summary>
    /// The journeys of <see cref="Sweep_FinAfterTheFlowGotAReach_ClosingTimeoutApplies"/> (TCP flow A to the egress,
    /// to the bridge, flow C to the bridge, A's FIN to the egress; interfaces 0-3 on the way to the egress), fed to
    /// <paramref name="correlator"/>: the four, the clock moved past their window (then <paramref name="afterFourFinished"/>),
    /// and C again 200 s later, so the sweeps run. Also run with the accounting on its own thread (AccountingThreadTests).
    /// </summary>
    internal static void FinAfterTheFlowGotAReach(Correlator correlator, Action? afterFourFinished = null)
    {
        var a = new FlowKey(IpProtocol.Tcp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 80);
        var c = a with { SourcePort = 40002 };
        long order = 0;
        void Journey(long t, ulong fingerprint, FlowKey flow, int hops, TcpFlags flags = 0)
        {
            for (int hop = 0; hop < hops; hop++)
            {
                correlator.Add(new Observation(t + hop * 1_000, hop, order++, fingerprint, flow, 100, TcpFlags: flags));
            }
        }
        Journey(0, 1, a, 4);
        Journey(10_000_000, 2, a, 3);
        Journey(20_000_000, 3, c, 3);
        Journey(30_000_000, 4, a, 4, TcpFlags.Fin | TcpFlags.Ack);
        correlator.Advance(5_000_000_000); // all four finished
        afterFourFinished?.Invoke();
        Journey(200_000_000_000, 5, c, 4); // time moves on: the sweeps run
    }
}
