using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The ground truth of issue 14 (captures/replay/expected/issue14/, captures/README.md "Issue 14 captures"), checked
/// against tshark, the recording's iptables counter and the generator itself, never against VethTrace: the engine's
/// fixes are tested against these files, so they must say what the captures hold.
/// </summary>
public sealed class Issue14GroundTruthTests
{
    private static string Replay => Path.Combine(CaptureCorpus.CapturesDirectory, "replay");

    private static string ExpectedDirectory => Path.Combine(Replay, "expected", "issue14");

    public static TheoryData<string> ExpectedFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.EnumerateFiles(ExpectedDirectory, "*.json").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ExpectedFiles))]
    public void Expected_CountsEveryFrameTsharkReads(string name)
    {
        using JsonDocument expected = Load(name);
        string[] files = [.. expected.RootElement.GetProperty("files").EnumerateArray().Select(f => Path.Combine(CaptureCorpus.RepositoryRoot, f.GetString()!))];
        Assert.NotEmpty(files);
        long frames = files.Sum(f => (long)WiresharkTool.Run("tshark", ["-r", f, "-T", "fields", "-e", "frame.number"]).Length);
        long ip = files.Sum(f => (long)WiresharkTool.Run("tshark", ["-r", f, "-Y", "ip or ipv6", "-T", "fields", "-e", "frame.number"]).Length);
        JsonElement summary = expected.RootElement.GetProperty("summary");
        Assert.Equal(frames, summary.GetProperty("packets").GetInt64());
        Assert.Equal(ip, summary.GetProperty("ip_packets").GetInt64());
        // Every IP frame is in a journey or a singleton: none is dropped by the derivation.
        long singletons = summary.GetProperty("singletons").GetInt64();
        Assert.Equal(ip, summary.GetProperty("ip_packets_in_journeys").GetInt64() + singletons
            + SideCopies(expected.RootElement));
    }

    [Fact]
    public void BlockedPort_LossesAreTheDatagramsTheRuleDropped()
    {
        // The DOCKER-USER rule's counter at the end of the recording: packets, bytes.
        string[] counter = File.ReadAllText(Path.Combine(Replay, "blocked-port.iptables-counter.tsv")).Trim().Split('\t');
        long dropped = long.Parse(counter[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(8, dropped);

        // tshark: the datagrams to port 9999 are on eth0, the veth and docker0, none on the egress.
        string capture = Path.Combine(Replay, "blocked-port.pcapng");
        var perInterface = WiresharkTool.Run("tshark", ["-r", capture, "-Y", "udp.dstport == 9999", "-T", "fields", "-e", "frame.interface_name"])
            .GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(dropped, perInterface["docker0"]);
        Assert.Equal(dropped, perInterface["eth0"]);
        Assert.False(perInterface.ContainsKey("vt-up0"));

        using JsonDocument expected = Load("blocked-port.pcapng.json");
        JsonElement loss = Assert.Single(expected.RootElement.GetProperty("losses").EnumerateArray());
        Assert.Equal("udp", loss.GetProperty("proto").GetString());
        Assert.Equal("172.17.0.2:40099", loss.GetProperty("src").GetString());
        Assert.Equal("198.51.100.2:9999", loss.GetProperty("dst").GetString());
        Assert.Equal("docker0", loss.GetProperty("last_seen").GetString());
        Assert.Equal(dropped, loss.GetProperty("packets").GetInt64());
        Assert.Equal(dropped, expected.RootElement.GetProperty("summary").GetProperty("lost").GetInt64());
    }

    [Fact]
    public void Ipv6Masq_NatOnlyForTheGlobalAddresses()
    {
        // tshark: on the egress the echo requests leave from the egress address (MASQUERADE), and link-scoped
        // control traffic (MLD reports to ff02::16) is on several interfaces.
        string capture = Path.Combine(Replay, "ipv6-masq.pcapng");
        string[] requests = WiresharkTool.Run("tshark", ["-r", capture, "-Y", "icmpv6.type == 128", "-T", "fields", "-e", "frame.interface_name", "-e", "ipv6.src"]);
        Assert.Contains("up-c14\t2001:db8:14::1", requests);
        Assert.Contains("eth0\tfd00:42::2", requests);
        int mldInterfaces = WiresharkTool.Run("tshark", ["-r", capture, "-Y", "ipv6.dst == ff02::16", "-T", "fields", "-e", "frame.interface_name"]).Distinct().Count();
        Assert.True(mldInterfaces >= 4, $"MLD reports on {mldInterfaces} interfaces");

        using JsonDocument expected = Load("ipv6-masq.pcapng.json");
        var nat = expected.RootElement.GetProperty("nat").EnumerateArray()
            .Select(m => $"{m.GetProperty("kind").GetString()} {m.GetProperty("proto").GetString()} {m.GetProperty("inside").GetString()} {m.GetProperty("outside").GetString()} {m.GetProperty("peer").GetString()}")
            .Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(
            ["snat icmpv6 fd00:42::2 2001:db8:14::1 2001:db8:14::2", "snat udp [fd00:42::2]:40006 [2001:db8:14::1]:40006 [2001:db8:14::2]:5005"],
            nat);
        Assert.Empty(expected.RootElement.GetProperty("losses").EnumerateArray());
    }

    [Fact]
    public void EastWest_BridgeCopiesAreSideCopies()
    {
        using JsonDocument expected = Load("east-west-bridged.pcapng.json");
        JsonElement root = expected.RootElement;
        // tshark: docker0 (promiscuous) has a copy of every IP packet both veths carry.
        string capture = Path.Combine(Replay, "east-west-bridged.pcapng");
        var perInterface = WiresharkTool.Run("tshark", ["-r", capture, "-Y", "ip", "-T", "fields", "-e", "frame.interface_id"])
            .GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        long journeys = root.GetProperty("summary").GetProperty("journeys").GetInt64();
        Assert.Equal(journeys, perInterface["4"]);
        Assert.Equal(journeys, root.GetProperty("summary").GetProperty("bridge_side_copies").GetInt64());
        Assert.All(root.GetProperty("paths").EnumerateArray(), p => Assert.DoesNotContain("docker0", p.GetProperty("path").EnumerateArray().Select(x => x.GetString())));
        Assert.All(root.GetProperty("journeys").EnumerateArray(), j => Assert.Equal("docker0", Assert.Single(j.GetProperty("side_copies").EnumerateArray()).GetProperty("iface").GetString()));
    }

    [Fact]
    public void ManyFlowsGenerator_SameSeed_WritesTheKeptFile()
    {
        string script = Path.Combine(CaptureCorpus.RepositoryRoot, "benchmarks", "many-flows.py");
        string output = Path.Combine(Path.GetTempPath(), $"vethtrace-many-flows-{Environment.ProcessId}.pcapng");
        try
        {
            RunPython(script, "--flows", "1000", "--out", output);
            Assert.Equal(File.ReadAllBytes(Path.Combine(Replay, "many-flows-1000.pcapng")), File.ReadAllBytes(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void ManyFlowsFile_ThreeCopiesPerFlow_MasqueradedOnTheEgress()
    {
        string capture = Path.Combine(Replay, "many-flows-1000.pcapng");
        string[] rows = WiresharkTool.Run("tshark", ["-r", capture, "-o", "ip.check_checksum:TRUE", "-T", "fields", "-e", "frame.interface_name",
            "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "ip.id", "-e", "dns.id", "-e", "ip.ttl", "-e", "ip.checksum.status"]);
        Assert.Equal(3000, rows.Length);
        var flows = rows.Select(r => r.Split('\t')).GroupBy(f => (f[4], f[5])).ToList();
        Assert.Equal(1000, flows.Count);   // (IP ID, query id) is unique: every copy has exactly one match
        foreach (var flow in flows)
        {
            string[][] copies = [.. flow];
            Assert.Equal(3, copies.Length);
            Assert.StartsWith("veth", copies[0][0], StringComparison.Ordinal);
            Assert.Equal("docker0", copies[1][0]);
            Assert.Equal("ens3", copies[2][0]);
            Assert.StartsWith("172.17.", copies[0][1], StringComparison.Ordinal);
            Assert.Equal(copies[0][1], copies[1][1]);
            Assert.Equal("198.51.100.1", copies[2][1]);
            Assert.All(copies, c => Assert.Equal(copies[0][2], c[2]));   // ports kept
            Assert.Equal(["64", "64", "63"], copies.Select(c => c[6]));
            Assert.All(copies, c => Assert.Equal("1", c[7]));             // IP checksum good (rewritten on the egress)
        }
        Assert.Contains(WiresharkTool.Run("capinfos", ["-o", capture]), l => l.Contains("Strict time order:   True", StringComparison.Ordinal));
    }

    private static long SideCopies(JsonElement root) =>
        root.GetProperty("summary").TryGetProperty("bridge_side_copies", out JsonElement n) ? n.GetInt64() : 0;

    private static JsonDocument Load(string name) => JsonDocument.Parse(File.ReadAllText(Path.Combine(ExpectedDirectory, name)));

    private static void RunPython(params string[] arguments)
    {
        var start = new ProcessStartInfo("python3", arguments) { RedirectStandardError = true, UseShellExecute = false };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"python3 is needed to run benchmarks/many-flows.py ({e.Message})");
            throw;
        }
        using (process)
        {
            string error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"many-flows.py exited with {process.ExitCode}: {error}");
        }
    }
}
