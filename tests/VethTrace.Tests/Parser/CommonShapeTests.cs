using System.Runtime.InteropServices;
using VethTrace.Packets;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Parser;

/// <summary>
/// <see cref="PacketParser.Parse(ReadOnlySpan{byte}, LinkType, ParserOptions, out ParsedPacket)"/> reads the common
/// shapes (Ethernet, Linux cooked v1/v2 or raw IP; up to two VLAN tags; IPv4 or IPv6 without extension headers;
/// TCP|UDP|ICMP|ICMPv6; one VXLAN level) on a fast path and everything else on the general one. For every frame here the
/// result must equal the general parser's, field for field, whichever path ran; and the result must not depend on what
/// the caller's variable held before (Parse does not zero it first).
/// </summary>
public class CommonShapeTests
{
    private const int MutationsPerFrame = 2_000;

    [Fact]
    public void SamplesEveryPrefixAndMutation_SameAsGeneralParser()
    {
        int fast = 0;
        var random = new Random(0x5A3E);
        var tight = new ParserOptions { MaxVlanTags = 1, MaxExtensionHeaders = 2, MaxTunnelDepth = 1 };
        var noVxlan = new ParserOptions { VxlanPort = 0 };
        foreach (SamplePacket sample in SamplePackets.All)
        {
            byte[] frame = sample.Frame;
            for (int length = 0; length <= frame.Length; length++)
            {
                fast += Check(frame.AsSpan(0, length), sample.LinkType, ParserOptions.Default, $"{sample.Name}, prefix {length}");
                fast += Check(frame.AsSpan(0, length), sample.LinkType, noVxlan, $"{sample.Name}, prefix {length}, no VXLAN port");
                // The record's original length: the whole frame (the snaplen cut the prefix), or the prefix itself (a
                // frame shorter than its IP length that no snaplen cut: IpLengthBeyondFrame).
                fast += Check(frame.AsSpan(0, length), sample.LinkType, ParserOptions.Default, $"{sample.Name}, prefix {length} of {frame.Length}", frame.Length);
                fast += Check(frame.AsSpan(0, length), sample.LinkType, ParserOptions.Default, $"{sample.Name}, prefix {length}, whole on the wire", length);
            }
            byte[] mutated = new byte[frame.Length];
            for (int i = 0; i < MutationsPerFrame; i++)
            {
                frame.CopyTo(mutated, 0);
                int flips = 1 + random.Next(4);
                for (int f = 0; f < flips; f++)
                {
                    int position = random.Next(Math.Min(mutated.Length, 70));
                    mutated[position] ^= (byte)(1 << random.Next(8));
                }
                int length = random.Next(3) == 0 ? random.Next(mutated.Length + 1) : mutated.Length;
                fast += Check(mutated.AsSpan(0, length), sample.LinkType, i % 3 == 0 ? tight : ParserOptions.Default, $"{sample.Name}, mutation {i}",
                    originalLength: (i % 4) switch { 0 => 0, 1 => length, 2 => mutated.Length, _ => length + random.Next(100) });
            }
        }
        Assert.True(fast > 2_000, $"the fast path ran on only {fast} frames");
    }

    [Theory]
    [MemberData(nameof(CaptureCorpus.FileNames), MemberType = typeof(CaptureCorpus))]
    public void CorpusPackets_SameAsGeneralParser(string capture)
    {
        foreach (CorpusPacket packet in CaptureCorpus.Read(capture, limit: 20_000))
        {
            Check(packet.Data, packet.LinkType, ParserOptions.Default, $"{capture} #{packet.FrameNumber}");
        }
    }

    [Fact]
    public void AnySll2Capture_FastPathTakesTheCookedIpv4Packets()
    {
        // tshark -r captures/any-sll2.pcap -T fields -e frame.protocols: of its 145 packets 13 are ARP and 132 are
        // sll:ethertype:ip with TCP (76, and 8 more that tshark dissects on as HTTP), ICMP (30) or UDP (18); and
        // -Y "ip.hdr_len != 20 or ip.flags.mf == 1 or ip.frag_offset > 0 or frame.cap_len < frame.len" finds none with
        // IP options, fragmented or cut. So the fast path takes all 132.
        int fast = 0, total = 0;
        foreach (CorpusPacket packet in CaptureCorpus.Read("any-sll2.pcap", limit: 20_000))
        {
            Assert.Equal(LinkType.LinuxSll2, packet.LinkType);
            fast += Check(packet.Data, packet.LinkType, ParserOptions.Default, $"any-sll2.pcap #{packet.FrameNumber}");
            total++;
        }
        Assert.Equal(145, total);
        Assert.Equal(132, fast);
    }

    /// <summary>
    /// The shapes of the benchmarks' mixed set (VLAN, 802.1ad, IPv6, raw IP, VXLAN's outer and inner stacks) take the fast
    /// path, and every frame still parses as the general parser does. Expected counts from tshark's dissection, not from
    /// VethTrace: <c>tshark -T fields -e frame.protocols -e ip.hdr_len -e ip.flags.mf -e ip.frag_offset -e ipv6.plen</c>,
    /// counting frames whose protocols are <c>(eth|sll|raw)</c>, at most two <c>vlan</c>/<c>ieee8021ad</c>, then
    /// <c>ip</c> or <c>ipv6</c>, then <c>tcp|udp|icmp|icmpv6</c>, on each side of at most one <c>vxlan</c>, with every IPv4
    /// header 20 bytes and unfragmented and every IPv6 payload length non-zero (any-sll2.pcap's 132 agree with
    /// <see cref="AnySll2Capture_FastPathTakesTheCookedIpv4Packets"/>). Left out: ARP, fragments, IPv6 hop-by-hop and
    /// fragment headers, VXLAN frames carrying ARP.
    /// </summary>
    [Theory]
    [InlineData("vlan-8021q.pcap", 36, 26)]
    [InlineData("ipv6-frag.pcap", 37, 21)]
    [InlineData("tun-raw.pcap", 16, 16)]
    [InlineData("vxlan.pcap", 22, 18)]
    [InlineData("ipv4-frag.pcap", 22, 2)]
    [InlineData("masquerade-multi.pcapng", 177, 160)]
    public void MixedSetCaptures_FastPathTakesTheirCommonShapes(string capture, int packets, int common)
    {
        int fast = 0, total = 0;
        foreach (CorpusPacket packet in CaptureCorpus.Read(capture, limit: 20_000))
        {
            fast += Check(packet.Data, packet.LinkType, ParserOptions.Default, $"{capture} #{packet.FrameNumber}");
            total++;
        }
        Assert.Equal(packets, total);
        Assert.Equal(common, fast);
    }

    /// <summary>
    /// The first tier, inlined into the caller's loop, takes a TCP header with no options or with NOP, NOP, Timestamps
    /// only; any other layout (a SYN's MSS, SACK permitted, timestamps and window scale here, SACK blocks) goes to the
    /// first tier's out-of-line Ethernet instance, which walks the options (docs/performance.md, "Parser round 7"). Still
    /// the fast path, still the general parser's fields, the options read.
    /// </summary>
    [Fact]
    public void EthernetTcpSyn_OtherOptionsStillOnTheFastPath()
    {
        SamplePacket syn = SamplePackets.Get("eth-ipv4-tcp-syn");
        Assert.Equal(1, Check(syn.Frame, syn.LinkType, ParserOptions.Default, syn.Name));
        Assert.Equal(ParseOutcome.Complete, PacketParser.Parse(syn.Frame, syn.LinkType, out ParsedPacket packet));
        Assert.True(packet.Outer.TcpMss > 0, "MSS read");
        Assert.True((packet.Outer.Flags & PacketFlags.TcpTimestamps) != 0, "timestamps read");
        Assert.Equal(0x00a1b2c0u, packet.Outer.TcpTsVal);
    }

    /// <summary>
    /// The inlined first tier decides without branches whether the capture cut the packet (IpLengthBeyondCapture), bytes
    /// follow it (TrailingBytes) or the IP length is beyond the record's original length too (the general parser's
    /// IpLengthBeyondFrame), and how much of the segment was captured (docs/performance.md, "Parser round 8"). For IP lengths
    /// short of, equal to and beyond the frame's, with the original length unknown, the frame's, just enough, one short
    /// and huge: every field equals the general parser's, and the inlined instance takes exactly the frames the general
    /// parser completes without IpLengthBeyondFrame.
    /// </summary>
    [Fact]
    public void EthernetIpv4Tcp_IpLengthAgainstCaptureAndRecord_SameAsGeneralParser()
    {
        byte[] whole = SamplePackets.Get("eth-ipv4-tcp-data").Frame;
        int held = whole.Length - 14;
        int inlinedTaken = 0;
        foreach (int delta in new[] { -(held - 40), -13, -1, 0, 1, 2, 7, 1000, 65535 - held })
        {
            byte[] frame = (byte[])whole.Clone();
            int totalLength = held + delta;
            frame[16] = (byte)(totalLength >> 8);
            frame[17] = (byte)totalLength;
            foreach (int originalLength in new[] { 0, frame.Length, frame.Length + Math.Max(delta, 0), frame.Length + delta - 1, int.MaxValue })
            {
                string what = $"IP length {totalLength} for {held} bytes held, original length {originalLength}";
                Check(frame, LinkType.Ethernet, ParserOptions.Default, what, originalLength);
                ParsedPacket general = default;
                PacketParser.ParseGeneral(frame, LinkType.Ethernet, ParserOptions.Default, originalLength, ref general);
                ParsedPacket inlined = default;
                bool taken = PacketParser.TryParseFirstTier(frame, LinkType.Ethernet, ParserOptions.Default, originalLength, inlinedOnly: true, ref inlined);
                bool beyondFrame = (general.Outer.Flags & PacketFlags.IpLengthBeyondFrame) != 0;
                Assert.True(taken == (general.Outcome == ParseOutcome.Complete && !beyondFrame), $"{what}: inlined tier took it: {taken}");
                if (taken)
                {
                    inlinedTaken++;
                    ParsedPacketAssert.Same(general, inlined, what);
                    Assert.Equal(delta > 0, (inlined.Outer.Flags & PacketFlags.IpLengthBeyondCapture) != 0);
                    Assert.Equal(delta < 0, (inlined.Outer.Flags & PacketFlags.TrailingBytes) != 0);
                    Assert.Equal(Math.Min(totalLength, held) - 20 - inlined.Outer.TcpHeaderLength, inlined.Outer.CapturedPayloadLength);
                }
            }
        }
        Assert.True(inlinedTaken >= 20, $"the inlined tier took only {inlinedTaken} frames");
    }

    /// <summary>
    /// The inlined first tier reads the IPv4 flags and fragment offset without byte-swapping them (the fragment mask is
    /// 0xFF3F and DF bit 6 of the little-endian value): each of the 16 bits alone, and DF with each of the others, gives
    /// every field the general parser gives, the inlined tier takes exactly the frames that are not fragments (the
    /// reserved bit and DF alone), and DontFragment is DF's bit.
    /// </summary>
    [Fact]
    public void EthernetIpv4Tcp_EachFlagsAndOffsetBit_SameAsGeneralParser()
    {
        byte[] whole = SamplePackets.Get("eth-ipv4-tcp-data").Frame;
        int taken = 0;
        for (int bit = -1; bit < 16; bit++)
        {
            foreach (int extra in new[] { 0, 0x4000 })
            {
                int value = (bit < 0 ? 0 : 1 << bit) | extra;
                byte[] frame = (byte[])whole.Clone();
                frame[20] = (byte)(value >> 8);
                frame[21] = (byte)value;
                string what = $"flags and offset 0x{value:X4}";
                Check(frame, LinkType.Ethernet, ParserOptions.Default, what, frame.Length);
                ParsedPacket general = default;
                PacketParser.ParseGeneral(frame, LinkType.Ethernet, ParserOptions.Default, frame.Length, ref general);
                ParsedPacket inlined = default;
                bool inlinedTook = PacketParser.TryParseFirstTier(frame, LinkType.Ethernet, ParserOptions.Default, frame.Length, inlinedOnly: true, ref inlined);
                Assert.True(inlinedTook == ((value & 0x3FFF) == 0), $"{what}: inlined tier took it: {inlinedTook}");
                if (inlinedTook)
                {
                    taken++;
                    ParsedPacketAssert.Same(general, inlined, what);
                    Assert.Equal((value & 0x4000) != 0, (inlined.Outer.Flags & PacketFlags.DontFragment) != 0);
                    Assert.Equal(0, (int)(inlined.Outer.Flags & (PacketFlags.Fragment | PacketFlags.MoreFragments)));
                }
            }
        }
        // No bit and DF (twice each: as the bit and as the extra), the reserved bit alone and with DF.
        Assert.Equal(6, taken);
    }

    /// <summary>Compares Parse (over a variable full of garbage) with the general parser (over a zeroed one); 1 when the fast path took the frame.</summary>
    private static int Check(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, string what, int originalLength = 0)
    {
        ParsedPacket expected = default;
        ParseOutcome expectedOutcome = PacketParser.ParseGeneral(frame, linkType, options, originalLength, ref expected);

        ParsedPacket actual = default;
        MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref actual, 1)).Fill(0xA5);
        ParseOutcome outcome = PacketParser.Parse(frame, linkType, options, originalLength, out actual);

        Assert.True(outcome == expectedOutcome, $"{what}: Parse returned {outcome}, the general parser {expectedOutcome}");
        ParsedPacketAssert.Same(expected, actual, what);

        ParsedPacket common = default;
        bool taken = PacketParser.TryParseCommon(frame, linkType, options, originalLength, ref common);
        if (taken)
        {
            Assert.True(expectedOutcome == ParseOutcome.Complete && expected.TunnelDepth <= 1,
                $"{what}: the fast path took a frame the general parser ends {expectedOutcome} after {expected.TunnelDepth} tunnels");
        }
        return taken ? 1 : 0;
    }
}
