using System.Globalization;
using VethTrace.Capture.Files;
using VethTrace.Cli.Output;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;

namespace VethTrace.Tests.Parser;

/// <summary>
/// The parsing gaps issue 12 found on the public test captures (&lt;repo root&gt;/../shared/corpus, tcpdump's tests/
/// folder), each checked against tshark's field output computed when the test runs: IPv4 big TCP inside VXLAN, a
/// frame shorter than its IP length that no snaplen cut, the UDP length of a first fragment, and MPLS.
/// </summary>
public class CorpusGapTests
{
    /// <summary>One record of a capture, copied out of the reader's buffer, with its length on the wire.</summary>
    private sealed record Frame(int Number, byte[] Data, LinkType LinkType, int OriginalLength);

    /// <summary>
    /// A file of the public corpus at &lt;repo root&gt;/../shared/corpus, or the nearest shared/corpus further up (a git
    /// worktree of the repository sits one level deeper than its main checkout).
    /// </summary>
    private static string CorpusPath(string name)
    {
        for (var dir = Directory.GetParent(CaptureCorpus.RepositoryRoot); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "shared", "corpus", name);
            if (File.Exists(path))
            {
                return path;
            }
        }
        Assert.Fail($"{name} is missing: the public test captures are expected at <repo root>/../shared/corpus");
        return "";
    }

    private static List<Frame> Read(string path)
    {
        var frames = new List<Frame>();
        using var reader = CaptureFileReader.Open(path);
        while (reader.TryReadNext(out CaptureRecord record))
        {
            frames.Add(new Frame(frames.Count + 1, record.Data.ToArray(), record.LinkType, record.OriginalLength));
        }
        return frames;
    }

    private static ParsedPacket Parse(Frame frame)
    {
        PacketParser.Parse(frame.Data, frame.LinkType, ParserOptions.Default, frame.OriginalLength, out ParsedPacket packet);
        return packet;
    }

    /// <summary>
    /// tshark -T fields over <paramref name="path"/>, one dictionary per frame; a field that occurs several times is
    /// comma-separated (<c>-E occurrence=a -E aggregator=,</c>), an absent one is missing.
    /// </summary>
    private static List<Dictionary<string, string>> Tshark(string path, string[] fields, params string[] options)
    {
        var arguments = new List<string> { "-n", "-r", path, "-T", "fields", "-E", "header=y", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=," };
        foreach (string option in options)
        {
            arguments.AddRange(["-o", option]);
        }
        foreach (string field in fields)
        {
            arguments.AddRange(["-e", field]);
        }
        string[] lines = WiresharkTool.Run("tshark", arguments);
        string[] header = lines[0].Split('\t');
        var rows = new List<Dictionary<string, string>>();
        foreach (string line in lines.Skip(1))
        {
            string[] cells = line.Split('\t');
            var row = new Dictionary<string, string>();
            for (int i = 0; i < header.Length && i < cells.Length; i++)
            {
                if (cells[i].Length > 0)
                {
                    row[header[i]] = cells[i];
                }
            }
            rows.Add(row);
        }
        return rows;
    }

    private static long Number(Dictionary<string, string> row, string field, int occurrence = 0)
    {
        Assert.True(row.TryGetValue(field, out string? cell), $"tshark has no {field}");
        string value = cell.Split(',')[occurrence];
        return value.StartsWith("0x", StringComparison.Ordinal)
            ? long.Parse(value.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : long.Parse(value, CultureInfo.InvariantCulture);
    }

    private static string Text(Dictionary<string, string> row, string field, int occurrence = 0)
    {
        Assert.True(row.TryGetValue(field, out string? cell), $"tshark has no {field}");
        return cell.Split(',')[occurrence];
    }

    // ---------------------------------------------------------------- IPv4 big TCP inside VXLAN

    private static readonly string[] s_ipFields =
    [
        "ip.src", "ip.dst", "ip.len", "ip.id", "ip.ttl", "ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.hlim",
        "udp.srcport", "udp.dstport", "udp.length", "vxlan.vni",
        "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len", "tcp.hdr_len",
    ];

    /// <summary>
    /// Linux 6.3+ sends IPv4 big TCP (GSO super-packets over 64 KB) with a zero IPv4 total length; through a VXLAN
    /// device the outer IPv4 total length and the UDP length are 0 too. tshark refuses the outer UDP ("Bad length value
    /// 0 &lt; 8"), so the inner frame is checked against tshark on a copy with the outer headers chopped off (editcap -C,
    /// -L adjusting the original length), with tshark's TSO support for IPv6 on (ipv6.tso_support: a zero payload length
    /// is taken from the frame, as the parser does). The IPv6-outer files, which tshark dissects whole with that
    /// option, are checked the same way, and their VNI too.
    /// </summary>
    [Theory]
    [InlineData("bigtcp-ipv4-vxlan-ipv4.pcap", 14 + 20 + 8 + 8)]
    [InlineData("bigtcp-ipv4-vxlan-ipv6.pcap", 14 + 20 + 8 + 8)]
    [InlineData("bigtcp-ipv6-vxlan-ipv4.pcap", 14 + 40 + 8 + 8)]
    [InlineData("bigtcp-ipv6-vxlan-ipv6.pcap", 14 + 40 + 8 + 8)]
    public void BigTcpInsideVxlan_InnerTcpAgreesWithTshark(string file, int outerHeaders)
    {
        string path = CorpusPath("tcpdump/" + file);
        Frame frame = Assert.Single(Read(path));
        ParsedPacket packet = Parse(frame);

        Assert.True(packet.Outcome == ParseOutcome.Complete, $"{file}: {PacketText.Describe(in packet)}");
        Assert.Equal(1, packet.TunnelDepth);
        Assert.Equal(0, packet.Outer.UdpLength);
        Assert.True(packet.Outer.Flags.HasFlag(PacketFlags.IpLengthFromCapture));

        var outer = Assert.Single(Tshark(path, s_ipFields, "ipv6.tso_support:TRUE"));
        Assert.Equal(0, Number(outer, "udp.length"));
        Assert.Equal(Number(outer, "udp.srcport"), packet.Outer.SourcePort);
        Assert.Equal(Number(outer, "udp.dstport"), packet.Outer.DestinationPort);
        CompareIp(outer, in packet.Outer);
        if (packet.Outer.IpVersion == 6)
        {
            Assert.Equal(Number(outer, "vxlan.vni"), packet.Vni);
        }

        string chopped = Path.Combine(Path.GetTempPath(), $"vethtrace-parser-{Guid.NewGuid():N}.pcap");
        try
        {
            WiresharkTool.Run("editcap", ["-C", outerHeaders.ToString(CultureInfo.InvariantCulture), "-L", path, chopped]);
            var inner = Assert.Single(Tshark(chopped, s_ipFields, "ipv6.tso_support:TRUE"));
            CompareIp(inner, in packet.Inner);
            Assert.Equal(Number(inner, "tcp.srcport"), packet.Inner.SourcePort);
            Assert.Equal(Number(inner, "tcp.dstport"), packet.Inner.DestinationPort);
            Assert.Equal(Number(inner, "tcp.seq_raw"), packet.Inner.TcpSequence);
            Assert.Equal(Number(inner, "tcp.ack_raw"), packet.Inner.TcpAcknowledgment);
            Assert.Equal(Number(inner, "tcp.flags"), (long)packet.Inner.TcpFlags);
            Assert.Equal(Number(inner, "tcp.hdr_len"), packet.Inner.TcpHeaderLength);
            Assert.Equal(Number(inner, "tcp.len"), packet.Inner.PayloadLength);

            // The encapsulated copy and the inner frame alone (as the container's veth would show it) match.
            Frame alone = Assert.Single(Read(chopped));
            ParsedPacket alonePacket = Parse(alone);
            Assert.Equal(PacketFingerprint.Compute(in alonePacket, alone.Data), PacketFingerprint.Compute(in packet, frame.Data));
        }
        finally
        {
            File.Delete(chopped);
        }
    }

    private static void CompareIp(Dictionary<string, string> row, in PacketLayers layers)
    {
        if (layers.IpVersion == 4)
        {
            Assert.Equal(Text(row, "ip.src"), layers.Source.ToString());
            Assert.Equal(Text(row, "ip.dst"), layers.Destination.ToString());
            Assert.Equal(Number(row, "ip.len"), layers.IpTotalLength);
            Assert.Equal(Number(row, "ip.id"), layers.IpId);
            Assert.Equal(Number(row, "ip.ttl"), layers.Ttl);
        }
        else
        {
            Assert.Equal(Text(row, "ipv6.src"), layers.Source.ToString());
            Assert.Equal(Text(row, "ipv6.dst"), layers.Destination.ToString());
            Assert.Equal(Number(row, "ipv6.plen"), layers.IpTotalLength - 40);
            Assert.Equal(Number(row, "ipv6.hlim"), layers.Ttl);
        }
    }

    // ---------------------------------------------------------------- a frame shorter than its IP length

    /// <summary>
    /// kday4.pcap frame 10 is 66 bytes on the wire and captured whole (snaplen 511), yet its IPv4 total length says
    /// 820: tcpdump prints "truncated-ip - 768 bytes missing!" and tshark "IPv4 total length exceeds packet length",
    /// with tcp.len 0. With the record's original length the parser sees that no snaplen cut it: the TCP payload is
    /// what the frame held (0, as tshark), the packet is flagged, the IP length stays the claimed one. Every TCP frame of
    /// the file agrees with tshark's tcp.len.
    /// </summary>
    [Fact]
    public void Kday4_FrameShorterThanIpLength_PayloadAsTsharkAndFlagged()
    {
        string path = CorpusPath("tcpdump/kday4.pcap");
        List<Frame> frames = Read(path);
        var rows = Tshark(path, ["frame.len", "frame.cap_len", "ip.len", "tcp.len"]);
        Assert.Equal(rows.Count, frames.Count);

        int compared = 0, flagged = 0;
        foreach (Frame frame in frames)
        {
            ParsedPacket packet = Parse(frame);
            var row = rows[frame.Number - 1];
            Assert.Equal(Number(row, "frame.len"), frame.OriginalLength);
            if (!packet.Outer.IsTcp || packet.TunnelDepth > 0 || !row.ContainsKey("tcp.len"))
            {
                continue;
            }
            Assert.True(Number(row, "tcp.len") == packet.Outer.PayloadLength,
                $"frame {frame.Number}: tcp.len {Number(row, "tcp.len")}, ours {packet.Outer.PayloadLength}");
            bool beyondFrame = Number(row, "ip.len") > frame.OriginalLength - packet.Outer.NetworkOffset;
            Assert.Equal(beyondFrame, packet.Outer.Flags.HasFlag(PacketFlags.IpLengthBeyondFrame));
            flagged += beyondFrame ? 1 : 0;
            compared++;
        }
        Assert.True(compared >= 8, $"only {compared} TCP frames compared");
        Assert.True(flagged >= 1);

        Frame tenth = frames[9];
        Assert.Equal((66, 66), (tenth.Data.Length, tenth.OriginalLength));
        ParsedPacket known = Parse(tenth);
        Assert.Equal(ParseOutcome.Complete, known.Outcome);
        Assert.Equal((820, 0, 0), (known.Outer.IpTotalLength, known.Outer.PayloadLength, known.Outer.CapturedPayloadLength));
        Assert.True(known.Outer.Flags.HasFlag(PacketFlags.IpLengthBeyondFrame | PacketFlags.IpLengthBeyondCapture));
        Assert.Contains("len 0 ", PacketText.Describe(in known));
        Assert.EndsWith("(inconsistent: ip length 820, the frame holds 52)", PacketText.Describe(in known));

        // Without the original length the parser cannot tell, and takes it for a snaplen cut: the claimed 768 bytes.
        PacketParser.Parse(tenth.Data, tenth.LinkType, out ParsedPacket unknown);
        Assert.Equal(768, unknown.Outer.PayloadLength);
        Assert.False(unknown.Outer.Flags.HasFlag(PacketFlags.IpLengthBeyondFrame));
        // The fingerprint hashes the claimed length either way.
        Assert.Equal(PacketFingerprint.Compute(in unknown, tenth.Data), PacketFingerprint.Compute(in known, tenth.Data));
    }

    /// <summary><c>vethtrace packets</c> on kday4.pcap: frame 10 says what it holds, and the summary counts the frames tshark flags.</summary>
    [Fact]
    public void PacketsCommand_Kday4_ShowsAndCountsTheShortFrames()
    {
        string path = CorpusPath("tcpdump/kday4.pcap");
        // tshark's expert info "IPv4 total length exceeds packet length" marks the frames whose IP length passes frame.len.
        int expected = Tshark(path, ["_ws.expert.message"]).Count(r => r.TryGetValue("_ws.expert.message", out string? m)
            && m.Contains("IPv4 total length exceeds packet length", StringComparison.Ordinal));
        Assert.True(expected > 0);
        var output = new StringWriter();
        var error = new StringWriter();

        VethTrace.Cli.VethTraceCommand.Run(["packets", path], output, error);

        string[] lines = output.ToString().Split('\n');
        Assert.Contains("len 0 ttl 62 id 64806 (inconsistent: ip length 820, the frame holds 52)", lines[9]);
        Assert.Contains($"inconsistent: {expected} with an IP length beyond the frame on the wire", output.ToString());
    }

    /// <summary>
    /// One packet seen at three capture points: whole, cut by a snaplen, and recorded as a frame no longer than what was
    /// kept (the record's original length equal to its captured length, as kday4's frame 10 is). The headers are the same
    /// bytes in all three, so the fingerprint must be too, while the payload length reports what each frame held.
    /// Real packets: IPv4 TCP and UDP from the shipped captures, IPv6 TCP from tcpdump's gso-ipv6.pcap.
    /// </summary>
    [Theory]
    [InlineData(4, 6)]
    [InlineData(4, 17)]
    [InlineData(6, 6)]
    public void Fingerprint_WholeSnaplenCutAndShortFrame_Equal(int ipVersion, int protocol)
    {
        CorpusPacket real = CaptureCorpus.Files()
            .Select(f => Path.GetRelativePath(CaptureCorpus.CapturesDirectory, f))
            .SelectMany(f => CaptureCorpus.Read(f, limit: 2_000))
            .Concat(Read(CorpusPath("tcpdump/gso-ipv6.pcap")).Select(f => new CorpusPacket(f.Number, f.Data, f.LinkType, "", 0)))
            .First(p =>
            {
                PacketParser.Parse(p.Data, p.LinkType, out ParsedPacket candidate);
                ref readonly var l = ref candidate.Innermost;
                return candidate.IsComplete && candidate.TunnelDepth == 0 && l.IpVersion == ipVersion && l.Protocol.Value == protocol
                    && l.PayloadLength >= 40 && l.CapturedPayloadLength == l.PayloadLength && (l.Flags & PacketFlags.TrailingBytes) == 0;
            });
        byte[] whole = real.Data;
        PacketParser.Parse(whole, real.LinkType, ParserOptions.Default, whole.Length, out ParsedPacket full);
        int cut = full.Outer.PayloadOffset + PacketFingerprint.PayloadHashBytes + 4;

        PacketParser.Parse(whole.AsSpan(0, cut), real.LinkType, ParserOptions.Default, whole.Length, out ParsedPacket snaplen);
        PacketParser.Parse(whole.AsSpan(0, cut), real.LinkType, ParserOptions.Default, cut, out ParsedPacket shortFrame);

        Assert.Equal(full.Outer.PayloadLength, snaplen.Outer.PayloadLength);
        Assert.False(snaplen.Outer.Flags.HasFlag(PacketFlags.IpLengthBeyondFrame));
        Assert.Equal(PacketFingerprint.PayloadHashBytes + 4, shortFrame.Outer.PayloadLength);
        Assert.True(shortFrame.Outer.Flags.HasFlag(PacketFlags.IpLengthBeyondFrame));
        ulong expected = PacketFingerprint.Compute(in full, whole);
        Assert.Equal(expected, PacketFingerprint.Compute(in snaplen, whole.AsSpan(0, cut)));
        Assert.Equal(expected, PacketFingerprint.Compute(in shortFrame, whole.AsSpan(0, cut)));
    }

    // ---------------------------------------------------------------- the UDP length of a first fragment

    /// <summary>
    /// afs.pcap carries AFS replies of 5,700-byte UDP datagrams in 1,500-byte IPv4 fragments. On the first fragment the
    /// UDP header's length is the datagram's (tshark udp.length with reassembly off: 5700), while the packet holds
    /// 1,472 bytes of its data. The parser keeps both: <see cref="PacketLayers.UdpLength"/> is the header's field, and
    /// <see cref="PacketLayers.PayloadLength"/> the UDP data in this fragment (ip.len − ip.hdr_len − 8), which is
    /// what the packet carries on every hop; <c>packets</c> prints "len 1472 of 5692".
    /// </summary>
    [Fact]
    public void AfsFirstFragments_UdpLengthIsDatagramsPayloadIsFragments()
    {
        string path = CorpusPath("tcpdump/afs.pcap");
        List<Frame> frames = Read(path);
        var rows = Tshark(path, ["ip.proto", "ip.flags.mf", "ip.frag_offset", "ip.len", "ip.hdr_len", "udp.length"], "ip.defragment:FALSE");
        Assert.Equal(rows.Count, frames.Count);

        int firstFragments = 0, whole = 0;
        foreach (Frame frame in frames)
        {
            var row = rows[frame.Number - 1];
            // UDP itself, not quoted by an ICMP error (the first occurrence of each field is the outer header's).
            if (!row.ContainsKey("udp.length") || !row.ContainsKey("ip.len") || Number(row, "ip.proto") != 17)
            {
                continue;
            }
            ParsedPacket packet = Parse(frame);
            Assert.True(packet.Outer.IsUdp, $"frame {frame.Number}: {PacketText.Describe(in packet)}");
            Assert.Equal(Number(row, "udp.length"), packet.Outer.UdpLength);
            if (Number(row, "ip.flags.mf") == 1)
            {
                Assert.Equal(0, Number(row, "ip.frag_offset"));
                Assert.Equal(Number(row, "ip.len") - Number(row, "ip.hdr_len") - 8, packet.Outer.PayloadLength);
                Assert.False(packet.Outer.Flags.HasFlag(PacketFlags.UdpLengthMismatch));
                Assert.Contains($" len {packet.Outer.PayloadLength} of {packet.Outer.UdpLength - 8} ", PacketText.Describe(in packet));
                firstFragments++;
            }
            else
            {
                Assert.Equal(Number(row, "udp.length") - 8, packet.Outer.PayloadLength);
                whole++;
            }
        }
        // tshark -o ip.defragment:FALSE -Y "ip.flags.mf == 1 && ip.frag_offset == 0" counts 51 first fragments.
        Assert.Equal(51, firstFragments);
        Assert.True(whole > 0);
    }

    // ---------------------------------------------------------------- MPLS

    /// <summary>
    /// The Ethernet MPLS frames of tcpdump's tests (tcpdump -r FILE 'mpls or ether proto 0x8848' over the corpus finds
    /// these two): an LSP ping under one unicast label, and a multicast stack of two labels cut after the stack (a
    /// 22-byte capture). Labels, traffic class, bottom-of-stack bit and TTL, and the IPv4 and UDP fields after them,
    /// against tshark.
    /// </summary>
    [Theory]
    [InlineData("tok2str-oobr-2.pcap", ParseOutcome.Complete)]
    [InlineData("mpls-label-heapoverflow.pcap", ParseOutcome.Truncated)]
    public void MplsFrames_AgreeWithTshark(string file, ParseOutcome outcome)
    {
        string path = CorpusPath("tcpdump/" + file);
        Frame frame = Assert.Single(Read(path));
        var row = Assert.Single(Tshark(path, ["eth.type", "mpls.label", "mpls.exp", "mpls.bottom", "mpls.ttl", "ip.src", "ip.dst", "ip.len", "ip.id", "ip.ttl",
            "udp.srcport", "udp.dstport", "udp.length"]));

        ParsedPacket packet = Parse(frame);

        Assert.Equal(outcome, packet.Outcome);
        ref readonly PacketLayers layers = ref packet.Outer;
        Assert.Equal(Number(row, "eth.type"), layers.EtherType.Value);
        ReadOnlySpan<MplsLabel> labels = layers.MplsLabels;
        Assert.Equal(row["mpls.label"].Split(',').Length, labels.Length);
        for (int i = 0; i < labels.Length; i++)
        {
            Assert.Equal(Number(row, "mpls.label", i), labels[i].Label);
            Assert.Equal(Number(row, "mpls.exp", i), labels[i].TrafficClass);
            Assert.Equal(Number(row, "mpls.bottom", i), labels[i].BottomOfStack ? 1 : 0);
            Assert.Equal(Number(row, "mpls.ttl", i), labels[i].Ttl);
        }
        if (outcome == ParseOutcome.Complete)
        {
            CompareIp(row, in layers);
            Assert.Equal(Number(row, "udp.srcport"), layers.SourcePort);
            Assert.Equal(Number(row, "udp.dstport"), layers.DestinationPort);
            Assert.Equal(Number(row, "udp.length"), layers.UdpLength);
        }
        else
        {
            // The capture ends right after the bottom entry: nothing tells IPv4 from IPv6.
            Assert.Equal((ParseLayer.Network, 1, 0), (packet.StoppedAt, packet.Required, packet.Available));
            Assert.False(row.ContainsKey("ip.src"));
        }
    }

    /// <summary>
    /// Most of tcpdump's MPLS captures come from a router's PPP link (LINKTYPE_PPP, protocol 0x0281 for MPLS, 0x0021
    /// for IPv4): LSP pings under LDP and RSVP labels, BGP over TCP under a label, a traceroute with TTL 1, and a fuzzed
    /// file (wb-oobr.pcap) with lengths far past its 46-byte snaplen. Every frame against tshark: the labels of the MPLS
    /// frames and none on the others, then the IPv4 and UDP or TCP fields.
    /// </summary>
    [Theory]
    [InlineData("mpls-traceroute.pcap", 9)]
    [InlineData("lspping-fec-ldp.pcap", 8)]
    [InlineData("lspping-fec-rsvp.pcap", 5)]
    [InlineData("wb-oobr.pcap", 3)]
    public void PppMplsFrames_AgreeWithTshark(string file, int mplsFrames)
    {
        string path = CorpusPath("tcpdump/" + file);
        List<Frame> frames = Read(path);
        var rows = Tshark(path, ["ppp.protocol", "mpls.label", "mpls.exp", "mpls.bottom", "mpls.ttl", "ip.src", "ip.dst", "ip.len", "ip.id", "ip.ttl",
            "udp.srcport", "udp.dstport", "udp.length", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.len"]);
        Assert.Equal(rows.Count, frames.Count);

        int labelled = 0;
        foreach (Frame frame in frames)
        {
            var row = rows[frame.Number - 1];
            ParsedPacket packet = Parse(frame);
            ref readonly PacketLayers layers = ref packet.Outer;
            string at = $"{file} frame {frame.Number}: {PacketText.Describe(in packet)}";
            Assert.True(layers.Has(LayerSet.Network), at);
            if (Number(row, "ppp.protocol") == 0x0281)
            {
                ReadOnlySpan<MplsLabel> labels = layers.MplsLabels;
                Assert.True(row["mpls.label"].Split(',').Length == labels.Length, at);
                for (int i = 0; i < labels.Length; i++)
                {
                    Assert.Equal(Number(row, "mpls.label", i), labels[i].Label);
                    Assert.Equal(Number(row, "mpls.exp", i), labels[i].TrafficClass);
                    Assert.Equal(Number(row, "mpls.bottom", i), labels[i].BottomOfStack ? 1 : 0);
                    Assert.Equal(Number(row, "mpls.ttl", i), labels[i].Ttl);
                }
                labelled++;
            }
            else
            {
                Assert.True(layers.MplsCount == 0, at);
            }
            CompareIp(row, in layers);
            if (layers.IsUdp)
            {
                Assert.Equal(Number(row, "udp.srcport"), layers.SourcePort);
                Assert.Equal(Number(row, "udp.dstport"), layers.DestinationPort);
                Assert.Equal(Number(row, "udp.length"), layers.UdpLength);
            }
            else if (layers.IsTcp)
            {
                Assert.Equal(Number(row, "tcp.srcport"), layers.SourcePort);
                Assert.Equal(Number(row, "tcp.dstport"), layers.DestinationPort);
                Assert.Equal(Number(row, "tcp.seq_raw"), layers.TcpSequence);
                Assert.Equal(Number(row, "tcp.len"), layers.PayloadLength);
            }
        }
        Assert.Equal(mplsFrames, labelled);
    }
}
