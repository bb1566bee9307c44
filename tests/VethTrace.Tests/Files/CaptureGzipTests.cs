using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>gzip-compressed captures (RFC 1952), read transparently as Wireshark does.</summary>
public sealed class CaptureGzipTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Open_GzipPcap_ReadsTransparently(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcap(bigEndian, nanoseconds: true, linkType: 113);
        for (int i = 0; i < 50; i++)
        {
            builder.PcapRecord(1_700_000_000, (uint)i, Payload(60 + i, i));
        }
        byte[] plain = builder.ToArray();

        var (packets, reader) = ReadAll(CaptureBuilder.Gzip(plain), "split/x.pcap.gz");

        Assert.True(reader.IsCompressed);
        Assert.False(reader.IsPcapng);
        Assert.Equal(new CaptureInterface(0, "x", null, LinkType.LinuxSll, 262_144, 9), Assert.Single(reader.Interfaces));
        var (expected, _) = ReadAll(plain, "split/x.pcap");
        Assert.Equal(expected, packets, ReadPacketComparer.Instance);
        Assert.Equal(50, packets.Count);
        Assert.Equal(1_700_000_000_000_000_049L, packets[^1].TimestampNs);
        // Offsets count decompressed bytes.
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        AssertCleanEnd(reader);
    }

    [Fact]
    public void Open_GzipPcapng_ReadsTransparently()
    {
        var builder = CaptureBuilder.Pcapng(bigEndian: true)
            .InterfaceDescription(name: "docker0")
            .EnhancedPacket(0, 5, Payload(70, 1), flags: 2)
            .SectionHeader(bigEndian: false)
            .InterfaceDescription()
            .SimplePacket(Payload(71, 2));

        var (packets, reader) = ReadAll(CaptureBuilder.Gzip(builder.ToArray()), "dir/both.pcapng.gz");

        Assert.True(reader.IsCompressed);
        Assert.True(reader.IsPcapng);
        Assert.Equal(["docker0", "both:0"], reader.Interfaces.Select(i => i.Name));
        Assert.Equal([Payload(70, 1), Payload(71, 2)], packets.Select(p => p.Data));
        Assert.Equal([0, 1], packets.Select(p => p.InterfaceId));
        Assert.Equal(PacketDirection.Outbound, packets[0].Direction);
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        AssertCleanEnd(reader);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Open_StreamThatCannotSeek_GzipOrNotReadWhole(bool compressed)
    {
        // A pipe (/dev/stdin): the bytes peeked at for the gzip magic must not be lost.
        var builder = CaptureBuilder.Pcapng().InterfaceDescription(name: "eth0").EnhancedPacket(0, 1, Payload(60, 0)).EnhancedPacket(0, 2, Payload(61, 1));
        byte[] plain = builder.ToArray();

        using CaptureFileReader reader = CaptureFileReader.Open(new VethTrace.Fuzz.ForwardOnlyStream(compressed ? CaptureBuilder.Gzip(plain) : plain), "pipe");
        List<ReadPacket> packets = ReadAll(reader);

        Assert.Equal(compressed, reader.IsCompressed);
        Assert.Equal([Payload(60, 0), Payload(61, 1)], packets.Select(p => p.Data));
        Assert.Equal(builder.RecordOffsets, packets.Select(p => p.FileOffset));
        AssertCleanEnd(reader);
    }

    [Fact]
    public void Open_PlainFile_IsNotCompressed()
    {
        using CaptureFileReader reader = Open(CaptureBuilder.Pcapng().ToArray(), "plain.pcapng.gz");

        Assert.False(reader.IsCompressed);
    }

    [Fact]
    public void Open_GzipOfNothing_ThrowsEmptyFile()
    {
        var e = Assert.Throws<CaptureFileException>(() => Open(CaptureBuilder.Gzip([]), "nothing.pcap.gz"));

        Assert.Equal("empty file", e.Error.Message);
    }

    [Fact]
    public void TryReadNext_GzipCutMidRecord_StopsAtCutRecord()
    {
        // Cutting the compressed stream ends the decompressed one early; the reader sees a cut record.
        var builder = CaptureBuilder.Pcap();
        for (int i = 0; i < 2000; i++)
        {
            builder.PcapRecord((uint)i, 0, Payload(100, i));
        }
        byte[] compressed = CaptureBuilder.Gzip(builder.ToArray());

        var (packets, reader) = ReadAll(compressed[..(compressed.Length / 2)], "cut.pcap.gz");

        Assert.InRange(packets.Count, 1, 1999);
        Assert.NotNull(reader.Error);
        Assert.Equal(builder.RecordOffsets[packets.Count], reader.Error.Offset);
        AssertStoppedAt(reader, reader.Error.Offset, reader.Error.Message);
    }

    [Fact]
    public void TryReadNext_GzipCorruptMidStream_StopsWithoutThrowing()
    {
        var builder = CaptureBuilder.Pcap();
        for (int i = 0; i < 2000; i++)
        {
            builder.PcapRecord((uint)i, 0, Payload(100, i * 7));
        }
        byte[] compressed = CaptureBuilder.Gzip(builder.ToArray());
        // Scribble over the middle of the deflate data: an invalid code, or packets that are garbage.
        for (int i = compressed.Length / 2; i < compressed.Length / 2 + 64; i++)
        {
            compressed[i] = 0xFF;
        }

        var (packets, reader) = ReadAll(compressed, "corrupt.pcap.gz");

        Assert.InRange(packets.Count, 1, 1999);
        Assert.NotNull(reader.Error);
        AssertStoppedAt(reader, reader.Error.Offset, reader.Error.Message);
    }

    [Theory]
    [InlineData(2, 7)]     // compression method 7: RFC 1952 section 2.3.1 knows only CM 8 (deflate)
    [InlineData(10, 0x07)] // first deflate block of type 11, reserved: an error (RFC 1951 section 3.2.3)
    public void Open_GzipDamagedBeforeFirstPacket_ThrowsCaptureFileException(int at, byte value)
    {
        // The damage is met by Open's first read, so it is Open's to report, as a CaptureFileException.
        byte[] file = CaptureBuilder.Gzip(CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).ToArray());
        file[at] = value;

        var e = Assert.Throws<CaptureFileException>(() => Open(file, "damaged.pcap.gz"));

        Assert.Equal(0, e.Error.Offset);
        Assert.StartsWith("compressed data damaged: ", e.Error.Message);
    }

    [Fact]
    public void TryReadNext_GzipTrailerChecksumWrong_StopsWithError()
    {
        // RFC 1952 section 2.3.1: CRC32 then ISIZE close the member. GZipStream throws when it checks them,
        // and the data it inflated in that same read is lost with the exception: the packets before that
        // read are returned, then the error, at the first record not returned.
        var builder = CaptureBuilder.Pcap();
        for (int i = 0; i < 2000; i++)
        {
            builder.PcapRecord((uint)i, 0, Payload(100, i));
        }
        byte[] file = CaptureBuilder.Gzip(builder.ToArray());
        file[^5] ^= 0x01; // the CRC32's last byte

        var (packets, reader) = ReadAll(file, "crc.pcap.gz");

        Assert.InRange(packets.Count, 1, 1999);
        Assert.NotNull(reader.Error);
        Assert.StartsWith("compressed data damaged: ", reader.Error.Message);
        AssertStoppedAt(reader, builder.RecordOffsets[packets.Count], reader.Error.Message);
    }

    [Fact]
    public void TryReadNext_GzipWithTrailingZeros_ReadsEveryPacket()
    {
        // Some tools pad a gzip file to a block size; GZipStream ignores what follows the last member.
        byte[] plain = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).PcapRecord(2, 0, Payload(61, 1)).ToArray();

        var (packets, reader) = ReadAll([.. CaptureBuilder.Gzip(plain), 0, 0, 0, 0, 0, 0, 0, 0], "padded.pcap.gz");

        Assert.Equal(2, packets.Count);
        AssertCleanEnd(reader);
    }

    /// <summary>Compares copied packets by value, data included (records compare arrays by reference).</summary>
    private sealed class ReadPacketComparer : IEqualityComparer<ReadPacket>
    {
        public static readonly ReadPacketComparer Instance = new();

        public bool Equals(ReadPacket? x, ReadPacket? y) =>
            x is not null && y is not null && x.Data.AsSpan().SequenceEqual(y.Data) && x with { Data = y.Data } == y;

        public int GetHashCode(ReadPacket obj) => obj.FileOffset.GetHashCode();
    }
}
