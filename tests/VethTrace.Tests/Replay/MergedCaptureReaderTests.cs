using VethTrace.Capture.Files;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Replay;

public sealed class MergedCaptureReaderTests
{
    [Fact]
    public void TryReadNext_SeveralFiles_AllPacketsInTimeOrderWithTheirFile()
    {
        string[] files = [CaptureCorpus.PathOf("vxlan.pcap"), CaptureCorpus.PathOf("ipv4-frag.pcap"), CaptureCorpus.PathOf("masquerade-multi.pcapng")];
        int expected = files.Sum(f => CaptureCorpus.Read(Path.GetFileName(f)).Count);

        using var merged = new MergedCaptureReader(files);
        long previous = long.MinValue;
        int count = 0;
        var perFile = new int[files.Length];
        while (merged.TryReadNext(out CaptureRecord record, out int file))
        {
            Assert.True(record.TimestampNs >= previous, $"packet {count} goes back in time");
            previous = record.TimestampNs;
            Assert.True(record.Data.Length > 0);
            perFile[file]++;
            count++;
        }

        Assert.Equal(expected, count);
        Assert.Empty(merged.Errors);
        for (int i = 0; i < files.Length; i++)
        {
            Assert.Equal(CaptureCorpus.Read(Path.GetFileName(files[i])).Count, perFile[i]);
        }
    }

    /// <summary>
    /// A file's next packet waits in its reader's buffer, uncopied, while the other files are read (session 9): it must
    /// come out whole and unchanged however many reads, refills and compactions of the other readers pass meanwhile,
    /// and every file's packets must come out with their own bytes, in time order, ties in file order.
    /// </summary>
    [Fact]
    public void TryReadNext_PacketsWaitingWhileOtherFilesRefill_ComeOutWhole()
    {
        // File 0: a few packets far apart in time. File 1: 20,000 packets (about 2.5 MiB, ten reads of its reader)
        // between each two of them. File 2: a classic pcap, one packet at each of file 0's times (a tie: after file 0's).
        var sparse = Files.CaptureBuilder.Pcapng().InterfaceDescription(name: "eth0", tsResol: 9);
        var dense = Files.CaptureBuilder.Pcapng().InterfaceDescription(name: "veth0", tsResol: 9);
        var classic = Files.CaptureBuilder.Pcap(nanoseconds: true);
        var expected = new List<(long Time, int File, byte[] Data)>();
        for (int i = 0; i < 5; i++)
        {
            long time = 1_000_000_000L + i * 100_000_000L;
            byte[] data = Files.CaptureReading.Payload(200 + i, i);
            sparse.EnhancedPacket(0, (ulong)time, data);
            expected.Add((time, 0, data));
            byte[] tied = Files.CaptureReading.Payload(40 + i, 100 + i);
            classic.PcapRecord((uint)(time / 1_000_000_000L), (uint)(time % 1_000_000_000L), tied);
            expected.Add((time, 2, tied));
        }
        for (int i = 0; i < 20_000; i++)
        {
            long time = 1_000_000_001L + i * 20_000L; // between file 0's packets, never equal to one
            byte[] data = Files.CaptureReading.Payload(60 + i % 80, i);
            dense.EnhancedPacket(0, (ulong)time, data);
            expected.Add((time, 1, data));
        }
        List<(long Time, int File, byte[] Data)> ordered = [.. expected.Select((e, n) => (e, n)).OrderBy(x => x.e.Time).ThenBy(x => x.e.File).Select(x => x.e)];
        string directory = Path.Combine(Path.GetTempPath(), $"vethtrace-merge-held-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        try
        {
            string[] paths = [Path.Combine(directory, "sparse.pcapng"), Path.Combine(directory, "dense.pcapng"), Path.Combine(directory, "classic.pcap")];
            File.WriteAllBytes(paths[0], sparse.ToArray());
            File.WriteAllBytes(paths[1], dense.ToArray());
            File.WriteAllBytes(paths[2], classic.ToArray());
            Assert.True(new FileInfo(paths[1]).Length > 8 * CaptureFileReader.ReadLength);

            using var merged = new MergedCaptureReader(paths);
            int count = 0;
            while (merged.TryReadNext(out CaptureRecord record, out int file))
            {
                var (time, expectedFile, data) = ordered[count];
                Assert.True(time == record.TimestampNs && expectedFile == file && record.Data.SequenceEqual(data),
                    $"packet {count}: file {file} at {record.TimestampNs} ({record.Data.Length} bytes), expected file {expectedFile} at {time} ({data.Length} bytes)");
                count++;
            }
            Assert.Equal(ordered.Count, count);
            Assert.Empty(merged.Errors);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void TryReadNext_OneDamagedFile_OthersGoOnAndTheErrorIsKept()
    {
        byte[] bytes = File.ReadAllBytes(CaptureCorpus.PathOf("ipv4-frag.pcap"));
        string damaged = Path.Combine(Path.GetTempPath(), $"vethtrace-merge-damaged-{Environment.ProcessId}.pcap");
        File.WriteAllBytes(damaged, bytes[..(bytes.Length - 5)]);
        try
        {
            using var merged = new MergedCaptureReader([damaged, CaptureCorpus.PathOf("vxlan.pcap")]);
            int count = 0;
            while (merged.TryReadNext(out _, out _))
            {
                count++;
            }

            int whole = CaptureCorpus.Read("ipv4-frag.pcap").Count - 1 + CaptureCorpus.Read("vxlan.pcap").Count;
            Assert.Equal(whole, count);
            var error = Assert.Single(merged.Errors);
            Assert.Equal(damaged, error.Path);
        }
        finally
        {
            File.Delete(damaged);
        }
    }

    [Fact]
    public void Constructor_MissingFile_ThrowsCaptureFileException()
    {
        var e = Assert.Throws<CaptureFileException>(() => new MergedCaptureReader([CaptureCorpus.PathOf("vxlan.pcap"), "/nonexistent.pcap"]));
        Assert.Equal("no such file", e.Error.Message);
    }
}
