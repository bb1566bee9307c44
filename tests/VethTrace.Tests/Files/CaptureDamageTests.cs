using System.Buffers.Binary;
using VethTrace.Capture.Files;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>
/// Damaged files: <see cref="CaptureFileReader.Open(Stream, string)"/> throws <see cref="CaptureFileException"/> only
/// when there is no capture to read at all; past that, the packets before the damage are returned, then
/// TryReadNext returns false with the exact offset of the damaged record and a readable message, for good.
/// </summary>
public sealed class CaptureDamageTests
{
    // ---- not a capture at all ----

    [Fact]
    public void Open_EmptyStream_ThrowsEmptyFile()
    {
        var e = Assert.Throws<CaptureFileException>(() => Open([], "nothing.pcap"));

        Assert.Equal(new CaptureFileError("nothing.pcap", 0, "empty file"), e.Error);
        Assert.Equal("nothing.pcap: at byte 0: empty file", e.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Open_ShorterThanAnyMagic_Throws(int length)
    {
        var e = Assert.Throws<CaptureFileException>(() => Open(CaptureBuilder.Pcap().ToArray()[..length], "short.pcap"));

        Assert.Equal(new CaptureFileError("short.pcap", 0, "file too short for a capture header"), e.Error);
    }

    [Theory]
    [InlineData("474946383961", "not a pcap or pcapng file (magic 0x47494638)")] // "GIF89a"
    [InlineData("00000000000000000000000000000000000000000000000000", "not a pcap or pcapng file (magic 0x00000000)")]
    [InlineData("a1b2c3d5 0200 0400", "not a pcap or pcapng file (magic 0xa1b2c3d5)")]
    public void Open_WrongMagic_Throws(string hex, string message)
    {
        var e = Assert.Throws<CaptureFileException>(() => Open(Convert.FromHexString(hex.Replace(" ", "")), "wrong.pcap"));

        Assert.Equal(new CaptureFileError("wrong.pcap", 0, message), e.Error);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Open_PcapngNotStartingWithSectionHeader_Throws(bool bigEndian)
    {
        // Built as a pcapng, then the section header block removed: the file starts with an IDB.
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription(name: "eth0").EnhancedPacket(0, 1, Payload(14, 0));
        byte[] file = builder.ToArray()[(int)builder.BlockOffsets[1]..];

        var e = Assert.Throws<CaptureFileException>(() => Open(file, "headless.pcapng"));

        Assert.Equal(0, e.Error.Offset);
        Assert.Equal($"not a pcap or pcapng file (magic 0x{(bigEndian ? "00000001" : "01000000")})", e.Error.Message);
    }

    [Theory]
    [InlineData(false, false, 4)]
    [InlineData(true, false, 10)]
    [InlineData(false, true, 23)]
    [InlineData(true, true, 16)]
    public void Open_PcapHeaderCutShort_ThrowsAtItsEnd(bool bigEndian, bool nanoseconds, int length)
    {
        byte[] file = CaptureBuilder.Pcap(bigEndian, nanoseconds).ToArray()[..length];

        var e = Assert.Throws<CaptureFileException>(() => Open(file, "cut.pcap"));

        Assert.Equal(new CaptureFileError("cut.pcap", length, $"pcap file header cut short: {length} of 24 bytes"), e.Error);
    }

    [Fact]
    public void Open_StreamFailsBeforeHeaderIsRead_ThrowsCaptureFileException()
    {
        byte[] file = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).ToArray();

        var e = Assert.Throws<CaptureFileException>(() => CaptureFileReader.Open(new FailingStream(file, failAt: 10), "flaky.pcap"));

        Assert.Equal(new CaptureFileError("flaky.pcap", 10, "read error: device went away"), e.Error);
    }

    [Fact]
    public void TryReadNext_StreamFailsMidFile_StopsAtRecordBeingRead()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(60, 0));
        long damaged = builder.Length;
        builder.EnhancedPacket(0, 2, Payload(60, 1));
        byte[] file = builder.ToArray();

        using CaptureFileReader reader = CaptureFileReader.Open(new FailingStream(file, failAt: (int)damaged + 20), "flaky.pcapng");
        List<ReadPacket> packets = ReadAll(reader);

        Assert.Single(packets);
        AssertStoppedAt(reader, damaged, "read error: device went away");
    }

    // ---- classic pcap records ----    // ---- classic pcap records ----

    [Theory]
    [InlineData(262_145u)]
    [InlineData(uint.MaxValue)]
    public void TryReadNext_PcapCaplenAboveMaximum_StopsAtRecord(uint caplen)
    {
        var builder = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).PcapRecord(2, 0, Payload(60, 1), capturedLength: caplen).PcapRecord(3, 0, Payload(60, 2));

        var (packets, reader) = ReadAll(builder.ToArray(), "big.pcap");

        Assert.Equal(Payload(60, 0), Assert.Single(packets).Data);
        AssertStoppedAt(reader, builder.RecordOffsets[1], $"record caplen {caplen} exceeds the maximum of 262144");
        Assert.Equal(1, reader.PacketsRead);
    }

    [Fact]
    public void TryReadNext_PcapCaplenPastEndOfFile_StopsAtRecord()
    {
        var builder = CaptureBuilder.Pcap(bigEndian: true).PcapRecord(1, 0, Payload(60, 0)).PcapRecord(2, 0, Payload(60, 1), capturedLength: 1000);

        var (packets, reader) = ReadAll(builder.ToArray(), "long.pcap");

        Assert.Single(packets);
        AssertStoppedAt(reader, builder.RecordOffsets[1], "record data cut short: 60 of 1000 bytes");
    }

    // ---- pcapng block framing ----

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_BlockTrailerDiffers_StopsAtBlock(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long damaged = builder.Length;
        builder.Block(CaptureBuilder.BlockType.EnhancedPacket, b => b.U32(0).U32(0).U32(2).U32(4).U32(4).U32(0xdeadbeef), trailerLength: 40);
        builder.EnhancedPacket(0, 3, Payload(14, 0));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Single(packets);
        AssertStoppedAt(reader, damaged, "block length mismatch: 36 at the start, 40 at the end");
    }

    [Theory]
    [InlineData(30u, "block length 30 is not a multiple of 4")]
    [InlineData(13u, "block length 13 is not a multiple of 4")]
    [InlineData(8u, "block length 8 is below the minimum of 12")]
    [InlineData(0u, "block length 0 is below the minimum of 12")]
    [InlineData(CaptureFileReader.MaxBlockLength + 4u, "block length 16777220 exceeds the maximum of 16777216")]
    [InlineData(1000u, "block cut short: 80 of 1000 bytes")]
    public void TryReadNext_BadBlockLength_StopsAtBlock(uint length, string message)
    {
        foreach (bool bigEndian in new[] { false, true })
        {
            var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
            long damaged = builder.Length;
            builder.Block(CaptureBuilder.BlockType.EnhancedPacket, b => b.U32(0).U32(0).U32(2).U32(14).U32(14).Padded(Payload(14, 1)), length: length);
            builder.Block(CaptureBuilder.BlockType.InterfaceStatistics, b => b.Padded(new byte[20]));

            var (packets, reader) = ReadAll(builder.ToArray());

            Assert.Single(packets);
            AssertStoppedAt(reader, damaged, message);
        }
    }

    [Fact]
    public void TryReadNext_BadLengthOfUnknownBlock_StillStops()
    {
        // An unknown block is skipped by its length, so its length must be sound as well.
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long damaged = builder.Length;
        builder.Block(0x0000_0BAD, b => b.Padded(new byte[8]), length: 22);

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "block length 22 is not a multiple of 4");
    }

    // ---- pcapng section header ----

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_BadByteOrderMagicAtStart_StopsAtZero(bool bigEndian)
    {
        byte[] file = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0)).ToArray();
        // Bytes 8-11 hold the byte-order magic; 0x12345678 is neither order of 0x1A2B3C4D.
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), 0x1234_5678);

        using CaptureFileReader reader = Open(file);

        Assert.True(reader.IsPcapng);
        Assert.False(reader.TryReadNext(out _));
        AssertStoppedAt(reader, 0, "section header has a bad byte-order magic 0x12345678");
        Assert.Equal(0, reader.PacketsRead);
    }

    [Fact]
    public void TryReadNext_BadByteOrderMagicInLaterSection_StopsAtThatSection()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long damaged = builder.Length;
        builder.SectionHeader(bigEndian: true, byteOrderMagic: 0x1A2B_3C4E).InterfaceDescription().EnhancedPacket(0, 2, Payload(14, 1));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Single(packets);
        AssertStoppedAt(reader, damaged, "section header has a bad byte-order magic 0x4e3c2b1a");
    }

    [Fact]
    public void TryReadNext_UnsupportedMajorVersion_StopsAtSection()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long damaged = builder.Length;
        builder.SectionHeader(bigEndian: false, majorVersion: 2).InterfaceDescription().EnhancedPacket(0, 2, Payload(14, 1));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Single(packets);
        AssertStoppedAt(reader, damaged, "unsupported pcapng version 2.0");
    }

    [Fact]
    public void TryReadNext_SectionHeaderBodyTooShort_StopsAtSection()
    {
        var builder = CaptureBuilder.Pcapng(bigEndian: true);
        long damaged = builder.Length;
        builder.Block(CaptureBuilder.SectionHeaderType, b => b.U32(CaptureBuilder.ByteOrderMagic).U16(1).U16(0));

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "section header body is 8 bytes, needs 16");
    }

    // ---- pcapng interface description ----

    [Fact]
    public void TryReadNext_InterfaceDescriptionTooShort_StopsAtBlock()
    {
        var builder = CaptureBuilder.Pcapng();
        long damaged = builder.Length;
        builder.Block(CaptureBuilder.BlockType.InterfaceDescription, b => b.U16(1).U16(0));

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "interface description body is 4 bytes, needs 8");
    }

    [Fact]
    public void TryReadNext_InterfaceOptionRunsPastBlock_StopsAtBlock()
    {
        var builder = CaptureBuilder.Pcapng(bigEndian: true).InterfaceDescription(name: "fine");
        long damaged = builder.Length;
        builder.Block(CaptureBuilder.BlockType.InterfaceDescription, b => b.U16(1).U16(0).U32(0).U16(CaptureBuilder.OptionCode.IfName).U16(100).Padded("eth0"u8));

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "interface description options run past the block");
        Assert.Single(reader.Interfaces);
    }

    [Theory]
    [InlineData((byte)19, "interface timestamp resolution 10^-19 is out of range")]
    [InlineData((byte)0x7F, "interface timestamp resolution 10^-127 is out of range")]
    [InlineData((byte)(0x80 | 64), "interface timestamp resolution 2^-64 is out of range")]
    public void TryReadNext_TimestampResolutionOutOfRange_StopsAtBlock(byte tsResol, string message)
    {
        var builder = CaptureBuilder.Pcapng();
        long damaged = builder.Length;
        builder.InterfaceDescription(tsResol: tsResol).EnhancedPacket(0, 1, Payload(14, 0));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Empty(packets);
        AssertStoppedAt(reader, damaged, message);
        Assert.Empty(reader.Interfaces);
    }

    [Theory]
    [InlineData((byte)18)]
    [InlineData((byte)(0x80 | 63))]
    public void TryReadNext_LargestTimestampResolution_IsAccepted(byte tsResol)
    {
        byte[] file = CaptureBuilder.Pcapng().InterfaceDescription(tsResol: tsResol).EnhancedPacket(0, ulong.MaxValue, Payload(14, 0)).ToArray();

        var (packets, reader) = ReadAll(file);

        Assert.Single(packets);
        Assert.True(packets[0].TimestampNs >= 0);
        AssertCleanEnd(reader);
    }

    // ---- pcapng packet blocks ----

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_EpbOnUndeclaredInterface_StopsAtBlock(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long damaged = builder.Length;
        builder.EnhancedPacket(1, 2, Payload(14, 1)).EnhancedPacket(0, 3, Payload(14, 2));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Single(packets);
        AssertStoppedAt(reader, damaged, "packet refers to interface 1, but the section declares 1");
    }

    [Fact]
    public void TryReadNext_EpbOnInterfaceOfEarlierSection_StopsAtBlock()
    {
        // Section one declares two interfaces, section two one: interface 1 does not exist in section two.
        var builder = CaptureBuilder.Pcapng()
            .InterfaceDescription().InterfaceDescription().EnhancedPacket(1, 1, Payload(14, 0))
            .SectionHeader(bigEndian: true).InterfaceDescription().EnhancedPacket(0, 2, Payload(14, 1));
        long damaged = builder.Length;
        builder.EnhancedPacket(1, 3, Payload(14, 2));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal(2, packets.Count);
        AssertStoppedAt(reader, damaged, "packet refers to interface 1, but the section declares 1");
    }

    [Fact]
    public void TryReadNext_EpbBeforeAnyInterface_StopsAtBlock()
    {
        var builder = CaptureBuilder.Pcapng(bigEndian: true);
        long damaged = builder.Length;
        builder.EnhancedPacket(0, 1, Payload(14, 0));

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "packet refers to interface 0, but the section declares 0");
    }

    [Theory]
    [InlineData(21u, "packet caplen 21 runs past the end of its block")]   // padded to 24: past a 20-byte data field
    [InlineData(100u, "packet caplen 100 runs past the end of its block")]
    [InlineData(262_145u, "packet caplen 262145 exceeds the maximum of 262144")]
    [InlineData(uint.MaxValue, "packet caplen 4294967295 exceeds the maximum of 262144")]
    public void TryReadNext_EpbCaplenPastBlock_StopsAtBlock(uint caplen, string message)
    {
        foreach (bool bigEndian in new[] { false, true })
        {
            var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
            long damaged = builder.Length;
            builder.EnhancedPacket(0, 2, Payload(20, 1), capturedLength: caplen).EnhancedPacket(0, 3, Payload(14, 2));

            var (packets, reader) = ReadAll(builder.ToArray());

            Assert.Single(packets);
            AssertStoppedAt(reader, damaged, message);
        }
    }

    [Fact]
    public void TryReadNext_EpbCaplenFillingBlockExactly_IsRead()
    {
        // caplen 20 in a 20-byte data field with no options: the boundary just inside the block.
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 2, Payload(20, 1));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal(Payload(20, 1), Assert.Single(packets).Data);
        AssertCleanEnd(reader);
    }

    [Theory]
    [InlineData(CaptureBuilder.BlockType.EnhancedPacket, "enhanced packet block body is 16 bytes, needs 20")]
    [InlineData(CaptureBuilder.BlockType.Packet, "packet block body is 16 bytes, needs 20")]
    public void TryReadNext_PacketBlockBodyTooShort_StopsAtBlock(uint type, string message)
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription();
        long damaged = builder.Length;
        builder.Block(type, b => b.U32(0).U32(0).U32(0).U32(0));

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, message);
    }

    [Fact]
    public void TryReadNext_SimplePacketBodyEmpty_StopsAtBlock()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription();
        long damaged = builder.Length;
        builder.Block(CaptureBuilder.BlockType.SimplePacket, _ => { });

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "simple packet block body is 0 bytes, needs 4");
    }

    [Fact]
    public void TryReadNext_SimplePacketBeforeSectionsInterface_StopsAtBlock()
    {
        // The previous section's interfaces do not count: an SPB belongs to its own section's interface 0.
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().SimplePacket(Payload(14, 0)).SectionHeader(bigEndian: false);
        long damaged = builder.Length;
        builder.SimplePacket(Payload(14, 1));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Single(packets);
        AssertStoppedAt(reader, damaged, "simple packet block before any interface description");
    }

    [Fact]
    public void TryReadNext_SimplePacketAboveMaximum_StopsAtBlock()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription(snapLength: 0);
        long damaged = builder.Length;
        builder.SimplePacket(new byte[CaptureFileReader.MaxCaptureLength + 4]);

        var (_, reader) = ReadAll(builder.ToArray());

        AssertStoppedAt(reader, damaged, "packet length 262148 exceeds the maximum of 262144");
    }

    /// <summary>Serves <c>failAt</c> bytes, one read at a time, then throws as a failing disk does.</summary>
    private sealed class FailingStream(byte[] data, int failAt) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => data.Length;

        public override long Position
        {
            get => _position;
            set => _position = (int)value;
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= failAt)
            {
                throw new IOException("device went away");
            }
            int n = Math.Min(Math.Min(count, failAt - _position), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer.AsSpan(offset));
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            _position = (int)(origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => data.Length + offset });
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
