using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

public class Ipv6Tests
{
    private static readonly byte[] Segment = PacketBuilder.Tcp(43512, 443, 1000, 2000, TcpFlags.Ack, payload: Payload(10));

    // A UDP datagram over IPv6, no extension headers (RFC 8200 section 3):
    // 0x0000:  6e0a bcde 0010 1140 fd00 dead beef 0000  version 6, class 0xe0, flow 0xabcde, length 16, UDP, hop limit 64
    // 0x0010:  0000 0000 0000 0002 2001 0db8 0000 0000  source fd00:dead:beef::2, destination 2001:db8::1
    // 0x0020:  0000 0000 0000 0001 9c40 0035 0010 ....  UDP 40000 > 53, length 16, checksum
    // 0x0030:  6162 6364 6566 6768                      abcdefgh
    private const string Ipv6UdpVector =
        "6e0abcde 0010 11 40 fd00deadbeef00000000000000000002 20010db8000000000000000000000001" +
        "9c40 0035 0010 0000 6162636465666768";

    [Fact]
    public void Parse_Ipv6UdpVector_ReadsFixedHeader()
    {
        var packet = Parse(Hex.Parse(Ipv6UdpVector), LinkType.Ipv6);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(6, l.IpVersion);
        Assert.Equal(0xe0, l.TrafficClass);
        Assert.Equal(0xabcdeu, l.FlowLabel);
        Assert.Equal(64, l.Ttl);
        Assert.Equal(IpAddress.Parse("fd00:dead:beef::2"), l.Source);
        Assert.Equal(IpAddress.Parse("2001:db8::1"), l.Destination);
        Assert.Equal(IpProtocol.Udp, l.Protocol);
        Assert.Equal(56, l.IpTotalLength);
        Assert.Equal(40, l.IpHeaderLength);
        Assert.Equal((40000, 53, 16), (l.SourcePort, l.DestinationPort, (int)l.UdpLength));
        Assert.Equal((48, 8, 8), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
        Assert.Equal(0u, l.IpId);
    }

    public static TheoryData<string, int> ExtensionKinds => new()
    {
        { "hop-by-hop", 8 },
        { "hop-by-hop-24", 24 },
        { "routing", 24 },
        { "destination-options", 8 },
        { "fragment", 8 },
        { "authentication-header", 24 },
        { "mobility", 16 },
    };

    private static Extension ExtensionNamed(string name) => name switch
    {
        "hop-by-hop" => Extension.HopByHop(),
        "hop-by-hop-24" => Extension.HopByHop(24),
        "routing" => Extension.Routing(),
        "destination-options" => Extension.DestinationOptions(),
        "fragment" => Extension.Fragment(0, more: false, identification: 0x01020304), // an atomic fragment (RFC 6946)
        "authentication-header" => Extension.AuthenticationHeader(),
        "mobility" => Extension.Generic(135, 16),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(ExtensionKinds))]
    public void Parse_EachExtensionHeaderKind_WalkedToTransport(string kind, int length)
    {
        byte[] frame = Ethernet(EtherIpv6, Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, [ExtensionNamed(kind)]));

        var packet = Parse(frame, LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(1, l.ExtensionHeaderCount);
        Assert.Equal(40 + length, l.IpHeaderLength);
        Assert.Equal(14 + 40 + length, l.TransportOffset);
        Assert.Equal(IpProtocol.Tcp, l.Protocol);
        Assert.Equal(443, l.DestinationPort);
        Assert.Equal(1000u, l.TcpSequence);
        Assert.Equal(10, l.PayloadLength);
    }

    [Fact]
    public void Parse_ChainOfEveryKind_WalkedInOrder()
    {
        var sample = Get("ipv6-extension-headers-tcp");

        var packet = Parse(sample.Frame, sample.LinkType);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(5, l.ExtensionHeaderCount);
        Assert.Equal(40 + 8 + 16 + 24 + 8 + 24, l.IpHeaderLength);
        Assert.Equal(0xfeedf00du, l.IpId);
        Assert.True(l.IsTcp);
        Assert.True(l.Flags.HasFlag(PacketFlags.Fragment | PacketFlags.MoreFragments));
    }

    [Fact]
    public void Parse_FirstFragmentHeader_TransportAndIdentification()
    {
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(40000, 5000, Payload(1000), length: 3008),
            [Extension.Fragment(0, more: true, identification: 0xcafe0001)]);

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(PacketFlags.Fragment | PacketFlags.MoreFragments, l.Flags);
        Assert.Equal(0xcafe0001u, l.IpId);
        Assert.Equal(0, l.FragmentOffset);
        Assert.True(l.IsUdp);
        Assert.Equal(1000, l.PayloadLength);
        Assert.False(l.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
    }

    [Fact]
    public void Parse_NonFirstFragmentHeader_StopsWithoutTransport()
    {
        // 0x0028:  1100 04d1 cafe 0001 ...   fragment header: next UDP, offset 1232 (154 units), M set, id 0xcafe0001
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Udp, Payload(64),
            [Extension.HopByHop(), Extension.Fragment(1232, more: true, identification: 0xcafe0001)]);

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.NonFirstFragment, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.False(l.Has(LayerSet.Transport));
        Assert.Equal(1232, l.FragmentOffset);
        Assert.Equal(0xcafe0001u, l.IpId);
        Assert.Equal(IpProtocol.Udp, l.Protocol);
        Assert.Equal(2, l.ExtensionHeaderCount);
        Assert.Equal((56, 64, 64), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
    }

    [Fact]
    public void Parse_ChainLongerThanMaxExtensionHeaders_LimitExceeded()
    {
        Extension[] chain = [.. Enumerable.Repeat(Extension.DestinationOptions(), 17)];
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, chain);

        var packet = Parse(frame, LinkType.Raw);
        var withinLimit = Parse(Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, chain[..16]), LinkType.Raw);

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(ParseLayer.IpExtension, packet.StoppedAt);
        Assert.Equal(16, packet.Outer.ExtensionHeaderCount);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
        Assert.Equal(ParseOutcome.Complete, withinLimit.Outcome);
        Assert.Equal(16, withinLimit.Outer.ExtensionHeaderCount);
    }

    [Fact]
    public void Parse_ChainOfSevenThousandHeaders_WalkStopsAtTheBound()
    {
        // Hostile but valid: 7000 destination options headers (56 KB) before the TCP segment, within one IPv6
        // payload. The walk stops at MaxExtensionHeaders and keeps the fixed header and the headers it walked.
        Extension[] chain = [.. Enumerable.Repeat(Extension.DestinationOptions(), 7000)];
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, chain);
        Assert.True(frame.Length > 7000 * 8);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(ParseLayer.IpExtension, packet.StoppedAt);
        Assert.Equal(ParserOptions.Default.MaxExtensionHeaders, packet.Outer.ExtensionHeaderCount);
        Assert.True(packet.Outer.Has(LayerSet.Network));
        Assert.False(packet.Outer.Has(LayerSet.Transport));
        AssertInvariants(in packet, frame);
    }

    [Fact]
    public void Parse_CustomMaxExtensionHeaders_Honoured()
    {
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, [Extension.HopByHop(), Extension.DestinationOptions(), Extension.Routing()]);

        var packet = Parse(frame, LinkType.Raw, new ParserOptions { MaxExtensionHeaders = 2 });

        Assert.Equal(ParseOutcome.LimitExceeded, packet.Outcome);
        Assert.Equal(2, packet.Outer.ExtensionHeaderCount);
    }

    [Fact]
    public void Parse_NoNextHeader_CompleteWithoutTransport()
    {
        var packet = Parse(Get("ipv6-no-next-header").Frame, LinkType.Ipv6);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(ParseLayer.Payload, packet.StoppedAt);
        Assert.Equal(IpProtocol.NoNextHeader, packet.Outer.Protocol);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
        Assert.Equal(0, packet.Outer.PayloadLength);
    }

    [Fact]
    public void Parse_NoNextHeaderWithZeroPayloadLength_NotTakenFromCapture()
    {
        byte[] frame = Ethernet(EtherIpv6, Ipv6(Container6, Remote6, 59, []), padTo60: true);

        var packet = Parse(frame, LinkType.Ethernet);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(40, packet.Outer.IpTotalLength);
        Assert.Equal(PacketFlags.TrailingBytes, packet.Outer.Flags);
    }

    [Fact]
    public void Parse_ZeroPayloadLength_UsesCapturedLength()
    {
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, payloadLength: 0);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(packet.Outer.Flags.HasFlag(PacketFlags.IpLengthFromCapture));
        Assert.Equal(frame.Length, packet.Outer.IpTotalLength);
        Assert.Equal(10, packet.Outer.PayloadLength);
    }

    [Fact]
    public void Parse_Esp_UnsupportedProtocolAtTransport()
    {
        byte[] esp = [0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, .. Payload(32)]; // SPI, sequence, encrypted data
        byte[] frame = Ipv6(Container6, Remote6, 50, esp, [Extension.DestinationOptions()]);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.UnsupportedProtocol, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.Equal(IpProtocol.Esp, packet.Outer.Protocol);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
        Assert.Equal((48, 40), (packet.Outer.PayloadOffset, packet.Outer.PayloadLength));
    }

    [Fact]
    public void Parse_ExtensionHeaderPastPayloadLength_Malformed()
    {
        // The payload length says 8 bytes; the hop-by-hop header declares 16 and all of it was captured.
        byte[] frame = Ipv6(Container6, Remote6, 59, [], [Extension.HopByHop(16)], payloadLength: 8);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.IpExtension, packet.StoppedAt);
        Assert.Equal(0, packet.Outer.ExtensionHeaderCount);
        Assert.True(packet.Outer.Has(LayerSet.Network));
    }

    [Fact]
    public void Parse_ExtensionHeaderCutByCapture_Truncated()
    {
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, [Extension.HopByHop(), Extension.Routing()]);

        var packet = Parse(frame.AsSpan(0, 40 + 8 + 10), LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.IpExtension, packet.StoppedAt);
        Assert.Equal((24, 10), (packet.Required, packet.Available));
        Assert.Equal(1, packet.Outer.ExtensionHeaderCount);
        Assert.Equal(IpProtocol.Routing, packet.Outer.Protocol);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void Parse_ExtensionHeaderCutBeforeItsMinimum_TruncatedRequiringEight(int captured)
    {
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Tcp, Segment, [Extension.Fragment(0, true, 1)]);

        var packet = Parse(frame.AsSpan(0, 40 + captured), LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal((8, captured), (packet.Required, packet.Available));
    }

    [Fact]
    public void Parse_FixedHeaderCut_TruncatedAtNetwork()
    {
        var packet = Parse(Hex.Parse(Ipv6UdpVector).AsSpan(0, 39), LinkType.Ipv6);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
        Assert.Equal((40, 39), (packet.Required, packet.Available));
    }

    [Fact]
    public void Parse_WrongVersion_MalformedAtNetwork()
    {
        byte[] frame = Hex.Parse(Ipv6UdpVector);
        frame[0] = 0x4e;

        var packet = Parse(frame, LinkType.Ipv6);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Network, packet.StoppedAt);
    }
}
