using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>pcapng (draft-ietf-opsawg-pcapng-03): sections, interfaces and their clocks, the three packet blocks.</summary>
public sealed class PcapngReaderTests
{
    // A hand-laid little-endian pcapng, independent of CaptureBuilder: SHB, IDB (if_name "eth0", if_tsresol 9),
    // EPB (epb_flags inbound) with the same 20 bytes as the pcap vector. tshark reads it as:
    // 1700000000.123456000, frame.interface_name eth0, frame.len 60, frame.cap_len 20, frame.p2p_dir 1 (inbound).
    //   0000  ff ff ff ff ff ff 02 42 ac 11 00 02 08 06 00 01   .......B........
    //   0010  08 00 06 04                                       ....
    private const string LittleEndianVector =
        "0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000" +                                      // SHB, 28 bytes
        "01000000 28000000 0100 0000 00000400 0200 0400 65746830 0900 0100 09000000 0000 0000 28000000" +     // IDB, 40 bytes
        "06000000 40000000 00000000 fe9c9717 00ca853d 14000000 3c000000" +                                  // EPB: if 0, ts 0x17979cfe3d85ca00 ns, caplen 20, len 60
        "ffffffffffff 0242ac110002 0806 0001 0800 06 04" +
        "0200 0400 01000000 0000 0000 40000000";                                                             // epb_flags inbound, end, trailer

    [Fact]
    public void TryReadNext_HandWrittenVector_ReadsEveryField()
    {
        byte[] file = Convert.FromHexString(LittleEndianVector.Replace(" ", ""));

        var (packets, reader) = ReadAll(file, "vector.pcapng");

        Assert.True(reader.IsPcapng);
        ReadPacket packet = Assert.Single(packets);
        Assert.Equal(new ReadPacket(packet.Data, 1_700_000_000_123_456_000L, 0, LinkType.Ethernet, 60, PacketDirection.Inbound, 68), packet);
        Assert.Equal(Convert.FromHexString("ffffffffffff0242ac11000208060001 08000604".Replace(" ", "")), packet.Data);
        Assert.Equal(new CaptureInterface(0, "eth0", null, LinkType.Ethernet, 262_144, 9), Assert.Single(reader.Interfaces));
        AssertCleanEnd(reader);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_SectionInEitherByteOrder_ReadsEveryBlockKind(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian)
            .InterfaceDescription(linkType: 113, snapLength: 0, name: "any")
            .EnhancedPacket(0, 1_700_000_000_000_001, Payload(61, 1), originalLength: 100, flags: 2)
            .SimplePacket(Payload(33, 2))
            .ObsoletePacket(0, 1_700_000_000_000_003, Payload(7, 3), flags: 1);

        var (packets, reader) = ReadAll(builder.ToArray(), "order.pcapng");

        Assert.Equal(3, packets.Count);
        Assert.Equal([Payload(61, 1), Payload(33, 2), Payload(7, 3)], packets.Select(p => p.Data));
        Assert.Equal([1_700_000_000_000_001_000L, 1_700_000_000_000_001_000L, 1_700_000_000_000_003_000L], packets.Select(p => p.TimestampNs));
        Assert.Equal([100, 33, 7], packets.Select(p => p.OriginalLength));
        Assert.Equal([PacketDirection.Outbound, PacketDirection.Unknown, PacketDirection.Inbound], packets.Select(p => p.Direction));
        Assert.All(packets, p => Assert.Equal(LinkType.LinuxSll, p.LinkType));
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        Assert.Equal(new CaptureInterface(0, "any", null, LinkType.LinuxSll, 0, 6), Assert.Single(reader.Interfaces));
        AssertCleanEnd(reader);
        Assert.Equal(3, reader.PacketsRead);
    }

    [Fact]
    public void TryReadNext_SectionsOfDifferentByteOrders_NumberInterfacesGlobally()
    {
        // pcapng draft section 4.2: interface ids count from 0 within each section, so section two's
        // interface 0 is a different interface from section one's.
        var builder = CaptureBuilder.Pcapng(bigEndian: false)
            .InterfaceDescription(linkType: 1, name: "eth0")
            .InterfaceDescription(linkType: 101)
            .EnhancedPacket(1, 10, Payload(20, 1))
            .EnhancedPacket(0, 11, Payload(21, 2))
            .SectionHeader(bigEndian: true)
            .InterfaceDescription(linkType: 276, snapLength: 65535, name: "veth1a2b3c", description: "container web", tsResol: 9)
            .EnhancedPacket(0, 12, Payload(22, 3))
            .SimplePacket(Payload(23, 4))
            .SectionHeader(bigEndian: false)
            .InterfaceDescription(linkType: 113)
            .EnhancedPacket(0, 13, Payload(24, 5));

        var (packets, reader) = ReadAll(builder.ToArray(), "captures/multi.pcapng");

        Assert.Equal(
            [
                new CaptureInterface(0, "eth0", null, LinkType.Ethernet, 0, 6),
                new CaptureInterface(1, "multi:1", null, LinkType.Raw, 0, 6),
                new CaptureInterface(2, "veth1a2b3c", "container web", LinkType.LinuxSll2, 65535, 9),
                new CaptureInterface(3, "multi:0", null, LinkType.LinuxSll, 0, 6),
            ],
            reader.Interfaces);
        Assert.Equal([1, 0, 2, 2, 3], packets.Select(p => p.InterfaceId));
        Assert.Equal([LinkType.Raw, LinkType.Ethernet, LinkType.LinuxSll2, LinkType.LinuxSll2, LinkType.LinuxSll], packets.Select(p => p.LinkType));
        Assert.Equal([10_000L, 11_000, 12, 12, 13_000], packets.Select(p => p.TimestampNs));
        Assert.Equal(Enumerable.Range(1, 5).Select(i => Payload(19 + i, i)), packets.Select(p => p.Data));
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        Assert.Equal("veth1a2b3c (container web)", reader.Interfaces[2].ToString());
        AssertCleanEnd(reader);
    }

    [Fact]
    public void Interfaces_DeclaredAsTheFileGoes_GrowWhileReading()
    {
        byte[] file = CaptureBuilder.Pcapng()
            .InterfaceDescription(name: "a")
            .EnhancedPacket(0, 1, Payload(4, 0))
            .InterfaceDescription(name: "b")
            .EnhancedPacket(1, 2, Payload(4, 0))
            .ToArray();
        using CaptureFileReader reader = Open(file);

        Assert.Empty(reader.Interfaces);
        Assert.True(reader.TryReadNext(out _));
        Assert.Equal(["a"], reader.Interfaces.Select(i => i.Name));
        Assert.True(reader.TryReadNext(out CaptureRecord second));
        Assert.Equal(1, second.InterfaceId);
        Assert.Equal(["a", "b"], reader.Interfaces.Select(i => i.Name));
    }

    [Theory]
    [InlineData("dir/host.pcapng", "host")]
    [InlineData("host.pcapng.gz", "host")]
    [InlineData("host", "host")]
    public void Open_InterfaceWithoutName_IsNamedAfterFileAndLocalId(string path, string baseName)
    {
        byte[] file = CaptureBuilder.Pcapng()
            .InterfaceDescription(description: "no name here")
            .InterfaceDescription(name: "")
            .InterfaceDescription(name: "named")
            .InterfaceDescription()
            .ToArray();

        var (_, reader) = ReadAll(file, path);

        Assert.Equal([$"{baseName}:0", $"{baseName}:1", "named", $"{baseName}:3"], reader.Interfaces.Select(i => i.Name));
        Assert.Equal("no name here", reader.Interfaces[0].Description);
    }

    [Theory]
    [InlineData(null, 1_700_000_000_123_456UL, 1_700_000_000_123_456_000L, 6)]  // no option: microseconds
    [InlineData((byte)6, 1_700_000_000_123_456UL, 1_700_000_000_123_456_000L, 6)]
    [InlineData((byte)9, 1_700_000_000_123_456_789UL, 1_700_000_000_123_456_789L, 9)]
    [InlineData((byte)3, 1_700_000_000_123UL, 1_700_000_000_123_000_000L, 3)]
    [InlineData((byte)0, 1_700_000_000UL, 1_700_000_000_000_000_000L, 0)]
    [InlineData((byte)12, 123_456_789_012UL, 123_456_789L, 12)]                   // picoseconds truncate to ns
    [InlineData((byte)(0x80 | 20), (1_700_000_000UL << 20) | (1UL << 19), 1_700_000_000_500_000_000L, -20)] // 2^-20 s
    [InlineData((byte)(0x80 | 10), (5UL << 10) | 256, 5_250_000_000L, -10)]      // 2^-10 s
    [InlineData((byte)(0x80 | 32), (3UL << 32) | (1UL << 30), 3_250_000_000L, -32)] // 2^-32 s, the NTP fraction
    // A stamp beyond 2^63 - 1 ns (year 2262) saturates instead of wrapping; the largest that fits is exact (the
    // reader scales by a factor worked out once per interface and checks the bound instead of multiplying in 128 bits).
    [InlineData((byte)6, 9_223_372_036_854_775UL, 9_223_372_036_854_775_000L, 6)]
    [InlineData((byte)6, 9_223_372_036_854_776UL, long.MaxValue, 6)]
    [InlineData((byte)6, ulong.MaxValue, long.MaxValue, 6)]
    [InlineData((byte)9, 9_223_372_036_854_775_807UL, long.MaxValue, 9)]
    [InlineData((byte)9, 9_223_372_036_854_775_808UL, long.MaxValue, 9)]
    [InlineData((byte)0, 9_223_372_036UL, 9_223_372_036_000_000_000L, 0)]
    [InlineData((byte)0, 9_223_372_037UL, long.MaxValue, 0)]
    public void TryReadNext_IfTsResol_ConvertsToUnixNanoseconds(byte? tsResol, ulong units, long expectedNs, int reportedResolution)
    {
        foreach (bool bigEndian in new[] { false, true })
        {
            byte[] file = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription(name: "eth0", tsResol: tsResol).EnhancedPacket(0, units, Payload(14, 0)).ToArray();

            var (packets, reader) = ReadAll(file);

            Assert.Equal(expectedNs, Assert.Single(packets).TimestampNs);
            Assert.Equal(reportedResolution, reader.Interfaces[0].TimestampResolution);
        }
    }

    [Theory]
    [InlineData(1_600_000_000L, 1_600_100_000_123_456_000L)]
    [InlineData(-3600L, 96_400_123_456_000L)]
    [InlineData(0L, 100_000_123_456_000L)]
    public void TryReadNext_IfTsOffset_AddsSecondsToEveryTimestamp(long offsetSeconds, long expectedNs)
    {
        foreach (bool bigEndian in new[] { false, true })
        {
            byte[] file = CaptureBuilder.Pcapng(bigEndian)
                .InterfaceDescription(name: "plain")
                .InterfaceDescription(name: "shifted", tsOffset: offsetSeconds)
                .EnhancedPacket(1, 100_000_123_456, Payload(14, 0))
                .EnhancedPacket(0, 100_000_123_456, Payload(14, 0))
                .ObsoletePacket(1, 100_000_123_456, Payload(14, 0))
                .ToArray();

            var (packets, _) = ReadAll(file);

            Assert.Equal([expectedNs, 100_000_123_456_000L, expectedNs], packets.Select(p => p.TimestampNs));
        }
    }

    [Theory]
    [InlineData(0u, PacketDirection.Unknown)]
    [InlineData(1u, PacketDirection.Inbound)]
    [InlineData(2u, PacketDirection.Outbound)]
    [InlineData(3u, PacketDirection.Unknown)]          // 11 is not a direction
    [InlineData(0x0000_0005u, PacketDirection.Inbound)] // reception type unicast (bits 2-4) beside the direction
    [InlineData(0xFFFF_0002u, PacketDirection.Outbound)] // link-layer error bits (16-31) ignored
    public void TryReadNext_EpbFlags_GiveDirection(uint flags, PacketDirection expected)
    {
        foreach (bool bigEndian in new[] { false, true })
        {
            byte[] file = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0), flags: flags).ToArray();

            var (packets, _) = ReadAll(file);

            Assert.Equal(expected, Assert.Single(packets).Direction);
        }
    }

    [Fact]
    public void TryReadNext_EpbOptionsBesideFlags_AreSkipped()
    {
        byte[] file = CaptureBuilder.Pcapng()
            .InterfaceDescription()
            .Block(CaptureBuilder.BlockType.EnhancedPacket, body =>
            {
                body.U32(0).U32(0).U32(1_000).U32(3).U32(3).Padded([1, 2, 3]);
                body.Option(CaptureBuilder.OptionCode.Comment, "a comment, 27 bytes long.."u8);
                body.Option(CaptureBuilder.OptionCode.EpbFlags, body.UInt32Bytes(2));
                body.U32(0);
            })
            .ToArray();

        var (packets, reader) = ReadAll(file);

        ReadPacket packet = Assert.Single(packets);
        Assert.Equal(PacketDirection.Outbound, packet.Direction);
        Assert.Equal([1, 2, 3], packet.Data);
        Assert.Equal(1_000_000L, packet.TimestampNs);
        AssertCleanEnd(reader);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_SimplePacket_TakesPreviousTimestampAndFirstInterfaceAndSnapLength(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian)
            .InterfaceDescription(linkType: 1, snapLength: 64, name: "first")
            .InterfaceDescription(linkType: 101, snapLength: 0, name: "second")
            .SimplePacket(Payload(100, 1))                        // no packet before it: time 0; cut to the first interface's snaplen
            .EnhancedPacket(1, 42_000_000, Payload(30, 2))
            .SimplePacket(Payload(5, 3))                          // 3 bytes of padding are not data
            .SimplePacket(Payload(40, 4), originalLength: 1500)   // the block holds less than the original
            .SectionHeader(bigEndian)
            .InterfaceDescription(linkType: 113, snapLength: 0, name: "third")
            .SimplePacket(Payload(200, 5));                       // snaplen 0: no limit; the new section's first interface

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal([Payload(64, 1), Payload(30, 2), Payload(5, 3), Payload(40, 4), Payload(200, 5)], packets.Select(p => p.Data));
        Assert.Equal([100, 30, 5, 1500, 200], packets.Select(p => p.OriginalLength));
        Assert.Equal([0, 1, 0, 0, 2], packets.Select(p => p.InterfaceId));
        Assert.Equal([LinkType.Ethernet, LinkType.Raw, LinkType.Ethernet, LinkType.Ethernet, LinkType.LinuxSll], packets.Select(p => p.LinkType));
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        Assert.Equal([0L, 42_000_000_000, 42_000_000_000, 42_000_000_000, 42_000_000_000], packets.Select(p => p.TimestampNs));
        Assert.All(packets, p => Assert.Equal(PacketDirection.Unknown, p.Direction));
        AssertCleanEnd(reader);
    }

    [Fact]
    public void TryReadNext_ObsoletePacketBlock_ReadsSixteenBitInterfaceId()
    {
        var builder = CaptureBuilder.Pcapng(bigEndian: true)
            .InterfaceDescription(name: "a")
            .InterfaceDescription(name: "b", linkType: 228)
            .ObsoletePacket(1, 7_000_001, Payload(9, 1), originalLength: 90, flags: 2)
            .ObsoletePacket(0, 7_000_002, Payload(8, 2));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal(
            [
                new ReadPacket(packets[0].Data, 7_000_001_000, 1, LinkType.Ipv4, 90, PacketDirection.Outbound, builder.RecordOffsets[0]),
                new ReadPacket(packets[1].Data, 7_000_002_000, 0, LinkType.Ethernet, 8, PacketDirection.Unknown, builder.RecordOffsets[1]),
            ],
            packets);
        Assert.Equal(Payload(9, 1), packets[0].Data);
        AssertCleanEnd(reader);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_UnknownBlocks_AreSkipped(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian)
            .OpaqueBlock(CaptureBuilder.BlockType.NameResolution, [0x01, 0x00, 0x08, 0x00, 10, 0, 0, 1, (byte)'h', (byte)'o', (byte)'s', (byte)'t', 0, 0, 0, 0])
            .InterfaceDescription(name: "eth0")
            .EnhancedPacket(0, 1, Payload(14, 1))
            .OpaqueBlock(CaptureBuilder.BlockType.InterfaceStatistics, new byte[24])
            .OpaqueBlock(0x0000_0BAD, Payload(13, 7))  // custom block
            .OpaqueBlock(0x4000_0BAD, [])              // custom block, do-not-copy flavour, empty body
            .OpaqueBlock(0x0000_000A, new byte[40])    // decryption secrets
            .EnhancedPacket(0, 2, Payload(15, 2))
            .OpaqueBlock(CaptureBuilder.BlockType.InterfaceStatistics, new byte[24]);

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal([Payload(14, 1), Payload(15, 2)], packets.Select(p => p.Data));
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        Assert.Equal(2, reader.PacketsRead);
        AssertCleanEnd(reader);
    }

    [Fact]
    public void TryReadNext_OnlySectionHeader_EndsCleanly()
    {
        using CaptureFileReader reader = Open(CaptureBuilder.Pcapng().ToArray());

        Assert.True(reader.IsPcapng);
        AssertCleanEnd(reader);
        Assert.Empty(reader.Interfaces);
    }
}
