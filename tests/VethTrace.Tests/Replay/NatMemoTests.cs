using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <see cref="NatTable"/>'s remembered places (session 13, acct17): a call whose pair of flows was applied before goes
/// straight to its translation's slot and row, and must count exactly what the general path would: never into a place
/// the table has since swept and made again (with another first kind, so another row), nor into the place of another
/// pair that shared its memo entry.
/// </summary>
public sealed class NatMemoTests
{
    private const long Second = 1_000_000_000;

    [Fact]
    public void NatTable_RememberedTranslationSweptThenMadeAgainByAnotherPing_CountedInTheNewRow()
    {
        // ICMP echo keeps the identifier out of the translation: two pings of one container to one server are one
        // translation, from two pairs of flows. The first ping's pair is remembered; the translation is swept, then made
        // again by the second ping's reply (DNAT first: the same slot, the same key, another row). The first ping's
        // remembered place is from before the sweep and must not be used: its packet counts in the DNAT row.
        var nat = new NatTable(detail: false, FlowTimeouts.Default, inUse: false);
        FlowKey ping = Icmp("172.17.0.2", 7, "198.51.100.7", 0), pingOut = Icmp("10.0.0.5", 7, "198.51.100.7", 0);
        FlowKey otherReply = Icmp("198.51.100.7", 0, "10.0.0.5", 9), otherDelivered = Icmp("198.51.100.7", 0, "172.17.0.2", 9);
        FlowKey otherPing = Icmp("172.17.0.2", 9, "198.51.100.7", 0), otherPingOut = Icmp("10.0.0.5", 9, "198.51.100.7", 0);
        Assert.Equal(3, new[] { NatTable.MemoIndex(ping, pingOut), NatTable.MemoIndex(otherReply, otherDelivered), NatTable.MemoIndex(otherPing, otherPingOut) }.Distinct().Count());

        nat.Observe(ping, pingOut, 1 * Second, closing: false);
        Assert.Equal(1, nat.ActiveTranslations); // applies the step: its place is remembered
        nat.Observe(ping, pingOut, 2 * Second, closing: false);
        Assert.Equal(1, nat.StepsQueued); // the second call went to the remembered place, no step queued

        nat.Sweep(40 * Second, FlowTimeouts.Default); // ICMP's 30 s
        Assert.Equal(0, nat.ActiveTranslations);
        nat.Observe(otherReply, otherDelivered, 41 * Second, closing: false);
        Assert.Equal(1, nat.ActiveTranslations);
        nat.Observe(ping, pingOut, 42 * Second, closing: false);

        List<NatAggregate> rows = nat.Aggregates();
        Assert.Equal((1L, 2L), Counts(Assert.Single(rows, r => r.Kind == NatKind.Snat)));
        Assert.Equal((1L, 2L), Counts(Assert.Single(rows, r => r.Kind == NatKind.Dnat)));
        Assert.All(rows, r => Assert.Equal(("172.17.0.2", "10.0.0.5", "198.51.100.7"), (r.Inside, r.Outside, r.Peer)));
    }

    [Fact]
    public void NatTable_TwoPairsSharingAMemoEntry_EachCountedInItsOwnRow()
    {
        // Two connections whose pairs of flows fall on one memo entry, both new and waiting (Delay): the second's call
        // takes the entry over, so applying the first's step must not fill it (it would give the second pair the first's
        // translation and row).
        FlowKey first = Udp("172.17.0.2", 40000, "198.51.100.7", 53), firstOut = Udp("10.0.0.5", 40000, "198.51.100.7", 53);
        (FlowKey second, FlowKey secondOut) = SharingEntryWith(first, firstOut);
        var nat = new NatTable(detail: false, FlowTimeouts.Default, inUse: false);
        nat.Observe(first, firstOut, 1 * Second, closing: false);
        nat.Observe(second, secondOut, 1 * Second, closing: false);
        Assert.Equal(2, nat.ActiveTranslations); // both applied, first's then second's
        nat.Observe(second, secondOut, 2 * Second, closing: false);
        nat.Observe(first, firstOut, 2 * Second, closing: false);
        nat.Observe(second, secondOut, 3 * Second, closing: false);

        List<NatAggregate> rows = nat.Aggregates();
        Assert.Equal((1L, 2L), Counts(Assert.Single(rows, r => r.Inside == "172.17.0.2")));
        Assert.Equal((1L, 3L), Counts(Assert.Single(rows, r => r.Inside == "172.17.0.3")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NatTable_RememberedPlaces_CountAsTheGeneralPathThroughResizesAndSweeps(bool inUse)
    {
        // Many short connections at once from a few containers, both directions, interleaved (so most calls of a known
        // translation are not repeats of the last two), some connections answered first (DNAT first), thousands held at
        // once (shards rebuilt as they grow and shrink) and swept every few seconds (translations made again with the
        // other kind). A table with detail keeps no memo: its rows and translations held are the reference.
        var fast = new NatTable(detail: false, FlowTimeouts.Default, inUse);
        var reference = new NatTable(detail: true, FlowTimeouts.Default, inUse);
        var random = new Random(1317);
        var live = new List<(FlowKey Out, FlowKey OutAfter, FlowKey Reply, FlowKey ReplyAfter)>();
        long at = 0;
        long nextSweep = 5 * Second;
        int memoCalls = 0;
        for (int i = 0; i < 60_000; i++)
        {
            at += random.Next(100_000, 2_000_000);
            bool closing = random.Next(50) == 0;
            if (live.Count > 0 && random.Next(4) != 0)
            {
                // A later packet of a connection: among the last few mostly (containers take turns), sometimes an old one.
                int pick = random.Next(3) == 0 ? random.Next(live.Count) : live.Count - 1 - random.Next(Math.Min(live.Count, 6));
                var flow = live[pick];
                long queued = fast.StepsQueued;
                if (random.Next(2) == 0)
                {
                    Both(flow.Reply, flow.ReplyAfter);
                }
                else
                {
                    Both(flow.Out, flow.OutAfter);
                }
                memoCalls += fast.StepsQueued == queued ? 1 : 0;
            }
            else
            {
                int c = random.Next(6), s = random.Next(30);
                ushort port = (ushort)(20_000 + random.Next(30_000));
                bool tcp = random.Next(2) == 0;
                string container = $"172.17.0.{c + 2}", server = $"198.51.100.{s + 1}";
                FlowKey outbound = Key(tcp, container, port, server, 443), masqueraded = Key(tcp, "10.0.0.5", port, server, 443);
                FlowKey reply = Key(tcp, server, 443, "10.0.0.5", port), delivered = Key(tcp, server, 443, container, port);
                live.Add((outbound, masqueraded, reply, delivered));
                if (random.Next(8) == 0)
                {
                    Both(reply, delivered); // the reply seen first: the translation's first kind is DNAT
                }
                else
                {
                    Both(outbound, masqueraded);
                }
            }
            if (at >= nextSweep)
            {
                fast.Sweep(at, Short);
                reference.Sweep(at, Short);
                Assert.Equal(reference.ActiveTranslations, fast.ActiveTranslations);
                nextSweep = at + random.Next(1, 8) * Second;
            }
            if (random.Next(5_000) == 0)
            {
                Assert.Equal(reference.Aggregates(), fast.Aggregates()); // a read in the middle applies what waits
            }

            void Both(in FlowKey before, in FlowKey after)
            {
                fast.Observe(before, after, at, closing);
                reference.Observe(before, after, at, closing);
            }
        }
        Assert.True(memoCalls > 10_000, $"{memoCalls} calls went to a remembered place");
        Assert.Equal(reference.ActiveTranslations, fast.ActiveTranslations);
        List<NatAggregate> expected = reference.Aggregates();
        Assert.True(expected.Count > 200, $"{expected.Count} rows");
        Assert.Contains(expected, r => r.Kind == NatKind.Dnat);
        Assert.Equal(expected, fast.Aggregates());
        Assert.Equal(reference.InUse(), fast.InUse());
    }

    /// <summary>Timeouts short enough for connections to come and go within the test: TCP 20 s, closing 4 s, UDP 6 s.</summary>
    private static readonly FlowTimeouts Short = FlowTimeouts.Default with { TcpNs = 20 * Second, TcpClosingNs = 4 * Second, UdpNs = 6 * Second };

    /// <summary>A connection from another container whose pair of flows shares <paramref name="before"/>'s memo entry.</summary>
    private static (FlowKey, FlowKey) SharingEntryWith(in FlowKey before, in FlowKey after)
    {
        int entry = NatTable.MemoIndex(before, after);
        for (ushort port = 1024; port < ushort.MaxValue; port++)
        {
            FlowKey candidate = Udp("172.17.0.3", port, "198.51.100.7", 53), candidateOut = Udp("10.0.0.5", port, "198.51.100.7", 53);
            if (NatTable.MemoIndex(candidate, candidateOut) == entry)
            {
                return (candidate, candidateOut);
            }
        }
        throw new InvalidOperationException("no port shares the entry");
    }

    private static (long, long) Counts(NatAggregate row) => (row.Flows, row.Packets);

    private static FlowKey Key(bool tcp, string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(tcp ? IpProtocol.Tcp : IpProtocol.Udp, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);

    private static FlowKey Icmp(string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(IpProtocol.Icmp, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);

    private static FlowKey Udp(string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(IpProtocol.Udp, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);
}
