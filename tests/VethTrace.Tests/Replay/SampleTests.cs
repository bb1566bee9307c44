using System.Globalization;
using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <c>--sample 1/N</c> on real multi-hop captures: the journeys kept are whole (the same hops as when everything is
/// traced, none lost by the sampling), the share kept is near 1/N, and the packets left out are still counted as read.
/// The copies per journey and the IP packet counts come from tshark.
/// </summary>
public sealed class SampleTests
{
    private static string Replay(string name) => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", name);

    /// <summary>The recorded multi-hop captures: NAT, GRO/GSO under iperf3, IPv6, east-west over a bridge, VXLAN.</summary>
    public static TheoryData<string, int> Captures()
    {
        var data = new TheoryData<string, int>();
        foreach (string capture in new[] { "../masquerade-multi.pcapng", "gro-iperf3.pcapng", "ipv6-masq.pcapng", "east-west-bridged.pcapng", "overlay-vxlan.pcapng", "many-flows-1000.pcapng" })
        {
            foreach (int n in new[] { 2, 3, 10 })
            {
                data.Add(capture, n);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Sample_KeepsWholeJourneys_NoPathTheFullTraceLacks(string capture, int n)
    {
        string path = Replay(capture);
        var (fullSummary, fullPaths) = Run(path, 1);
        var (summary, paths) = Run(path, n);

        // Every packet is still read; those left out are IP packets (tshark's count), never more.
        long ip = WiresharkTool.Run("tshark", ["-r", path, "-Y", "ip or ipv6", "-T", "fields", "-e", "frame.number"]).Length;
        Assert.Equal(fullSummary.GetProperty("packets").GetInt64(), summary.GetProperty("packets").GetInt64());
        long sampledOut = summary.GetProperty("sampled_out_packets").GetInt64();
        Assert.InRange(sampledOut, 0, ip);
        Assert.Equal($"1/{n}", summary.GetProperty("sample").GetString());

        // Whole journeys: each kept journey took a path the full trace has (a cut one would end early, on a path of its
        // own, or be lost), no path holds more journeys than in the full trace, and sampling loses nothing more.
        foreach (var (hops, journeys) in paths)
        {
            Assert.True(fullPaths.TryGetValue(hops, out long full), $"{capture} 1/{n}: path {hops} is not in the full trace (a journey was cut)");
            Assert.InRange(journeys, 1, full);
        }
        Assert.Equal(Count(summary, "multi_hop_journeys"), paths.Values.Sum());
        Assert.InRange(summary.GetProperty("lost").GetInt64(), 0, fullSummary.GetProperty("lost").GetInt64());
        if (Count(fullSummary, "journeys") == Count(fullSummary, "complete") + Count(fullSummary, "lost"))
        {
            // Every journey of the full trace ended complete or lost: so does every kept one (none cut short).
            Assert.Equal(Count(summary, "journeys"), Count(summary, "complete") + Count(summary, "lost"));
        }
        Assert.True(summary.GetProperty("journeys").GetInt64() < fullSummary.GetProperty("journeys").GetInt64(), $"{capture} 1/{n} kept every journey");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(10)]
    [InlineData(100)]
    public void Sample_ManyFlows_KeepsAboutOneInNWithAllThreeCopies(int n)
    {
        string path = Replay("many-flows-1000.pcapng");
        // tshark: the datagrams and their copies. Each datagram (IP id, length, UDP length, payload) is on three hops.
        string[] rows = WiresharkTool.Run("tshark", ["-r", path, "-Y", "udp", "-T", "fields", "-e", "ip.id", "-e", "ip.len", "-e", "udp.length", "-e", "udp.payload"]);
        var copies = rows.GroupBy(r => r).Select(g => g.Count()).ToList();
        Assert.Equal(1000, copies.Count);
        Assert.All(copies, c => Assert.Equal(3, c));

        var (summary, paths) = Run(path, n);
        long kept = summary.GetProperty("journeys").GetInt64();
        long traced = rows.Length - summary.GetProperty("sampled_out_packets").GetInt64();
        // Whole: exactly three traced copies per kept journey, every one complete.
        Assert.Equal(3 * kept, traced);
        Assert.Equal(kept, summary.GetProperty("complete").GetInt64());
        Assert.Equal(0, summary.GetProperty("lost").GetInt64());
        // Near 1/N: binomial(1000, 1/N), within five standard deviations.
        double mean = 1000.0 / n;
        double sd = Math.Sqrt(1000.0 * (1.0 / n) * (1 - 1.0 / n));
        Assert.InRange(kept, (long)Math.Floor(mean - 5 * sd), (long)Math.Ceiling(mean + 5 * sd));
        Assert.True(kept >= 1 || n >= 100, $"1/{n} kept nothing");
    }

    [Fact]
    public void Sample_GroIperf3_WithoutTheSegmentKeyJourneysWouldBeCut()
    {
        // GRO and GSO merge and cut the iperf3 stream's data segments between hops (tshark: the TCP lengths on the
        // hops differ), so a super-packet's fingerprint is not its segments'; sampling on the segment key keeps them
        // together and loses nothing, where the fingerprint alone would cut hundreds of journeys.
        string path = Replay("gro-iperf3.pcapng");
        var lengths = WiresharkTool.Run("tshark", ["-r", path, "-Y", "tcp.len > 0", "-T", "fields", "-e", "frame.interface_name", "-e", "tcp.len"])
            .Select(l => l.Split('\t')).GroupBy(f => f[0]).ToDictionary(g => g.Key, g => g.Max(f => int.Parse(f[1], CultureInfo.InvariantCulture)));
        Assert.True(lengths.Values.Distinct().Count() > 1, "the capture should hold merged and cut segments");
        foreach (int n in new[] { 2, 5, 10, 50 })
        {
            var (summary, _) = Run(path, n);
            Assert.Equal(0, summary.GetProperty("lost").GetInt64());
            Assert.Equal(summary.GetProperty("journeys").GetInt64(), summary.GetProperty("complete").GetInt64());
        }
    }

    [Fact]
    public void Keeps_IsNestedAndNearOneInN_OverDistinctKeys()
    {
        // Over a million distinct keys: about 1/N kept, and what 1/100 keeps is kept by 1/10 and 1/2.
        var random = new Random(16);
        int[] kept = new int[4];
        int[] ns = [2, 10, 100, 1000];
        for (int i = 0; i < 1_000_000; i++)
        {
            ulong key = (ulong)random.NextInt64() ^ (ulong)i << 40;
            bool previous = true;
            for (int k = 0; k < ns.Length; k++)
            {
                bool keeps = JourneySampling.Keeps(key, ns[k]);
                Assert.True(previous || !keeps, $"kept at 1/{ns[k]} but not at a smaller N");
                previous = keeps;
                kept[k] += keeps ? 1 : 0;
            }
            Assert.True(JourneySampling.Keeps(key, 1));
        }
        for (int k = 0; k < ns.Length; k++)
        {
            double mean = 1_000_000.0 / ns[k];
            double sd = Math.Sqrt(mean * (1 - 1.0 / ns[k]));
            Assert.InRange(kept[k], mean - 5 * sd, mean + 5 * sd);
        }
    }

    [Theory]
    [InlineData("1/0")]
    [InlineData("2/10")]
    [InlineData("10")]
    [InlineData("1/x")]
    [InlineData("1/-5")]
    [InlineData("1/2000000")]
    public void Sample_NotOneOverN_IsAUsageError(string text)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", Replay("gro-iperf3.pcapng"), "--sample", text], output, error);
        Assert.Equal(ExitCode.Usage, code);
        Assert.Contains($"--sample expects 1/N with N from 1 to 1000000 (1/10, 1/100); got '{text}'", error.ToString());
        Assert.DoesNotContain("   at ", error.ToString());
    }

    [Fact]
    public void Sample_Table_SaysWhatWasLeftOut()
    {
        var output = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", Replay("many-flows-1000.pcapng"), "--sample", "1/10"], output, new StringWriter()));
        var (summary, _) = Run(Replay("many-flows-1000.pcapng"), 10);
        Assert.Contains($"--sample 1/10: about one journey in 10 traced, whole; {summary.GetProperty("sampled_out_packets").GetInt64()} IP packets left out", output.ToString());
        Assert.Contains("3000 packets read", output.ToString());
    }

    private static long Count(JsonElement summary, string name) => summary.GetProperty(name).GetInt64();

    /// <summary>replay --format json: the summary record, and the journeys per path (the path's interfaces joined by ' > ').</summary>
    private static (JsonElement Summary, Dictionary<string, long> Paths) Run(string capture, int n)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        string[] args = n == 1 ? ["replay", capture, "--format", "json"] : ["replay", capture, "--format", "json", "--sample", $"1/{n}"];
        ExitCode code = VethTraceCommand.Run(args, output, error);
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        JsonElement summary = records.Single(r => r.GetProperty("type").GetString() == "summary");
        var paths = records.Where(r => r.GetProperty("type").GetString() == "path")
            .GroupBy(r => string.Join(" > ", r.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())))
            .ToDictionary(g => g.Key, g => g.Sum(r => r.GetProperty("journeys").GetInt64()));
        return (summary, paths);
    }
}
