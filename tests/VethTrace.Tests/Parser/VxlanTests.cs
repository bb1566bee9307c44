using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

public class VxlanTests
{
    // A container's ping leaving an overlay network, as tcpdump -X prints it on the host's egress:
    // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 0800 4500  .B.\...B......E.   outer Ethernet, IPv4
    // 0x0010:  0056 1c46 0000 4011 daeb c0a8 010a c0a8  .V.F..@.........   192.168.1.10 >
    // 0x0020:  010b c822 12b5 0042 7793 0800 0000 0010  ..."...Bw.......   192.168.1.11, UDP 51234 > 4789; VXLAN I flag, VNI 4096
    // 0x0030:  0000 0242 0a00 0103 0242 0a00 0002 0800  ...B.....B......   inner Ethernet
    // 0x0040:  4500 0024 1c46 4000 4001 098f 0a00 0002  E..$.F@.@.......   inner IPv4 10.0.0.2 >
    // 0x0050:  0a00 0103 0800 5b5d 0b0c 0001 6162 6364  ......[]....abcd   10.0.1.3, ICMP echo request id 0x0b0c seq 1
    // 0x0060:  6566 6768                                efgh
    private const string VxlanPing =
        "02429e5c1a01 0242ac110002 0800" +
        "4500 0056 1c46 0000 4011 daeb c0a8010a c0a8010b" +
        "c822 12b5 0042 7793" +
        "08 000000 001000 00" +
        "02420a000103 02420a000002 0800" +
        "4500 0024 1c46 4000 4001 098f 0a000002 0a000103" +
        "0800 5b5d 0b0c 0001 6162636465666768";

    private static byte[] InnerTcp() => Ethernet(EtherIpv4, Ipv4("10.0.0.2", "10.0.1.3", SamplePackets.Tcp, TcpData(Payload(20))));

    private static byte[] OverVxlan(byte[] innerFrame, ushort port = 4789, uint vni = 42, byte flags = 0x08) =>
        Ethernet(EtherIpv4, Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(51234, port, Vxlan(vni, innerFrame, flags))));

    /// <summary>InnerTcp inside <paramref name="levels"/> VXLAN tunnels, the outermost with VNI 1, the innermost with VNI <paramref name="levels"/>.</summary>
    private static byte[] NestedVxlan(uint levels)
    {
        byte[] frame = InnerTcp();
        for (uint level = levels; level >= 1; level--)
        {
            frame = OverVxlan(frame, vni: level);
        }
        return frame;
    }

    [Fact]
    public void Parse_VxlanVector_InnerStackIsInnermost()
    {
        byte[] frame = Hex.Parse(VxlanPing);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(1, packet.TunnelDepth);
        Assert.Equal(4096u, packet.Vni);
        Assert.True(packet.Outer.Has(LayerSet.Tunnel));
        Assert.Equal(IpAddress.Parse(HostEgress), packet.Outer.Source);
        Assert.Equal(IpAddress.Parse("192.168.1.11"), packet.Outer.Destination);
        Assert.Equal(4789, packet.Outer.DestinationPort);
        Assert.Equal((42, 58, 58), (packet.Outer.PayloadOffset, packet.Outer.PayloadLength, packet.Outer.CapturedPayloadLength));
        ref readonly var inner = ref packet.Innermost;
        Assert.Equal(LayerSet.Link | LayerSet.Network | LayerSet.Transport, inner.Layers);
        Assert.Equal(LinkType.Ethernet, inner.LinkType);
        Assert.Equal(50, inner.LinkOffset);
        Assert.Equal(64, inner.NetworkOffset);
        Assert.Equal(IpAddress.Parse("10.0.0.2"), inner.Source);
        Assert.Equal(IpAddress.Parse("10.0.1.3"), inner.Destination);
        Assert.True(inner.IsIcmp);
        Assert.Equal((0x0b0c, 1), (inner.IcmpIdentifier, inner.IcmpSequence));
        Assert.Equal((92, 8, 8), (inner.PayloadOffset, inner.PayloadLength, inner.CapturedPayloadLength));
    }

    [Fact]
    public void PacketBuilder_VxlanPing_MatchesLiteralVector()
    {
        byte[] inner = Ethernet(EtherIpv4, Ipv4("10.0.0.2", "10.0.1.3", SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 1, Payload(8))),
            source: "02:42:0a:00:00:02", destination: "02:42:0a:00:01:03");
        byte[] built = Ethernet(EtherIpv4, Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(51234, 4789, Vxlan(4096, inner)), dontFragment: false));

        Assert.Equal(Hex.ToHex(Hex.Parse(VxlanPing)), Hex.ToHex(built));
    }

    [Fact]
    public void Parse_VxlanTcp_InnerTcpFieldsRead()
    {
        var packet = Parse(OverVxlan(InnerTcp()), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(42u, packet.Vni);
        ref readonly var inner = ref packet.Innermost;
        Assert.True(inner.IsTcp);
        Assert.Equal((43512, 80), (inner.SourcePort, inner.DestinationPort));
        Assert.Equal(0x1a2b3c4du, inner.TcpSequence);
        Assert.Equal(20, inner.PayloadLength);
        Assert.Equal(51234, packet.Outer.SourcePort);
    }

    [Fact]
    public void Parse_VxlanCustomPort_DecapsulatedOnlyWithThatOption()
    {
        byte[] frame = OverVxlan(InnerTcp(), port: 8472); // the Linux kernel's historic VXLAN port, used by flannel

        var custom = Parse(frame, LinkType.Ethernet, new ParserOptions { VxlanPort = 8472 });
        var standard = Parse(frame, LinkType.Ethernet);

        Assert.Equal(1, custom.TunnelDepth);
        Assert.True(custom.Innermost.IsTcp);
        Assert.Equal(0, standard.TunnelDepth);
        Assert.Equal(ParseOutcome.Complete, standard.Outcome);
        Assert.False(standard.Outer.Has(LayerSet.Tunnel));
        Assert.Equal(8472, standard.Innermost.DestinationPort);
    }

    [Fact]
    public void Parse_VxlanPortZero_DecapsulationDisabled()
    {
        var packet = Parse(OverVxlan(InnerTcp()), LinkType.Ethernet, new ParserOptions { VxlanPort = 0 });

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(0, packet.TunnelDepth);
        Assert.True(packet.Innermost.IsUdp);
        Assert.Equal(IpAddress.Parse(HostEgress), packet.Innermost.Source);
    }

    [Fact]
    public void Parse_VxlanWithoutIFlag_PlainUdp()
    {
        var packet = Parse(OverVxlan(InnerTcp(), flags: 0x00), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(0, packet.TunnelDepth);
        Assert.False(packet.Outer.Has(LayerSet.Tunnel));
        Assert.True(packet.Innermost.IsUdp);
    }

    [Fact]
    public void Parse_UdpFromPort4789_NotDecapsulated()
    {
        // Only the destination port marks VXLAN (RFC 7348 section 5); the source port is a flow hash.
        byte[] frame = Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(4789, 51234, Vxlan(1, InnerTcp())));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(0, packet.TunnelDepth);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void Parse_DatagramTooShortForVxlan_PlainUdp(int dataLength)
    {
        byte[] frame = Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(51234, 4789, Payload(dataLength)));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(0, packet.TunnelDepth);
        Assert.Equal(dataLength, packet.Outer.PayloadLength);
    }

    [Fact]
    public void Parse_UdpLengthLeavesNoRoomForVxlan_HeaderNotReadPastDatagram()
    {
        // The UDP length covers 4 data bytes; a VXLAN-looking header follows inside the IP packet but outside the datagram.
        byte[] frame = Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(51234, 4789, Vxlan(5, InnerTcp()), length: 12));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(0, packet.TunnelDepth);
        Assert.True(packet.Outer.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void Parse_VxlanHeaderCut_TruncatedAtTunnel(int captured)
    {
        byte[] frame = OverVxlan(InnerTcp());

        var packet = Parse(frame.AsSpan(0, 42 + captured), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Tunnel, packet.StoppedAt);
        Assert.Equal((8, captured), (packet.Required, packet.Available));
        Assert.Equal(0, packet.TunnelDepth);
        Assert.True(packet.Outer.IsUdp);
    }

    [Fact]
    public void Parse_VxlanInnerEthernetCut_TruncatedAtLinkWithDepthOne()
    {
        byte[] frame = OverVxlan(InnerTcp());

        var packet = Parse(frame.AsSpan(0, 50 + 10), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Link, packet.StoppedAt);
        Assert.Equal(1, packet.TunnelDepth);
        Assert.Equal(42u, packet.Vni);
        Assert.Equal(LayerSet.None, packet.Innermost.Layers);
        Assert.True(packet.Outer.Has(LayerSet.Tunnel));
    }

    [Fact]
    public void Parse_VxlanInnerArp_UnsupportedProtocolInInnerStack()
    {
        byte[] arp = Hex.Parse("0001 0800 06 04 0001 02420a000002 0a000002 000000000000 0a000103");
        var packet = Parse(OverVxlan(Ethernet(0x0806, arp, destination: "ff:ff:ff:ff:ff:ff")), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.Equal(1, packet.TunnelDepth);
        Assert.Equal(EtherType.Arp, packet.Innermost.EtherType);
    }

    [Fact]
    public void Parse_VxlanInVxlan_DecapsulatedToMaxTunnelDepth()
    {
        var sample = Get("vxlan-in-vxlan-icmp");

        var packet = Parse(sample.Frame, sample.LinkType);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(2, packet.TunnelDepth);
        Assert.Equal(2u, packet.Vni);
        Assert.Equal(IpAddress.Parse("10.0.0.2"), packet.Innermost.Source);
        Assert.True(packet.Innermost.IsIcmp);
        Assert.Equal(IpAddress.Parse(HostEgress), packet.Outer.Source);
    }

    [Fact]
    public void Parse_VxlanNestedAThousandDeep_StopsAtMaxTunnelDepth()
    {
        // Hostile but valid: 1000 VXLAN headers, each in its own Ethernet/IPv4/UDP, in one 50 KB frame. The walk
        // stops at the bound; nothing is read or counted past it.
        byte[] frame = NestedVxlan(1000);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(ParseLayer.Tunnel, packet.StoppedAt);
        Assert.Equal(ParserOptions.Default.MaxTunnelDepth, packet.TunnelDepth);
        // The VXLAN header after the last decapsulated frame is read (its VNI kept), not followed.
        Assert.Equal((uint)ParserOptions.Default.MaxTunnelDepth + 1, packet.Vni);
        Assert.True(packet.Innermost.Has(LayerSet.Tunnel));
        AssertInvariants(in packet, frame);
    }

    [Fact]
    public void Parse_VxlanBeyondMaxTunnelDepth_LimitExceeded()
    {
        byte[] frame = NestedVxlan(3);

        var packet = Parse(frame, LinkType.Ethernet);
        var deeper = Parse(frame, LinkType.Ethernet, new ParserOptions { MaxTunnelDepth = 3 });

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(ParseLayer.Tunnel, packet.StoppedAt);
        Assert.Equal(2, packet.TunnelDepth);
        Assert.True(packet.Innermost.Has(LayerSet.Tunnel));
        Assert.Equal(ParseOutcome.Complete, deeper.Outcome);
        Assert.Equal(3, deeper.TunnelDepth);
        Assert.Equal(3u, deeper.Vni);
        Assert.True(deeper.Innermost.IsTcp);
    }

    [Fact]
    public void Parse_MaxTunnelDepthOne_SecondLevelLimitExceeded()
    {
        var packet = Parse(Get("vxlan-in-vxlan-icmp").Frame, LinkType.Ethernet, new ParserOptions { MaxTunnelDepth = 1 });

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(1, packet.TunnelDepth);
        Assert.Equal(IpAddress.Parse("10.9.0.1"), packet.Innermost.Source);
    }

    [Fact]
    public void Parse_VxlanInFirstFragment_NotDecapsulated()
    {
        byte[] frame = Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp, PacketBuilder.Udp(51234, 4789, Vxlan(1, InnerTcp())),
            dontFragment: false, moreFragments: true);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(0, packet.TunnelDepth);
        Assert.True(packet.Outer.IsUdp);
    }

    [Fact]
    public void Parse_VxlanOverIpv6WithVlanInside_InnerVlanRead()
    {
        var sample = Get("vxlan-ipv6-vlan-udp");

        var packet = Parse(sample.Frame, sample.LinkType);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(77u, packet.Vni);
        Assert.Equal(6, packet.Outer.IpVersion);
        Assert.Equal(42, packet.Innermost.OuterVlanId);
        Assert.Equal(IpAddress.Parse("fd00:1::2"), packet.Innermost.Source);
        Assert.True(packet.Innermost.IsUdp);
    }
}
