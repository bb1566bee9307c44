using System.Text.RegularExpressions;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary><c>vethtrace packets</c>, run in-process through the real command line, on the shipped captures.</summary>
public sealed class PacketsCommandTests
{
    private static (ExitCode Code, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Packets_ByFingerprint_GroupsEachEchoRequestWithItsCopiesOnEveryHop()
    {
        // Independent expectation from tshark: the interfaces on which echo request seq N was seen.
        string capture = "masquerade-multi.pcapng";
        var expected = ExpectedFields.Load(ExpectedFields.PathFor(capture)!);
        var interfacesBySequence = Enumerable.Range(1, expected.FrameCount)
            .Where(f => expected.Number(f, "icmp.type") == 8)
            .GroupBy(f => expected.Number(f, "icmp.seq")!.Value)
            .ToDictionary(g => g.Key, g => g.Select(f => expected.Text(f, "frame.interface_name")!).Order().ToList());
        Assert.NotEmpty(interfacesBySequence);

        var (code, output, error) = Run("packets", CaptureCorpus.PathOf(capture), "--by-fingerprint");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        var groups = Regex.Split(output, @"^(?=fp [0-9a-f]{16})", RegexOptions.Multiline).Where(g => g.StartsWith("fp ", StringComparison.Ordinal)).ToList();
        foreach (var (sequence, interfaces) in interfacesBySequence)
        {
            string group = Assert.Single(groups, g => g.Contains($"echo request id", StringComparison.Ordinal) && Regex.IsMatch(g, $@"echo request id \d+ seq {sequence} "));
            var lines = group.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
            Assert.Equal(interfaces, lines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]).Order().ToList());
            Assert.Contains($"{interfaces.Count} sightings", group.Split('\n')[0]);
        }
        Assert.Contains($"{expected.FrameCount} packets", output);
    }

    [Fact]
    public void Packets_OnePerLine_EveryFrameListedWithItsInterface()
    {
        string capture = "vxlan.pcap";
        var expected = ExpectedFields.Load(ExpectedFields.PathFor(capture)!);

        var (code, output, _) = Run("packets", CaptureCorpus.PathOf(capture));

        Assert.Equal(ExitCode.Success, code);
        var lines = output.Split('\n').Where(l => Regex.IsMatch(l, @"^\s*\d+ \d\d:")).ToList();
        Assert.Equal(expected.FrameCount, lines.Count);
        int vxlanFrames = Enumerable.Range(1, expected.FrameCount).Count(f => expected.Number(f, "vxlan.vni") is not null);
        Assert.Equal(vxlanFrames, lines.Count(l => l.Contains("vxlan vni 42 ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Packets_DamagedFile_ReportsPacketsBeforeTheDamageAndOneErrorLine()
    {
        string source = CaptureCorpus.PathOf("ipv4-frag.pcap");
        byte[] bytes = File.ReadAllBytes(source);
        string damaged = Path.Combine(Path.GetTempPath(), $"vethtrace-damaged-{Environment.ProcessId}.pcap");
        // Cut in the middle of the last record: 24-byte header, then records; the cut loses exactly one packet.
        File.WriteAllBytes(damaged, bytes[..^10]);
        try
        {
            var expected = ExpectedFields.Load(ExpectedFields.PathFor("ipv4-frag.pcap")!);

            var (code, output, error) = Run("packets", damaged);

            Assert.Equal(ExitCode.BadInput, code);
            Assert.Contains($"{expected.FrameCount - 1} packets", output);
            string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Matches($@"^vethtrace: .*vethtrace-damaged-\d+\.pcap: at byte \d+: record data cut short", line);
            Assert.DoesNotContain("   at ", error);
        }
        finally
        {
            File.Delete(damaged);
        }
    }

    [Theory]
    [InlineData("no such file", "packets", "/nonexistent/x.pcap")]
    [InlineData("is a directory, not a capture file", "packets", "/")]
    public void Packets_UnusableFile_BadInputWithOneLine(string message, params string[] args)
    {
        var (code, _, error) = Run(args);

        Assert.Equal(ExitCode.BadInput, code);
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Equal($"vethtrace: {args[^1]}: {message}", lines[0]);
        Assert.Equal("Try 'vethtrace packets --help'.", lines[1]);
    }

    [Theory]
    [InlineData("unknown option '--bogus'", "packets", "--bogus", "x.pcap")]
    [InlineData("--ifname expects INDEX=NAME", "packets", "x.pcap", "--ifname", "docker0")]
    [InlineData("--vxlan-port must be between 0 and 65535", "packets", "x.pcap", "--vxlan-port", "70000")]
    [InlineData("Required argument missing", "packets")]
    public void Packets_BadCommandLine_UsageErrorWithHint(string message, params string[] args)
    {
        var (code, output, error) = Run(args);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Equal("", output);
        Assert.Contains(message, error);
        Assert.EndsWith("Try 'vethtrace packets --help'." + Environment.NewLine, error);
    }

    [Fact]
    public void Packets_Help_ShowsOptionsAndExamples()
    {
        var (code, output, _) = Run("packets", "--help");

        Assert.Equal(ExitCode.Success, code);
        Assert.Contains("--by-fingerprint", output);
        Assert.Contains("--ifname", output);
        Assert.Contains("vethtrace packets captures/masquerade-multi.pcapng --by-fingerprint", output);
    }

    [Fact]
    public void Packets_Sll2WithIfnameMap_NamesTheMappedIndex()
    {
        string capture = "any-sll2.pcap";
        var expected = ExpectedFields.Load(ExpectedFields.PathFor(capture)!);
        long index = expected.Number(1, "sll.ifindex")!.Value;

        var (code, output, _) = Run("packets", CaptureCorpus.PathOf(capture), "-c", "1", "--ifname", $"{index}=mapped0");
        var (_, unmapped, _) = Run("packets", CaptureCorpus.PathOf(capture), "-c", "1");

        Assert.Equal(ExitCode.Success, code);
        Assert.Contains(" mapped0 ", output);
        Assert.Contains($" if{index} ", unmapped);
    }

    [Fact]
    public void Packets_IrregularRecords_ListedAsTcpdumpListsThemWithOneWarningPerKindExitZero()
    {
        // vxlan.pcap with record 3's usec set to 2^31 and a 16-byte zero record put before record 5.
        byte[] pcap = File.ReadAllBytes(CaptureCorpus.PathOf("vxlan.pcap"));
        var offsets = new List<int>();
        for (int at = 24; at < pcap.Length; at += 16 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(pcap.AsSpan(at + 8)))
        {
            offsets.Add(at);
        }
        byte[] file = [.. pcap[..offsets[4]], .. new byte[16], .. pcap[offsets[4]..]];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(offsets[2] + 4), 2_147_483_648);
        string path = Path.Combine(Directory.CreateTempSubdirectory("vethtrace-packets-").FullName, "odd.pcap");
        File.WriteAllBytes(path, file);
        try
        {
            var (code, output, error) = Run("packets", path);

            Assert.Equal(ExitCode.Success, code);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            long tcpdump = Files.TcpdumpTool.CountFile(path);
            Assert.Equal($"{tcpdump} packets", lines.Single(l => l.EndsWith(" packets", StringComparison.Ordinal)));
            Assert.Contains(" (invalid us) ", Assert.Single(lines, l => l.TrimStart().StartsWith("3 ", StringComparison.Ordinal)));
            Assert.Single(lines, l => l.Contains("(invalid us)", StringComparison.Ordinal));
            Assert.Equal(
                [
                    $"vethtrace: warning: {path}: 1 record with caplen 0, read as an empty packet (tcpdump counts it as \"[Invalid header: caplen==0]\"); the first at byte {offsets[4]}: length 0",
                    $"vethtrace: warning: {path}: 1 record with an invalid timestamp (tcpdump: \"(invalid us)\"), placed at the previous packet's time and left out of latency figures; the first at byte {offsets[2]}: usec 2147483648 of at most 999999",
                ],
                error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }
}
