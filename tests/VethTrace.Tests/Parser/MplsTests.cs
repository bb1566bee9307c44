using VethTrace.Cli.Output;
using VethTrace.Flows;
using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// MPLS label stacks after the link layer (RFC 3032): EtherType 0x8847 (unicast) or 0x8848 (multicast, RFC 5332), entries
/// walked to the bottom-of-stack bit within a bound, then IPv4 or IPv6 told by the version nibble; over Ethernet (with
/// VLAN tags), Linux cooked captures and PPP (protocols 0x0281, 0x0283). The real captures are
/// compared with tshark in <see cref="CorpusGapTests"/>.
/// </summary>
public class MplsTests
{
    private const ushort MplsUnicast = 0x8847;
    private const ushort MplsMulticast = 0x8848;

    private static byte[] Ipv4Udp() => Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(40001, 53, Payload(29)));

    private static byte[] Ipv6Tcp() => Ipv6("2001:db8:2::10", Remote6, SamplePackets.Tcp, TcpData(Payload(32)));

    // tcpdump -X of the frame below (Ethernet, MPLS label 16006 TC 3 S TTL 254, then IPv4):
    // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 8847 03e8  .B.\...B....G...
    // 0x0010:  67fe 4500 ...                            g.E.
    [Fact]
    public void Parse_OneLabelVector_ReadsEntryFields()
    {
        byte[] frame = Hex.Parse("02429e5c1a01 0242ac110002 8847 03e867fe").Concat(Ipv4Udp()).ToArray();

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        ref readonly var layers = ref packet.Outer;
        Assert.Equal(LayerSet.Link | LayerSet.Mpls | LayerSet.Network | LayerSet.Transport, layers.Layers);
        Assert.Equal(EtherType.MplsUnicast, layers.EtherType);
        Assert.Equal(1, layers.MplsCount);
        MplsLabel label = Assert.Single(layers.MplsLabels.ToArray());
        Assert.Equal((16006u, (byte)3, true, (byte)254), (label.Label, label.TrafficClass, label.BottomOfStack, label.Ttl));
        Assert.Equal(18, layers.NetworkOffset);
        Assert.Equal(4, layers.IpVersion);
        Assert.Equal((40001, 53), (layers.SourcePort, layers.DestinationPort));
        Assert.Equal(29, layers.PayloadLength);
    }

    [Fact]
    public void Parse_TwoLabelsBehindVlanTag_Ipv6ByVersionNibble()
    {
        byte[] frame = Ethernet(MplsMulticast, Mpls([new(299_792, 5, 63), new(2, 0, 64)], Ipv6Tcp()), [Tag.Q(200)]);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        ref readonly var layers = ref packet.Outer;
        Assert.Equal(200, layers.OuterVlanId);
        Assert.Equal(EtherType.MplsMulticast, layers.EtherType);
        Assert.Equal([299_792u, 2u], layers.MplsLabels.ToArray().Select(l => l.Label));
        Assert.Equal([false, true], layers.MplsLabels.ToArray().Select(l => l.BottomOfStack));
        Assert.Equal([(byte)63, (byte)64], layers.MplsLabels.ToArray().Select(l => l.Ttl));
        Assert.Equal(14 + 4 + 8, layers.NetworkOffset);
        Assert.Equal(6, layers.IpVersion);
        Assert.True(layers.IsTcp);
        Assert.Equal(32, layers.PayloadLength);
    }

    [Fact]
    public void Parse_FullCapacityStack_AllLabelsKept()
    {
        Label[] labels = [.. Enumerable.Range(100, MplsLabelStack.Capacity).Select(l => new Label((uint)l))];
        byte[] frame = Ethernet(MplsUnicast, Mpls(labels, Ipv4Udp()));

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(labels.Select(l => l.Value), packet.Outer.MplsLabels.ToArray().Select(l => l.Label));
    }

    [Fact]
    public void Parse_StackDeeperThanCapacity_LimitExceeded()
    {
        Label[] labels = [.. Enumerable.Range(100, MplsLabelStack.Capacity + 1).Select(l => new Label((uint)l))];
        byte[] frame = Ethernet(MplsUnicast, Mpls(labels, Ipv4Udp()));

        var packet = Parse(frame, LinkType.Ethernet, new ParserOptions { MaxMplsLabels = 1000 });

        Assert.Equal((ParseOutcome.LimitExceeded, ParseLayer.Mpls), (packet.Outcome, packet.StoppedAt));
        Assert.Equal(MplsLabelStack.Capacity, packet.Outer.MplsCount);
        Assert.False(packet.Outer.Has(LayerSet.Network));
    }

    [Fact]
    public void Parse_StackDeeperThanOption_LimitExceeded()
    {
        byte[] frame = Ethernet(MplsUnicast, Mpls([new(1), new(2), new(3)], Ipv4Udp()));

        Assert.Equal(ParseOutcome.Complete, Parse(frame, LinkType.Ethernet, new ParserOptions { MaxMplsLabels = 3 }).Outcome);
        var packet = Parse(frame, LinkType.Ethernet, new ParserOptions { MaxMplsLabels = 2 });
        Assert.Equal((ParseOutcome.LimitExceeded, ParseLayer.Mpls), (packet.Outcome, packet.StoppedAt));
        Assert.Equal(2, packet.Outer.MplsCount);
    }

    [Fact]
    public void Parse_NoBottomOfStackBeforeFrameEnds_Truncated()
    {
        // Two entries, neither with the S bit, and then the frame ends: the next entry is missing.
        byte[] frame = Ethernet(MplsUnicast, Mpls([new(1), new(2)], [], noBottom: true));

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal((ParseOutcome.Truncated, ParseLayer.Mpls), (packet.Outcome, packet.StoppedAt));
        Assert.Equal((4, 0), (packet.Required, packet.Available));
        Assert.Equal(2, packet.Outer.MplsCount);
    }

    [Theory]
    [InlineData(0x00)] // a pseudowire control word (RFC 4385) or an Ethernet pseudowire
    [InlineData(0x10)] // a pseudowire associated channel (RFC 4385: first nibble 1)
    [InlineData(0x52)]
    public void Parse_NotIpAfterStack_UnsupportedWithNetworkOffsetAfterLabels(byte first)
    {
        byte[] frame = Ethernet(MplsUnicast, Mpls([new(1000), new(2000)], [first, .. Payload(40)]));

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal((ParseOutcome.UnsupportedProtocol, ParseLayer.Network), (packet.Outcome, packet.StoppedAt));
        Assert.Equal(2, packet.Outer.MplsCount);
        Assert.Equal(14 + 8, packet.Outer.NetworkOffset);
        Assert.False(packet.Outer.Has(LayerSet.Network));
    }

    [Fact]
    public void Parse_MplsInsideVxlan_InnerStackHasLabels()
    {
        byte[] inner = Ethernet(MplsUnicast, Mpls([new(77)], Ipv4Udp()));
        byte[] frame = Ethernet(EtherIpv4, Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(51234, 4789, Vxlan(9, inner))));

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(0, packet.Outer.MplsCount);
        Assert.Equal(77u, packet.Innermost.MplsLabels[0].Label);
        Assert.Equal(HostEgress, packet.Innermost.Source.ToString());
    }

    [Fact]
    public void Fingerprint_LabelsSwappedOrPopped_Unchanged()
    {
        // One packet along a label-switched path: pushed with label 100 (TTL 64), swapped to 200 (TTL 63) under an
        // outer TE label, then popped by the penultimate hop (RFC 3031 section 3.16): only the labels differ.
        byte[] ip = Ipv4Udp();
        ulong pushed = Fingerprint(Ethernet(MplsUnicast, Mpls([new(100, 0, 64)], ip)));
        ulong swapped = Fingerprint(Ethernet(MplsUnicast, Mpls([new(16_001, 5, 254), new(200, 0, 63)], ip), [Tag.Q(10)]));
        ulong popped = Fingerprint(Ethernet(EtherIpv4, ip));

        Assert.Equal(popped, pushed);
        Assert.Equal(popped, swapped);
        Assert.NotEqual(popped, Fingerprint(Ethernet(MplsUnicast, Mpls([new(100, 0, 64)], Ipv4(HostEgress, "192.168.1.11",
            SamplePackets.Udp, PacketBuilder.Udp(40001, 53, Payload(30)))))));
    }

    [Fact]
    public void Fingerprint_NotIpPayloadUnderDifferentLabels_Unchanged()
    {
        byte[] pseudowire = [0x00, 0x00, 0x00, 0x01, .. Payload(60)];
        ulong first = Fingerprint(Ethernet(MplsUnicast, Mpls([new(100, 0, 64)], pseudowire)));
        ulong second = Fingerprint(Ethernet(MplsUnicast, Mpls([new(16_001, 1, 250), new(300, 0, 63)], pseudowire)));

        Assert.Equal(first, second);
    }

    [Fact]
    public void Describe_LabelStack_TopFirst()
    {
        byte[] frame = Ethernet(MplsUnicast, Mpls([new(16_001), new(300)], Ipv4Udp()));
        PacketParser.Parse(frame, LinkType.Ethernet, out var packet);

        string text = PacketText.Describe(in packet);

        Assert.StartsWith("mpls 16001,300 udp 192.168.1.10:40001 > 192.168.1.11:53 len 29", text);
    }

    [Theory]
    [InlineData("ff03 0281", 4)]  // RFC 1662 framing, two-byte protocol
    [InlineData("0281", 2)]       // no address and control (LINKTYPE_PPP allows both)
    public void Parse_PppMpls_LabelsThenIp(string header, int headerLength)
    {
        byte[] frame = [.. Hex.Parse(header), .. Mpls([new(100_704, 0, 1)], Ipv4Udp())];

        var packet = Parse(frame, LinkType.Ppp);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.MplsUnicast, packet.Outer.EtherType);
        Assert.Equal(100_704u, packet.Outer.MplsLabels[0].Label);
        Assert.Equal(headerLength + 4, packet.Outer.NetworkOffset);
        Assert.True(packet.Outer.IsUdp);
    }

    [Fact]
    public void Parse_PppCompressedProtocolIpv4_Parsed()
    {
        // RFC 1661 section 6.5: protocol field compression sends 0x0021 as the single byte 0x21.
        byte[] frame = [0xFF, 0x03, 0x21, .. Ipv4Udp()];

        var packet = Parse(frame, LinkType.Ppp);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(3, packet.Outer.NetworkOffset);
        Assert.Equal(EtherType.Ipv4, packet.Outer.EtherType);
    }

    [Fact]
    public void Parse_PppLcp_NotIp()
    {
        byte[] frame = Hex.Parse("ff03 c021 0101 000e 0506 1234 5678 0702");

        var packet = Parse(frame, LinkType.Ppp);

        Assert.Equal((ParseOutcome.UnsupportedProtocol, ParseLayer.Network), (packet.Outcome, packet.StoppedAt));
        Assert.Equal(LayerSet.Link, packet.Outer.Layers);
    }

    private static ulong Fingerprint(byte[] frame)
    {
        var packet = Parse(frame, LinkType.Ethernet);
        return PacketFingerprint.Compute(in packet, frame);
    }
}
