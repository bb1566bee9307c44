using VethTrace.Capture.Files;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Corpus;

namespace VethTrace.Tests.Files;

/// <summary>
/// A regular file of at least <see cref="CaptureFileReader.MapFilesFrom"/> bytes is mapped a window at a time instead of
/// read (session 11): the outcome must be exactly the read one on every file, damaged and cut ones included (the same
/// records, warnings and counts, the same damage at the same offset). Each file is read both ways and the two compared whole.
/// </summary>
public sealed class MappedReadingTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-mapped-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Open_LargeRegularFile_MappedAndReadTheSame(bool pcapng)
    {
        // Over 2.5 windows, so records cross window borders.
        byte[] file = pcapng ? CaptureReading.RegularPcapng(110_000) : CaptureReading.RegularPcap(110_000);
        Assert.True(file.Length > 2 * CaptureFileReader.MapWindowLength + CaptureFileReader.MapWindowLength / 2);
        string path = Write(file, pcapng ? "large.pcapng" : "large.pcap");

        using (CaptureFileReader reader = CaptureFileReader.Open(path))
        {
            Assert.True(reader.IsMapped); // the default maps a file this large
        }
        List<ReadPacket> packets = AssertSameOutcome(path, "whole");
        Assert.Equal(110_000, packets.Count);
        for (int i = 0; i < packets.Count; i += 997)
        {
            Assert.Equal(CaptureReading.Payload(CaptureReading.RegularSize(i), i), packets[i].Data);
        }
    }

    /// <summary>
    /// Another process truncates the file while it is mapped (a `tcpdump -W` ring coming round to it): its open waits on
    /// the reader's read lease, the reader goes on with read(2) at its next window, and the truncation then ends the
    /// capture as a cut file ends: damage at an offset, every packet before it. Without the lease the reader's next
    /// read of a lost page would end the test process with SIGBUS.
    /// </summary>
    [Fact]
    public void Open_MappedFileTruncatedByAnotherWriter_ReadOnUntilTheCutNoSigbus()
    {
        byte[] file = CaptureReading.RegularPcapng(110_000);
        string path = Write(file, "truncated.pcapng");
        using CaptureFileReader reader = CaptureFileReader.Open(path);
        Assert.True(reader.IsMapped);
        int read = 0;
        while (read < 1_000 && reader.TryReadNext(out _))
        {
            read++;
        }
        Assert.Equal(1_000, read);

        // A blocking open for writing with O_TRUNC, as fopen(path, "w") does: it waits until the lease is given up.
        var truncation = new Thread(() => new FileStream(path, FileMode.Truncate, FileAccess.Write).Dispose()) { IsBackground = true };
        truncation.Start();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!reader.LeaseBreakPending && waited.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(5);
        }
        Assert.True(reader.LeaseBreakPending, "the writer's open did not ask for the lease");
        Assert.True(truncation.IsAlive); // it waits for the reader

        while (reader.TryReadNext(out _))
        {
            read++;
        }
        Assert.True(truncation.Join(TimeSpan.FromSeconds(10)), "the truncation never went through");
        Assert.True(reader.MappingStopped);
        Assert.False(reader.IsMapped);
        Assert.Equal(0, new FileInfo(path).Length);
        // What was mapped up to the window's end is read; the rest was cut away.
        Assert.InRange(read, 1_001, 110_000 - 1);
        Assert.NotNull(reader.Error);
        Assert.Contains("cut short", reader.Error!.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Open_LargeFileCutShort_SameDamageAtTheSameOffset(bool pcapng)
    {
        byte[] file = pcapng ? CaptureReading.RegularPcapng(80_000) : CaptureReading.RegularPcap(80_000);
        int window = CaptureFileReader.MapWindowLength;
        // Cut inside a record, at and around a window border, and inside the last record.
        foreach (int length in new[] { window - 7, window, window + 3, 2 * window + 101, file.Length - 1 })
        {
            string path = Write(file.AsSpan(0, length).ToArray(), $"cut-{length}" + (pcapng ? ".pcapng" : ".pcap"));
            using (CaptureFileReader reader = CaptureFileReader.Open(path, mapFrom: 0))
            {
                ReadAllOf(reader);
                Assert.NotNull(reader.Error); // the cut record is damage, named at its offset
            }
            AssertSameOutcome(path, $"cut at {length}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Open_RecordsLargerThanTheWindow_MappedWhole(bool cut)
    {
        // D-Bus records may reach 128 MiB (libpcap's limit for the link type): the window grows to hold one.
        int window = CaptureFileReader.MapWindowLength;
        var builder = CaptureBuilder.Pcap(snapLength: 128 << 20, linkType: 231);
        int[] sizes = [100, window + 5, 3 * window + 17, 60, 2 * window];
        for (int i = 0; i < sizes.Length; i++)
        {
            builder.PcapRecord((uint)i, 0, CaptureReading.Payload(sizes[i], i));
        }
        byte[] file = builder.ToArray();
        if (cut)
        {
            file = file.AsSpan(0, file.Length - window / 2).ToArray(); // the last record cut short
        }
        string path = Write(file, cut ? "dbus-cut.pcap" : "dbus.pcap");
        List<ReadPacket> packets = AssertSameOutcome(path, cut ? "cut" : "whole");
        Assert.Equal(cut ? sizes.Length - 1 : sizes.Length, packets.Count);
        for (int i = 0; i < packets.Count; i++)
        {
            Assert.Equal(CaptureReading.Payload(sizes[i], i), packets[i].Data);
        }
    }

    [Fact]
    public void Open_SmallFile_ReadNotMapped()
    {
        string path = Write(CaptureReading.RegularPcapng(10), "small.pcapng");
        using CaptureFileReader reader = CaptureFileReader.Open(path);
        Assert.False(reader.IsMapped);
    }

    [Fact]
    public void Open_MutatedFiles_MappedAndReadTheSame()
    {
        var random = new Random(21);
        byte[] original = CaptureBuilder.Pcapng()
            .InterfaceDescription(name: "eth0", tsResol: 9, tsOffset: 5)
            .InterfaceDescription(linkType: 113, snapLength: 20, tsResol: 0x80 | 20)
            .EnhancedPacket(0, 7, CaptureReading.Payload(30, 1), flags: 1)
            .EnhancedPacket(1, 9, CaptureReading.Payload(24, 3), flags: 2)
            .EnhancedPacket(0, 10, [], originalLength: 60)
            .SimplePacket(CaptureReading.Payload(25, 4))
            .SectionHeader(bigEndian: true)
            .InterfaceDescription(name: "veth0", snapLength: 64)
            .EnhancedPacket(0, 12, CaptureReading.Payload(40, 6), flags: 2)
            .ObsoletePacket(0, 13, CaptureReading.Payload(11, 7), flags: 1)
            .ToArray();
        for (int round = 0; round < 300; round++)
        {
            byte[] file = CaptureReading.Mutated(original, random, maxMutations: 4);
            AssertSameOutcome(Write(file, "mutated.pcapng"), $"round {round}: {Convert.ToHexString(file)}");
        }
    }

    /// <summary>Every file of the public corpus (tcpdump's and libpcap's, damaged ones included) and the repository's captures.</summary>
    [CorpusFact]
    public void Open_EveryCorpusAndRepositoryCapture_MappedAndReadTheSame()
    {
        string captures = Path.Combine(CaptureCorpus.RepositoryRoot, "captures");
        IEnumerable<string> files = PublicCorpus.Files().Select(file => Path.Combine(PublicCorpus.Directory, file))
            .Concat(Directory.EnumerateFiles(captures, "*.pcap*", SearchOption.AllDirectories));
        int read = 0;
        foreach (string path in files)
        {
            AssertSameOutcome(path, path);
            read++;
        }
        Assert.True(read > 500, $"only {read} files");
    }

    private string Write(byte[] file, string name)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllBytes(path, file);
        return path;
    }

    private static List<ReadPacket> ReadAllOf(CaptureFileReader reader) => CaptureReading.ReadAll(reader);

    private static ReadOutcome Read(string path, bool map) => ReadOutcome.Of(() => CaptureFileReader.Open(path, map ? 0 : long.MaxValue));

    /// <summary>Reads the file mapped and read; asserts the same outcome; returns the records.</summary>
    private static List<ReadPacket> AssertSameOutcome(string path, string what)
    {
        ReadOutcome mapped = Read(path, map: true);
        ReadOutcome read = Read(path, map: false);
        mapped.AssertSameAs(read, what, "mapped", "read");
        if (read.OpenError is not null)
        {
            return [];
        }
        // Gzip files are read either way; every other file of 8 bytes or more is mapped when asked.
        Assert.True(mapped.Mapped || new FileInfo(path).Length < 8 || path.EndsWith(".gz", StringComparison.Ordinal), $"{what}: not mapped");
        Assert.False(read.Mapped);
        return read.Packets;
    }
}
