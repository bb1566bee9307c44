using VethTrace.Capture.Files;
using VethTrace.Packets;

namespace VethTrace.Tests.Files;

/// <summary>
/// The pcapng one-go path as rewritten in session 13 (read18): the block's fixed fields read as words with one byte-order
/// test, and each interface's facts (global id, link type, clock, caplen limit) kept per section and worked out at its
/// interface description block. Each file is read with the one-go path and without it and the outcomes compared whole,
/// and the values are checked against what the format says, so that a wrong per-section table (not cleared at a new
/// section), a wrong caplen limit, a byte order not swapped or the options looked for in the wrong place fail here.
/// </summary>
public sealed class PcapngOneGoTests
{
    /// <summary>
    /// Two sections in both byte orders, whose interfaces have ids of their own (0 and 1, then 0 again), clocks of
    /// 10^-9, 2^-20 with an offset, and 10^-6 (the default; times above 2^32 units), then a packet of the second section on an interface only the
    /// first declared: damage, at its offset.
    /// </summary>
    [Fact]
    public void TwoSectionsBothByteOrders_EachPacketOnItsSectionsInterface()
    {
        var builder = CaptureBuilder.Pcapng()
            .InterfaceDescription(name: "eth0", tsResol: 9)
            .InterfaceDescription(linkType: 113, name: "any", tsResol: 0x80 | 20, tsOffset: 100);
        builder.EnhancedPacket(0, 1_000_000_123, CaptureReading.Payload(60, 1))
            .EnhancedPacket(1, (3UL << 20) | (1UL << 19), CaptureReading.Payload(61, 2), flags: 1)
            .EnhancedPacket(0, 2_000_000_456, CaptureReading.Payload(62, 3), originalLength: 1500)
            .EnhancedPacket(1, 4UL << 20, CaptureReading.Payload(63, 4), flags: 2)
            .SectionHeader(bigEndian: true)
            .InterfaceDescription(name: "veth0", snapLength: 64)
            .EnhancedPacket(0, 1_765_000_000_000_001, CaptureReading.Payload(40, 5), flags: 2)
            .EnhancedPacket(0, 1_765_000_000_000_002, CaptureReading.Payload(41, 6), originalLength: 9000)
            .EnhancedPacket(0, 1_765_000_000_000_003, CaptureReading.Payload(42, 7), flags: 1);
        long damaged = builder.Length;
        byte[] file = builder.EnhancedPacket(1, 5_000_004, CaptureReading.Payload(43, 8)).ToArray();

        ReadOutcome fast = AssertSameOutcome(file, "sections.pcapng");
        Assert.Equal([0, 1, 0, 1, 2, 2, 2], fast.Packets.Select(p => p.InterfaceId));
        Assert.Equal([1, 113, 1, 113, 1, 1, 1], fast.Packets.Select(p => (int)p.LinkType.Value));
        Assert.Equal([1_000_000_123L, 103_500_000_000L, 2_000_000_456L, 104_000_000_000L, 1_765_000_000_000_001_000L, 1_765_000_000_000_002_000L, 1_765_000_000_000_003_000L],
            fast.Packets.Select(p => p.TimestampNs));
        Assert.Equal([PacketDirection.Unknown, PacketDirection.Inbound, PacketDirection.Unknown, PacketDirection.Outbound,
            PacketDirection.Outbound, PacketDirection.Unknown, PacketDirection.Inbound], fast.Packets.Select(p => p.Direction));
        Assert.Equal([60, 61, 1500, 63, 40, 9000, 42], fast.Packets.Select(p => p.OriginalLength));
        int[] sizes = [60, 61, 62, 63, 40, 41, 42];
        for (int i = 0; i < sizes.Length; i++)
        {
            Assert.Equal(CaptureReading.Payload(sizes[i], i + 1), fast.Packets[i].Data);
        }
        Assert.NotNull(fast.Error);
        Assert.Equal(damaged, fast.Error!.Offset);
        Assert.Contains("packet refers to interface 1, but the section declares 1", fast.Error.Message);
        // The first packet of each section comes after blocks the general path reads; every other one in one go.
        Assert.Equal(5, fast.InOneGo);
    }

    /// <summary>
    /// The caplen limit worked out at the interface block: the snaplen when there is one (a caplen above it is read by
    /// the general path and counted), the link type's maximum when the snaplen is 0; caplen 0 is counted too.
    /// </summary>
    [Fact]
    public void CaplenLimits_SnaplenOrLinkTypeMaximum()
    {
        byte[] file = CaptureBuilder.Pcapng()
            .InterfaceDescription(name: "no-snaplen", snapLength: 0, tsResol: 9)
            .InterfaceDescription(name: "snaplen-100", snapLength: 100, tsResol: 9)
            .EnhancedPacket(0, 1, CaptureReading.Payload(10, 1))
            .EnhancedPacket(0, 2, CaptureReading.Payload(9000, 2)) // no snaplen: up to the maximum, in one go
            .EnhancedPacket(1, 3, CaptureReading.Payload(100, 3)) // at the snaplen: in one go
            .EnhancedPacket(1, 4, CaptureReading.Payload(101, 4)) // above it: the general path, counted
            .EnhancedPacket(1, 5, [], originalLength: 60) // caplen 0: the general path, counted
            .EnhancedPacket(1, 6, CaptureReading.Payload(99, 6))
            .ToArray();
        ReadOutcome fast = AssertSameOutcome(file, "limits.pcapng");
        Assert.Equal([10, 9000, 100, 101, 0, 99], fast.Packets.Select(p => p.Data.Length));
        Assert.Null(fast.Error);
        Assert.Equal(2, fast.Warnings.Count);
        Assert.Equal(3, fast.InOneGo); // the second, third and sixth packets
    }

    /// <summary>
    /// Options after the data (its padding of 1-3 bytes skipped): a comment, epb_flags, both; the last epb_flags wins.
    /// In a big-endian section too.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EnhancedPacketOptions_DirectionFromTheOptionsAfterThePaddedData(bool bigEndian)
    {
        var builder = CaptureBuilder.Pcapng(bigEndian).InterfaceDescription(name: "eth0", tsResol: 6);
        builder.EnhancedPacket(0, 1, CaptureReading.Payload(13, 1));
        var expected = new List<PacketDirection> { PacketDirection.Unknown };
        for (int length = 13; length <= 16; length++)
        {
            byte[] data = CaptureReading.Payload(length, length);
            WithOptions(builder, data, b => b.Option(CaptureBuilder.OptionCode.Comment, "hi"u8).Option(CaptureBuilder.OptionCode.EpbFlags, b.UInt32Bytes(1)));
            WithOptions(builder, data, b => b.Option(CaptureBuilder.OptionCode.EpbFlags, b.UInt32Bytes(1)).Option(CaptureBuilder.OptionCode.EpbFlags, b.UInt32Bytes(2)));
            WithOptions(builder, data, b => b.Option(CaptureBuilder.OptionCode.Comment, "only a comment"u8));
            WithOptions(builder, data, b => b.Option(CaptureBuilder.OptionCode.EpbFlags, b.UInt32Bytes(0x102)));
            expected.AddRange([PacketDirection.Inbound, PacketDirection.Outbound, PacketDirection.Unknown, PacketDirection.Outbound]);
        }
        ReadOutcome fast = AssertSameOutcome(builder.ToArray(), "options.pcapng");
        Assert.Equal(expected, fast.Packets.Select(p => p.Direction));
        Assert.Null(fast.Error);
        Assert.Equal(16, fast.InOneGo);
    }

    /// <summary>A block cut short at the end, or whose trailing length differs: the same damage at the same offset, every packet before it.</summary>
    [Fact]
    public void DamagedLastBlock_SameDamageAtTheSameOffset()
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription(name: "eth0", tsResol: 9);
        for (int i = 0; i < 20; i++)
        {
            builder.EnhancedPacket(0, (ulong)i, CaptureReading.Payload(50 + i, i), flags: i % 2 == 0 ? 2u : null);
        }
        long last = builder.BlockOffsets[^1];
        byte[] whole = builder.ToArray();
        for (int cut = (int)last + 1; cut < whole.Length; cut += 7)
        {
            ReadOutcome fast = AssertSameOutcome(whole[..cut], "cut.pcapng");
            Assert.Equal(19, fast.Packets.Count);
            Assert.Equal(last, fast.Error!.Offset);
            Assert.Contains("cut short", fast.Error.Message);
        }
        byte[] mismatched = (byte[])whole.Clone();
        mismatched[^4] ^= 4;
        ReadOutcome bad = AssertSameOutcome(mismatched, "mismatch.pcapng");
        Assert.Equal(19, bad.Packets.Count);
        Assert.Equal(last, bad.Error!.Offset);
        Assert.Contains("block length mismatch", bad.Error.Message);
    }

    private static void WithOptions(CaptureBuilder builder, byte[] data, Action<CaptureBuilder> options)
    {
        builder.Block(CaptureBuilder.BlockType.EnhancedPacket, body =>
        {
            body.U32(0);
            body.U32(0);
            body.U32(7);
            body.U32((uint)data.Length);
            body.U32((uint)data.Length);
            body.Padded(data);
            options(body);
            body.U32(0); // opt_endofopt
        });
    }

    private static ReadOutcome AssertSameOutcome(byte[] file, string name)
    {
        ReadOutcome fast = ReadOutcome.Of(() => CaptureFileReader.Open(new MemoryStream(file), name), oneGo: true);
        ReadOutcome general = ReadOutcome.Of(() => CaptureFileReader.Open(new MemoryStream(file), name), oneGo: false);
        fast.AssertSameAs(general, name, "in one go", "in the general path");
        Assert.Equal(0, general.InOneGo);
        return fast;
    }
}
