using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>
/// Records that break the format's rules but that tcpdump reads (caplen above the snaplen, caplen 0, invalid
/// timestamps: read, counted, one warning per kind), lengths no capture can hold (damage), link types the parser does
/// not decode, and the memory a hostile length field may cost. Packet counts are tcpdump's.
/// </summary>
public sealed class CaptureLimitTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_PcapCaplenAboveSnaplen_ReadsThemWholeWithOneWarning(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcap(bigEndian, snapLength: 64)
            .PcapRecord(1, 0, Payload(64, 0)).PcapRecord(2, 0, Payload(65, 1)).PcapRecord(3, 0, Payload(10, 2)).PcapRecord(4, 0, Payload(300, 3));
        byte[] file = builder.ToArray();

        var (packets, reader) = ReadAll(file, "snap.pcap");

        Assert.Equal(TcpdumpTool.Count(file), packets.Count);
        Assert.Equal([Payload(64, 0), Payload(65, 1), Payload(10, 2), Payload(300, 3)], packets.Select(p => p.Data));
        AssertCleanEnd(reader);
        var warning = Assert.Single(reader.Warnings);
        Assert.Equal(CaptureProblem.Irregular, warning.Kind);
        Assert.Equal(builder.RecordOffsets[1], warning.Offset);
        Assert.Equal("snap.pcap: 2 records with a caplen above the snaplen, read whole (tcpdump reads them too, cut at the snaplen); " +
            $"the first at byte {builder.RecordOffsets[1]}: caplen 65, snaplen 64", warning.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_EpbCaplenAboveInterfaceSnaplen_ReadsThemWholeWithOneWarning(bool bigEndian)
    {
        // Interface 1 has no snaplen (0): any caplen up to the maximum is regular there.
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription(snapLength: 40).InterfaceDescription(snapLength: 0)
            .EnhancedPacket(0, 1, Payload(40, 0)).EnhancedPacket(1, 2, Payload(1500, 1));
        long first = builder.Length;
        builder.EnhancedPacket(0, 3, Payload(41, 2)).EnhancedPacket(0, 4, Payload(99, 3));
        byte[] file = builder.ToArray();

        var (packets, reader) = ReadAll(file);

        // libpcap's pcapng reader is stricter than its pcap reader here: it stops at the first such packet, and at a
        // second interface with another snaplen. Wireshark reads them all, and so does VethTrace: never fewer than tcpdump.
        Assert.True(packets.Count >= TcpdumpTool.Count(file, "snap.pcapng"));
        Assert.Equal(WiresharkTool.CountPackets(file, "snap.pcapng"), packets.Count);
        Assert.Equal([Payload(40, 0), Payload(1500, 1), Payload(41, 2), Payload(99, 3)], packets.Select(p => p.Data));
        AssertCleanEnd(reader);
        var warning = Assert.Single(reader.Warnings);
        Assert.Equal(first, warning.Offset);
        Assert.Equal($"2 records with a caplen above the snaplen, read whole as Wireshark reads them (tcpdump stops at the first); the first at byte {first}: caplen 41, snaplen 40",
            warning.Message);
    }

    [Fact]
    public void TryReadNext_CaplenAboveTheLinkTypesMaximum_StillStops()
    {
        // 262 145 bytes fit D-Bus's 128 MiB maximum (libpcap's max_snaplen_for_dlt) but not Ethernet's 256 KiB.
        byte[] large = Payload(CaptureFileReader.MaxCaptureLength + 1, 7);
        var dbus = CaptureBuilder.Pcap(linkType: 231, snapLength: 0).PcapRecord(1, 0, Payload(20, 0)).PcapRecord(2, 0, large);
        var ethernet = CaptureBuilder.Pcap(snapLength: 0).PcapRecord(1, 0, Payload(20, 0)).PcapRecord(2, 0, large);

        var (dbusPackets, dbusReader) = ReadAll(dbus.ToArray(), "dbus.pcap");
        var (ethernetPackets, ethernetReader) = ReadAll(ethernet.ToArray(), "ether.pcap");

        Assert.Equal(TcpdumpTool.Count(dbus.ToArray()), dbusPackets.Count);
        Assert.Equal(large, dbusPackets[1].Data);
        AssertCleanEnd(dbusReader);
        Assert.Equal(TcpdumpTool.Count(ethernet.ToArray()), ethernetPackets.Count);
        AssertStoppedAt(ethernetReader, ethernet.RecordOffsets[1], "record caplen 262145 exceeds the maximum of 262144");
        Assert.Equal(128 * 1024 * 1024, CaptureFileReader.MaxCaptureLengthFor(new LinkType(231)));
        Assert.Equal(1024 * 1024, CaptureFileReader.MaxCaptureLengthFor(new LinkType(249)));
        Assert.Equal(8 * 1024 * 1024, CaptureFileReader.MaxCaptureLengthFor(new LinkType(279)));
    }

    [Fact]
    public void TryReadNext_PcapZeroedTail_ReadAsEmptyPacketsAsTcpdumpCountsThem()
    {
        // A file whose end was never written (preallocated, or lost in a crash) reads as 16-byte records of zeros:
        // libpcap returns each as a packet of caplen 0, and tcpdump counts it ("[Invalid header: caplen==0, len==0]").
        var builder = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(60, 0)).PcapRecord(2, 0, Payload(61, 1));
        long zeroed = builder.Length;
        byte[] file = [.. builder.ToArray(), .. new byte[4096]];

        var (packets, reader) = ReadAll(file, "zeroed.pcap");

        Assert.Equal(TcpdumpTool.Count(file), packets.Count);
        Assert.Equal(2 + 4096 / 16, packets.Count);
        Assert.All(packets.Skip(2), p => Assert.Empty(p.Data));
        AssertCleanEnd(reader);
        Assert.Equal($"zeroed.pcap: 256 records with caplen 0, read as empty packets (tcpdump counts them as \"[Invalid header: caplen==0]\"); the first at byte {zeroed}: length 0",
            Assert.Single(reader.Warnings).ToString());
    }

    [Fact]
    public void TryReadNext_PcapZeroLengthRecordBetweenGoodOnes_ReadsOn()
    {
        // rx_serviceid_oobr.pcap's shape: a good record, one of caplen 0, and a good one after it.
        var builder = CaptureBuilder.Pcap().PcapRecord(1, 0, Payload(71, 0)).PcapRecord(0, 0, [], originalLength: 0).PcapRecord(3, 0, Payload(71, 1));
        byte[] file = builder.ToArray();

        var (packets, reader) = ReadAll(file, "gap.pcap");

        Assert.Equal(TcpdumpTool.Count(file), packets.Count);
        Assert.Equal(Payload(71, 1), packets[2].Data);
        Assert.Equal(builder.RecordOffsets[2], packets[2].FileOffset);
        AssertCleanEnd(reader);
        Assert.Equal(builder.RecordOffsets[1], Assert.Single(reader.Warnings).Offset);
    }

    [Fact]
    public void TryReadNext_PcapngZeroLengthPackets_ReadAsEmptyPackets()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription().EnhancedPacket(0, 1, Payload(14, 0));
        long epb = builder.Length;
        builder.EnhancedPacket(0, 2, [], originalLength: 0).EnhancedPacket(0, 3, Payload(14, 1));
        var simple = CaptureBuilder.Pcapng().InterfaceDescription().SimplePacket(Payload(14, 0));
        long spb = simple.Length;
        simple.SimplePacket([], originalLength: 0).SimplePacket(Payload(14, 1));

        var (epbPackets, epbReader) = ReadAll(builder.ToArray());
        var (spbPackets, spbReader) = ReadAll(simple.ToArray());

        Assert.Equal(TcpdumpTool.Count(builder.ToArray(), "epb.pcapng"), epbPackets.Count);
        Assert.Equal(TcpdumpTool.Count(simple.ToArray(), "spb.pcapng"), spbPackets.Count);
        Assert.Empty(epbPackets[1].Data);
        Assert.Empty(spbPackets[1].Data);
        AssertCleanEnd(epbReader);
        AssertCleanEnd(spbReader);
        Assert.Equal(epb, Assert.Single(epbReader.Warnings).Offset);
        Assert.Equal(spb, Assert.Single(spbReader.Warnings).Offset);
    }

    [Theory]
    [InlineData(false, 999_999u, 1_000_000u, 2_147_483_648u, "usec", "us")]
    [InlineData(true, 999_999_999u, 1_000_000_000u, uint.MaxValue, "nsec", "ns")]
    public void TryReadNext_PcapSubSecondOutOfRange_FlaggedPlacedAtThePreviousTimeAndCounted(bool nanoseconds, uint last, uint invalid, uint worse, string field, string unit)
    {
        // timestamp_invalid_micro.pcap's shape: a good record, then sub-second fields of 10^6 µs and 2^31 µs.
        var builder = CaptureBuilder.Pcap(nanoseconds: nanoseconds)
            .PcapRecord(1_418_145_369, last, Payload(60, 0)).PcapRecord(1_418_145_370, invalid, Payload(60, 1)).PcapRecord(1_418_145_370, worse, Payload(60, 2))
            .PcapRecord(1_418_145_371, 5, Payload(60, 3));
        byte[] file = builder.ToArray();

        var (packets, reader) = ReadAll(file, "ts.pcap");

        Assert.Equal(TcpdumpTool.Count(file), packets.Count);
        long first = 1_418_145_369L * 1_000_000_000 + (nanoseconds ? last : last * 1000L);
        Assert.Equal([first, first, first, 1_418_145_371L * 1_000_000_000 + (nanoseconds ? 5 : 5000)], packets.Select(p => p.TimestampNs));
        Assert.Equal([false, true, true, false], packets.Select(p => p.TimestampInvalid));
        Assert.Equal(2, reader.InvalidTimestamps);
        AssertCleanEnd(reader);
        Assert.Equal($"ts.pcap: 2 records with an invalid timestamp (tcpdump: \"(invalid {unit})\"), placed at the previous packet's time and left out of latency figures; " +
            $"the first at byte {builder.RecordOffsets[1]}: {field} {invalid} of at most {(nanoseconds ? 999_999_999 : 999_999)}", Assert.Single(reader.Warnings).ToString());
    }

    [Fact]
    public void TryReadNext_FirstRecordsTimestampInvalid_TakesItsWholeSeconds()
    {
        byte[] file = CaptureBuilder.Pcap().PcapRecord(1_000, 1_000_000, Payload(60, 0)).ToArray();

        var (packets, _) = ReadAll(file, "ts.pcap");

        Assert.Equal(1_000L * 1_000_000_000, Assert.Single(packets).TimestampNs);
        Assert.True(packets[0].TimestampInvalid);
    }

    [Fact]
    public void TryReadNext_SeveralOddities_OneWarningPerKind()
    {
        var builder = CaptureBuilder.Pcap(snapLength: 64);
        for (int i = 0; i < 5; i++)
        {
            builder.PcapRecord(1, 0, Payload(70, i)).PcapRecord(2, 0, [], originalLength: 0).PcapRecord(3, 2_000_000, Payload(20, i));
        }
        byte[] file = builder.ToArray();

        var (packets, reader) = ReadAll(file, "odd.pcap");

        Assert.Equal(TcpdumpTool.Count(file), packets.Count);
        Assert.Equal(3, reader.Warnings.Count);
        Assert.All(reader.Warnings, w => Assert.StartsWith("5 records with", w.Message, StringComparison.Ordinal));
        Assert.Equal([builder.RecordOffsets[0], builder.RecordOffsets[1], builder.RecordOffsets[2]], reader.Warnings.Select(w => w.Offset));
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
