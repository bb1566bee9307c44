using VethTrace.Capture.Files;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>The offline parts of whole-host tracing: IDB descriptions, the address selector, merged histograms, per-container figures.</summary>
public sealed class WholeHostPiecesTests
{
    [Fact]
    public void HostInterfaceDescription_FormatThenParse_GivesRoleContainerNetworkAddresses()
    {
        string text = HostInterfaceDescription.Format(InterfaceRole.Veth, "web", "backend", ["172.18.0.2", "fd00::2"]);
        Assert.Equal("host veth of container web on network backend at 172.18.0.2 fd00::2", text);

        Assert.True(HostInterfaceDescription.TryParse(text, out InterfaceRole role, out ContainerOwner? owner));
        Assert.Equal(InterfaceRole.Veth, role);
        Assert.Equal("web", owner!.Name);
        Assert.Equal("backend", owner.Network);
        Assert.Equal([IpAddress.Parse("172.18.0.2"), IpAddress.Parse("fd00::2")], owner.Addresses);

        Assert.True(HostInterfaceDescription.TryParse("bridge of the whole host", out role, out owner));
        Assert.Equal((InterfaceRole.Bridge, (ContainerOwner?)null), (role, owner));
        Assert.True(HostInterfaceDescription.TryParse(HostInterfaceDescription.Format(InterfaceRole.Egress, null, null, []), out role, out _));
        Assert.Equal(InterfaceRole.Egress, role);
    }

    [Theory]
    [InlineData("host veth of vt-c1")] // record of one container: not whole-host
    [InlineData("egress of vt-c1 (network mode bridge)")]
    [InlineData("")]
    [InlineData(null)]
    public void HostInterfaceDescription_OtherDescriptions_NotTaken(string? description) =>
        Assert.False(HostInterfaceDescription.TryParse(description, out _, out _));

    // An IPv4 ICMP echo from 172.17.0.2 to 198.51.100.2 in LINUX_SLL2 (protocol 0x0800, ifindex 428, ARPHRD_ETHER,
    // PACKET_HOST, 6-byte address) and the same packet in Ethernet, as tcpdump -xx shows them.
    private static readonly byte[] Ip = Convert.FromHexString("4500001c000100004001" + "0000" + "ac110002" + "c6336402" + "0800f7ff00000000");
    private static readonly byte[] Sll2 = [.. Convert.FromHexString("0800" + "0000" + "000001ac" + "0001" + "00" + "06" + "0242ac1100020000"), .. Ip];
    private static readonly byte[] Ethernet = [.. Convert.FromHexString("0242c63364010242ac1100020800"), .. Ip];

    [Fact]
    public void AddressSelector_SourceOrDestinationSelected_Matches()
    {
        Assert.Equal(20, Sll2.Length - Ip.Length);
        var selector = new AddressSelector();
        Assert.False(selector.Matches(Sll2, 0, LinkType.LinuxSll2));

        selector.Set([IpAddress.Parse("172.17.0.2")]);
        Assert.True(selector.Matches(Sll2, 0, LinkType.LinuxSll2));
        Assert.True(selector.Matches(Ethernet, 0, LinkType.Ethernet));

        selector.Set([IpAddress.Parse("198.51.100.2")]);
        Assert.True(selector.Matches(Sll2, 0, LinkType.LinuxSll2));

        selector.Set([IpAddress.Parse("172.17.0.3")]);
        Assert.False(selector.Matches(Sll2, 0, LinkType.LinuxSll2));
        Assert.False(selector.Matches(Ethernet, 0, LinkType.Ethernet));
    }

    [Fact]
    public void AddressSelector_TruncatedFrames_NeverMatchNorThrow()
    {
        var selector = new AddressSelector();
        selector.Set([IpAddress.Parse("172.17.0.2")]);
        for (int length = 0; length <= Sll2.Length; length++)
        {
            Assert.Equal(length >= 40, selector.Matches(Sll2.AsSpan(0, length), 0, LinkType.LinuxSll2));
        }
    }

    [Fact]
    public void AddressSelector_InnerSelectorNoMatch_NoMatch()
    {
        var selector = new AddressSelector(new Never());
        selector.Set([IpAddress.Parse("172.17.0.2")]);
        Assert.False(selector.Matches(Sll2, 0, LinkType.LinuxSll2));
    }

    [Fact]
    public void LatencyHistogram_Add_SameAsRecordingEveryValueInOne()
    {
        var random = new Random(15);
        var values = Enumerable.Range(0, 5_000).Select(_ => (long)random.Next(0, 3_000_000)).ToArray();
        LatencyHistogram all = new(), first = new(), second = new();
        for (int i = 0; i < values.Length; i++)
        {
            all.Record(values[i]);
            (i % 3 == 0 ? first : second).Record(values[i]);
        }
        first.Add(second);
        Assert.Equal(all.Count, first.Count);
        Assert.Equal((all.Min, all.Max, all.Zeros), (first.Min, first.Max, first.Zeros));
        foreach (double percent in new[] { 1.0, 50, 90, 99, 100 })
        {
            Assert.Equal(all.Percentile(percent), first.Percentile(percent));
        }
    }

    [Fact]
    public void ContainerReport_PathsAndLosses_SplitByContainerAndDirectionWorstFirst()
    {
        // Interfaces: 0 docker0, 1 egress, 2 veth of web, 3 veth of db.
        InterfaceRole[] roles = [InterfaceRole.Bridge, InterfaceRole.Egress, InterfaceRole.Veth, InterfaceRole.Veth];
        var owners = new ContainerOwners();
        owners.Assign(2, new ContainerOwner("web", "bridge", [IpAddress.Parse("172.17.0.2")]));
        owners.Assign(3, new ContainerOwner("db", "bridge", [IpAddress.Parse("172.17.0.3")]));
        var webOut = Path([2, 0, 1], 10, 40_000);
        var webIn = Path([1, 0, 2], 8, 9_000);
        var eastWest = Path([2, 0, 3], 3, 5_000);
        var shared = Path([1, 0], 7, 1_000);
        var loss = new LossReport(new FlowKey(IpProtocol.Icmp, IpAddress.Parse("172.17.0.3"), 0, IpAddress.Parse("198.51.100.2"), 0), 0, 2);
        var report = new CorrelationReport(0, 0, 0, 0, 2, [], [webOut, webIn, eastWest, shared], [], [loss]);

        var figures = ContainerReport.Build(report, id => roles[id], owners, _ => 5);

        Assert.Equal(["db", "web"], figures.Select(f => f.Owner.Name)); // db lost 2 of 5: worst
        var db = figures[0];
        Assert.Equal((0L, 3L, 2L, (int?)0, 5L), (db.PacketsOut, db.PacketsIn, db.Lost, db.WorstLossInterface, db.KernelDropped ?? -1));
        var web = figures[1];
        Assert.Equal((13L, 8L, 0L), (web.PacketsOut, web.PacketsIn, web.Lost));
        Assert.Equal(13, web.ThroughOut.Count);
        Assert.Equal(40_000, web.ThroughOut.Percentile(99));
        Assert.Equal(9_000, web.ThroughIn.Percentile(50));
        Assert.Equal("db", owners.OfLoss(loss)!.Name);
        Assert.Equal("web", owners.OfNatInside("172.17.0.2:40000")!.Name);
        Assert.Equal("web", owners.OfNatInside("172.17.0.2")!.Name);
        Assert.Null(owners.OfNatInside("198.51.100.1"));
        // web's two outbound paths were merged into a copy: each path's own figures are as they were.
        Assert.Equal((10L, 3L), (webOut.Through.Count, eastWest.Through.Count));
    }

    [Fact]
    public void ContainerReport_OnePathEachWay_NoHistogramCopied()
    {
        // 200 containers, one path each way, through-host times spread over six octaves (10 µs to 400 µs): merged
        // copies took 64 KiB per octave per container and direction (about 150 MB here); the live view builds the rows
        // once a redraw. Interfaces: 0 docker0, 1 egress, 2.. the veths.
        const int containers = 200;
        var owners = new ContainerOwners();
        var paths = new List<PathStats>();
        for (int c = 0; c < containers; c++)
        {
            owners.Assign(2 + c, new ContainerOwner($"c{c}", "bridge", [IpAddress.Parse($"172.17.{c / 250}.{2 + c % 250}")]));
            var outbound = new PathStats([2 + c, 0, 1]) { Journeys = 40 };
            var inbound = new PathStats([1, 0, 2 + c]) { Journeys = 40 };
            for (int i = 0; i < 40; i++)
            {
                outbound.Through.Record(10_000 + i * 10_000);
                inbound.Through.Record(10_000 + (39 - i) * 10_000);
            }
            paths.Add(outbound);
            paths.Add(inbound);
        }
        var report = new CorrelationReport(0, 0, 0, 0, 0, [], paths, [], []);

        ContainerReport.Build(report, id => id == 0 ? InterfaceRole.Bridge : id == 1 ? InterfaceRole.Egress : InterfaceRole.Veth, owners); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        var figures = ContainerReport.Build(report, id => id == 0 ? InterfaceRole.Bridge : id == 1 ? InterfaceRole.Egress : InterfaceRole.Veth, owners);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(allocated < 2 * 1024 * 1024, $"{allocated} bytes allocated to build {containers} rows");
        Assert.Equal(containers, figures.Count);
        Assert.All(figures, f => Assert.Equal((40L, 40L, 40L, 40L), (f.PacketsOut, f.PacketsIn, f.ThroughOut.Count, f.ThroughIn.Count)));
        Assert.All(figures, f => Assert.Equal((200_000L, 400_000L), (f.ThroughOut.Percentile(50), f.ThroughIn.Percentile(99))));
    }

    private static PathStats Path(int[] interfaces, long journeys, long throughNs)
    {
        var path = new PathStats(interfaces) { Journeys = journeys };
        for (int i = 0; i < journeys; i++)
        {
            path.Through.Record(throughNs);
        }
        return path;
    }

    private sealed class Never : IPacketSelector
    {
        public bool Matches(ReadOnlySpan<byte> frame, int originalLength, LinkType linkType) => false;
    }
}
