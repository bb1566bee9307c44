using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>Classic pcap (draft-ietf-opsawg-pcap-04): byte orders, timestamp precisions, header fields, offsets.</summary>
public sealed class PcapReaderTests
{
    // A hand-laid little-endian microsecond pcap with one 20-byte ARP fragment, independent of CaptureBuilder.
    // tshark reads it as: 1700000000.123456000, frame.len 60, frame.cap_len 20, eth.src 02:42:ac:11:00:02.
    //   0000  ff ff ff ff ff ff 02 42 ac 11 00 02 08 06 00 01   .......B........
    //   0010  08 00 06 04                                       ....
    private const string LittleEndianMicrosecondVector =
        "d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000" + // magic, v2.4, thiszone, sigfigs, snaplen 262144, EN10MB
        "00f15365 40e20100 14000000 3c000000" +                    // ts 1700000000.123456, caplen 20, len 60
        "ffffffffffff 0242ac110002 0806 0001 0800 06 04";

    [Fact]
    public void TryReadNext_HandWrittenVector_ReadsEveryField()
    {
        byte[] file = Convert.FromHexString(LittleEndianMicrosecondVector.Replace(" ", ""));

        var (packets, reader) = ReadAll(file, "vector.pcap");

        Assert.False(reader.IsPcapng);
        Assert.False(reader.IsCompressed);
        ReadPacket packet = Assert.Single(packets);
        Assert.Equal(1_700_000_000_123_456_000L, packet.TimestampNs);
        Assert.Equal(60, packet.OriginalLength);
        Assert.Equal(Convert.FromHexString("ffffffffffff0242ac11000208060001 08000604".Replace(" ", "")), packet.Data);
        Assert.Equal(LinkType.Ethernet, packet.LinkType);
        Assert.Equal(24, packet.FileOffset);
        Assert.Equal(PacketDirection.Unknown, packet.Direction);
        CaptureInterface only = Assert.Single(reader.Interfaces);
        Assert.Equal(new CaptureInterface(0, "vector", null, LinkType.Ethernet, 262_144, 6), only);
        AssertCleanEnd(reader);
        Assert.Equal(1, reader.PacketsRead);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void TryReadNext_EitherByteOrderAndPrecision_ConvertsTimestampsExactly(bool bigEndian, bool nanoseconds)
    {
        // uint.MaxValue seconds (2106-02-07) checks the seconds field is read unsigned.
        uint[] seconds = [0, 1_700_000_000, uint.MaxValue];
        uint[] fractions = nanoseconds ? [0, 123_456_789, 999_999_999] : [0, 123_456, 999_999];
        var builder = CaptureBuilder.Pcap(bigEndian, nanoseconds);
        for (int i = 0; i < seconds.Length; i++)
        {
            builder.PcapRecord(seconds[i], fractions[i], Payload(10 + i, i));
        }

        var (packets, reader) = ReadAll(builder.ToArray(), "t.pcap");

        long[] expected = nanoseconds
            ? [0, 1_700_000_000_123_456_789, 4_294_967_295_999_999_999]
            : [0, 1_700_000_000_123_456_000, 4_294_967_295_999_999_000];
        Assert.Equal(expected, packets.Select(p => p.TimestampNs));
        for (int i = 0; i < seconds.Length; i++)
        {
            Assert.Equal(Payload(10 + i, i), packets[i].Data);
        }
        Assert.Equal(nanoseconds ? 9 : 6, reader.Interfaces[0].TimestampResolution);
        AssertCleanEnd(reader);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Open_SnapLengthAndLinkType_ReadInFileByteOrder(bool bigEndian)
    {
        byte[] file = CaptureBuilder.Pcap(bigEndian, snapLength: 1514, linkType: 276).PcapRecord(1, 2, Payload(20, 0)).ToArray();

        var (packets, reader) = ReadAll(file, "any.pcap");

        Assert.Equal(1514, reader.Interfaces[0].SnapLength);
        Assert.Equal(LinkType.LinuxSll2, reader.Interfaces[0].LinkType);
        Assert.Equal(LinkType.LinuxSll2, Assert.Single(packets).LinkType);
    }

    [Theory]
    [InlineData(0x1000_0001u)] // FCS length 1 (bits 28-31) without the F bit
    [InlineData(0x4400_0001u)] // F bit (26) and FCS length 4: Ethernet with a 4-byte FCS
    [InlineData(0xF400_0001u)] // every FCS bit
    public void Open_FcsBitsInLinkType_AreMasked(uint linkTypeField)
    {
        // pcap draft section 4: the top 6 bits of the LinkType field carry the FCS length, not the link type.
        foreach (bool bigEndian in new[] { false, true })
        {
            byte[] file = CaptureBuilder.Pcap(bigEndian, linkType: linkTypeField).PcapRecord(1, 0, Payload(14, 0)).ToArray();

            var (packets, reader) = ReadAll(file, "fcs.pcap");

            Assert.Equal(LinkType.Ethernet, reader.Interfaces[0].LinkType);
            Assert.Equal(LinkType.Ethernet, Assert.Single(packets).LinkType);
        }
    }

    [Theory]
    [InlineData("split/docker0.pcap", "docker0")]
    [InlineData("/var/tmp/veth1a2b3c.pcapng", "veth1a2b3c")]
    [InlineData("x.pcap.gz", "x")]
    [InlineData("X.PCAP.GZ", "X")]
    [InlineData("noextension", "noextension")]
    public void Open_PcapFile_NamesInterfaceAfterBaseName(string path, string expected)
    {
        using CaptureFileReader reader = Open(CaptureBuilder.Pcap().ToArray(), path);

        Assert.Equal(expected, Assert.Single(reader.Interfaces).Name);
        Assert.Equal(path, reader.Path);
    }

    [Fact]
    public void TryReadNext_SnapLengthCut_ReportsOriginalLength()
    {
        byte[] file = CaptureBuilder.Pcap(snapLength: 64)
            .PcapRecord(1, 0, Payload(64, 0), originalLength: 1514)
            .PcapRecord(2, 0, Payload(60, 1), originalLength: 60)
            .ToArray();

        var (packets, _) = ReadAll(file, "cut.pcap");

        Assert.Equal([1514, 60], packets.Select(p => p.OriginalLength));
        Assert.Equal([64, 60], packets.Select(p => p.Data.Length));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_SeveralRecords_ReportsEachRecordsFileOffset(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcap(bigEndian);
        int[] lengths = [60, 0, 1, 1514, 3];
        for (int i = 0; i < lengths.Length; i++)
        {
            // The empty record stands for a packet cut to nothing (its length is not 0, which would be damage).
            builder.PcapRecord((uint)i, 0, Payload(lengths[i], i), originalLength: (uint)lengths[i] + 60);
        }

        var (packets, reader) = ReadAll(builder.ToArray(), "offsets.pcap");

        Assert.Equal([24L, 24 + 16 + 60, 24 + 16 + 60 + 16, 24 + 16 + 60 + 16 + 16 + 1, 24 + 16 + 60 + 16 + 16 + 1 + 16 + 1514], packets.Select(p => p.FileOffset));
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        Assert.Equal(lengths, packets.Select(p => p.Data.Length));
        Assert.Equal(lengths.Length, reader.PacketsRead);
    }

    [Fact]
    public void TryReadNext_EmptyCaptureOfNonEmptyPacket_ReturnsEmptyPacket()
    {
        byte[] file = CaptureBuilder.Pcap().PcapRecord(5, 6, [], originalLength: 64).PcapRecord(7, 8, Payload(4, 9)).ToArray();

        var (packets, reader) = ReadAll(file, "empty.pcap");

        Assert.Equal(2, packets.Count);
        Assert.Empty(packets[0].Data);
        Assert.Equal(64, packets[0].OriginalLength);
        Assert.Equal(5_000_006_000L, packets[0].TimestampNs);
        Assert.Equal(Payload(4, 9), packets[1].Data);
        AssertCleanEnd(reader);
    }

    [Fact]
    public void TryReadNext_LargestAllowedCaplen_IsRead()
    {
        byte[] file = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(CaptureFileReader.MaxCaptureLength, 3)).ToArray();

        var (packets, reader) = ReadAll(file, "jumbo.pcap");

        Assert.Equal(Payload(CaptureFileReader.MaxCaptureLength, 3), Assert.Single(packets).Data);
        AssertCleanEnd(reader);
    }

    [Fact]
    public void TryReadNext_HeaderOnly_EndsCleanlyWithNoPackets()
    {
        using CaptureFileReader reader = Open(CaptureBuilder.Pcap().ToArray(), "empty.pcap");

        AssertCleanEnd(reader);
        Assert.Equal(0, reader.PacketsRead);
        Assert.Single(reader.Interfaces);
    }
}
