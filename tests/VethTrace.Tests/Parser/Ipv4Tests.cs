using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

public class Ipv4Tests
{
    private static readonly byte[] Segment = PacketBuilder.Tcp(43512, 80, 1000, 2000, TcpFlags.Ack | TcpFlags.Psh, payload: Payload(10));

    [Theory]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(10)]
    [InlineData(15)]
    public void Parse_Ipv4WithOptions_TransportAfterOptions(int ihl)
    {
        // IHL words of header: 20 fixed bytes, then NOP options up to the last word, which is EOL.
        byte[] options = [.. Enumerable.Repeat((byte)1, ihl * 4 - 21), 0];
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp, Segment, options: options));

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(ihl * 4, packet.Outer.IpHeaderLength);
        Assert.Equal(14 + ihl * 4, packet.Outer.TransportOffset);
        Assert.Equal(ihl * 4 + 30, packet.Outer.IpTotalLength);
        Assert.Equal(43512, packet.Outer.SourcePort);
        Assert.Equal(1000u, packet.Outer.TcpSequence);
        Assert.Equal(14 + ihl * 4 + 20, packet.Outer.PayloadOffset);
        Assert.Equal(10, packet.Outer.PayloadLength);
    }

    [Fact]
    public void Parse_Ipv4Fields_Read()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Tcp, Segment, identification: 0xbeef, ttl: 63, tos: 0xb8, dontFragment: false);

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(0xbeefu, l.IpId);
        Assert.Equal(63, l.Ttl);
        Assert.Equal(0xb8, l.TrafficClass);
        Assert.Equal(IpProtocol.Tcp, l.Protocol);
        Assert.Equal(PacketFlags.None, l.Flags);
        Assert.Equal(0, l.ExtensionHeaderCount);
    }

    [Fact]
    public void Parse_DontFragment_Flagged()
    {
        var packet = Parse(Ipv4(Container, Remote, SamplePackets.Tcp, Segment, dontFragment: true), LinkType.Raw);

        Assert.Equal(PacketFlags.DontFragment, packet.Outer.Flags);
        Assert.Equal(0, packet.Outer.FragmentOffset);
    }

    [Fact]
    public void Parse_FirstFragment_HasTransport()
    {
        // A 3000-byte UDP datagram's first fragment: MF set, offset 0, the UDP header declares the whole datagram.
        byte[] udp = PacketBuilder.Udp(40000, 5000, Payload(1472), length: 3008);
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Udp, udp, dontFragment: false, moreFragments: true, identification: 7));

        var packet = Parse(frame, LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(PacketFlags.Fragment | PacketFlags.MoreFragments, l.Flags);
        Assert.True(l.IsUdp);
        Assert.Equal(3008, l.UdpLength);
        // The datagram continues in later fragments: only this fragment's data is payload here, and the
        // lengths disagreeing is normal, not a mismatch.
        Assert.Equal(1472, l.PayloadLength);
        Assert.Equal(1472, l.CapturedPayloadLength);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Parse_NonFirstFragment_StopsWithoutTransport(bool moreFragments)
    {
        byte[] data = Payload(64);
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Udp, data, dontFragment: false, moreFragments: moreFragments, fragmentOffset: 1480));

        var packet = Parse(frame, LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.NonFirstFragment, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.False(l.Has(LayerSet.Transport));
        Assert.True(l.Has(LayerSet.Network));
        Assert.Equal(1480, l.FragmentOffset);
        Assert.Equal(moreFragments ? PacketFlags.Fragment | PacketFlags.MoreFragments : PacketFlags.Fragment, l.Flags);
        Assert.Equal((34, 64, 64), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
        Assert.Equal((0, 0), (l.SourcePort, l.DestinationPort));
    }

    [Fact]
    public void Parse_EthernetPadding_TrailingBytesAndPayloadFromIpLength()
    {
        // A bare ACK is 54 bytes; the NIC pads it to 60. The 6 zero bytes are not TCP data.
        // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 0800 4500
        // 0x0010:  0028 1c46 4000 4006 ....                     total length 40
        // 0x0030:  .... .... .... 0000 0000 0000               padding
        byte[] frame = Get("eth-ipv4-tcp-ack-padded").Frame;
        Assert.Equal(60, frame.Length);

        var packet = Parse(frame, LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(40, l.IpTotalLength);
        Assert.Equal(PacketFlags.TrailingBytes | PacketFlags.DontFragment, l.Flags);
        Assert.Equal((54, 0, 0), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
    }

    [Fact]
    public void Parse_PaddedUdp_PayloadFromIpLength()
    {
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, [0xAB])), padTo60: true);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(packet.Outer.Flags.HasFlag(PacketFlags.TrailingBytes));
        Assert.False(packet.Outer.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
        Assert.Equal((1, 1), (packet.Outer.PayloadLength, packet.Outer.CapturedPayloadLength));
    }

    [Fact]
    public void Parse_TotalLengthBeyondCapture_FlaggedAndPayloadClamped()
    {
        // Captured with a 96-byte snaplen: the IP header says 20 + 20 + 1000.
        byte[] full = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack, payload: Payload(1000))));

        var packet = Parse(full.AsSpan(0, 96), LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.Flags.HasFlag(PacketFlags.IpLengthBeyondCapture));
        Assert.Equal(1040, l.IpTotalLength);
        Assert.Equal(1000, l.PayloadLength);
        Assert.Equal(96 - 54, l.CapturedPayloadLength);
    }

    [Fact]
    public void Parse_TotalLengthZero_UsesCapturedLength()
    {
        // A TSO super-packet captured before segmentation may carry total length 0 (Linux big TCP).
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack, payload: Payload(100)), totalLength: 0));

        var packet = Parse(frame, LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.Flags.HasFlag(PacketFlags.IpLengthFromCapture));
        Assert.Equal(140, l.IpTotalLength);
        Assert.Equal(100, l.PayloadLength);
    }

    [Theory]
    [InlineData(19)]
    [InlineData(1)]
    public void Parse_TotalLengthBelowHeaderLength_MalformedAtNetwork(int totalLength)
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Tcp, Segment, totalLength: totalLength);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
    }

    [Fact]
    public void Parse_TotalLengthInsideOptions_MalformedAtNetwork()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Tcp, Segment, options: new byte[20], totalLength: 32);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
    }

    [Theory]
    [InlineData(6, 5)]
    [InlineData(0, 5)]
    [InlineData(15, 5)]
    [InlineData(4, 4)]
    [InlineData(4, 0)]
    public void Parse_BadVersionOrIhl_MalformedAtNetwork(int version, int ihl)
    {
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp, Segment, version: version, ihl: ihl));

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.False(packet.Outer.Has(LayerSet.Network));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    public void Parse_FixedHeaderCut_TruncatedAtNetwork(int captured)
    {
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp, Segment));

        var packet = Parse(frame.AsSpan(0, 14 + captured), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.Equal((20, captured), (packet.Required, packet.Available));
        Assert.False(packet.Outer.Has(LayerSet.Network));
    }

    [Fact]
    public void Parse_OptionsCut_TruncatedAtNetworkWithFixedFieldsKept()
    {
        byte[] frame = Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Tcp, Segment, options: new byte[40]));

        var packet = Parse(frame.AsSpan(0, 14 + 30), LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.Equal((60, 30), (packet.Required, packet.Available));
        Assert.Equal(IpAddress.Parse(Remote), packet.Outer.Destination);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
    }

    [Fact]
    public void Parse_UnknownProtocol_UnsupportedWithPayload()
    {
        // GRE (47): the parser records where its bytes are and stops.
        byte[] frame = Ipv4(HostEgress, Remote, 47, Payload(24));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.Equal(IpProtocol.Gre, packet.Outer.Protocol);
        Assert.Equal((20, 24, 24), (packet.Outer.PayloadOffset, packet.Outer.PayloadLength, packet.Outer.CapturedPayloadLength));
    }
}
