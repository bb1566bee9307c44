using System.Runtime.InteropServices;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// Linux cooked v2 (what <c>tcpdump -i any</c> writes) through the parser's first tier. Its protocol field is the header's
/// first two bytes and the IP header starts 18 bytes after it, so the first tier's IPv4 check, one load of the EtherType
/// and the version/IHL byte that follows it on Ethernet, read the protocol and the reserved field there and never took a
/// frame: every one went on to the second tier (docs/performance.md, "Replay reading thread on SLL2"). Here each shape
/// the first tier takes is taken, by the instance <see cref="PacketParser.Parse(ReadOnlySpan{byte}, LinkType, ParserOptions, int, out ParsedPacket)"/>
/// inlines or by the one that walks TCP options, and every frame, taken or not, parses (and fingerprints) as the general
/// parser reads it.
/// </summary>
public sealed class Sll2FirstTierTests
{
    private static byte[] Cooked(byte[] ip, LinuxPacketType type = LinuxPacketType.Outgoing, ushort protocol = EtherIpv4) =>
        Sll2(protocol, ip, interfaceIndex: 8, type);

    private static byte[] TcpAck() => Cooked(Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(43512, 80, 0x1a2b3c6d, 0x5e6f7081, TcpFlags.Ack, 502)));

    private static byte[] TcpTimestampsData() => Cooked(Ipv4(Container, Remote, SamplePackets.Tcp, TcpData(Payload(37))), LinuxPacketType.Host);

    private static byte[] TcpTimestampsAck() => Cooked(Ipv4(Remote, Container, SamplePackets.Tcp, TcpData([], tsValue: 0x0bad_cafe)), LinuxPacketType.Host);

    private static byte[] Udp() => Cooked(Ipv4(Container, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(29, 0x10))));

    private static byte[] IcmpEchoRequest() => Cooked(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 9, Payload(56, 0x10))));

    private static byte[] TcpSyn() => Cooked(Ipv4(Container, Remote, SamplePackets.Tcp,
        PacketBuilder.Tcp(43512, 80, 0x1a2b3c4c, 0, TcpFlags.Syn, 64240, TcpOption.LinuxSyn(0x00a1b2c0))));

    public static TheoryData<string> InlinedShapes => ["tcp-ack", "tcp-timestamps-data", "tcp-timestamps-ack", "udp", "icmp-echo"];

    private static byte[] Shape(string name) => name switch
    {
        "tcp-ack" => TcpAck(),
        "tcp-timestamps-data" => TcpTimestampsData(),
        "tcp-timestamps-ack" => TcpTimestampsAck(),
        "udp" => Udp(),
        "icmp-echo" => IcmpEchoRequest(),
        "tcp-syn" => TcpSyn(),
        _ => throw new ArgumentException(name),
    };

    /// <summary>TCP without options or with NOP, NOP, Timestamps, UDP and ICMP after IPv4: the instance inlined into the caller's loop takes them.</summary>
    [Theory]
    [MemberData(nameof(InlinedShapes))]
    public void Ipv4Shapes_InlinedFirstTierTakesThem_SameAsGeneralParser(string shape)
    {
        byte[] frame = Shape(shape);
        ParsedPacket inlined = Garbage();
        Assert.True(PacketParser.TryParseFirstTier(frame, LinkType.LinuxSll2, ParserOptions.Default, frame.Length, inlinedOnly: true, ref inlined),
            $"{shape}: the inlined first tier declined it");
        ParsedPacket general = General(frame, frame.Length);
        AssertSame(general, inlined, shape + ", inlined first tier");
        Assert.Equal(8, inlined.Outer.InterfaceIndex);
        Check(frame, shape, frame.Length);
    }

    /// <summary>A SYN's MSS, SACK permitted, timestamps and window scale: the inlined instance leaves it to the one that walks the options, still the first tier.</summary>
    [Fact]
    public void TcpSynWithOptions_OutOfLineFirstTierTakesIt_OptionsRead()
    {
        byte[] frame = TcpSyn();
        ParsedPacket packet = Garbage();
        Assert.False(PacketParser.TryParseFirstTier(frame, LinkType.LinuxSll2, ParserOptions.Default, 0, inlinedOnly: true, ref packet));
        packet = Garbage();
        Assert.True(PacketParser.TryParseFirstTier(frame, LinkType.LinuxSll2, ParserOptions.Default, 0, inlinedOnly: false, ref packet),
            "the first tier declined an SLL2 SYN");
        AssertSame(General(frame, 0), packet, "SYN, first tier");
        Assert.Equal(1460, packet.Outer.TcpMss);
        Assert.Equal(0x00a1b2c0u, packet.Outer.TcpTsVal);
        Check(frame, "SYN", 0);
    }

    /// <summary>
    /// What the first tier must not take, each still parsed as the general parser does: IPv6 (the second tier), IPv4
    /// with options, a fragment, a VLAN tag, ARP (not IP), a frame cut inside its TCP header, and a frame that claims more
    /// IP bytes than its record's original length.
    /// </summary>
    [Fact]
    public void OtherShapes_FirstTierDeclines_SameAsGeneralParser()
    {
        byte[] arp = [0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, .. new byte[20]];
        byte[] withOptions = Cooked(Ipv4(Container, Remote, SamplePackets.Tcp, TcpData(Payload(10)), options: [0x94, 0x04, 0x00, 0x00]));
        byte[] fragment = Cooked(Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 5000, Payload(40), length: 8 + 3000),
            dontFragment: false, moreFragments: true));
        byte[] data = TcpTimestampsData();
        (string Name, byte[] Frame, int OriginalLength, ParseOutcome Outcome)[] cases =
        [
            ("ipv6-tcp", Cooked(Ipv6(Container6, Remote6, SamplePackets.Tcp, TcpData(Payload(12))), protocol: EtherIpv6), 0, ParseOutcome.Complete),
            ("ipv6-udp", Cooked(Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(5))), protocol: EtherIpv6), 0, ParseOutcome.Complete),
            ("ipv4-options", withOptions, 0, ParseOutcome.Complete),
            ("ipv4-fragment", fragment, 0, ParseOutcome.Complete),
            ("vlan", Cooked([0x00, 0x64, 0x08, 0x00, .. Ipv4(Container, Remote, SamplePackets.Tcp, TcpData(Payload(3)))], protocol: 0x8100), 0, ParseOutcome.Complete),
            ("arp", Cooked(arp, protocol: 0x0806), 0, ParseOutcome.UnsupportedProtocol),
            ("cut-in-tcp-header", data[..(20 + 20 + 30)], data.Length, ParseOutcome.Truncated),
            ("ip-length-beyond-record", data[..^10], data.Length - 10, ParseOutcome.Complete),
        ];
        foreach (var (name, frame, originalLength, outcome) in cases)
        {
            ParsedPacket packet = Garbage();
            Assert.False(PacketParser.TryParseFirstTier(frame, LinkType.LinuxSll2, ParserOptions.Default, originalLength, inlinedOnly: false, ref packet),
                $"{name}: the first tier took it");
            packet = Garbage();
            Assert.False(PacketParser.TryParseFirstTier(frame, LinkType.LinuxSll2, ParserOptions.Default, originalLength, inlinedOnly: true, ref packet),
                $"{name}: the inlined first tier took it");
            Assert.Equal(outcome, Check(frame, name, originalLength));
        }
    }

    /// <summary>
    /// Every prefix of each shape, with the original length unknown, the whole frame and the prefix: Parse as the general
    /// parser, and the inlined instance takes exactly the prefixes that hold the whole IP packet's headers.
    /// </summary>
    [Fact]
    public void EveryPrefix_SameAsGeneralParser()
    {
        int taken = 0;
        foreach (string shape in new[] { "tcp-ack", "tcp-timestamps-data", "udp", "icmp-echo", "tcp-syn" })
        {
            byte[] frame = Shape(shape);
            for (int length = 0; length <= frame.Length; length++)
            {
                foreach (int original in new[] { 0, frame.Length, length })
                {
                    Check(frame.AsSpan(0, length), $"{shape}, prefix {length} of {original}", original);
                    ParsedPacket packet = Garbage();
                    if (PacketParser.TryParseFirstTier(frame.AsSpan(0, length), LinkType.LinuxSll2, ParserOptions.Default, original, inlinedOnly: true, ref packet))
                    {
                        taken++;
                        AssertSame(General(frame.AsSpan(0, length), original), packet, $"{shape}, prefix {length} of {original}, inlined");
                    }
                }
            }
        }
        Assert.True(taken > 100, $"the inlined first tier took only {taken} prefixes");
    }

    /// <summary>
    /// The any-sll2 capture's 132 cooked IPv4 packets (TCP, UDP and ICMP, none with IP options, fragmented or cut:
    /// CommonShapeTests.AnySll2Capture_FastPathTakesTheCookedIpv4Packets) are all the first tier's; before, it took none.
    /// </summary>
    [Fact]
    public void AnySll2Capture_FirstTierTakesEveryCookedIpv4Packet()
    {
        int first = 0, inlined = 0;
        foreach (CorpusPacket record in CaptureCorpus.Read("any-sll2.pcap", limit: 20_000))
        {
            ParsedPacket packet = Garbage();
            if (PacketParser.TryParseFirstTier(record.Data, record.LinkType, ParserOptions.Default, 0, inlinedOnly: false, ref packet))
            {
                first++;
                AssertSame(General(record.Data, 0), packet, $"any-sll2.pcap #{record.FrameNumber}");
            }
            packet = Garbage();
            if (PacketParser.TryParseFirstTier(record.Data, record.LinkType, ParserOptions.Default, 0, inlinedOnly: true, ref packet))
            {
                inlined++;
            }
            Check(record.Data, $"any-sll2.pcap #{record.FrameNumber}", 0);
        }
        Assert.Equal(132, first);
        Assert.InRange(inlined, 100, 132);
    }

    /// <summary>Parse (over garbage) against the general parser, every field and the fingerprint; returns the outcome.</summary>
    private static ParseOutcome Check(ReadOnlySpan<byte> frame, string what, int originalLength)
    {
        ParsedPacket expected = General(frame, originalLength);
        ParsedPacket actual = Garbage();
        ParseOutcome outcome = PacketParser.Parse(frame, LinkType.LinuxSll2, ParserOptions.Default, originalLength, out actual);
        Assert.Equal(expected.Outcome, outcome);
        AssertSame(expected, actual, what);
        Assert.Equal(PacketFingerprint.Compute(in expected, frame), PacketFingerprint.Compute(in actual, frame));
        return outcome;
    }

    private static ParsedPacket General(ReadOnlySpan<byte> frame, int originalLength)
    {
        ParsedPacket expected = default;
        PacketParser.ParseGeneral(frame, LinkType.LinuxSll2, ParserOptions.Default, originalLength, ref expected);
        return expected;
    }

    private static ParsedPacket Garbage()
    {
        ParsedPacket packet = default;
        MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref packet, 1)).Fill(0xA5);
        return packet;
    }

    private static void AssertSame(ParsedPacket expected, ParsedPacket actual, string what)
    {
        ParsedPacketAssert.Same(expected, actual, what);
        Assert.True(expected.TunnelDepth == 0, $"{what}: a tunnel in a cooked frame");
    }
}
