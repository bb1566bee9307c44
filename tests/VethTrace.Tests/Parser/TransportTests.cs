using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

public class TransportTests
{
    private static ParsedPacket ParseTcp4(byte[] segment, int? totalLength = null) =>
        Parse(Ipv4(Container, Remote, SamplePackets.Tcp, segment, totalLength: totalLength), LinkType.Raw);

    // An established segment with timestamps and 6 bytes of data, every flag bit set including NS:
    // 0x0000:  4500 0046 1c46 4000 4006 ....  ac11 0002 5db8 d822   IPv4, total length 70
    // 0x0014:  a9f8 01bb 8000 0001 7fff fffe 81ff 0200              43512 > 443, seq 0x80000001, ack 0x7ffffffe, offset 8, NS + all 8 flags, win 512
    // 0x0024:  .... 0000 0101 080a 0102 0304 0506 0708              checksum, urgent 0, NOP NOP TS val 0x01020304 ecr 0x05060708
    // 0x0034:  6865 6c6c 6f0a                                       "hello\n"
    private static readonly byte[] AllFlagsSegment = PacketBuilder.Tcp(43512, 443, 0x80000001, 0x7ffffffe, (TcpFlags)0x1FF, 512,
        TcpOption.LinuxData(0x01020304, 0x05060708), "hello\n"u8.ToArray());

    [Fact]
    public void Parse_TcpAllFields_Read()
    {
        var packet = ParseTcp4(AllFlagsSegment);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.IsTcp);
        Assert.Equal(20, l.TransportOffset);
        Assert.Equal((43512, 443), (l.SourcePort, l.DestinationPort));
        Assert.Equal(0x80000001u, l.TcpSequence);
        Assert.Equal(0x7ffffffeu, l.TcpAcknowledgment);
        Assert.Equal(TcpFlags.Fin | TcpFlags.Syn | TcpFlags.Rst | TcpFlags.Psh | TcpFlags.Ack | TcpFlags.Urg | TcpFlags.Ece | TcpFlags.Cwr | TcpFlags.Ns, l.TcpFlags);
        Assert.Equal(512, l.TcpWindow);
        Assert.Equal(32, l.TcpHeaderLength);
        Assert.Equal(12, l.TcpOptionsLength);
        Assert.Equal(0, l.TcpMss);
        Assert.True(l.Flags.HasFlag(PacketFlags.TcpTimestamps));
        Assert.Equal(0x01020304u, l.TcpTsVal);
        Assert.Equal(0x05060708u, l.TcpTsEcr);
        Assert.Equal((52, 6, 6), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
    }

    [Theory]
    [InlineData(TcpFlags.Ns)]
    [InlineData(TcpFlags.Cwr | TcpFlags.Ece | TcpFlags.Syn)]
    [InlineData(TcpFlags.Rst)]
    [InlineData(TcpFlags.None)]
    public void Parse_TcpFlags_ReadExactly(TcpFlags flags)
    {
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 4, flags));

        Assert.Equal(flags, packet.Outer.TcpFlags);
    }

    [Fact]
    public void Parse_TcpReservedBits_NotReadAsFlags()
    {
        byte[] segment = PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack);
        segment[12] |= 0x0E; // the three reserved bits between the data offset and NS

        var packet = ParseTcp4(segment);

        Assert.Equal(TcpFlags.Ack, packet.Outer.TcpFlags);
        Assert.Equal(20, packet.Outer.TcpHeaderLength);
    }

    [Fact]
    public void Parse_TcpSynOptions_MssAndTimestamps()
    {
        var packet = Parse(Get("eth-ipv4-tcp-syn").Frame, LinkType.Ethernet);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(1460, l.TcpMss);
        Assert.Equal(0x00a1b2c0u, l.TcpTsVal);
        Assert.Equal(0u, l.TcpTsEcr);
        Assert.Equal(20, l.TcpOptionsLength);
    }

    [Fact]
    public void Parse_TcpWithoutTimestamps_NoTimestampFlag()
    {
        byte[] options = [.. TcpOption.Mss(1400), .. TcpOption.Nop(), .. TcpOption.WindowScale(9), .. TcpOption.SackPermitted()];
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 0, TcpFlags.Syn, options: options));

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal(1400, packet.Outer.TcpMss);
        Assert.False(packet.Outer.Flags.HasFlag(PacketFlags.TcpTimestamps));
        Assert.Equal((0u, 0u), (packet.Outer.TcpTsVal, packet.Outer.TcpTsEcr));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void Parse_TcpDataOffsetBelowFive_MalformedAtTransport(int words)
    {
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack, payload: Payload(8), dataOffsetWords: words));

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
    }

    [Fact]
    public void Parse_TcpDataOffsetBeyondSegment_MalformedAtTransport()
    {
        // Data offset 15 (60 bytes) in a 28-byte segment the IP length fully covers.
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack, payload: Payload(8), dataOffsetWords: 15));

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
    }

    [Fact]
    public void Parse_TcpHeaderBeyondIpLength_Malformed()
    {
        // The IP total length leaves 12 bytes for TCP; more bytes follow (padding), but they are not the segment's.
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack), totalLength: 32);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.False(packet.Outer.Has(LayerSet.Transport));
    }

    [Theory]
    [InlineData(20)]
    [InlineData(27)]
    [InlineData(39)]
    public void Parse_TcpOptionsCutBySnaplen_TruncatedAtTransport(int captured)
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 0, TcpFlags.Syn, options: TcpOption.LinuxSyn(99)));

        var packet = Parse(frame.AsSpan(0, 20 + captured), LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
        Assert.Equal((40, captured), (packet.Required, packet.Available));
        // The fixed header was read: ports and sequence survive the cut.
        Assert.True(packet.Outer.Has(LayerSet.Transport));
        Assert.Equal(3u, packet.Outer.TcpSequence);
        Assert.Equal(40, packet.Outer.TcpHeaderLength);
    }

    [Fact]
    public void Parse_TcpFixedHeaderCut_TruncatedAtTransport()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack));

        var packet = Parse(frame.AsSpan(0, 20 + 19), LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal((20, 19), (packet.Required, packet.Available));
        Assert.False(packet.Outer.Has(LayerSet.Transport));
    }

    [Theory]
    [InlineData(new byte[] { 2, 4, 0x05, 0xb4, 8, 0, 0, 0 })]     // timestamps option with length 0
    [InlineData(new byte[] { 2, 4, 0x05, 0xb4, 8, 1, 0, 0 })]     // length 1: below the 2 bytes of kind and length
    [InlineData(new byte[] { 2, 4, 0x05, 0xb4, 1, 1, 1, 8 })]     // the last option has no length byte
    [InlineData(new byte[] { 2, 4, 0x05, 0xb4, 8, 10, 0, 0 })]    // timestamps running past the header
    public void Parse_TcpOptionLengthMalformed_FlaggedAndEarlierOptionsKept(byte[] options)
    {
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Syn, options: options, payload: Payload(4)));

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.Flags.HasFlag(PacketFlags.TcpOptionsMalformed));
        Assert.False(l.Flags.HasFlag(PacketFlags.TcpTimestamps));
        Assert.Equal(1460, l.TcpMss);
        Assert.Equal(4, l.PayloadLength);
    }

    [Fact]
    public void Parse_TcpEndOfOptionList_StopsWalkWithoutError()
    {
        byte[] options = [.. TcpOption.Mss(1200), 0, 8, 0, 0]; // EOL, then junk that must not be read
        var packet = ParseTcp4(PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Syn, options: options));

        Assert.Equal(1200, packet.Outer.TcpMss);
        Assert.False(packet.Outer.Flags.HasFlag(PacketFlags.TcpOptionsMalformed));
    }

    [Fact]
    public void Parse_TcpPayloadCut_CompleteWithCapturedLength()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack, payload: Payload(100)));

        var packet = Parse(frame.AsSpan(0, 50), LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.Equal((40, 100, 10), (packet.Outer.PayloadOffset, packet.Outer.PayloadLength, packet.Outer.CapturedPayloadLength));
    }

    // UDP (RFC 768) to a DNS server:
    // 0x0000:  4500 0025 1c46 4000 4011 ....  ac11 0002 0808 0808   IPv4, total length 37, UDP
    // 0x0014:  9c40 0035 0011 ....  6162 6364 6566 6768 69          40000 > 53, length 17, 9 bytes of data
    [Fact]
    public void Parse_Udp_LengthAndPayload()
    {
        byte[] frame = Ipv4(Container, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(9)));

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.IsUdp);
        Assert.Equal((40000, 53), (l.SourcePort, l.DestinationPort));
        Assert.Equal(17, l.UdpLength);
        Assert.Equal((28, 9, 9), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
        Assert.Equal(PacketFlags.DontFragment, l.Flags);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void Parse_UdpLengthBelowEight_MalformedAtTransport(int length)
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(4), length: length));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
    }

    [Fact]
    public void Parse_UdpLengthShorterThanIp_MismatchFlaggedAndUdpLengthWins()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(20), length: 8 + 5));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(packet.Outer.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
        Assert.Equal((5, 5), (packet.Outer.PayloadLength, packet.Outer.CapturedPayloadLength));
    }

    [Fact]
    public void Parse_UdpLengthLongerThanIp_MismatchFlaggedAndIpLengthWins()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(20), length: 8 + 500));

        var packet = Parse(frame, LinkType.Raw);

        Assert.True(packet.Outer.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
        Assert.Equal(508, packet.Outer.UdpLength);
        Assert.Equal((20, 20), (packet.Outer.PayloadLength, packet.Outer.CapturedPayloadLength));
    }

    [Fact]
    public void Parse_Ipv6UdpLengthZero_JumbogramLengthFromIp()
    {
        // RFC 2675 section 4: a UDP length of 0 over IPv6 means "see the IPv6 length".
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(20), length: 0));

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.False(packet.Outer.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
        Assert.Equal(20, packet.Outer.PayloadLength);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void Parse_UdpHeaderCut_TruncatedAtTransport(int captured)
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(20)));

        var packet = Parse(frame.AsSpan(0, 20 + captured), LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal((8, captured), (packet.Required, packet.Available));
    }

    [Fact]
    public void Parse_UdpHeaderBeyondIpLength_Malformed()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(20)), totalLength: 24);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
    }

    // ICMP echo request, as ping sends it:
    // 0x0000:  4500 0054 1c46 4000 4001 ....  ac11 0002 5db8 d822   IPv4, total length 84, ICMP
    // 0x0014:  0800 ....  0b0c 0001 1011 1213 ...                   type 8 code 0, id 0x0b0c, seq 1, 56 bytes of data
    [Theory]
    [InlineData(true, 8)]
    [InlineData(false, 0)]
    public void Parse_IcmpEcho_IdentifierAndSequence(bool request, byte type)
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(request, 0x0b0c, 513, Payload(56)));

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.IsIcmp);
        Assert.False(l.IsIcmpError);
        Assert.Equal((type, (byte)0), (l.IcmpType, l.IcmpCode));
        Assert.Equal((0x0b0c, 513), (l.IcmpIdentifier, l.IcmpSequence));
        Assert.Equal((28, 56, 56), (l.PayloadOffset, l.PayloadLength, l.CapturedPayloadLength));
        Assert.Equal((0, 0), (l.SourcePort, l.DestinationPort));
    }

    [Theory]
    [InlineData(true, 128)]
    [InlineData(false, 129)]
    public void Parse_Icmpv6Echo_IdentifierAndSequence(bool request, byte type)
    {
        byte[] frame = Ipv6(Container6, Remote6, SamplePackets.Icmpv6, Icmpv6Echo(request, 0x0b0c, 65535, Payload(16)));

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.IsIcmp);
        Assert.Equal(IpProtocol.IcmpV6, l.Protocol);
        Assert.Equal(type, l.IcmpType);
        Assert.Equal((0x0b0c, 65535), (l.IcmpIdentifier, l.IcmpSequence));
        Assert.Equal((48, 16), (l.PayloadOffset, l.PayloadLength));
    }

    [Theory]
    [InlineData(3, 3)]  // destination unreachable, port
    [InlineData(3, 4)]  // fragmentation needed (the MTU sits where an echo keeps its identifier)
    [InlineData(11, 0)] // time exceeded in transit
    [InlineData(12, 0)] // parameter problem
    public void Parse_IcmpError_QuotedPacketIsPayload(byte type, byte code)
    {
        byte[] quoted = Ipv4(HostEgress, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 33434, Payload(20)))[..28];
        byte[] frame = Ipv4(Remote, HostEgress, SamplePackets.Icmp, PacketBuilder.Icmp(type, code, 0x000005dc, quoted));

        var packet = Parse(frame, LinkType.Raw);

        ref readonly var l = ref packet.Outer;
        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.True(l.IsIcmpError);
        Assert.Equal((type, code), (l.IcmpType, l.IcmpCode));
        Assert.Equal((0, 0), (l.IcmpIdentifier, l.IcmpSequence));
        Assert.Equal((28, 28), (l.PayloadOffset, l.PayloadLength));
        Assert.Equal(0x45, frame[l.PayloadOffset]);
    }

    [Theory]
    [InlineData(1)] // destination unreachable
    [InlineData(2)] // packet too big
    [InlineData(3)] // time exceeded
    [InlineData(4)] // parameter problem
    public void Parse_Icmpv6Error_IsError(byte type)
    {
        byte[] quoted = Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(8)));
        byte[] frame = Ipv6(Remote6, Container6, SamplePackets.Icmpv6, PacketBuilder.Icmp(type, 0, 1280, quoted));

        var packet = Parse(frame, LinkType.Raw);

        Assert.True(packet.Outer.IsIcmpError);
        Assert.Equal(0, packet.Outer.IcmpSequence);
        Assert.Equal(quoted.Length, packet.Outer.PayloadLength);
    }

    [Fact]
    public void Parse_Icmpv6NeighbourSolicitation_NotErrorNoIdentifier()
    {
        byte[] frame = Ipv6("fe80::1", "ff02::1:ff00:2", SamplePackets.Icmpv6, PacketBuilder.Icmp(135, 0, 0, Payload(16)), hopLimit: 255);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Complete, packet.Outcome);
        Assert.False(packet.Outer.IsIcmpError);
        Assert.Equal(135, packet.Outer.IcmpType);
        Assert.Equal(0, packet.Outer.IcmpIdentifier);
    }

    [Fact]
    public void Parse_IcmpHeaderCut_TruncatedAtTransport()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 1, 1, Payload(8)));

        var packet = Parse(frame.AsSpan(0, 27), LinkType.Raw);

        Assert.Equal(ParseOutcome.Truncated, packet.Outcome);
        Assert.Equal((8, 7), (packet.Required, packet.Available));
    }

    [Fact]
    public void Parse_IcmpShorterThanHeaderByIpLength_Malformed()
    {
        byte[] frame = Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 1, 1, Payload(8)), totalLength: 24);

        var packet = Parse(frame, LinkType.Raw);

        Assert.Equal(ParseOutcome.Malformed, packet.Outcome);
        Assert.Equal(ParseLayer.Transport, packet.StoppedAt);
    }
}
