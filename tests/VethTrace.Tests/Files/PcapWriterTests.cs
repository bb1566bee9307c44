using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary><see cref="PcapWriter"/>: classic pcap with the nanosecond magic, read back by our reader and by tshark.</summary>
public sealed class PcapWriterTests
{
    // The file for one Ethernet packet (the 20 bytes of PcapReaderTests' vector, original length 60) at
    // 1700000000.123456789, laid out by hand from draft-ietf-opsawg-pcap-04 sections 4 and 5.
    //   0000  ff ff ff ff ff ff 02 42 ac 11 00 02 08 06 00 01   .......B........
    //   0010  08 00 06 04                                       ....
    private const string Vector =
        "4d3cb2a1 0200 0400 00000000 00000000 00000400 01000000" +   // nanosecond magic, 2.4, reserved, snaplen 262144, Ethernet
        "00f15365 15cd5b07 14000000 3c000000" +                      // 1700000000 s, 123456789 ns, caplen 20, len 60
        "ffffffffffff 0242ac110002 0806 0001 0800 06 04";

    private static readonly byte[] ArpPrefix = Convert.FromHexString("ffffffffffff0242ac11000208060001 08000604".Replace(" ", ""));

    private const long Timestamp = 1_700_000_000_123_456_789L;

    [Fact]
    public void WritePacket_OnePacket_WritesExactBytes()
    {
        var stream = new MemoryStream();
        using (var writer = new PcapWriter(stream, LinkType.Ethernet, 262_144, leaveOpen: true))
        {
            writer.WritePacket(Timestamp, ArpPrefix, 60);
        }

        Assert.Equal(Vector.Replace(" ", ""), Convert.ToHexStringLower(stream.ToArray()));
    }

    [Fact]
    public void WritePacket_ManyPackets_ReadBackWithNanoseconds()
    {
        var stream = new MemoryStream();
        var written = new List<(byte[] Data, long TimestampNs, int OriginalLength)>();
        using (var writer = new PcapWriter(stream, LinkType.Raw, 1500, leaveOpen: true))
        {
            for (int i = 0; i < 50; i++)
            {
                byte[] data = Payload(i * 29 % 1501, i);
                long timestamp = Timestamp + i * 999_999_937L;
                // i = 0 writes no byte of a packet that had some: caplen 0 with length 0 describes no packet (damage).
                int original = data.Length + i % 3 + (data.Length == 0 ? 60 : 0);
                writer.WritePacket(timestamp, data, original);
                written.Add((data, timestamp, original));
            }
            Assert.Equal(50, writer.PacketsWritten);
        }

        var (packets, reader) = ReadAll(stream.ToArray(), "raw.pcap");

        Assert.Null(reader.Error);
        Assert.False(reader.IsPcapng);
        Assert.Equal(new CaptureInterface(0, "raw", null, LinkType.Raw, 1500, 9), Assert.Single(reader.Interfaces));
        Assert.Equal(written.Select(w => w.Data), packets.Select(p => p.Data));
        Assert.Equal(written.Select(w => w.TimestampNs), packets.Select(p => p.TimestampNs));
        Assert.Equal(written.Select(w => w.OriginalLength), packets.Select(p => p.OriginalLength));
        Assert.All(packets, p => Assert.Equal(LinkType.Raw, p.LinkType));
    }

    [Fact]
    public void Create_Tshark_ReadsTimestampsLengthsAndData()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-pcapwriter-{Environment.ProcessId}-{Guid.NewGuid():N}.pcap");
        var expected = new List<string>();
        try
        {
            using (PcapWriter writer = PcapWriter.Create(path, LinkType.Ethernet, 65_535))
            {
                for (int i = 0; i < 20; i++)
                {
                    byte[] data = Payload(14 + i * 17, i);
                    long timestamp = Timestamp + i * 1_000_000_007L;
                    writer.WritePacket(timestamp, data, data.Length + i % 2);
                    expected.Add(string.Join('\t',
                        WiresharkTool.EpochSeconds(timestamp),
                        data.Length + i % 2, data.Length, Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(data))));
                }
            }

            string[] lines = WiresharkTool.Run("tshark", ["-r", path, "-o", "frame.generate_md5_hash:TRUE", "-T", "fields",
                "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.md5_hash"]);

            Assert.Equal(expected, lines);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WritePacket_InvalidArguments_ThrowAndWriteNothing()
    {
        var stream = new MemoryStream();
        using (var writer = new PcapWriter(stream, LinkType.Ethernet, 100, leaveOpen: true))
        {
            Assert.Throws<ArgumentOutOfRangeException>("data", () => writer.WritePacket(Timestamp, new byte[101], 101));
            Assert.Throws<ArgumentOutOfRangeException>("originalLength", () => writer.WritePacket(Timestamp, ArpPrefix, 19));
            Assert.Throws<ArgumentOutOfRangeException>("timestampNs", () => writer.WritePacket(-1, ArpPrefix, 60));
            // The seconds field is 32 bits unsigned: 2106-02-07 06:28:16 UTC is one second too late.
            Assert.Throws<ArgumentOutOfRangeException>("timestampNs", () => writer.WritePacket((uint.MaxValue + 1L) * 1_000_000_000L, ArpPrefix, 60));
            writer.WritePacket((uint.MaxValue + 1L) * 1_000_000_000L - 1, ArpPrefix, 60);
        }
        Assert.Throws<ArgumentOutOfRangeException>("snapLength", () => new PcapWriter(new MemoryStream(), LinkType.Ethernet, 0));
        Assert.Throws<ArgumentOutOfRangeException>("linkType", () => new PcapWriter(new MemoryStream(), new LinkType(0x0400_0000), 100));

        var (packets, reader) = ReadAll(stream.ToArray(), "late.pcap");
        Assert.Null(reader.Error);
        Assert.Equal((uint.MaxValue + 1L) * 1_000_000_000L - 1, Assert.Single(packets).TimestampNs);
    }
    [Fact]
    public void WritePacket_DiskFull_IOExceptionAndTheFileReadsToItsLastWholeRecord()
    {
        using var disk = new SmallTmpfs(64 * 1024);
        string path = disk.PathOf("full.pcap");
        var writer = PcapWriter.Create(path, LinkType.Ethernet, 262_144);
        IOException? failure = null;
        int written = 0;
        try
        {
            for (; written < 2000; written++)
            {
                writer.WritePacket(Timestamp + written, Payload(1400, written), 1400);
            }
        }
        catch (IOException e)
        {
            failure = e;
        }
        Assert.NotNull(failure);
        Assert.Contains("No space left on device", failure.Message);
        // Failed for good: later writes throw too, and closing writes nothing more.
        Assert.Throws<IOException>(() => writer.WritePacket(Timestamp, Payload(60, 0), 60));
        writer.Dispose();
        Assert.Equal(written, writer.PacketsWritten);

        var (packets, reader) = ReadAll(File.ReadAllBytes(path), "full.pcap");
        AssertCleanEnd(reader);
        Assert.Equal(packets.Count, writer.PacketsInStream);
        Assert.InRange(packets.Count, 40, written - 1); // what fitted of 64 KiB, cut at a record: file header 24, records 1416
        Assert.Equal(24 + packets.Count * 1416L, new FileInfo(path).Length);
        Assert.Equal(Enumerable.Range(0, packets.Count).Select(i => Payload(1400, i)), packets.Select(p => p.Data));
        Assert.Contains($"Number of packets:   {packets.Count}", WiresharkTool.Run("capinfos", ["-c", path]));
    }
}
