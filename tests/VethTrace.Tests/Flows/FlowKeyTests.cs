using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Parser;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Flows;

public class FlowKeyTests
{
    private static FlowKey KeyOf(byte[] frame, LinkType linkType)
    {
        PacketParser.Parse(frame, linkType, out var packet);
        return FlowKey.From(in packet);
    }

    private static FlowKey Raw(byte[] ip) => KeyOf(ip, LinkType.Raw);

    [Fact]
    public void From_Tcp_ProtocolAddressesAndPorts()
    {
        var key = KeyOf(EthernetIpv4Tcp(), LinkType.Ethernet);

        Assert.Equal(IpProtocol.Tcp, key.Protocol);
        Assert.Equal(IpAddress.Parse(Container), key.Source);
        Assert.Equal(43512, key.SourcePort);
        Assert.Equal(IpAddress.Parse(Remote), key.Destination);
        Assert.Equal(80, key.DestinationPort);
        Assert.False(key.IsEmpty);
    }

    [Fact]
    public void Canonical_BothDirections_SameKey()
    {
        var request = Raw(Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(43512, 80, 1, 0, TcpFlags.Syn)));
        var response = Raw(Ipv4(Remote, Container, SamplePackets.Tcp, PacketBuilder.Tcp(80, 43512, 9, 2, TcpFlags.Syn | TcpFlags.Ack)));

        var forward = request.Canonical(out bool requestReversed);
        var backward = response.Canonical(out bool responseReversed);

        Assert.Equal(forward, backward);
        Assert.NotEqual(requestReversed, responseReversed);
        Assert.Equal(request.Reversed, response);
    }

    [Fact]
    public void Canonical_LowerEndpointFirst()
    {
        // 93.184.216.34 < 172.17.0.2 numerically, so the remote end comes first.
        var key = Raw(Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(4))));

        var canonical = key.Canonical(out bool reversed);

        Assert.True(reversed);
        Assert.Equal(IpAddress.Parse(Remote), canonical.Source);
        Assert.Equal(53, canonical.SourcePort);
    }

    [Fact]
    public void Canonical_SameAddress_OrderedByPort()
    {
        var toServer = Raw(Ipv4("127.0.0.1", "127.0.0.1", SamplePackets.Tcp, PacketBuilder.Tcp(50000, 8080, 1, 0, TcpFlags.Syn)));
        var toClient = Raw(Ipv4("127.0.0.1", "127.0.0.1", SamplePackets.Tcp, PacketBuilder.Tcp(8080, 50000, 1, 2, TcpFlags.Syn | TcpFlags.Ack)));

        Assert.Equal(toServer.Canonical(out bool first), toClient.Canonical(out bool second));
        Assert.True(first);
        Assert.False(second);
        Assert.Equal(8080, toServer.Canonical(out _).SourcePort);
    }

    [Fact]
    public void Canonical_Ipv6BothDirections_SameKey()
    {
        var forward = Raw(Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(4))));
        var backward = Raw(Ipv6(Remote6, Container6, SamplePackets.Udp, PacketBuilder.Udp(53, 40000, Payload(4))));

        Assert.Equal(forward.Canonical(out _), backward.Canonical(out _));
    }

    [Fact]
    public void Canonical_IcmpEchoRequestAndReply_SameKey()
    {
        var request = Raw(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 1, Payload(56))));
        var reply = Raw(Ipv4(Remote, Container, SamplePackets.Icmp, IcmpEcho(false, 0x0b0c, 1, Payload(56))));

        // Like conntrack: the identifier is the request's source "port" and the reply's destination "port".
        Assert.Equal((0x0b0c, 0), (request.SourcePort, request.DestinationPort));
        Assert.Equal((0, 0x0b0c), (reply.SourcePort, reply.DestinationPort));
        Assert.Equal(request.Canonical(out _), reply.Canonical(out _));
    }

    [Fact]
    public void Canonical_Icmpv6EchoRequestAndReply_SameKey()
    {
        var request = Raw(Ipv6(Container6, Remote6, SamplePackets.Icmpv6, Icmpv6Echo(true, 0x0b0c, 1, Payload(8))));
        var reply = Raw(Ipv6(Remote6, Container6, SamplePackets.Icmpv6, Icmpv6Echo(false, 0x0b0c, 1, Payload(8))));

        Assert.Equal(request.Canonical(out _), reply.Canonical(out _));
        Assert.Equal(IpProtocol.IcmpV6, request.Protocol);
    }

    [Fact]
    public void Canonical_EchoesWithDifferentIdentifiers_DifferentKeys()
    {
        var first = Raw(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 1, 1, Payload(8))));
        var second = Raw(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 2, 1, Payload(8))));

        Assert.NotEqual(first.Canonical(out _), second.Canonical(out _));
    }

    [Fact]
    public void From_IcmpError_NoPorts()
    {
        byte[] quoted = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 33434, Payload(8)))[..28];
        var key = Raw(Ipv4(Gateway, Container, SamplePackets.Icmp, PacketBuilder.Icmp(11, 0, 0, quoted)));

        Assert.Equal((0, 0), (key.SourcePort, key.DestinationPort));
        Assert.Equal(IpAddress.Parse(Gateway), key.Source);
    }

    [Fact]
    public void From_NonFirstFragment_NoPorts()
    {
        var key = KeyOf(Get("eth-ipv4-fragment-second").Frame, LinkType.Ethernet);

        Assert.Equal(IpProtocol.Udp, key.Protocol);
        Assert.Equal((0, 0), (key.SourcePort, key.DestinationPort));
    }

    [Fact]
    public void From_Vxlan_InnerFlow()
    {
        var key = KeyOf(Get("vxlan-ipv4-tcp").Frame, LinkType.Ethernet);

        Assert.Equal(IpAddress.Parse("10.0.0.2"), key.Source);
        Assert.Equal(80, key.DestinationPort);
    }

    [Fact]
    public void From_NoNetworkLayer_Empty()
    {
        var arp = KeyOf(PacketBuilder.Ethernet(0x0806, new byte[28]), LinkType.Ethernet);
        var truncated = KeyOf(new byte[10], LinkType.Ethernet);

        Assert.True(arp.IsEmpty);
        Assert.Equal(default, arp);
        Assert.True(truncated.IsEmpty);
    }

    [Fact]
    public void ToString_Ipv4Tcp_IpColonPort()
    {
        var key = KeyOf(EthernetIpv4Tcp(), LinkType.Ethernet);

        Assert.Equal("172.17.0.2:43512", key.SourceEndpoint);
        Assert.Equal("93.184.216.34:80", key.DestinationEndpoint);
        Assert.Equal("tcp 172.17.0.2:43512 > 93.184.216.34:80", key.ToString());
    }

    [Fact]
    public void ToString_Ipv6Udp_BracketedAddress()
    {
        var key = Raw(Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(4))));

        Assert.Equal("[fd00:dead:beef::2]:40000", key.SourceEndpoint);
        Assert.Equal("[2001:db8::1]:53", key.DestinationEndpoint);
        Assert.Equal("udp [fd00:dead:beef::2]:40000 > [2001:db8::1]:53", key.ToString());
    }

    [Fact]
    public void ToString_Icmp_BareAddresses()
    {
        var v4 = Raw(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 1, Payload(8))));
        var v6 = Raw(Ipv6(Container6, Remote6, SamplePackets.Icmpv6, Icmpv6Echo(true, 0x0b0c, 1, Payload(8))));

        Assert.Equal("icmp 172.17.0.2 > 93.184.216.34", v4.ToString());
        Assert.Equal("icmpv6 fd00:dead:beef::2 > 2001:db8::1", v6.ToString());
        Assert.Equal("172.17.0.2", v4.SourceEndpoint);
    }
}
