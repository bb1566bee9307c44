using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The accounting's look-ups for many short flows (session 12; keyed by the ring's words since session 14): <see cref="ReachTable"/>'s keys, <see cref="RecentReaches"/>
/// (the reaches, and the flows without one, of the last flows looked up), <see cref="PathInterfaces"/> (one array per
/// path, kept by every <see cref="FlowReach"/> that took it), and the correlator's losses through them.
/// </summary>
public sealed class ReachLookupsTests
{
    private const long Second = 1_000_000_000;

    private static FlowKey Udp(int sourcePort, string source = "172.17.0.2", string destination = "198.51.100.2") =>
        new(IpProtocol.Udp, IpAddress.Parse(source), (ushort)sourcePort, IpAddress.Parse(destination), 53);

    [Fact]
    public void ReachTableKeys_AgreeWithTheFlowKeysOwnEquality_RoundTrip_AndSpreadPorts()
    {
        // The reach table is keyed by the ring's words (Correlator.FlowBits) where the dictionary it replaced was keyed by
        // the FlowKey built from them: the same flows must be one entry, different flows two, and the key reported the same.
        static Correlator.FlowBits BitsOf(FlowKey key)
        {
            var bits = new Correlator.FlowBits();
            bits.Set(key);
            return bits;
        }
        var random = new Random(12);
        var keys = new List<FlowKey>();
        for (int i = 0; i < 2_000; i++)
        {
            IpAddress Address() => random.Next(3) == 0
                ? IpAddress.FromV6(0x2001_0db8_0000_0000UL + (uint)random.Next(4), (ulong)random.Next(4))
                : IpAddress.FromV4(0xAC11_0000u + (uint)random.Next(4));
            keys.Add(new FlowKey(new IpProtocol((byte)(random.Next(2) == 0 ? 6 : 17)), Address(), (ushort)random.Next(3),
                Address(), (ushort)random.Next(3)));
        }
        foreach (FlowKey a in keys.Take(300))
        {
            Assert.Equal(a, BitsOf(a).ToFlowKey());
            foreach (FlowKey b in keys.Take(300))
            {
                Assert.Equal(a.Equals(b), BitsOf(a).Equals(BitsOf(b)));
                if (a.Equals(b))
                {
                    Assert.Equal(ReachTable.Hash(BitsOf(a)), ReachTable.Hash(BitsOf(b)));
                }
            }
        }
        // Keys that differ in one port only (a container's short flows) get distinct hashes, and distinct low bits.
        var hashes = Enumerable.Range(0, 65_536).Select(p => ReachTable.Hash(BitsOf(Udp(p)))).ToList();
        Assert.True(hashes.Distinct().Count() >= 65_530);
        Assert.True(hashes.Select(h => h & 0xFFFF).Distinct().Count() > 40_000); // random would give ~41,400
        // A flow and its reverse differ.
        Assert.NotEqual(ReachTable.Hash(BitsOf(Udp(40_000))), ReachTable.Hash(BitsOf(Udp(40_000).Reversed)));
        // A v4 address and a v6 address with the same low bits are different keys.
        var v4 = new FlowKey(IpProtocol.Udp, IpAddress.FromV4(1), 1, IpAddress.FromV4(2), 2);
        var v6 = new FlowKey(IpProtocol.Udp, IpAddress.FromV6(0, 1), 1, IpAddress.FromV6(0, 2), 2);
        Assert.False(BitsOf(v4).Equals(BitsOf(v6)));
    }

    [Fact]
    public void RecentReaches_RemembersTheLastEight_NoneReplacedByAReach_ClearForgetsAll()
    {
        var recent = new RecentReaches();
        Correlator.FlowBits Key(int i)
        {
            var bits = new Correlator.FlowBits();
            bits.Set(Udp(10_000 + i));
            return bits;
        }
        int HashOf(int i) => ReachTable.Hash(Key(i));
        for (int i = 0; i < 12; i++)
        {
            recent.Set(Key(i), HashOf(i), i % 3 == 0 ? -1 : 100 + i);
        }
        Assert.Equal(RecentReaches.Capacity, recent.Count);
        for (int i = 0; i < 12; i++)
        {
            int index = recent.Find(Key(i), HashOf(i));
            if (i < 12 - RecentReaches.Capacity)
            {
                Assert.Equal(-1, index); // the oldest four were replaced
                continue;
            }
            Assert.True(index >= 0);
            Assert.Equal(i % 3 == 0 ? -1 : 100 + i, recent.ReachAt(index));
        }
        // Flow 9 had none: a reach made for it replaces that entry (no second entry, nothing else forgotten).
        recent.Set(Key(9), HashOf(9), 7);
        Assert.Equal(7, recent.ReachAt(recent.Find(Key(9), HashOf(9))));
        Assert.True(recent.Find(Key(4), HashOf(4)) >= 0);
        // A key with the same hash is not the same flow.
        Assert.Equal(-1, recent.Find(Key(100), HashOf(9)));
        // The last two touched are found without a hash.
        Assert.True(recent.Last(Key(4)) >= 0);
        Assert.True(recent.Last(Key(9)) >= 0);
        Assert.Equal(-1, recent.Last(Key(8)));
        var copy = recent.CopyHere();
        recent.Clear();
        Assert.Equal(0, recent.Count);
        Assert.Equal(-1, recent.Find(Key(9), HashOf(9)));
        Assert.Equal(-1, recent.Last(Key(9)));
        Assert.Equal(7, copy.ReachAt(copy.Find(Key(9), HashOf(9))));
    }

    [Fact]
    public void PathInterfaces_SamePathSameArray_FlowReachKeepsIt()
    {
        var paths = new PathInterfaces();
        Sighting[] Path(params int[] interfaces) => [.. interfaces.Select(i => new Sighting { Interface = i })];
        int[] outbound = paths.Of(Path(0, 1, 2, 3));
        int[] inbound = paths.Of(Path(3, 2, 1, 0));
        Assert.Equal([0, 1, 2, 3], outbound);
        Assert.Equal([3, 2, 1, 0], inbound);
        Assert.Same(outbound, paths.Of(Path(0, 1, 2, 3)));
        Assert.Same(inbound, paths.Of(Path(3, 2, 1, 0)));
        Assert.NotSame(outbound, paths.Of(Path(0, 1, 2)));
        // Past the capacity the oldest made is replaced: a new array, with the same interfaces.
        for (int i = 0; i < PathInterfaces.Capacity; i++)
        {
            paths.Of(Path(10 + i, 20));
        }
        int[] again = paths.Of(Path(0, 1, 2, 3));
        Assert.NotSame(outbound, again);
        Assert.Equal(outbound, again);

        var first = new FlowReach();
        var second = new FlowReach();
        first.Add(again);
        second.Add(again);
        Assert.Same(again, first.Longest); // kept, not copied: no array per flow
        Assert.Same(first.Longest, second.Longest);
        first.Add(paths.Of(Path(0, 1)));
        Assert.Same(again, first.Longest); // a shorter path does not replace the longest
        Assert.Equal([(3, 1L), (1, 1L)], first.EndedAt());
        Assert.True(first.IsShortOf(1));
        Assert.False(first.IsShortOf(3));
    }

    [Fact]
    public void Correlator_ManyFlowsTakingTurns_EveryLossCounted()
    {
        // Twelve UDP flows from one container (more than the correlator remembers) take turns, five rounds: a flow's
        // journey reaches the egress (interface 3), or stops at the bridge (2), short of the way its own and the others'
        // packets showed. Expected by construction (docs/DESIGN.md "Losses"): every journey that stopped is lost.
        var correlator = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
        long order = 0;
        ulong fingerprint = 1;
        long t = 0;
        int stopped = 0;
        var flowsWithLoss = new HashSet<int>();
        for (int round = 0; round < 5; round++)
        {
            for (int flow = 0; flow < 12; flow++)
            {
                int hops = round > 0 && (flow + round) % 3 == 0 ? 3 : 4;
                for (int hop = 0; hop < hops; hop++)
                {
                    correlator.Add(new Observation(t + hop * 1_000, hop, order++, fingerprint, Udp(20_000 + flow), 100));
                }
                if (hops == 3)
                {
                    stopped++;
                    flowsWithLoss.Add(flow);
                }
                fingerprint++;
                t += 1_000_000;
            }
        }
        correlator.Complete();
        Assert.Equal(flowsWithLoss.Count, correlator.ActiveFlows);
        CorrelationReport report = correlator.Report();
        Assert.Equal(stopped, report.Lost);
        Assert.Equal(flowsWithLoss.Count, report.Losses.Count);
    }

    [Fact]
    public void Correlator_FlowSweptThenSeenAgain_ItsNewLossCounted()
    {
        // A UDP flow shows the way to the egress, then a journey stops at the bridge (its reach is made: one loss). 200 s
        // later (past UDP's 30 s) a sweep settles it and removes its reach; the flow comes back and loses a journey at
        // the bridge again. The reach the correlator remembered for it went with the sweep: the new loss goes to a new
        // reach in the table, and both are reported (a reach remembered past the sweep would swallow the second).
        var correlator = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
        FlowKey flow = Udp(30_000);
        long order = 0;
        ulong fingerprint = 1;
        void Journey(long t, int hops)
        {
            for (int hop = 0; hop < hops; hop++)
            {
                correlator.Add(new Observation(t + hop * 1_000, hop, order++, fingerprint, flow, 100));
            }
            fingerprint++;
        }
        Journey(0, 4);
        Journey(10_000_000, 3);
        correlator.Advance(5 * Second);
        Assert.Equal(1, correlator.ActiveFlows);
        Journey(200 * Second, 4); // the sweep runs as this arrives
        Journey(200 * Second + 10_000_000, 3);
        correlator.Complete();
        Assert.Equal(1, correlator.ActiveFlows);
        Assert.Equal(2, correlator.Report().Lost);
    }
}
