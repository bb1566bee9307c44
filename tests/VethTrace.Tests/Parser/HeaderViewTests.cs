using VethTrace.Packets;
using VethTrace.Packets.Headers;

namespace VethTrace.Tests.Parser;

/// <summary>
/// The header views' contract (docs/DESIGN.md, "Code habits": check once, then read freely): TryCreate refuses a span shorter
/// than the header, and once it succeeds no accessor throws, whatever the bytes say.
/// </summary>
public class HeaderViewTests
{
    public static TheoryData<string, int> Views => new()
    {
        { "ethernet", EthernetHeader.Field.HeaderLength },
        { "vlan", VlanTag.Field.HeaderLength },
        { "sll", LinuxSllHeader.Field.HeaderLength },
        { "sll2", LinuxSll2Header.Field.HeaderLength },
        { "null", NullHeader.HeaderLength },
        { "ipv4", Ipv4Header.Field.FixedLength },
        { "ipv6", Ipv6Header.Field.HeaderLength },
        { "ext-0", Ipv6ExtensionHeader.Field.MinimumLength },
        { "ext-43", Ipv6ExtensionHeader.Field.MinimumLength },
        { "ext-44", Ipv6ExtensionHeader.Field.MinimumLength },
        { "ext-51", Ipv6ExtensionHeader.Field.MinimumLength },
        { "ext-60", Ipv6ExtensionHeader.Field.MinimumLength },
        { "tcp", TcpHeader.Field.FixedLength },
        { "udp", UdpHeader.Field.HeaderLength },
        { "icmp", IcmpHeader.Field.HeaderLength },
        { "vxlan", VxlanHeader.Field.HeaderLength },
    };

    [Theory]
    [MemberData(nameof(Views))]
    public void TryCreate_ShorterThanHeader_Fails(string view, int headerLength)
    {
        // Bytes that would pass every sanity check (IPv4 0x45, IPv6 0x6_, TCP offset 5, VXLAN I flag) if the length did.
        byte[] plausible = new byte[headerLength];
        plausible[0] = view switch { "ipv4" => 0x45, "ipv6" => 0x60, "vxlan" => 0x08, _ => 0 };
        if (view == "tcp")
        {
            plausible[TcpHeader.Field.DataOffsetAndFlags] = 0x50;
        }
        Assert.True(TryCreateAndReadAll(view, plausible, out _), "the full-length header must be accepted");

        for (int length = 0; length < headerLength; length++)
        {
            Assert.False(TryCreateAndReadAll(view, plausible.AsSpan(0, length), out _), $"{view} accepted {length} bytes");
        }
    }

    [Theory]
    [MemberData(nameof(Views))]
    public void Accessors_AfterTryCreateOnRandomBytes_NeverThrow(string view, int headerLength)
    {
        var random = new Random(headerLength * 7919 + view.Length);
        byte[] buffer = new byte[headerLength + 80];
        int accepted = 0;
        for (int i = 0; i < 5_000; i++)
        {
            int length = headerLength + random.Next(81);
            random.NextBytes(buffer);
            // Extremes too: all-zero and all-ones length fields.
            if (i % 10 == 0)
            {
                buffer.AsSpan().Fill(i % 20 == 0 ? (byte)0x00 : (byte)0xFF);
            }
            if (TryCreateAndReadAll(view, buffer.AsSpan(0, length), out _))
            {
                accepted++;
            }
        }
        Assert.True(accepted > 0, $"{view}: random input never accepted, so the accessors were not exercised");
    }

    /// <summary>Creates the view and reads every accessor; the sum keeps the reads from being optimised away.</summary>
    private static bool TryCreateAndReadAll(string view, ReadOnlySpan<byte> data, out long sum)
    {
        sum = 0;
        switch (view)
        {
            case "ethernet":
                if (!EthernetHeader.TryCreate(data, out var ethernet))
                {
                    return false;
                }
                sum = ethernet.Destination[5] + ethernet.Source[5] + ethernet.EtherType.Value;
                return true;
            case "vlan":
                if (!VlanTag.TryCreate(data, out var tag))
                {
                    return false;
                }
                sum = tag.VlanId + tag.Priority + tag.EtherType.Value;
                return true;
            case "sll":
                if (!LinuxSllHeader.TryCreate(data, out var sll))
                {
                    return false;
                }
                sum = (long)sll.PacketType + sll.ArpHardwareType + sll.Protocol.Value;
                return true;
            case "sll2":
                if (!LinuxSll2Header.TryCreate(data, out var sll2))
                {
                    return false;
                }
                sum = (long)sll2.PacketType + sll2.ArpHardwareType + sll2.Protocol.Value + sll2.InterfaceIndex;
                return true;
            case "null":
                bool read = NullHeader.TryReadEtherType(data, alwaysBigEndian: false, out var family)
                    & NullHeader.TryReadEtherType(data, alwaysBigEndian: true, out var loopFamily);
                sum = family.Value + loopFamily.Value;
                return read;
            case "ipv4":
                if (Ipv4Header.TryCreate(data, out var ipv4) != HeaderCheck.Ok)
                {
                    return false;
                }
                sum = ipv4.HeaderLength + ipv4.Tos + ipv4.TotalLength + ipv4.Identification + (ipv4.DontFragment ? 1 : 0) + (ipv4.MoreFragments ? 1 : 0)
                    + ipv4.FragmentOffset + ipv4.Ttl + ipv4.Protocol.Value + ipv4.Source.Version + ipv4.Destination.Version + ipv4.Options.Length
                    + (ipv4.IsCutShort ? 1 : 0);
                return true;
            case "ipv6":
                if (Ipv6Header.TryCreate(data, out var ipv6) != HeaderCheck.Ok)
                {
                    return false;
                }
                sum = ipv6.TrafficClass + ipv6.FlowLabel + ipv6.PayloadLength + ipv6.NextHeader.Value + ipv6.HopLimit + ipv6.Source.Version + ipv6.Destination.Version;
                return true;
            case "tcp":
                if (TcpHeader.TryCreate(data, out var tcp) != HeaderCheck.Ok)
                {
                    return false;
                }
                var options = tcp.ReadOptions();
                sum = tcp.SourcePort + tcp.DestinationPort + tcp.Sequence + tcp.Acknowledgment + tcp.HeaderLength + (long)tcp.Flags + tcp.Window
                    + tcp.Options.Length + (tcp.IsCutShort ? 1 : 0) + options.MaximumSegmentSize + options.WindowScale + options.TimestampValue + options.TimestampEcho;
                return true;
            case "udp":
                if (!UdpHeader.TryCreate(data, out var udp))
                {
                    return false;
                }
                sum = udp.SourcePort + udp.DestinationPort + udp.Length;
                return true;
            case "icmp":
                if (!IcmpHeader.TryCreate(data, out var icmp))
                {
                    return false;
                }
                sum = icmp.Type + icmp.Code + icmp.Identifier + icmp.Sequence;
                return true;
            case "vxlan":
                if (VxlanHeader.TryCreate(data, out var vxlan) != HeaderCheck.Ok)
                {
                    return false;
                }
                sum = vxlan.Vni;
                return true;
            default:
                var kind = new IpProtocol(byte.Parse(view["ext-".Length..], System.Globalization.CultureInfo.InvariantCulture));
                if (Ipv6ExtensionHeader.TryCreate(data, kind, out var extension) != HeaderCheck.Ok)
                {
                    return false;
                }
                Assert.True(extension.Length <= data.Length);
                sum = extension.Kind.Value + extension.NextHeader.Value + extension.Length + extension.FragmentOffset + (extension.MoreFragments ? 1 : 0)
                    + extension.FragmentIdentification + (extension.IsFragment ? 1 : 0);
                return true;
        }
    }

    [Theory]
    [InlineData(0x35)] // version 3
    [InlineData(0x65)] // version 6 in an IPv4 header
    [InlineData(0x44)] // IHL 4
    [InlineData(0x40)] // IHL 0
    public void Ipv4TryCreate_BadVersionOrIhl_Malformed(byte versionAndIhl)
    {
        byte[] header = new byte[60];
        header[0] = versionAndIhl;

        Assert.Equal(HeaderCheck.Malformed, Ipv4Header.TryCreate(header, out _));
    }

    [Fact]
    public void Ipv4TryCreate_OptionsCut_OkAndCutShort()
    {
        byte[] header = new byte[24];
        header[0] = 0x4F; // IHL 15: 60 bytes, 24 captured

        Assert.Equal(HeaderCheck.Ok, Ipv4Header.TryCreate(header, out var ip));
        Assert.True(ip.IsCutShort);
        Assert.Equal(60, ip.HeaderLength);
        Assert.Equal(4, ip.Options.Length);
    }

    [Fact]
    public void Ipv4Fields_FlagsAndOffset_Decoded()
    {
        // 0x0000:  4500 05dc abcd 20b9 3f11 0000 0a00 0002  MF set, offset 0xb9 units (1480 bytes), TTL 63, UDP
        // 0x0010:  0a00 0103
        byte[] header = Hex.Parse("4500 05dc abcd 20b9 3f 11 0000 0a000002 0a000103");

        Assert.Equal(HeaderCheck.Ok, Ipv4Header.TryCreate(header, out var ip));
        Assert.False(ip.DontFragment);
        Assert.True(ip.MoreFragments);
        Assert.Equal(1480, ip.FragmentOffset);
        Assert.Equal(1500, ip.TotalLength);
        Assert.Equal(0xabcd, ip.Identification);
        Assert.Equal(63, ip.Ttl);
        Assert.Equal(IpProtocol.Udp, ip.Protocol);
        Assert.Equal(IpAddress.Parse("10.0.1.3"), ip.Destination);
    }

    [Fact]
    public void Ipv6TryCreate_WrongVersion_Malformed()
    {
        byte[] header = new byte[40];
        header[0] = 0x45;

        Assert.Equal(HeaderCheck.Malformed, Ipv6Header.TryCreate(header, out _));
    }

    [Fact]
    public void TcpTryCreate_DataOffsetBelowFive_Malformed()
    {
        byte[] header = new byte[20];
        header[TcpHeader.Field.DataOffsetAndFlags] = 0x40;

        Assert.Equal(HeaderCheck.Malformed, TcpHeader.TryCreate(header, out _));
    }

    [Fact]
    public void TcpReadOptions_DataOffsetBeyondSpan_ReadsOnlyCapturedOptions()
    {
        byte[] header = [.. new byte[12], 0xF0, 0x02, 0, 0, 0, 0, 0, 0, 2, 4, 0x05, 0xb4]; // offset 15, SYN, then MSS 1460 and nothing more

        Assert.Equal(HeaderCheck.Ok, TcpHeader.TryCreate(header, out var tcp));
        Assert.True(tcp.IsCutShort);
        Assert.Equal(4, tcp.Options.Length);
        Assert.Equal(1460, tcp.ReadOptions().MaximumSegmentSize);
    }

    [Fact]
    public void TcpReadOptions_AllKnownOptions_Read()
    {
        byte[] segment = PacketBuilder.Tcp(1, 2, 3, 0, TcpFlags.Syn, options: PacketBuilder.TcpOption.LinuxSyn(0xdeadbeef, mss: 8960, windowScale: 20));

        Assert.Equal(HeaderCheck.Ok, TcpHeader.TryCreate(segment, out var tcp));
        var options = tcp.ReadOptions();
        Assert.Equal(8960, options.MaximumSegmentSize);
        Assert.True(options.SackPermitted);
        Assert.True(options.HasWindowScale);
        Assert.Equal(14, options.WindowScale); // RFC 7323 section 2.3: a shift above 14 is used as 14
        Assert.True(options.HasTimestamps);
        Assert.Equal(0xdeadbeefu, options.TimestampValue);
        Assert.False(options.Malformed);
    }

    [Fact]
    public void Ipv6ExtensionHeader_FragmentFields_Decoded()
    {
        // 0x0000:  1100 0b41 0102 0304   next UDP, offset 360 units (2880 bytes), M set, id 0x01020304
        byte[] header = Hex.Parse("11 00 0b41 01020304");

        Assert.Equal(HeaderCheck.Ok, Ipv6ExtensionHeader.TryCreate(header, IpProtocol.Fragment, out var fragment));
        Assert.True(fragment.IsFragment);
        Assert.Equal(2880, fragment.FragmentOffset);
        Assert.True(fragment.MoreFragments);
        Assert.Equal(0x01020304u, fragment.FragmentIdentification);
        Assert.Equal(IpProtocol.Udp, fragment.NextHeader);
        Assert.Equal(8, fragment.Length);
    }

    [Theory]
    [InlineData(51, 1, 12)]  // AH: (1 + 2) × 4
    [InlineData(51, 4, 24)]
    [InlineData(0, 0, 8)]    // hop-by-hop: (0 + 1) × 8
    [InlineData(60, 2, 24)]
    [InlineData(44, 9, 8)]   // the fragment header is always 8, whatever its reserved byte says
    public void Ipv6ExtensionHeaderDeclaredLength_PerKind(byte kind, byte lengthField, int expected)
    {
        byte[] header = new byte[expected];
        header[1] = lengthField;

        Assert.Equal(expected, Ipv6ExtensionHeader.DeclaredLength(header, new IpProtocol(kind)));
        Assert.Equal(HeaderCheck.Ok, Ipv6ExtensionHeader.TryCreate(header, new IpProtocol(kind), out var extension));
        Assert.Equal(expected, extension.Length);
        Assert.Equal(HeaderCheck.Truncated, Ipv6ExtensionHeader.TryCreate(header.AsSpan(0, expected - 1), new IpProtocol(kind), out _));
    }

    [Fact]
    public void VlanTag_PriorityAndId_Decoded()
    {
        Assert.True(VlanTag.TryCreate(Hex.Parse("b0 64 86dd"), out var tag)); // PCP 5, DEI 1, VID 100

        Assert.Equal(5, tag.Priority);
        Assert.Equal(100, tag.VlanId);
        Assert.Equal(EtherType.Ipv6, tag.EtherType);
    }

    [Fact]
    public void VxlanTryCreate_IFlagAndVni()
    {
        Assert.Equal(HeaderCheck.Ok, VxlanHeader.TryCreate(Hex.Parse("08000000 abcdef00"), out var vxlan));
        Assert.Equal(0xabcdefu, vxlan.Vni);
        Assert.Equal(HeaderCheck.Malformed, VxlanHeader.TryCreate(Hex.Parse("00000000 abcdef00"), out _));
    }

    [Theory]
    [InlineData(false, 3, true)]
    [InlineData(false, 4, true)]
    [InlineData(false, 5, true)]
    [InlineData(false, 11, true)]
    [InlineData(false, 12, true)]
    [InlineData(false, 0, false)]
    [InlineData(false, 8, false)]
    [InlineData(true, 1, true)]
    [InlineData(true, 2, true)]
    [InlineData(true, 3, true)]
    [InlineData(true, 4, true)]
    [InlineData(true, 128, false)]
    [InlineData(true, 135, false)]
    public void IcmpIsError_PerType(bool v6, byte type, bool isError)
    {
        Assert.Equal(isError, IcmpHeader.IsError(v6, type));
    }

    [Theory]
    [InlineData(false, 0, true)]
    [InlineData(false, 8, true)]
    [InlineData(false, 13, true)]
    [InlineData(false, 14, true)]
    [InlineData(false, 3, false)]
    [InlineData(true, 128, true)]
    [InlineData(true, 129, true)]
    [InlineData(true, 8, false)]
    [InlineData(true, 1, false)]
    public void IcmpHasIdentifier_PerType(bool v6, byte type, bool hasIdentifier)
    {
        Assert.Equal(hasIdentifier, IcmpHeader.HasIdentifier(v6, type));
    }

    [Fact]
    public void ProtocolNumbers_UnknownValuesSurviveAndFormat()
    {
        Assert.Equal("LINKTYPE_147", new LinkType(147).ToString());
        Assert.Equal("LINUX_SLL2", LinkType.LinuxSll2.ToString());
        Assert.Equal("0x88cc", new EtherType(0x88CC).ToString());
        Assert.Equal("tcp", IpProtocol.Tcp.Name);
        Assert.Equal("132", new IpProtocol(132).Name);
        Assert.True(new EtherType(1500).IsLength);
        Assert.False(new EtherType(1536).IsLength);
    }
}
