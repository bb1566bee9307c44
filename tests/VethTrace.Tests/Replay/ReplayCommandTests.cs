using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <c>vethtrace replay</c> on the shipped multi-interface capture, checked against what tshark's field output says
/// (captures/expected/masquerade-multi.pcapng.tsv), matched here by a key of our own: IP ID, protocol and length.
/// </summary>
public sealed class ReplayCommandTests
{
    private const string Capture = "masquerade-multi.pcapng";

    private static List<JsonElement> ReplayJson(params string[] extra)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", CaptureCorpus.PathOf(Capture), "--format", "json", .. extra], output, error);
        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error.ToString());
        return output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
    }

    /// <summary>
    /// tshark's view: IPv4 frames keyed by (ip.id, ip.proto, ip.len, tcp.seq_raw, tcp.ack_raw, icmp.seq) — Linux sends
    /// some packets with IP ID 0, so the transport fields are needed — with the interfaces and addresses of each copy.
    /// </summary>
    private static Dictionary<(long, long, long, long, long, long), List<(string Interface, string Source, string Destination)>> TsharkGroups()
    {
        var expected = ExpectedFields.Load(ExpectedFields.PathFor(Capture)!);
        var groups = new Dictionary<(long, long, long, long, long, long), List<(string, string, string)>>();
        for (int frame = 1; frame <= expected.FrameCount; frame++)
        {
            if (expected.Number(frame, "ip.id") is not { } id)
            {
                continue;
            }
            var key = (id, expected.Number(frame, "ip.proto")!.Value, expected.Number(frame, "ip.len")!.Value,
                expected.Number(frame, "tcp.seq_raw") ?? -1, expected.Number(frame, "tcp.ack_raw") ?? -1, expected.Number(frame, "icmp.seq") ?? -1);
            if (!groups.TryGetValue(key, out var list))
            {
                groups[key] = list = [];
            }
            list.Add((expected.Text(frame, "frame.interface_name")!, expected.Text(frame, "ip.src")!, expected.Text(frame, "ip.dst")!));
        }
        return groups;
    }

    [Fact]
    public void Replay_MasqueradeCapture_EveryPacketSeenOnSeveralHopsIsOneJourney()
    {
        var groups = TsharkGroups();
        int multiHop = groups.Values.Count(g => g.Select(s => s.Interface).Distinct().Count() > 1);
        int ipFrames = groups.Values.Sum(g => g.Count);

        var records = ReplayJson();
        var summary = records.Single(r => r.GetProperty("type").GetString() == "summary");

        Assert.Equal(multiHop, summary.GetProperty("multi_hop_journeys").GetInt64());
        Assert.Equal(groups.Count, summary.GetProperty("journeys").GetInt64());
        Assert.Equal(0, summary.GetProperty("lost").GetInt64());
        // Every hop record counts one packet per journey crossing it: their sum is the frames minus one per journey.
        long hopPackets = records.Where(r => r.GetProperty("type").GetString() == "hop").Sum(r => r.GetProperty("packets").GetInt64());
        Assert.Equal(ipFrames - groups.Count, hopPackets);
    }

    [Fact]
    public void Replay_MasqueradeCapture_NatTableHoldsEveryTranslationTsharkShows()
    {
        // A translation, as tshark shows it: one packet whose source (or destination) differs between two copies.
        var groups = TsharkGroups();
        var sources = groups.Values.Where(g => g.Select(s => s.Source).Distinct().Count() > 1)
            .Select(g => g.Select(s => s.Source).Distinct().Order().ToArray()).Select(a => (a[0], a[1])).ToHashSet();
        var destinations = groups.Values.Where(g => g.Select(s => s.Destination).Distinct().Count() > 1)
            .Select(g => g.Select(s => s.Destination).Distinct().Order().ToArray()).Select(a => (a[0], a[1])).ToHashSet();
        Assert.NotEmpty(sources);

        var nat = ReplayJson().Where(r => r.GetProperty("type").GetString() == "nat")
            .Select(r => (Inside: Address(r.GetProperty("inside").GetString()!), Outside: Address(r.GetProperty("outside").GetString()!)))
            .Select(m => string.CompareOrdinal(m.Inside, m.Outside) < 0 ? (m.Inside, m.Outside) : (m.Outside, m.Inside))
            .ToHashSet();

        Assert.Superset(sources.Union(destinations).ToHashSet(), nat);
        Assert.Subset(sources.Union(destinations).ToHashSet(), nat);
    }

    [Fact]
    public void Replay_MasqueradeCapture_TableShowsPathsHopsNatAndFitsEightyColumns()
    {
        var output = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", CaptureCorpus.PathOf(Capture)], output, new StringWriter());

        Assert.Equal(ExitCode.Success, code);
        string text = output.ToString();
        Assert.Contains("eth0 ─", text);
        Assert.Contains("→ vt-up0", text);
        // NAT aggregated: SNAT rows without the client's port, DNAT rows with the published port and without the peer's.
        Assert.Contains("snat icmp   172.17.0.2 ", text);
        Assert.Contains("dnat tcp    172.17.0.3:80  198.51.100.1:8080  198.51.100.2 ", text);
        Assert.All(text.Split('\n'), line => Assert.True(line.TrimEnd().Length <= 80, $"wider than 80 columns: {line}"));
    }

    [Fact]
    public void Replay_DamagedFile_ReportsWhatCameBeforeAndExitsTwo()
    {
        byte[] bytes = File.ReadAllBytes(CaptureCorpus.PathOf(Capture));
        string damaged = Path.Combine(Path.GetTempPath(), $"vethtrace-replay-damaged-{Environment.ProcessId}.pcapng");
        File.WriteAllBytes(damaged, bytes[..(bytes.Length / 2)]);
        try
        {
            var output = new StringWriter();
            var error = new StringWriter();
            ExitCode code = VethTraceCommand.Run(["replay", damaged, "--format", "json"], output, error);

            Assert.Equal(ExitCode.BadInput, code);
            Assert.Matches(@"^vethtrace: .*: at byte \d+: block cut short", error.ToString());
            Assert.Contains("\"type\":\"summary\"", output.ToString());
        }
        finally
        {
            File.Delete(damaged);
        }
    }

    [Theory]
    [InlineData("--window", "soon", "--window expects a positive duration")]
    [InlineData("--window", "0s", "--window expects a positive duration")]
    [InlineData("--format", "xml", "xml")]
    public void Replay_BadOption_UsageError(string option, string value, string message)
    {
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", "x.pcap", option, value], new StringWriter(), error);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Contains(message, error.ToString());
    }

    private static string Address(string endpoint) => endpoint.Contains(':') && !endpoint.StartsWith('[') ? endpoint[..endpoint.LastIndexOf(':')] : endpoint;
}

/// <summary><c>--filter</c>: libpcap's own compiler, and a journey kept when any of its copies matches.</summary>
public sealed class ReplayFilterTests
{
    [Fact]
    public void Replay_FilterOnInsideAddress_FollowsThePacketPastNat()
    {
        // tshark: ICMP echo frames whose source or destination is the container, on any interface.
        var expected = ExpectedFields.Load(ExpectedFields.PathFor("masquerade-multi.pcapng")!);
        int echoes = Enumerable.Range(1, expected.FrameCount).Count(f => expected.Number(f, "icmp.type") is 0 or 8);
        int insideOnly = Enumerable.Range(1, expected.FrameCount).Count(f => expected.Number(f, "icmp.type") is 0 or 8
            && (expected.Text(f, "ip.src") == "172.17.0.2" || expected.Text(f, "ip.dst") == "172.17.0.2"));
        Assert.True(insideOnly < echoes, "some copies carry the translated address only");

        var output = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", CaptureCorpus.PathOf("masquerade-multi.pcapng"), "--filter", "icmp and host 172.17.0.2", "--format", "json"], output, new StringWriter());

        Assert.Equal(ExitCode.Success, code);
        var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        long hopPackets = records.Where(r => r.GetProperty("type").GetString() == "hop").Sum(r => r.GetProperty("packets").GetInt64());
        long journeys = records.Single(r => r.GetProperty("type").GetString() == "summary").GetProperty("journeys").GetInt64();
        // Every echo copy, the NATed ones on the egress included, is in a selected journey.
        Assert.Equal(echoes, hopPackets + journeys);
        // The others are counted as left out: together, every journey the independent derivation finds.
        using var derived = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "expected", "masquerade-multi.pcapng.json")));
        long filteredOut = records.Single(r => r.GetProperty("type").GetString() == "summary").GetProperty("filtered_out").GetInt64();
        Assert.Equal(derived.RootElement.GetProperty("summary").GetProperty("journeys").GetInt64(), journeys + filteredOut);
        Assert.Contains(records, r => r.GetProperty("type").GetString() == "nat" && r.GetProperty("proto").GetString() == "icmp");
        Assert.DoesNotContain(records, r => r.GetProperty("type").GetString() == "nat" && r.GetProperty("proto").GetString() != "icmp");
    }

    [Fact]
    public void Replay_FilterOnLengthOfSnaplenCutCopies_TestsTheWireLengthAsTcpdumpDoes()
    {
        // The shipped capture cut to 80 bytes a packet by editcap: the records keep their original lengths, as a
        // snaplen capture's do. pcap-filter's `greater`, `less` and `len` test that length in tcpdump (libpcap hands
        // bpf_filter the record's len), so the cut file must select the same journeys as the whole one.
        string directory = Directory.CreateTempSubdirectory("vethtrace-snaplen-filter-").FullName;
        try
        {
            string whole = CaptureCorpus.PathOf("masquerade-multi.pcapng");
            string cut = Path.Combine(directory, "cut.pcapng");
            Assert.Equal(0, Tool("editcap", "-s", "80", whole, cut).Exit);
            const string Filter = "greater 100";
            string tcpdump = Tool("tcpdump", "--count", "-r", cut, Filter).Output;
            int copies = int.Parse(System.Text.RegularExpressions.Regex.Match(tcpdump, @"^(\d+) packets?", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value);
            Assert.True(copies > 20, $"tcpdump counted {copies} packets of 100 bytes or more on the wire");

            var fromWhole = Summary(whole, Filter);
            var fromCut = Summary(cut, Filter);

            Assert.Equal(fromWhole, fromCut);
            // Every copy tcpdump selects is in a selected journey: hop samples plus journeys count the copies.
            Assert.Equal(copies, fromCut.HopPackets + fromCut.Journeys);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        static (long Journeys, long FilteredOut, long HopPackets) Summary(string file, string filter)
        {
            var output = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file, "--filter", filter, "--format", "json"], output, new StringWriter()));
            var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
            var summary = records.Single(r => r.GetProperty("type").GetString() == "summary");
            return (summary.GetProperty("journeys").GetInt64(), summary.GetProperty("filtered_out").GetInt64(),
                records.Where(r => r.GetProperty("type").GetString() == "hop").Sum(r => r.GetProperty("packets").GetInt64()));
        }
    }

    [Fact]
    public void PacketFilter_LengthPrimitives_SeeTheOriginalLength()
    {
        using var filter = VethTrace.Capture.Filters.PacketFilter.TryCreate("greater 1000", out string? error);
        Assert.True(filter is not null, error);
        var frame = new byte[60];   // the first 60 bytes of a 1,500-byte frame, as a snaplen leaves them

        Assert.True(filter!.Matches(frame, 1500, VethTrace.Packets.LinkType.Ethernet));
        Assert.False(filter.Matches(frame, 999, VethTrace.Packets.LinkType.Ethernet));
        Assert.False(filter.Matches(frame, 0, VethTrace.Packets.LinkType.Ethernet));   // unknown: the captured length
    }

    private static (int Exit, string Output) Tool(string file, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = System.Diagnostics.Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), $"{file} did not finish");
        return (process.ExitCode, output.Result + error.Result);
    }

    [Fact]
    public void Replay_FilterThatDoesNotCompile_UsageErrorWithLibpcapsMessage()
    {
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", CaptureCorpus.PathOf("masquerade-multi.pcapng"), "--filter", "icmp and hst 1"], new StringWriter(), error);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Contains("--filter 'icmp and hst 1' does not compile: syntax error", error.ToString());
    }

    [Fact]
    public void Replay_CopyWithInvalidTimestamp_SameJourneysAndPathsOneLatencyFewer()
    {
        // captures/replay/split: one pcap per hop. On eth0, the 5th record (tcpdump: the echo reply of seq 0, the
        // last hop of its journey veth2c2dc65 -> eth0) gets a nanosecond field of 10^9, which tcpdump prints as invalid.
        string split = Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "split");
        string[] files = [.. Directory.GetFiles(split, "*.pcap").Order(StringComparer.Ordinal)];
        string directory = Directory.CreateTempSubdirectory("vethtrace-late-").FullName;
        try
        {
            byte[] eth0 = File.ReadAllBytes(Path.Combine(split, "eth0.pcap"));
            int offset = 24;
            for (int record = 0; record < 4; record++)
            {
                offset += 16 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(eth0.AsSpan(offset + 8));
            }
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(eth0.AsSpan(offset + 4), 1_000_000_000);
            string[] patched = [.. files.Select(f => Path.Combine(directory, Path.GetFileName(f)))];
            foreach (string file in files)
            {
                File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
            }
            File.WriteAllBytes(Path.Combine(directory, "eth0.pcap"), eth0);
            string reply = Files.WiresharkTool.Run("tshark", ["-r", Path.Combine(directory, "eth0.pcap"), "-Y", "frame.number == 5", "-T", "fields", "-e", "icmp.type", "-e", "icmp.seq"]).Single();
            Assert.Equal("0\t0", reply); // an echo reply, seq 0

            var (before, _) = Lines(files);
            var (after, error) = Lines(patched);

            Assert.Equal($"vethtrace: warning: {Path.Combine(directory, "eth0.pcap")}: 1 record with an invalid timestamp (tcpdump: \"(invalid ns)\"), placed at the previous " +
                $"packet's time and left out of latency figures; the first at byte {offset}: nsec 1000000000 of at most 999999999", error.Trim());
            Assert.Equal(Records(before, "summary"), Records(after, "summary"));
            Assert.Equal(Records(before, "path"), Records(after, "path"));
            Assert.Equal(HopCounts(before).Select(h => h.Key == ("veth2c2dc65", "eth0") ? (h.Key, h.Value - 1) : (h.Key, h.Value)), HopCounts(after).Select(h => (h.Key, h.Value)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        static (List<JsonElement> Lines, string Error) Lines(string[] files)
        {
            var output = new StringWriter();
            var error = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", .. files, "--format", "json"], output, error));
            return (output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList(), error.ToString());
        }

        static List<string> Records(List<JsonElement> lines, string type) =>
            [.. lines.Where(l => l.GetProperty("type").GetString() == type).Select(l => l.GetRawText())];

        static Dictionary<(string, string), int> HopCounts(List<JsonElement> lines) =>
            lines.Where(l => l.GetProperty("type").GetString() == "hop")
                .ToDictionary(l => (l.GetProperty("from").GetString()!, l.GetProperty("to").GetString()!), l => l.GetProperty("packets").GetInt32());
    }
}
