using VethTrace.Capture.Files;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Corpus;

namespace VethTrace.Tests.Files;

/// <summary>
/// The reader's one-go path (a regular enhanced packet block or classic pcap record, whole in the buffer, read in one
/// method; session 9) must return exactly what the general path returns, on every file: the same records, the same
/// warnings and counts, the same damage at the same offset. Each file is read twice, once with the one-go path and once
/// with it turned off (<see cref="CaptureFileReader.ReadsInOneGo"/>), and the two outcomes compared whole.
/// </summary>
public sealed class ReadInOneGoTests
{
    private const int Rounds = 600;

    /// <summary>The common file is read by the one-go path, not only declined to the general one (the point of it).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_RegularRecords_ReadInOneGo(bool pcapng)
    {
        byte[] file = pcapng ? CaptureReading.RegularPcapng(50) : CaptureReading.RegularPcap(50);
        using CaptureFileReader reader = CaptureReading.Open(file, pcapng ? "one-go.pcapng" : "one-go.pcap");
        List<ReadPacket> packets = CaptureReading.ReadAll(reader);
        Assert.Equal(50, packets.Count);
        Assert.Null(reader.Error);
        // Every record but the one whose caplen is above the snaplen, which the general path reads and counts, and in
        // pcapng the first, which the general path reads after the section header and interface blocks before it.
        Assert.Equal(pcapng ? 48 : 49, reader.RecordsReadInOneGo);
        Assert.Single(reader.Warnings);
    }

    [Fact]
    public void TryReadNext_MutatedPcapng_SameAsGeneralPath()
    {
        byte[] original = CaptureBuilder.Pcapng()
            .InterfaceDescription(name: "eth0", tsResol: 9, tsOffset: 5)
            .InterfaceDescription(linkType: 113, snapLength: 20, tsResol: 0x80 | 20)
            .EnhancedPacket(0, 7, CaptureReading.Payload(30, 1), flags: 1)
            .EnhancedPacket(1, 8, CaptureReading.Payload(16, 2))
            .EnhancedPacket(1, 9, CaptureReading.Payload(24, 3), flags: 2) // caplen above the snaplen: counted
            .EnhancedPacket(0, 10, [], originalLength: 60) // caplen 0: counted
            .SimplePacket(CaptureReading.Payload(25, 4))
            .OpaqueBlock(CaptureBuilder.BlockType.InterfaceStatistics, new byte[16])
            .EnhancedPacket(0, 11, CaptureReading.Payload(61, 5), flags: 3)
            .SectionHeader(bigEndian: true)
            .InterfaceDescription(name: "veth0", snapLength: 64)
            .EnhancedPacket(0, 12, CaptureReading.Payload(40, 6), flags: 2)
            .ObsoletePacket(0, 13, CaptureReading.Payload(11, 7), flags: 1)
            .EnhancedPacket(0, 14, CaptureReading.Payload(3, 8))
            .ToArray();
        AssertSameOutcome(original, "same.pcapng", "unmutated");
        Mutate(original, "same.pcapng", seed: 11);
    }

    [Fact]
    public void TryReadNext_MutatedPcap_SameAsGeneralPath()
    {
        var builder = CaptureBuilder.Pcap(nanoseconds: true, snapLength: 40);
        for (int i = 0; i < 10; i++)
        {
            builder.PcapRecord((uint)i, (uint)i * 1000, CaptureReading.Payload(i * 7, i));
        }
        builder.PcapRecord(11, 1_000_000_000, CaptureReading.Payload(9, 11)); // an invalid time: counted
        AssertSameOutcome(builder.ToArray(), "same.pcap", "unmutated");
        Mutate(builder.ToArray(), "same.pcap", seed: 12);
        byte[] bigEndian = CaptureBuilder.Pcap(bigEndian: true).PcapRecord(1, 2, CaptureReading.Payload(20, 1)).PcapRecord(3, 4, CaptureReading.Payload(30, 2)).ToArray();
        Mutate(bigEndian, "big.pcap", seed: 13);
    }

    /// <summary>
    /// Records across the borders of <see cref="CaptureFileReader.ReadLength"/> reads (the buffer is refilled a quarter
    /// at a time): every record whole and in place, as the general path reads them.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryReadNext_FileOfManyReads_SameAsGeneralPath(bool pcapng)
    {
        const int count = 14_000; // about 1.6 MiB: seven reads, the buffer compacted and refilled
        byte[] file = pcapng ? CaptureReading.RegularPcapng(count) : CaptureReading.RegularPcap(count);
        Assert.True(file.Length > 5 * CaptureFileReader.ReadLength);
        List<ReadPacket> packets = AssertSameOutcome(file, pcapng ? "many.pcapng" : "many.pcap", "many reads");
        Assert.Equal(count, packets.Count);
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(CaptureReading.Payload(CaptureReading.RegularSize(i), i), packets[i].Data);
        }
    }

    /// <summary>Every file of the public corpus (tcpdump's and libpcap's, damaged ones included) and the repository's captures.</summary>
    [CorpusFact]
    public void TryReadNext_EveryCorpusAndRepositoryCapture_SameAsGeneralPath()
    {
        string captures = Path.Combine(CaptureCorpus.RepositoryRoot, "captures");
        IEnumerable<string> files = PublicCorpus.Files().Select(file => Path.Combine(PublicCorpus.Directory, file))
            .Concat(Directory.EnumerateFiles(captures, "*.pcap*", SearchOption.AllDirectories));
        int read = 0;
        foreach (string path in files)
        {
            AssertSameOutcome(File.ReadAllBytes(path), Path.GetFileName(path), path);
            read++;
        }
        Assert.True(read > 500, $"only {read} files");
    }

    private static void Mutate(byte[] original, string name, int seed)
    {
        var random = new Random(seed);
        for (int round = 0; round < Rounds; round++)
        {
            byte[] file = CaptureReading.Mutated(original, random, maxMutations: 4);
            AssertSameOutcome(file, name, $"round {round}: {Convert.ToHexString(file)}");
        }
    }

    /// <summary>Reads <paramref name="file"/> with and without the one-go path; asserts the same outcome; returns the records.</summary>
    private static List<ReadPacket> AssertSameOutcome(byte[] file, string name, string what)
    {
        ReadOutcome fast = ReadOutcome.Of(() => CaptureFileReader.Open(new MemoryStream(file), name), oneGo: true);
        ReadOutcome general = ReadOutcome.Of(() => CaptureFileReader.Open(new MemoryStream(file), name), oneGo: false);
        fast.AssertSameAs(general, what, "in one go", "in the general path");
        Assert.Equal(0, general.InOneGo);
        return fast.Packets;
    }
}
