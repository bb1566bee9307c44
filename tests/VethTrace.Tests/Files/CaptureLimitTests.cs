using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>
/// Lengths a capture cannot hold (caplen above the snaplen, records of no length), link types the parser does not
/// decode, and the memory a hostile length field may cost.
/// </summary>
public sealed class CaptureLimitTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_PcapCaplenAboveSnaplen_StopsAtRecord(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcap(bigEndian, snapLength: 64).PcapRecord(1, 0, Payload(64, 0)).PcapRecord(2, 0, Payload(65, 1)).PcapRecord(3, 0, Payload(10, 2));

        var (packets, reader) = ReadAll(builder.ToArray(), "snap.pcap");

        Assert.Equal(Payload(64, 0), Assert.Single(packets).Data);
        AssertStoppedAt(reader, builder.RecordOffsets[1], "record caplen 65 exceeds the snaplen of 64");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_EpbCaplenAboveInterfaceSnaplen_StopsAtBlock(bool bigEndian)
    {
        // Interface 1 has no snaplen (0): any caplen up to the maximum is fine there.
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription(snapLength: 40).InterfaceDescription(snapLength: 0)
            .EnhancedPacket(0, 1, Payload(40, 0)).EnhancedPacket(1, 2, Payload(1500, 1));
        long damaged = builder.Length;
        builder.EnhancedPacket(0, 3, Payload(41, 2));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal(2, packets.Count);
        AssertStoppedAt(reader, damaged, "packet caplen 41 exceeds the snaplen of 40");
    }

    [Fact]
    public void TryReadNext_PcapZeroedTail_StopsAtFirstZeroRecord()
    {
        // A file whose end was never written (preallocated, or lost in a crash) reads as 16-byte records of zeros.
        var builder = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).PcapRecord(2, 0, Payload(61, 1));
        long zeroed = builder.Length;
        byte[] file = [.. builder.ToArray(), .. new byte[4096]];

        var (packets, reader) = ReadAll(file, "zeroed.pcap");

        Assert.Equal(2, packets.Count);
        AssertStoppedAt(reader, zeroed, "zero-length record (caplen 0, length 0): zeroed or overwritten data");
    }

    [Fact]
    public void TryReadNext_PcapngZeroLengthPackets_StopAtBlock()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long epb = builder.Length;
        builder.EnhancedPacket(0, 2, [], originalLength: 0);
        var simple = CaptureBuilder.Pcapng().InterfaceDescription().SimplePacket(Payload(14, 0));
        long spb = simple.Length;
        simple.SimplePacket([], originalLength: 0);

        var (_, epbReader) = ReadAll(builder.ToArray());
        var (_, spbReader) = ReadAll(simple.ToArray());

        AssertStoppedAt(epbReader, epb, "zero-length packet (caplen 0, length 0): zeroed or overwritten data");
        AssertStoppedAt(spbReader, spb, "zero-length simple packet (caplen 0, length 0): zeroed or overwritten data");
    }

    [Fact]
    public void TryReadNext_PcapLinkTypeNotDecoded_WarnsAtLinkTypeFieldAndReadsOn()
    {
        // 147 is LINKTYPE_USER0: sound, but nothing VethTrace can trace.
        byte[] file = CaptureBuilder.Pcap(linkType: 147).PcapRecord(1, 0, Payload(30, 0)).PcapRecord(2, 0, Payload(30, 1)).ToArray();

        var (packets, reader) = ReadAll(file, "dir/user0.pcap");

        Assert.Equal(2, packets.Count);
        AssertCleanEnd(reader);
        Assert.Equal(new CaptureFileError("dir/user0.pcap", 20,
            "interface user0 has link type 147, which VethTrace does not decode: its packets are counted, not traced", CaptureProblem.Unsupported),
            Assert.Single(reader.Warnings));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_PcapngInterfaceLinkTypeNotDecoded_WarnsAtItsBlockAndReadsEveryPacket(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription(name: "eth0");
        long second = builder.Length;
        builder.InterfaceDescription(linkType: 147, name: "usb0").EnhancedPacket(1, 1, Payload(20, 0)).EnhancedPacket(0, 2, Payload(60, 1));

        var (packets, reader) = ReadAll(builder.ToArray());

        Assert.Equal(2, packets.Count);
        AssertCleanEnd(reader);
        CaptureFileError warning = Assert.Single(reader.Warnings);
        Assert.Equal(second, warning.Offset);
        Assert.Equal("test.pcapng: at byte " + second + ": interface usb0 has link type 147, which VethTrace does not decode: its packets are counted, not traced", warning.ToString());
        Assert.True(PacketParser.Decodes(packets[1].LinkType));
    }

    [Fact]
    public void Decodes_EveryLinkTypeTheParserHandles()
    {
        // What the parser does with an empty frame tells the link types it knows: those stop at a length, the others
        // as unsupported.
        for (uint value = 0; value < 300; value++)
        {
            PacketParser.Parse([], new LinkType(value), out ParsedPacket packet);
            Assert.Equal(packet.Outcome != ParseOutcome.UnsupportedProtocol, PacketParser.Decodes(new LinkType(value)));
        }
    }

    /// <summary>
    /// A length field is read before its data, so it must not decide how much memory is taken: a 4 GiB caplen is
    /// refused outright, and a pcapng block that claims 16 MiB in a 100-byte file costs no more than the file.
    /// Both what the reader holds (its buffer, rented from the shared pool, so a second read would not show it as an
    /// allocation) and what this thread allocated (GC.GetAllocatedBytesForCurrentThread: nothing sized by the field).
    /// </summary>
    [Theory]
    [InlineData("pcap caplen 4 GiB")]
    [InlineData("pcapng block of 16 MiB")]
    [InlineData("pcapng EPB caplen 4 GiB")]
    public void TryReadNext_HostileLength_HoldsNoMoreThanTheReadBuffer(string what)
    {
        byte[] file = what switch
        {
            "pcap caplen 4 GiB" => CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).PcapRecord(2, 0, Payload(60, 1), capturedLength: uint.MaxValue).ToArray(),
            "pcapng block of 16 MiB" => CaptureBuilder.Pcapng().InterfaceDescription()
                .Block(CaptureBuilder.BlockType.EnhancedPacket, b => b.U32(0).U32(0).U32(1).U32(14).U32(14).Padded(Payload(14, 1)), length: CaptureFileReader.MaxBlockLength).ToArray(),
            _ => CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(60, 0), capturedLength: uint.MaxValue).ToArray(),
        };
        using (ReadAll(file).Reader)
        {
            // JIT and the pool's first rent out of the way.
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        var (_, reader) = ReadAll(file);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        using (reader)
        {
            Assert.NotNull(reader.Error);
            Assert.InRange(reader.BufferCapacity, 0, 1 << 20);
            Assert.InRange(allocated, 0, 2 << 20);
        }
    }
}
