using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using System.Text.RegularExpressions;
using VethTrace.Cli;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;

namespace VethTrace.Tests.Cli;

/// <summary>
/// The table of damaged inputs (issue 7), each made by byte surgery on a real capture from captures/ and given to
/// <c>vethtrace replay</c> through the real command line. For each: exit code 2, exactly one line on standard error
/// naming the file, the byte offset and the problem, no stack trace, and the packets before the damage analysed and
/// reported. How many packets come before the damage is not taken from VethTrace: the record boundaries are walked
/// here (<see cref="Layout"/>), and the intact prefix is counted by capinfos. Beside it, the irregular inputs of
/// issue 12 that tcpdump reads whole: exit 0, one warning line, and tcpdump's packet count.
/// </summary>
public sealed class DamagedInputTableTests : IDisposable
{
    private const string Pcap = "vxlan.pcap";          // little-endian, microseconds, snaplen 262144, 22 records
    private const string Pcapng = "masquerade-multi.pcapng"; // one section, five interfaces, EPBs

    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-damage-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    public static TheoryData<string> Rows => new()
    {
        "empty file", "wrong magic", "pcap header cut short", "pcapng section header cut short",
        "caplen above 256 KiB", "caplen of 4 GiB",
        "pcapng block length mismatch", "pcapng block length not a multiple of 4", "pcapng EPB on an undeclared interface",
        "gzip cut in the middle",
    };

    public static TheoryData<string> IrregularRows => new()
    {
        "caplen above snaplen", "zeroed tail", "zero-length record between good ones", "invalid timestamp", "pcapng interface of an unknown link type",
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public void Replay_DamagedInput_ExitTwoOneLineWithOffsetAndPacketsBefore(string row)
    {
        byte[] pcap = File.ReadAllBytes(CaptureCorpus.PathOf(Pcap));
        byte[] pcapng = File.ReadAllBytes(CaptureCorpus.PathOf(Pcapng));
        var records = Layout.PcapRecords(pcap);
        var blocks = Layout.PcapngBlocks(pcapng);
        var packetBlocks = blocks.Where(b => b.Type == 6).ToList();
        var idbs = blocks.Where(b => b.Type == 1).ToList();

        // Each row: the damaged bytes, the offset and problem VethTrace must name, and the bytes before the damage
        // (null when no capture header survives, so no packet can be reported).
        (byte[] File, string Name, long Offset, string Problem, byte[]? IntactPrefix) damage = row switch
        {
            "empty file" => ([], "empty.pcap", 0, "empty file", null),
            "wrong magic" => (Patch(pcap, 0, "GIF8"u8), "gif.pcap", 0, "not a pcap or pcapng file (magic 0x47494638)", null),
            "pcap header cut short" => (pcap[..20], "cut.pcap", 20, "pcap file header cut short: 20 of 24 bytes", null),
            "pcapng section header cut short" => (pcapng[..100], "cut.pcapng", 0, $"block cut short: 100 of {blocks[0].Length} bytes", null),
            "caplen above 256 KiB" => CaplenOf(pcap, records, 3, 262_145, "record caplen 262145 exceeds the maximum of 262144"),
            "caplen of 4 GiB" => CaplenOf(pcap, records, 3, uint.MaxValue, "record caplen 4294967295 exceeds the maximum of 262144"),
            "pcapng block length mismatch" => (Patch32(pcapng, packetBlocks[2].Offset + packetBlocks[2].Length - 4, (uint)packetBlocks[2].Length + 4), "trailer.pcapng",
                packetBlocks[2].Offset, $"block length mismatch: {packetBlocks[2].Length} at the start, {packetBlocks[2].Length + 4} at the end", pcapng[..(int)packetBlocks[2].Offset]),
            "pcapng block length not a multiple of 4" => (Patch32(pcapng, packetBlocks[2].Offset + 4, (uint)packetBlocks[2].Length + 2), "odd.pcapng",
                packetBlocks[2].Offset, $"block length {packetBlocks[2].Length + 2} is not a multiple of 4", pcapng[..(int)packetBlocks[2].Offset]),
            "pcapng EPB on an undeclared interface" => (Patch32(pcapng, packetBlocks[2].Offset + 8, 9), "undeclared.pcapng",
                packetBlocks[2].Offset, $"packet refers to interface 9, but the section declares {idbs.Count(i => i.Offset < packetBlocks[2].Offset)}", pcapng[..(int)packetBlocks[2].Offset]),
            "gzip cut in the middle" => GzipCut(pcap, records),
            _ => throw new ArgumentOutOfRangeException(nameof(row)),
        };
        string path = Write(damage.Name, damage.File);

        var (code, output, errorLines) = Replay(path);

        Assert.Equal(ExitCode.BadInput, code);
        Assert.Equal($"vethtrace: {path}: at byte {damage.Offset}: {damage.Problem}", Assert.Single(errorLines));
        if (damage.IntactPrefix is null)
        {
            Assert.True(output.Length == 0 || PacketsIn(output) == 0, output);
        }
        else
        {
            long expected = CountedByCapinfos(damage.IntactPrefix, damage.Name);
            Assert.True(expected > 0, "the damage leaves packets before it");
            Assert.Equal(expected, PacketsIn(output));
        }
    }

    /// <summary>
    /// Records that break the format's rules but that tcpdump reads (issue 12): replay reads every packet tcpdump
    /// counts, exits 0, and prints one warning line naming the file, the count and the first offset.
    /// </summary>
    [Theory]
    [MemberData(nameof(IrregularRows))]
    public void Replay_IrregularInput_ExitZeroOneWarningLineEveryPacketTcpdumpReads(string row)
    {
        byte[] pcap = File.ReadAllBytes(CaptureCorpus.PathOf(Pcap));
        byte[] pcapng = File.ReadAllBytes(CaptureCorpus.PathOf(Pcapng));
        var records = Layout.PcapRecords(pcap);
        var idbs = Layout.PcapngBlocks(pcapng).Where(b => b.Type == 1).ToList();

        (byte[] File, string Name, string Warning) irregular = row switch
        {
            "caplen above snaplen" => SnaplenBelow(pcap, records),
            "zeroed tail" => ZeroedTail(pcap, records[4].Offset),
            "zero-length record between good ones" => ([.. pcap[..(int)records[2].Offset], .. new byte[Layout.PcapRecordHeader], .. pcap[(int)records[2].Offset..]], "gap.pcap",
                $"1 record with caplen 0, read as an empty packet (tcpdump counts it as \"[Invalid header: caplen==0]\"); the first at byte {records[2].Offset}: length 0"),
            "invalid timestamp" => (Patch32(pcap, records[3].Offset + 4, 2_147_483_648), "late.pcap",
                "1 record with an invalid timestamp (tcpdump: \"(invalid us)\"), placed at the previous packet's time and left out of latency figures; " +
                $"the first at byte {records[3].Offset}: usec 2147483648 of at most 999999"),
            "pcapng interface of an unknown link type" => (Patch16(pcapng, idbs[2].Offset + 8, 147), "user0.pcapng",
                $"at byte {idbs[2].Offset}: interface {Layout.InterfaceName(pcapng, idbs[2])} has link type 147, which VethTrace does not decode: its packets are counted, not traced"),
            _ => throw new ArgumentOutOfRangeException(nameof(row)),
        };
        string path = Write(irregular.Name, irregular.File);

        var (code, output, errorLines) = Replay(path);

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal($"vethtrace: warning: {path}: {irregular.Warning}", Assert.Single(errorLines));
        // tcpdump reads all of them but the pcapng one (libpcap wants one link type for all of a file's interfaces);
        // VethTrace reads what capinfos counts, never fewer than tcpdump.
        long read = PacketsIn(output);
        Assert.Equal(CountedByCapinfos(irregular.File, irregular.Name), read);
        Assert.True(read >= TcpdumpTool.CountFile(path));
    }

    [Fact]
    public void Replay_PcapCutAtEveryByteOfTheFirstRecords_ReportsWholeRecordsAndNamesTheCutOne()
    {
        byte[] pcap = File.ReadAllBytes(CaptureCorpus.PathOf(Pcap));
        var records = Layout.PcapRecords(pcap);
        for (int whole = 1; whole <= 3; whole++)
        {
            Assert.Equal(whole, CountedByCapinfos(pcap[..(int)records[whole].Offset], "prefix.pcap")); // the walk agrees with capinfos
        }

        // The first three records: every byte of their headers and bodies.
        AssertEveryCut(pcap, "cut.pcap", [.. records.Select(r => (r.Offset, Layout.PcapRecordHeader + r.Length))], records[3].Offset,
            (present, record) => present < Layout.PcapRecordHeader
                ? $"record header cut short: {present} of 16 bytes"
                : $"record data cut short: {present - Layout.PcapRecordHeader} of {records[record].Length} bytes");
    }

    [Fact]
    public void Replay_PcapngCutAtEveryByteOfTheFirstPacketBlocks_ReportsWholeBlocksAndNamesTheCutOne()
    {
        byte[] pcapng = File.ReadAllBytes(CaptureCorpus.PathOf(Pcapng));
        var packetBlocks = Layout.PcapngBlocks(pcapng).Where(b => b.Type == 6).ToList();
        Assert.Equal(2, CountedByCapinfos(pcapng[..(int)packetBlocks[2].Offset], "prefix.pcapng"));

        AssertEveryCut(pcapng, "cut.pcapng", [.. packetBlocks.Select(b => (b.Offset, b.Length))], packetBlocks[2].Offset,
            (present, block) => present < 12 ? $"block header cut short: {present} of 12 bytes" : $"block cut short: {present} of {packetBlocks[block].Length} bytes");
    }

    /// <summary>
    /// Cuts <paramref name="file"/> at every byte from its first packet up to <paramref name="end"/>: the packets wholly
    /// before the cut are reported, and a cut inside one names it (exit 2), or a cut on a boundary is a clean end (exit 0).
    /// </summary>
    private void AssertEveryCut(byte[] file, string name, List<(long Offset, int Length)> packets, long end, Func<int, int, string> problem)
    {
        for (int cut = (int)packets[0].Offset; cut <= end; cut++)
        {
            string path = Write(name, file[..cut]);
            int whole = packets.Count(p => p.Offset + p.Length <= cut);

            var (code, output, errorLines) = Replay(path);

            Assert.Equal(whole, PacketsIn(output));
            if (packets.Any(p => p.Offset == cut))
            {
                Assert.Equal(ExitCode.Success, code);
                Assert.Empty(errorLines);
                continue;
            }
            long offset = packets[whole].Offset;
            Assert.Equal(ExitCode.BadInput, code);
            Assert.Equal($"vethtrace: {path}: at byte {offset}: {problem(cut - (int)offset, whole)}", Assert.Single(errorLines));
        }
    }

    [Fact]
    public void Replay_SectionsOfBothByteOrders_ReadsEveryPacket()
    {
        // The real pcapng (little-endian), then a big-endian section holding the real pcap's records.
        byte[] pcapng = File.ReadAllBytes(CaptureCorpus.PathOf(Pcapng));
        byte[] pcap = File.ReadAllBytes(CaptureCorpus.PathOf(Pcap));
        var section = CaptureBuilder.Pcapng(bigEndian: true).InterfaceDescription(linkType: 1, snapLength: 262_144, name: "vxlan0", tsResol: 6);
        foreach (var (offset, length) in Layout.PcapRecords(pcap))
        {
            ReadOnlySpan<byte> header = pcap.AsSpan((int)offset, Layout.PcapRecordHeader);
            ulong microseconds = BinaryPrimitives.ReadUInt32LittleEndian(header) * 1_000_000UL + BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            section.EnhancedPacket(0, microseconds, pcap.AsSpan((int)offset + Layout.PcapRecordHeader, length));
        }
        string path = Write("both-orders.pcapng", [.. pcapng, .. section.ToArray()]);

        var (code, output, errorLines) = Replay(path);

        Assert.Equal(ExitCode.Success, code);
        Assert.Empty(errorLines);
        long expected = CountedByCapinfos(File.ReadAllBytes(path), "both-orders.pcapng");
        Assert.Equal(CountedByCapinfos(pcapng, "a.pcapng") + CountedByCapinfos(pcap, "b.pcap"), expected);
        Assert.Equal(expected, PacketsIn(output));
    }

    [Fact]
    public void Replay_GzipCompressedCapture_ReadAsWiresharkDoes()
    {
        byte[] pcapng = File.ReadAllBytes(CaptureCorpus.PathOf(Pcapng));
        string path = Write("multi.pcapng.gz", CaptureBuilder.Gzip(pcapng));

        var (code, output, errorLines) = Replay(path);

        Assert.Equal(ExitCode.Success, code);
        Assert.Empty(errorLines);
        Assert.Equal(CountedByCapinfos(File.ReadAllBytes(path), "multi.pcapng.gz"), PacketsIn(output));
    }

    [Fact]
    public void Replay_OneDamagedFileAmongSeveral_TheOthersReadWhole()
    {
        string split = Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "split");
        string[] files = Directory.GetFiles(split, "*.pcap").Order(StringComparer.Ordinal).ToArray();
        Assert.True(files.Length >= 2, "captures/replay/split holds one pcap per interface");
        byte[] damagedSource = File.ReadAllBytes(files[0]);
        var records = Layout.PcapRecords(damagedSource);
        var cutRecord = records[records.Count / 2];
        string damaged = Write(Path.GetFileName(files[0]), damagedSource[..(int)(cutRecord.Offset + 5)]);
        long expected = CountedByCapinfos(damagedSource[..(int)cutRecord.Offset], "prefix.pcap")
            + files.Skip(1).Sum(f => CountedByCapinfos(File.ReadAllBytes(f), Path.GetFileName(f)));

        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", damaged, .. files.Skip(1), "--format", "json"], output, error);

        Assert.Equal(ExitCode.BadInput, code);
        Assert.Equal($"vethtrace: {damaged}: at byte {cutRecord.Offset}: record header cut short: 5 of 16 bytes", Assert.Single(Lines(error.ToString())));
        Assert.Equal(expected, PacketsIn(output.ToString()));
    }

    // ---- the rows that need a little more than a patch ----

    private static (byte[], string, string) SnaplenBelow(byte[] pcap, List<(long Offset, int Length)> records)
    {
        // The file declares a snaplen of 64, and most of its records are longer (old Solaris files and fuzzed ones look so).
        const uint snapLength = 64;
        var longer = records.Where(r => r.Length > snapLength).ToList();
        Assert.True(longer.Count > 1 && longer[0] != records[0], "some records fit the snaplen, later ones do not");
        return (Patch32(pcap, 16, snapLength), "snaplen.pcap",
            $"{longer.Count} records with a caplen above the snaplen, read whole (tcpdump reads them too, cut at the snaplen); " +
            $"the first at byte {longer[0].Offset}: caplen {longer[0].Length}, snaplen {snapLength}");
    }

    private static (byte[], string, string) ZeroedTail(byte[] pcap, long from)
    {
        // The end of the file never written: whole 16-byte records of zeros, each a record of caplen 0 to libpcap.
        int zeroRecords = (pcap.Length - (int)from) / Layout.PcapRecordHeader;
        return ([.. pcap[..(int)from], .. new byte[zeroRecords * Layout.PcapRecordHeader]], "zeroed.pcap",
            $"{zeroRecords} records with caplen 0, read as empty packets (tcpdump counts them as \"[Invalid header: caplen==0]\"); the first at byte {from}: length 0");
    }

    private static (byte[], string, long, string, byte[]?) CaplenOf(byte[] pcap, List<(long Offset, int Length)> records, int index, uint caplen, string problem) =>
        (Patch32(pcap, records[index].Offset + 8, caplen), "caplen.pcap", records[index].Offset, problem, pcap[..(int)records[index].Offset]);

    private static (byte[], string, long, string, byte[]?) GzipCut(byte[] pcap, List<(long Offset, int Length)> records)
    {
        // Where the decompressed stream ends depends on the deflate blocks: gzip(1) says which records survive.
        byte[] compressed = CaptureBuilder.Gzip(pcap);
        byte[] cut = compressed[..(compressed.Length / 2)];
        byte[] inflated = InflateWhatSurvives(cut);
        var cutRecord = records.First(r => r.Offset + Layout.PcapRecordHeader + r.Length > inflated.Length);
        int present = inflated.Length - (int)cutRecord.Offset;
        string problem = present < Layout.PcapRecordHeader
            ? $"record header cut short: {present} of 16 bytes"
            : $"record data cut short: {present - Layout.PcapRecordHeader} of {cutRecord.Length} bytes";
        return (cut, "cut.pcap.gz", cutRecord.Offset, problem, pcap[..(int)cutRecord.Offset]);
    }

    private static byte[] InflateWhatSurvives(byte[] compressed)
    {
        var inflated = new MemoryStream();
        using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
        byte[] buffer = new byte[1];
        try
        {
            // Byte by byte, so everything the cut stream still decodes is kept.
            while (gzip.Read(buffer) == 1)
            {
                inflated.WriteByte(buffer[0]);
            }
        }
        catch (InvalidDataException)
        {
        }
        return inflated.ToArray();
    }

    // ---- helpers ----

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static (ExitCode Code, string Output, string[] ErrorLines) Replay(string path)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", path, "--format", "json"], output, error);
        string errors = error.ToString();
        Assert.DoesNotContain("   at ", errors); // no stack trace
        return (code, output.ToString(), Lines(errors));
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static long PacketsIn(string jsonLines)
    {
        string summary = Lines(jsonLines).Single(l => l.StartsWith("{\"type\":\"summary\"", StringComparison.Ordinal));
        return JsonDocument.Parse(summary).RootElement.GetProperty("packets").GetInt64();
    }

    private long CountedByCapinfos(byte[] capture, string name)
    {
        string path = Path.Combine(_directory, "capinfos-" + name);
        File.WriteAllBytes(path, capture);
        string line = WiresharkTool.Run("capinfos", ["-c", "-M", path]).Single(l => l.StartsWith("Number of packets:", StringComparison.Ordinal));
        return long.Parse(Regex.Match(line, @"\d+").Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static byte[] Patch(byte[] file, long offset, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = (byte[])file.Clone();
        bytes.CopyTo(copy.AsSpan((int)offset));
        return copy;
    }

    private static byte[] Patch32(byte[] file, long offset, uint value)
    {
        byte[] copy = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan((int)offset), value);
        return copy;
    }

    private static byte[] Patch16(byte[] file, long offset, ushort value)
    {
        byte[] copy = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan((int)offset), value);
        return copy;
    }

    /// <summary>
    /// Record and block boundaries walked straight from the length fields (little-endian files only, as the shipped
    /// captures are), so the expectations do not come from the reader under test.
    /// </summary>
    private static class Layout
    {
        public const int PcapRecordHeader = 16;

        public static List<(long Offset, int Length)> PcapRecords(byte[] file)
        {
            Assert.Contains(BinaryPrimitives.ReadUInt32LittleEndian(file), new[] { 0xA1B2C3D4u, 0xA1B23C4Du }); // micro- or nanoseconds
            var records = new List<(long, int)>();
            for (long offset = 24; offset < file.Length;)
            {
                int caplen = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)offset + 8));
                records.Add((offset, caplen));
                offset += PcapRecordHeader + caplen;
            }
            return records;
        }

        public static List<(long Offset, uint Type, int Length)> PcapngBlocks(byte[] file)
        {
            Assert.Equal(0x1A2B3C4Du, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8)));
            var blocks = new List<(long, uint, int)>();
            for (long offset = 0; offset < file.Length;)
            {
                uint type = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)offset));
                int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)offset + 4));
                blocks.Add((offset, type, length));
                offset += length;
            }
            return blocks;
        }

        /// <summary>if_name (option 2) of an interface description block.</summary>
        public static string InterfaceName(byte[] file, (long Offset, uint Type, int Length) idb)
        {
            int at = (int)idb.Offset + 16;
            while (at + 4 <= idb.Offset + idb.Length - 4)
            {
                int code = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at));
                int length = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at + 2));
                if (code == 2)
                {
                    return System.Text.Encoding.UTF8.GetString(file, at + 4, length).TrimEnd('\0');
                }
                if (code == 0)
                {
                    break;
                }
                at += 4 + ((length + 3) & ~3);
            }
            throw new InvalidOperationException("the interface has no if_name");
        }
    }
}
