using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The many-flows tables (issue 14 §5): <see cref="EgressWayTable"/> against a dictionary doing the same work, and
/// <see cref="NatTable"/>'s steps that wait behind a prefetch (every read applies them first) against counts kept by hand.
/// </summary>
public sealed class NatTablesTests
{
    private const long Second = 1_000_000_000;

    [Fact]
    public void EgressWayTable_SawContainsSweep_AgreeWithADictionary()
    {
        var table = new EgressWayTable();
        var model = new Dictionary<(IpAddress, int), long>();
        var random = new Random(14);
        long now = 0;
        for (int round = 0; round < 6; round++)
        {
            // Enough ways to grow the table several times, with repeats (a way seen again keeps its latest time).
            for (int i = 0; i < 20_000; i++)
            {
                now += random.Next(1, 1_000_000);
                IpAddress destination = random.Next(4) == 0
                    ? IpAddress.FromV6(0x2001_0db8_0000_0000UL, (ulong)random.Next(3_000))
                    : IpAddress.FromV4(0xC633_6400u + (uint)random.Next(3_000)); // 198.51.100.0 onwards
                int interfaceId = random.Next(8);
                table.Saw(destination, interfaceId, now);
                model[(destination, interfaceId)] = now;
            }
            Assert.Equal(model.Count, table.Count);
            long timeout = 2 * Second;
            table.Sweep(now, timeout);
            foreach (var key in model.Where(w => now - w.Value > timeout).Select(w => w.Key).ToList())
            {
                model.Remove(key);
            }
            Assert.Equal(model.Count, table.Count);
            for (int probe = 0; probe < 5_000; probe++)
            {
                var destination = IpAddress.FromV4(0xC633_6400u + (uint)random.Next(3_000));
                int interfaceId = random.Next(8);
                Assert.Equal(model.ContainsKey((destination, interfaceId)), table.Contains(destination, interfaceId));
            }
            // The same address as IPv4 and as the low half of an IPv6 address are different ways.
            Assert.All(model.Keys.Where(k => k.Item1.Version == 4), k => Assert.True(table.Contains(k.Item1, k.Item2)));
        }
    }

    [Fact]
    public void NatTable_StepsWaitingForTheirPrefetch_AreAppliedBeforeASweep()
    {
        // A translation at 0 s, pushed into the table by four other steps behind it, then seen again at 29 s (that
        // step still waiting); a sweep at 31 s must see the 29 s step: the translation stays, one flow of two
        // packets. Applied after the sweep, the step would find the translation gone and count a second flow.
        var nat = new NatTable(detail: false, FlowTimeouts.Default);
        FlowKey inside = Udp("172.17.0.2", 40000, "198.51.100.7", 53);
        FlowKey outside = Udp("10.0.0.5", 40000, "198.51.100.7", 53);
        nat.Observe(inside, outside, 0, closing: false);
        for (int other = 0; other < 4; other++)
        {
            nat.Observe(Udp("172.17.0.3", 40000, $"198.51.100.{20 + other}", 53), Udp("10.0.0.5", 40001, $"198.51.100.{20 + other}", 53), 2 * Second, closing: false);
        }
        nat.Observe(inside, outside, 29 * Second, closing: false);
        nat.Sweep(31 * Second, FlowTimeouts.Default);
        Assert.Equal(5, nat.ActiveTranslations);
        NatAggregate row = Assert.Single(nat.Aggregates(), r => r.Inside == "172.17.0.2");
        Assert.Equal((NatKind.Snat, "10.0.0.5", "198.51.100.7:53", 1L, 2L), (row.Kind, row.Outside, row.Peer, row.Flows, row.Packets));

        // 31 s after the last step it goes (the others earlier); the next step is a new flow.
        nat.Sweep(61 * Second, FlowTimeouts.Default);
        Assert.Equal(0, nat.ActiveTranslations);
        nat.Observe(inside, outside, 62 * Second, closing: false);
        row = Assert.Single(nat.Aggregates(), r => r.Inside == "172.17.0.2");
        Assert.Equal((2L, 3L), (row.Flows, row.Packets));
        Assert.Equal(1, Assert.Single(nat.InUse(), u => u.Inside == "172.17.0.2").Translations);
        Assert.Equal(0, Assert.Single(nat.InUse(), u => u.Inside == "172.17.0.3").Translations);
    }

    [Fact]
    public void NatTable_ManyRowsNewAndRepeated_CountsAgreeWithAModel()
    {
        // 3,000 rows (containers × servers) with new translations (the speculative row lookups) and then the same
        // translations again (found: no row lookup), across several growths of the row slots.
        var nat = new NatTable(detail: false, FlowTimeouts.Default);
        var flows = new Dictionary<(string Inside, string Peer), (long Flows, long Packets)>();
        var random = new Random(16);
        var seen = new List<(FlowKey Before, FlowKey After, string Inside, string Peer)>();
        long at = 0;
        for (int i = 0; i < 30_000; i++)
        {
            int container = random.Next(60), server = random.Next(50);
            ushort port = (ushort)(1024 + i);
            string inside = $"172.17.0.{container + 2}", peer = $"198.51.100.{server + 1}";
            FlowKey before = Udp(inside, port, peer, 53), after = Udp("10.0.0.5", port, peer, 53);
            nat.Observe(before, after, at += 1000, closing: false);
            seen.Add((before, after, inside, peer + ":53"));
            var counts = flows.GetValueOrDefault((inside, peer + ":53"));
            flows[(inside, peer + ":53")] = (counts.Flows + 1, counts.Packets + 1);
        }
        for (int i = 0; i < 60_000; i++)
        {
            var (before, after, inside, peer) = seen[random.Next(seen.Count)];
            nat.Observe(before, after, at += 1000, closing: false);
            var counts = flows[(inside, peer)];
            flows[(inside, peer)] = (counts.Flows, counts.Packets + 1);
        }
        List<NatAggregate> rows = nat.Aggregates();
        Assert.Equal(flows.Count, rows.Count);
        Assert.All(rows, r => Assert.Equal(flows[(r.Inside, r.Peer)], (r.Flows, r.Packets)));
        Assert.Equal(30_000, nat.ActiveTranslations);
    }

    private static FlowKey Udp(string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(IpProtocol.Udp, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);
}
