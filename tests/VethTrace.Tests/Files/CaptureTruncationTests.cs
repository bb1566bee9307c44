using VethTrace.Capture.Files;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>
/// A capture cut at every byte (a full disk, a copy of a file still being written): the records wholly
/// before the cut are returned, then either a clean end (the cut falls on a record boundary) or an error at
/// the start of the cut record. Nothing throws once the file header is read.
/// </summary>
public sealed class CaptureTruncationTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void TryReadNext_PcapCutAtEveryByte_ReturnsWholeRecordsThenStopsAtCutRecord(bool bigEndian, bool nanoseconds)
    {
        int[] lengths = [20, 1, 7];
        var builder = CaptureBuilder.Pcap(bigEndian, nanoseconds);
        for (int i = 0; i < lengths.Length; i++)
        {
            builder.PcapRecord((uint)i + 1, 0, Payload(lengths[i], i));
        }
        byte[] file = builder.ToArray();
        List<long> starts = [.. builder.RecordOffsets, file.Length];

        for (int cut = 0; cut <= file.Length; cut++)
        {
            if (cut < CaptureBuilder.PcapFileHeaderLength)
            {
                var e = Assert.Throws<CaptureFileException>(() => Open(file[..cut], "cut.pcap"));
                Assert.Equal(cut switch
                {
                    0 => "empty file",
                    < 4 => "file too short for a capture header",
                    _ => $"pcap file header cut short: {cut} of 24 bytes",
                }, e.Error.Message);
                continue;
            }

            var (packets, reader) = ReadAll(file[..cut], "cut.pcap");

            int whole = starts.Count(end => end <= cut) - 1; // records whose successor starts at or before the cut
            Assert.Equal(whole, packets.Count);
            Assert.Equal(whole, reader.PacketsRead);
            for (int i = 0; i < whole; i++)
            {
                Assert.Equal(Payload(lengths[i], i), packets[i].Data);
                Assert.Equal(starts[i], packets[i].FileOffset);
            }
            if (starts.Contains(cut))
            {
                AssertCleanEnd(reader);
                continue;
            }
            long recordStart = starts[whole];
            int present = cut - (int)recordStart;
            AssertStoppedAt(reader, recordStart, present < CaptureBuilder.PcapRecordHeaderLength
                ? $"record header cut short: {present} of 16 bytes"
                : $"record data cut short: {present - CaptureBuilder.PcapRecordHeaderLength} of {lengths[whole]} bytes");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_PcapngCutAtEveryByte_ReturnsWholeBlocksThenStopsAtCutBlock(bool bigEndian)
    {
        // Two sections of opposite byte orders, every packet block kind, and a skipped block.
        var builder = CaptureBuilder.Pcapng(bigEndian)
            .InterfaceDescription(name: "eth0", tsResol: 9)
            .EnhancedPacket(0, 1, Payload(13, 0), flags: 1)
            .OpaqueBlock(CaptureBuilder.BlockType.InterfaceStatistics, new byte[16])
            .SectionHeader(!bigEndian)
            .InterfaceDescription(snapLength: 0)
            .SimplePacket(Payload(6, 1))
            .ObsoletePacket(0, 2, Payload(1, 2));
        byte[] file = builder.ToArray();
        List<long> blockStarts = [.. builder.BlockOffsets, file.Length];
        int[] packetLengths = [13, 6, 1];

        for (int cut = 0; cut <= file.Length; cut++)
        {
            if (cut < 4)
            {
                var e = Assert.Throws<CaptureFileException>(() => Open(file[..cut]));
                Assert.Equal(cut == 0 ? "empty file" : "file too short for a capture header", e.Error.Message);
                continue;
            }

            var (packets, reader) = ReadAll(file[..cut]);

            int whole = builder.RecordOffsets.Count(start => blockStarts[blockStarts.IndexOf(start) + 1] <= cut);
            Assert.Equal(whole, packets.Count);
            Assert.Equal(whole, reader.PacketsRead);
            for (int i = 0; i < whole; i++)
            {
                Assert.Equal(Payload(packetLengths[i], i), packets[i].Data);
                Assert.Equal(builder.RecordOffsets[i], packets[i].FileOffset);
            }
            if (blockStarts.Contains(cut))
            {
                AssertCleanEnd(reader);
                continue;
            }
            int cutBlock = blockStarts.FindLastIndex(start => start < cut);
            long blockStart = blockStarts[cutBlock];
            long blockLength = blockStarts[cutBlock + 1] - blockStart;
            int present = cut - (int)blockStart;
            AssertStoppedAt(reader, blockStart, present < 12
                ? $"block header cut short: {present} of 12 bytes"
                : $"block cut short: {present} of {blockLength} bytes");
        }
    }
}
