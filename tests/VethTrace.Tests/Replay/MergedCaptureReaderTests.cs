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
