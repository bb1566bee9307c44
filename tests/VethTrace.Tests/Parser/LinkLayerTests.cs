using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

public class LinkLayerTests
{
    private static readonly byte[] Ipv4Udp = Ipv4(Container, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(12)));
    private static readonly byte[] Ipv6Udp = Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(12)));

    // A container's SYN as tcpdump -X prints it on its veth (Ethernet II, IPv4, TCP with Linux's SYN options):
    // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 0800 4500  .B.\...B......E.
    // 0x0010:  003c 1c46 4000 4006 3c88 ac11 0002 5db8  .<.F@.@.<.....].
    // 0x0020:  d822 a9f8 0050 1a2b 3c4c 0000 0000 a002  ."...P.+<L......
    // 0x0030:  faf0 b6ff 0000 0204 05b4 0402 080a 00a1  ................
    // 0x0040:  b2c0 0000 0000 0103 0307                 ..........
    private const string EthernetSyn =
        "02429e5c1a01 0242ac110002 0800" +                     // dst MAC, src MAC, EtherType IPv4
        "4500 003c 1c46 4000 4006 3c88 ac110002 5db8d822" +    // IPv4: IHL 5, len 60, id 0x1c46, DF, TTL 64, TCP, 172.17.0.2 > 93.184.216.34
        "a9f8 0050 1a2b3c4c 00000000 a002 faf0 b6ff 0000" +    // TCP 43512 > 80, seq, ack 0, offset 10 words, SYN, win 64240
        "020405b4 0402 080a00a1b2c000000000 01 030307";        // MSS 1460, SACK permitted, TS val 0xa1b2c0 ecr 0, NOP, wscale 7

    [Fact]
    public void Parse_EthernetIpv4TcpSynVector_ReadsEveryLayer()
    {
        byte[] frame = Hex.Parse(EthernetSyn);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(ParseLayer.Payload, packet.StoppedAt);
        ref readonly var l = ref packet.Outer;
        Assert.Equal(LayerSet.Link | LayerSet.Network | LayerSet.Transport, l.Layers);
        Assert.Equal(EtherType.Ipv4, l.EtherType);
        Assert.Equal(14, l.NetworkOffset);
        Assert.Equal(34, l.TransportOffset);
        Assert.Equal(IpAddress.Parse("172.17.0.2"), l.Source);
        Assert.Equal(IpAddress.Parse("93.184.216.34"), l.Destination);
        Assert.Equal((43512, 80), (l.SourcePort, l.DestinationPort));
        Assert.Equal(0x1a2b3c4cu, l.TcpSequence);
        Assert.Equal(TcpFlags.Syn, l.TcpFlags);
        Assert.Equal(64240, l.TcpWindow);
        Assert.Equal(40, l.TcpHeaderLength);
        Assert.Equal(20, l.TcpOptionsLength);
        Assert.Equal(1460, l.TcpMss);
        Assert.Equal(0x00a1b2c0u, l.TcpTsVal);
        Assert.Equal(PacketFlags.DontFragment | PacketFlags.TcpTimestamps, l.Flags);
        Assert.Equal((74, 0, 0), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
        Assert.Equal(0, packet.TunnelDepth);
    }

    [Fact]
    public void PacketBuilder_LinuxSyn_MatchesLiteralVector()
    {
        byte[] built = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp,
            PacketBuilder.Tcp(43512, 80, 0x1a2b3c4c, 0, TcpFlags.Syn, 64240, TcpOption.LinuxSyn(0x00a1b2c0))));

        Assert.Equal(Hex.ToHex(Hex.Parse(EthernetSyn)), Hex.ToHex(built));
        // Valid IPv4 header checksum: the one's complement sum over the header is 0xffff (RFC 1071).
        Assert.Equal(0, InternetChecksum(built.AsSpan(14, 20)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(13)]
    public void Parse_EthernetShorterThanHeader_TruncatedAtLink(int length)
    {
        var packet = Parse(Hex.Parse(EthernetSyn).AsSpan(0, length), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Link, packet.StoppedAt);
        Assert.Equal((14, length), (packet.Required, packet.Available));
        Assert.Equal(LayerSet.None, packet.Outer.Layers);
    }

    [Fact]
    public void Parse_Dot1QTag_ReadsVlanIdAndInnerEtherType()
    {
        // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 8100 a064  ...   TPID 0x8100, PCP 5, VID 100
        // 0x0010:  0800 4500 ...                                 inner EtherType IPv4
        byte[] frame = Ethernet(EtherIpv4, Ipv4Udp, [new Tag(0x8100, 100, Priority: 5)]);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(LayerSet.Link | LayerSet.Vlan | LayerSet.Network | LayerSet.Transport, packet.Outer.Layers);
        Assert.Equal(1, packet.Outer.VlanCount);
        Assert.Equal(100, packet.Outer.OuterVlanId);
        Assert.Equal(0, packet.Outer.InnerVlanId);
        Assert.Equal(EtherType.Ipv4, packet.Outer.EtherType);
        Assert.Equal(18, packet.Outer.NetworkOffset);
        Assert.Equal(53, packet.Outer.DestinationPort);
    }

    [Theory]
    [InlineData((ushort)0x88A8)]
    [InlineData((ushort)0x9100)] // the pre-standard QinQ TPID
    [InlineData((ushort)0x8100)] // double 802.1Q
    public void Parse_QinQ_ReadsOuterAndInnerVlanIds(ushort outerTpid)
    {
        byte[] frame = Ethernet(EtherIpv6, Ipv6Udp, [new Tag(outerTpid, 300), Tag.Q(4094)]);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(2, packet.Outer.VlanCount);
        Assert.Equal(300, packet.Outer.OuterVlanId);
        Assert.Equal(4094, packet.Outer.InnerVlanId);
        Assert.Equal(EtherType.Ipv6, packet.Outer.EtherType);
        Assert.Equal(22, packet.Outer.NetworkOffset);
        Assert.Equal(IpAddress.Parse(Remote6), packet.Outer.Destination);
    }

    [Fact]
    public void Parse_MoreVlanTagsThanMaxVlanTags_LimitExceeded()
    {
        Tag[] tags = [Tag.Ad(1), Tag.Q(2), Tag.Q(3), Tag.Q(4), Tag.Q(5)];
        byte[] frame = Ethernet(EtherIpv4, Ipv4Udp, tags);

        var packet = Parse(frame, LinkType.Ethernet);
        var allowed = Parse(frame, LinkType.Ethernet, new ParserOptions { MaxVlanTags = 5 });

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(ParseLayer.Vlan, packet.StoppedAt);
        Assert.Equal(4, packet.Outer.VlanCount);
        Assert.False(packet.Outer.Has(LayerSet.Network));
        Assert.Equal(ParseOutcome.Complete, allowed.Outcome);
        Assert.Equal(5, allowed.Outer.VlanCount);
    }

    [Theory]
    [InlineData(14)]
    [InlineData(15)]
    [InlineData(17)]
    public void Parse_VlanTagCut_TruncatedAtVlan(int length)
    {
        byte[] frame = Ethernet(EtherIpv4, Ipv4Udp, [Tag.Q(100)]);

        var packet = Parse(frame.AsSpan(0, length), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Vlan, packet.StoppedAt);
        Assert.Equal((4, length - 14), (packet.Required, packet.Available));
        Assert.Equal(LayerSet.Link, packet.Outer.Layers);
        Assert.Equal(0, packet.Outer.VlanCount);
    }

    [Theory]
    [InlineData(LinuxPacketType.Host)]
    [InlineData(LinuxPacketType.Broadcast)]
    [InlineData(LinuxPacketType.Multicast)]
    [InlineData(LinuxPacketType.OtherHost)]
    [InlineData(LinuxPacketType.Outgoing)]
    public void Parse_LinuxSll_ReadsPacketTypeAndProtocol(LinuxPacketType packetType)
    {
        // 0x0000:  0004 0001 0006 0242 ac11 0002 0000 0800  packet type, ARPHRD_ETHER, addr len 6, MAC, pad, IPv4
        byte[] frame = Sll(EtherIpv4, Ipv4Udp, packetType);

        var packet = Parse(frame, LinkType.LinuxSll);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(packetType, packet.Outer.PacketType);
        Assert.Equal(0, packet.Outer.InterfaceIndex);
        Assert.Equal(16, packet.Outer.NetworkOffset);
        Assert.Equal(LinkType.LinuxSll, packet.Outer.LinkType);
        Assert.Equal(IpAddress.Parse("8.8.8.8"), packet.Outer.Destination);
    }

    [Fact]
    public void Parse_LinuxSllWithReinsertedVlanTag_ReadsVlan()
    {
        // libpcap puts the tag the kernel moved into skb metadata back after the cooked header.
        byte[] frame = Sll(0x8100, [0x00, 0x64, 0x08, 0x00, .. Ipv4Udp]);

        var packet = Parse(frame, LinkType.LinuxSll);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(100, packet.Outer.OuterVlanId);
        Assert.Equal(20, packet.Outer.NetworkOffset);
    }

    [Fact]
    public void Parse_LinuxSll2_ReadsInterfaceIndexAndPacketType()
    {
        // 0x0000:  86dd 0000 0000 0007 0001 0406 0242 ac11  protocol IPv6, reserved, ifindex 7, ARPHRD_ETHER, OUTGOING, addr len 6
        // 0x0010:  0002 0000 6000 ...                       MAC and pad, then IPv6
        byte[] frame = Sll2(EtherIpv6, Ipv6Udp, interfaceIndex: 7, LinuxPacketType.Outgoing);

        var packet = Parse(frame, LinkType.LinuxSll2);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(7, packet.Outer.InterfaceIndex);
        Assert.Equal(LinuxPacketType.Outgoing, packet.Outer.PacketType);
        Assert.Equal(20, packet.Outer.NetworkOffset);
        Assert.Equal(EtherType.Ipv6, packet.Outer.EtherType);
        Assert.Equal(IpAddress.Parse(Container6), packet.Outer.Source);
    }

    [Theory]
    [InlineData(113, 16)]
    [InlineData(276, 20)]
    [InlineData(0, 4)]
    [InlineData(108, 4)]
    public void Parse_CookedOrLoopbackHeaderCut_TruncatedAtLink(uint linkType, int headerLength)
    {
        byte[] header = new byte[headerLength - 1];

        var packet = Parse(header, new LinkType(linkType));

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Link, packet.StoppedAt);
        Assert.Equal((headerLength, headerLength - 1), (packet.Required, packet.Available));
    }

    [Fact]
    public void Parse_RawIpv4_ReadsNetworkAtOffsetZero()
    {
        var packet = Parse(Ipv4Udp, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.Ipv4, packet.Outer.EtherType);
        Assert.Equal(0, packet.Outer.NetworkOffset);
        Assert.Equal(4, packet.Outer.IpVersion);
        Assert.Equal(28, packet.Outer.PayloadOffset);
    }

    [Fact]
    public void Parse_RawIpv6_ReadsNetworkAtOffsetZero()
    {
        var packet = Parse(Ipv6Udp, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.Ipv6, packet.Outer.EtherType);
        Assert.Equal(6, packet.Outer.IpVersion);
        Assert.Equal(48, packet.Outer.PayloadOffset);
    }

    [Fact]
    public void Parse_RawWithUnknownVersion_MalformedAtNetwork()
    {
        byte[] frame = [.. Ipv4Udp];
        frame[0] = 0x55;

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.False(packet.Outer.Has(LayerSet.Network));
    }

    [Fact]
    public void Parse_RawEmpty_TruncatedAtNetwork()
    {
        var packet = Parse([], LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.Equal((1, 0), (packet.Required, packet.Available));
    }

    [Fact]
    public void Parse_LinkTypeIpv4_ReadsIpv4()
    {
        var packet = Parse(Ipv4Udp, LinkType.Ipv4);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.Ipv4, packet.Outer.EtherType);
        Assert.Equal(IpAddress.Parse(Container), packet.Outer.Source);
    }

    [Fact]
    public void Parse_LinkTypeIpv6_ReadsIpv6()
    {
        var packet = Parse(Ipv6Udp, LinkType.Ipv6);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.Ipv6, packet.Outer.EtherType);
        Assert.Equal(IpAddress.Parse(Container6), packet.Outer.Source);
    }

    [Fact]
    public void Parse_LinkTypeIpv4CarryingIpv6_MalformedAtNetwork()
    {
        var packet = Parse(Ipv6Udp, LinkType.Ipv4);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
    }

    [Fact]
    public void Parse_NullLittleEndianFamily2_ReadsIpv4()
    {
        // 0x0000:  0200 0000 4500 ...   AF_INET as the little-endian host wrote it
        var packet = Parse(Null(2, Ipv4Udp), LinkType.Null);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.Ipv4, packet.Outer.EtherType);
        Assert.Equal(4, packet.Outer.NetworkOffset);
        Assert.Equal(53, packet.Outer.DestinationPort);
    }

    [Theory]
    [InlineData(10u)] // Linux
    [InlineData(24u)] // NetBSD, OpenBSD
    [InlineData(28u)] // FreeBSD
    [InlineData(30u)] // Darwin
    public void Parse_NullIpv6Family_ReadsIpv6(uint family)
    {
        var packet = Parse(Null(family, Ipv6Udp), LinkType.Null);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(EtherType.Ipv6, packet.Outer.EtherType);
        Assert.Equal(IpAddress.Parse(Remote6), packet.Outer.Destination);
    }

    [Theory]
    [InlineData(2u, 4)]
    [InlineData(10u, 6)]
    [InlineData(30u, 6)]
    public void Parse_NullFamilyWrittenBigEndian_SwappedAndRead(uint family, int version)
    {
        // 0x0000:  0000 0002 ...   a big-endian host's capture read on a little-endian one
        byte[] frame = Null(family, version == 4 ? Ipv4Udp : Ipv6Udp, bigEndian: true);

        var packet = Parse(frame, LinkType.Null);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(version, packet.Outer.IpVersion);
    }

    [Theory]
    [InlineData(2u, 4)]
    [InlineData(24u, 6)]
    public void Parse_LoopBigEndianFamily_Read(uint family, int version)
    {
        byte[] frame = Null(family, version == 4 ? Ipv4Udp : Ipv6Udp, bigEndian: true);

        var packet = Parse(frame, LinkType.Loop);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(version, packet.Outer.IpVersion);
        Assert.Equal(LinkType.Loop, packet.Outer.LinkType);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(7u)] // AF_OSI: not IP
    [InlineData(0x1234u)]
    public void Parse_NullUnknownFamily_UnsupportedProtocolAtLink(uint family)
    {
        var packet = Parse(Null(family, Ipv4Udp), LinkType.Null);

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Link, packet.StoppedAt);
        Assert.Equal(LayerSet.Link, packet.Outer.Layers);
    }

    [Theory]
    [InlineData(105u)] // IEEE 802.11
    [InlineData(127u)] // radiotap
    [InlineData(147u)] // USER0
    [InlineData(uint.MaxValue)]
    public void Parse_UnknownLinkType_UnsupportedProtocolAtLink(uint linkType)
    {
        var packet = Parse(Ethernet(EtherIpv4, Ipv4Udp), new LinkType(linkType));

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Link, packet.StoppedAt);
        Assert.Equal(LayerSet.None, packet.Outer.Layers);
        Assert.Equal(linkType, packet.Outer.LinkType.Value);
    }

    [Fact]
    public void Parse_Arp_UnsupportedProtocolAtNetworkWithEtherTypeKept()
    {
        // 0x0000:  ffff ffff ffff 0242 ac11 0002 0806 0001  broadcast, ARP: hardware Ethernet
        // 0x0010:  0800 0604 0001 0242 ac11 0002 ac11 0002  IPv4, sizes 6/4, request, sender MAC and IP
        // 0x0020:  0000 0000 0000 ac11 0001                 target MAC unknown, who-has 172.17.0.1
        byte[] frame = Hex.Parse(
            "ffffffffffff 0242ac110002 0806" +
            "0001 0800 06 04 0001 0242ac110002 ac110002 000000000000 ac110001");

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.Equal(EtherType.Arp, packet.Outer.EtherType);
        Assert.Equal(LayerSet.Link, packet.Outer.Layers);
        Assert.Equal(14, packet.Outer.NetworkOffset);
    }

    [Fact]
    public void Parse_Ieee8023LengthField_UnsupportedProtocolAtLink()
    {
        // 0x0000:  0180 c200 0000 0242 ac11 0002 0026 4242  STP BPDU: 802.3 length 38, LLC DSAP/SSAP 0x42
        // 0x0010:  0300 0000 0000 ...
        byte[] frame = Ethernet(0x0026, [0x42, 0x42, 0x03, .. new byte[35]], destination: "01:80:c2:00:00:00");

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Link, packet.StoppedAt);
        Assert.True(packet.Outer.EtherType.IsLength);
        Assert.Equal(0x26, packet.Outer.EtherType.Value);
        Assert.False(packet.Outer.Has(LayerSet.Network));
    }
}
