using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// <c>vethtrace bench</c>: the JSON Lines shape (one record per parser), what the figures must be whatever the machine's
/// speed (both parsers timed on the same packets; VethTrace allocates nothing per packet, PacketDotNet does), and the
/// refusals (exit codes as README's "Exit codes" documents them). Short durations: these check behaviour, not speed.
/// </summary>
[Collection(VethTrace.Tests.Files.AllocationMeasurement.Name)]
public sealed class BenchCommandTests
{
    private static (ExitCode Code, string Output, string Error) Bench(params string[] arguments)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["bench", .. arguments], output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static Dictionary<string, JsonElement> ByParser(string output)
    {
        var records = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.Equal(3, records.Count);
        Assert.All(records, r => Assert.Equal("bench", r.GetProperty("type").GetString()));
        return records.ToDictionary(r => r.GetProperty("parser").GetString()!);
    }

    [Fact]
    public void Bench_SmallCaptureAsJson_OneRecordPerParserOnTheSamePackets()
    {
        var (code, output, error) = Bench(CaptureCorpus.PathOf("masquerade-multi.pcapng"), "--format", "json", "--duration", "300ms");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        var records = ByParser(output);
        Assert.Equal(["NaiveSpanRead", "PacketDotNet", "vethtrace"], records.Keys.Order(StringComparer.Ordinal));
        JsonElement ours = records["vethtrace"], theirs = records["PacketDotNet"];
        // Alternating passes over one set: both parsed the same number of packets.
        Assert.True(ours.GetProperty("packets").GetInt64() > 0);
        Assert.Equal(ours.GetProperty("packets").GetInt64(), theirs.GetProperty("packets").GetInt64());
        Assert.Equal(ours.GetProperty("packets").GetInt64(), records["NaiveSpanRead"].GetProperty("packets").GetInt64());
        Assert.InRange(records["NaiveSpanRead"].GetProperty("bytes_per_packet").GetDouble(), 0, 1);
        Assert.True(ours.GetProperty("ns_per_packet").GetDouble() > 0);
        Assert.True(theirs.GetProperty("ns_per_packet").GetDouble() > 0);
        // Zero allocation per packet. Below 1 B rather than exactly 0: the runtime may allocate once on the thread
        // (a tier-up mid-loop), spread over hundreds of thousands of packets; one allocation per packet is at least 24 B.
        Assert.InRange(ours.GetProperty("bytes_per_packet").GetDouble(), 0, 1);
        // PacketDotNet builds objects for every packet it parses.
        Assert.True(theirs.GetProperty("bytes_per_packet").GetDouble() > 100);
    }

    [Fact]
    public void Bench_Table_NamesBothParsersAndTheRatio()
    {
        var (code, output, error) = Bench(CaptureCorpus.PathOf("vxlan.pcap"), "--duration", "200ms");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        Assert.Contains("ns/packet", output);
        Assert.Contains("bytes/packet", output);
        Assert.Matches(@"(?m)^vethtrace\s+\d+\.\d\d\s+\d+\.\d\s+\d+\.\d", output);
        Assert.Matches(@"(?m)^PacketDotNet\s+\d+\.\d\d\s+\d+\.\d\s+\d+\.\d", output);
        Assert.Matches(@"(?m)^NaiveSpanRead\s+\d+\.\d\d\s+\d+\.\d\s+\d+\.\d", output);
        Assert.Matches(@"vethtrace parses \d+\.\d× as many packets per second as PacketDotNet", output);
        Assert.Matches(@"vethtrace takes \d+\.\d\d× the time of the floor \(NaiveSpanRead", output);
        // vxlan.pcap is not Ethernet/IPv4/TCP|UDP at fixed offsets throughout: the floor's values are not the packets'.
        Assert.Contains("note: the floor reads fixed Ethernet/IPv4/TCP|UDP offsets", output);
        Assert.DoesNotContain("different values", output);
    }

    [Fact]
    public void Bench_NoFile_MeasuresTheShippedBulkCapture()
    {
        var (code, output, error) = Bench("--format", "json", "--duration", "200ms");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        Assert.True(ByParser(output)["vethtrace"].GetProperty("packets").GetInt64() >= 65_536);
    }

    [Fact]
    public void Bench_BulkCaptureTable_FloorReadsTheSameValues()
    {
        // The bulk capture is Ethernet/IPv4 (20-byte header)/TCP throughout, the floor's shape: its checksum agrees.
        var (code, output, error) = Bench(CaptureCorpus.PathOf("bulk-iperf3.pcap"), "--duration", "200ms");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        Assert.Matches(@"(?m)^NaiveSpanRead\s+\d+\.\d\d", output);
        Assert.DoesNotContain("note:", output);
    }

    [Fact]
    public void Bench_Directory_MeasuresEveryCaptureButTheBulkOneRepeatedToTheSetSize()
    {
        // The mixed set, as the BenchmarkDotNet suite builds it: the captures directly in captures/ but the bulk one.
        long expected = Directory.EnumerateFiles(CaptureCorpus.CapturesDirectory)
            .Where(f => (f.EndsWith(".pcap", StringComparison.Ordinal) || f.EndsWith(".pcapng", StringComparison.Ordinal))
                && !Path.GetFileName(f).StartsWith("bulk-iperf3", StringComparison.Ordinal))
            .Sum(Files.TcpdumpTool.CountFile);
        var (code, output, error) = Bench(CaptureCorpus.CapturesDirectory, "--duration", "200ms");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(CaptureCorpus.CapturesDirectory)}: {expected:N0} packets read.*, 65,536 parsed in a loop \(repeated\)", output);
    }

    [Fact]
    public void Bench_EmptyDirectory_OneLineErrorAndExit2()
    {
        string path = Directory.CreateTempSubdirectory("vethtrace-bench-empty-").FullName;
        try
        {
            var (code, output, error) = Bench(path);

            Assert.Equal(ExitCode.BadInput, code);
            Assert.Equal("", output);
            Assert.Equal($"vethtrace: {path}: no pcap or pcapng file in this directory", Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        }
        finally
        {
            Directory.Delete(path);
        }
    }

    [Fact]
    public void Bench_NotACapture_OneLineErrorAndExit2()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-bench-{Guid.NewGuid():N}.pcap");
        File.WriteAllText(path, "this is not a capture file, just text that is long enough to have a header\n");
        try
        {
            var (code, output, error) = Bench(path);

            Assert.Equal(ExitCode.BadInput, code);
            Assert.Equal("", output);
            string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith($"vethtrace: {path}: ", line);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Bench_MissingFile_OneLineErrorAndExit2()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-bench-missing-{Guid.NewGuid():N}.pcap");

        var (code, output, error) = Bench(path);

        Assert.Equal(ExitCode.BadInput, code);
        Assert.Equal("", output);
        Assert.StartsWith($"vethtrace: {path}: ", Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void Bench_CaptureWithCaplenAboveSnaplen_ReadsEveryPacketWarnsOnceExits0()
    {
        // The snaplen field lowered to 64: the records are read whole, as in replay and packets, with one warning.
        byte[] file = File.ReadAllBytes(CaptureCorpus.PathOf("vlan-8021q.pcap"));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(16), 64);
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-bench-snap-{Guid.NewGuid():N}.pcap");
        File.WriteAllBytes(path, file);
        try
        {
            var (code, output, error) = Bench(path, "--duration", "100ms");

            Assert.Equal(ExitCode.Success, code);
            Assert.Contains($"{Files.TcpdumpTool.CountFile(path):N0} packets read", output);
            Assert.Matches($@"^vethtrace: warning: {System.Text.RegularExpressions.Regex.Escape(path)}: \d+ records? with a caplen above the snaplen",
                Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Bench_CaptureDamagedPartWay_MeasuresThePacketsBeforeAndExits2()
    {
        byte[] whole = File.ReadAllBytes(CaptureCorpus.PathOf("vlan-8021q.pcap"));
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-bench-cut-{Guid.NewGuid():N}.pcap");
        File.WriteAllBytes(path, whole.AsSpan(0, whole.Length - 10).ToArray()); // cut inside the last record
        try
        {
            var (code, output, error) = Bench(path, "--format", "json", "--duration", "100ms");

            Assert.Equal(ExitCode.BadInput, code);
            Assert.True(ByParser(output)["vethtrace"].GetProperty("packets").GetInt64() > 0);
            Assert.Matches(@"^vethtrace: .*: at byte \d+: ", Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("--duration", "0s")]
    [InlineData("--duration", "soon")]
    [InlineData("--format", "xml")]
    public void Bench_BadOption_UsageErrorExit1(string option, string value)
    {
        var (code, output, error) = Bench(CaptureCorpus.PathOf("vxlan.pcap"), option, value);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Equal("", output);
        Assert.Contains("Try 'vethtrace bench --help'.", error);
    }

    [Theory]
    [InlineData("vxlan.pcap")]
    [InlineData("vlan-8021q.pcap")]
    [InlineData("ipv6-frag.pcap")]
    [InlineData("masquerade-multi.pcapng")]
    public void HashOf_EveryPacket_EqualsTheHashOfItsFieldRecord(string capture)
    {
        // The passes hash VethTrace's fields with HashOf and PacketDotNet's through the record: the same value, or the
        // checksums bench compares would differ for no reason.
        int packets = 0;
        foreach (CorpusPacket packet in CaptureCorpus.Read(capture, limit: 1_000))
        {
            VethTrace.Packets.PacketParser.Parse(packet.Data, packet.LinkType, out VethTrace.Packets.ParsedPacket parsed);
            Assert.Equal(VethTrace.Cli.Bench.PacketFields.From(in parsed.Outer).Hash(), VethTrace.Cli.Bench.PacketFields.HashOf(in parsed.Outer));
            packets++;
        }
        Assert.True(packets > 10);
    }
}
