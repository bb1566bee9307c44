using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The per-flow reach table (<see cref="ReachTable"/>, session 14) in place of a <c>Dictionary&lt;FlowKey, FlowReach&gt;</c>:
/// the settled losses and the loss report follow its enumeration order, so it must enumerate exactly as the dictionary
/// did (insertion order, removed entries reused last-removed first) through inserts, sweeps, arbitrary removals, reuse
/// and growth. A dictionary is the oracle.
/// </summary>
public sealed class ReachTableTests
{
    private const long Second = 1_000_000_000;

    private readonly record struct Words(ulong SourceHigh, ulong SourceLow, ulong DestinationHigh, ulong DestinationLow, ulong Rest);

    private static Words WordsOf(in Correlator.FlowBits bits) => new(bits.SourceHigh, bits.SourceLow, bits.DestinationHigh, bits.DestinationLow, bits.Rest);

    private static Correlator.FlowBits Bits(int n)
    {
        // Many containers' short flows: a few sources, a few servers, every port; some IPv6.
        var bits = new Correlator.FlowBits();
        IpAddress source = n % 7 == 0 ? IpAddress.FromV6(0xfd00_0000_0000_0000UL, (ulong)(n % 5)) : IpAddress.FromV4(0xAC11_0002u + (uint)(n % 5));
        IpAddress destination = n % 7 == 0 ? IpAddress.FromV6(0x2001_0db8_0000_0000UL, (ulong)(n / 65_536 % 3)) : IpAddress.FromV4(0xC633_6402u + (uint)(n / 65_536 % 3));
        bits.Set(new FlowKey(n % 2 == 0 ? IpProtocol.Udp : IpProtocol.Tcp, source, (ushort)(n % 65_536), destination, (ushort)(n % 3 == 0 ? 53 : 443)));
        return bits;
    }

    /// <summary>The table's flows in enumeration order, each with the number its reach carries (<see cref="FlowReach.LastSeenNs"/>).</summary>
    private static List<(Words Flow, long Value)> Enumerate(ReachTable table)
    {
        var flows = new List<(Words, long)>();
        for (int i = 0; i < table.End; i++)
        {
            if (table.Holds(i))
            {
                flows.Add((WordsOf(in table.KeyAt(i)), table.ReachAt(i).LastSeenNs));
            }
        }
        return flows;
    }

    private static void AssertSameOrder(Dictionary<Words, long> oracle, ReachTable table)
    {
        Assert.Equal(oracle.Count, table.Count);
        List<(Words Flow, long Value)> flows = Enumerate(table);
        Assert.Equal(oracle.Count, flows.Count);
        int i = 0;
        foreach (var (flow, value) in oracle)
        {
            Assert.Equal(flow, flows[i].Flow);
            Assert.Equal(value, flows[i].Value);
            i++;
        }
    }

    [Fact]
    public void ReachTable_EnumeratesAsADictionary_ThroughInsertsSweepsRemovalsReuseAndGrowth()
    {
        var random = new Random(19);
        var oracle = new Dictionary<Words, long>();
        var table = new ReachTable();
        int initialCapacity = table.Capacity;
        var held = new List<int>(); // flow numbers that may be held
        int nextFlow = 0;
        long value = 1;
        for (int round = 0; round < 60; round++)
        {
            // A burst of new flows (some repeats of flows held: found, not added), a sweep-like pass and a few removals.
            int news = random.Next(1, round < 30 ? 6_000 : 1_500);
            for (int k = 0; k < news; k++)
            {
                int n = held.Count > 0 && random.Next(4) == 0 ? held[random.Next(held.Count)] : nextFlow++;
                Correlator.FlowBits bits = Bits(n);
                int index = table.FindOrAdd(bits, ReachTable.Hash(bits), out bool added);
                Assert.Equal(!oracle.ContainsKey(WordsOf(bits)), added);
                if (added)
                {
                    Assert.Equal(0, table.ReachAt(index).LastSeenNs); // a reused entry starts empty
                    table.ReachAt(index).LastSeenNs = value;
                    oracle[WordsOf(bits)] = value++;
                    held.Add(n);
                }
                Assert.Equal(index, table.Find(bits, ReachTable.Hash(bits)));
                Assert.True(WordsOf(in table.KeyAt(index)) == WordsOf(bits));
            }
            AssertSameOrder(oracle, table);

            // A sweep: removes while enumerating, in order (as Correlator.Sweep does, and as the dictionary allowed).
            int keepOneIn = random.Next(1, 5);
            foreach (var (flow, v) in oracle)
            {
                if (v % keepOneIn != 0)
                {
                    oracle.Remove(flow);
                }
            }
            for (int i = 0; i < table.End; i++)
            {
                if (table.Holds(i) && table.ReachAt(i).LastSeenNs % keepOneIn != 0)
                {
                    table.RemoveAt(i);
                }
            }
            AssertSameOrder(oracle, table);

            // Removals in no order (the free entries are a stack: the last removed is the first reused).
            for (int k = random.Next(50); k > 0 && oracle.Count > 0; k--)
            {
                int skip = random.Next(oracle.Count);
                Words flow = oracle.Keys.Skip(skip).First();
                oracle.Remove(flow);
                int i = 0;
                for (int seen = -1; ; i++)
                {
                    if (table.Holds(i) && ++seen == skip)
                    {
                        break;
                    }
                }
                Assert.Equal(flow, WordsOf(in table.KeyAt(i)));
                table.RemoveAt(i);
            }
            AssertSameOrder(oracle, table);
            held.RemoveAll(n => !oracle.ContainsKey(WordsOf(Bits(n))));
        }
        Assert.True(table.Capacity >= 16 * initialCapacity); // it grew (more than once), and kept every index
        // Every flow held is found, every flow removed is not.
        for (int n = 0; n < nextFlow; n++)
        {
            Correlator.FlowBits bits = Bits(n);
            int index = table.Find(bits, ReachTable.Hash(bits));
            Assert.Equal(oracle.TryGetValue(WordsOf(bits), out long v), index >= 0);
            if (index >= 0)
            {
                Assert.Equal(v, table.ReachAt(index).LastSeenNs);
            }
        }
    }

    [Fact]
    public void ReachTable_AllRemovedThenRefilled_ReusedLastRemovedFirst_ThenAppended()
    {
        var table = new ReachTable();
        for (int n = 0; n < 5; n++)
        {
            Correlator.FlowBits bits = Bits(n);
            Assert.Equal(n, table.FindOrAdd(bits, ReachTable.Hash(bits), out _));
        }
        table.RemoveAt(1);
        table.RemoveAt(3);
        table.RemoveAt(0);
        Assert.Equal(2, table.Count);
        int[] given = [.. Enumerable.Range(10, 5).Select(n => { Correlator.FlowBits bits = Bits(n); return table.FindOrAdd(bits, ReachTable.Hash(bits), out _); })];
        Assert.Equal([0, 3, 1, 5, 6], given);
        Assert.Equal(7, table.Count);
    }

    [Fact]
    public void ReachTable_Tags_SetForEveryFlowHeld_ClearedWhenTheLastOfTheirClassLeavesTheBucket()
    {
        // A look-up of a flow not held ends at its bucket's tag byte (session 15): the tags must cover every flow held
        // (or Find would miss one: the differential test above) and must drop a class once no flow of it is left in the
        // bucket (or every look-up there would go on to the chain, as before the tags).
        var table = new ReachTable();
        const int Flows = 5_000;
        var hashes = new int[Flows];
        for (int n = 0; n < Flows; n++)
        {
            Correlator.FlowBits bits = Bits(n);
            hashes[n] = ReachTable.Hash(bits);
            table.FindOrAdd(bits, hashes[n], out _);
        }
        Assert.All(hashes, hash => Assert.True(table.MayHold(hash)));
        int absentPast = Enumerable.Range(Flows, Flows).Count(n => table.MayHold(ReachTable.Hash(Bits(n))));
        Assert.InRange(absentPast, 1, Flows * 3 / 4); // a table as full as its buckets: most absent flows stop at the tag
        for (int i = 0; i < Flows; i += 2)
        {
            table.RemoveAt(i);
        }
        for (int i = 1; i < Flows; i += 2)
        {
            Assert.True(table.MayHold(hashes[i]));
            Assert.Equal(i, table.Find(Bits(i), hashes[i]));
        }
        for (int i = 1; i < Flows; i += 2)
        {
            table.RemoveAt(i);
        }
        Assert.Equal(0, table.Count);
        Assert.All(hashes, hash => Assert.False(table.MayHold(hash)));
    }

    [Fact]
    public void Correlator_LossesOfSweptAndReusedReaches_ReportedInTheDictionarysOrder()
    {
        // Six UDP flows f0..f5 from one container each lose a journey at the bridge (interface 2) after a flow showed the way
        // to the egress: their reaches are made in that order. f0, f2, f4, f5 get through at 20 s (kept); f1 and f3 go
        // idle past UDP's 30 s and a sweep settles them, in that order, freeing their entries (f3's last). Then g0, g1, g2
        // lose a journey each: g0 takes f3's entry, g1 f1's, g2 a new one. Every loss is one packet, so the report's
        // (stable, 16 or fewer) sort keeps the order losses were gathered: settled first, then the table's.
        var correlator = new Correlator(new CorrelatorOptions(), CorrelatorTests.RoleToEgress);
        long order = 0;
        ulong fingerprint = 1;
        void Journey(long t, int port, int hops)
        {
            for (int hop = 0; hop < hops; hop++)
            {
                correlator.Add(new Observation(t + hop * 1_000, hop, order++, fingerprint,
                    new FlowKey(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), (ushort)port, IpAddress.Parse("198.51.100.2"), 53), 100));
            }
            fingerprint++;
        }
        Journey(0, 1_000, 4); // shows the way
        for (int f = 0; f < 6; f++)
        {
            Journey(1 * Second + f * 10_000_000, 40_000 + f, 3);
        }
        foreach (int f in new[] { 0, 2, 4, 5 })
        {
            Journey(20 * Second + f * 10_000_000, 40_000 + f, 4);
        }
        Journey(33 * Second, 1_001, 4);
        Journey(38 * Second, 1_002, 4);
        for (int g = 0; g < 3; g++)
        {
            Journey(40 * Second + g * 10_000_000, 50_000 + g, 3);
        }
        correlator.Complete();
        Assert.Equal(7, correlator.ActiveFlows);
        CorrelationReport report = correlator.Report();
        Assert.Equal([40_001, 40_003, 40_000, 50_001, 40_002, 50_000, 40_004, 40_005, 50_002],
            report.Losses.Select(l => (int)l.Flow.SourcePort).ToArray());
        Assert.All(report.Losses, l => Assert.Equal(1, l.Packets));
    }
}
