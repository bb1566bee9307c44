using System.Globalization;
using System.Text.Json;
using VethTrace.Cli;

namespace VethTrace.Tests.Lab;

/// <summary>
/// follow and replay go through one engine (TraceSession), so <c>--filter</c>, <c>--window</c> and <c>--egress</c>
/// mean the same in both, and follow counts packets as replay does. Checked on the real lab (vt-c1 pinging the
/// upstream namespace through MASQUERADE) and on a pair of namespaces made here, where nothing but the test's own
/// frames travel, against dumpcap capturing the same interfaces at the same time.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class SharedOptionsLabTests
{
    /// <summary>
    /// An echo of this payload size is 349 bytes of IP (20 + 8 + 321) before and after NAT: a filter on it picks the
    /// test's own pings out of any other traffic that crosses vt-c1 at the same time.
    /// </summary>
    private const int PingPayload = 321;

    private static readonly string PingLength = (20 + 8 + PingPayload).ToString(CultureInfo.InvariantCulture);

    [Fact]
    public async Task Follow_FilterOnContainerAddress_KeepsTheEgressCopiesAfterSnat()
    {
        var lab = LabEnvironment.Load();
        // The copy on vt-up0 carries the egress address (SNAT), so it does not match 'host <vt-c1>' itself: libpcap on
        // that hop would drop it. The engine keeps it, because the journey's other copies match.
        var records = await FollowWhilePinging(lab,
            ["follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--filter", $"host {lab["C1_IP"]} and ip[2:2] = {PingLength}"]);

        var hops = Hops(records);
        Assert.Equal(3, hops[($"eth0({lab["C1_NAME"]})", lab["C1_VETH"])]);
        Assert.Equal(3, hops[(lab["C1_VETH"], lab["BRIDGE"])]);
        Assert.Equal(3, hops[(lab["BRIDGE"], lab["EGRESS_IF"])]);
        Assert.Equal(3, hops[(lab["EGRESS_IF"], lab["BRIDGE"])]);
        var nat = Assert.Single(records, r => Type(r) == "nat");
        Assert.Equal(("snat", lab["C1_IP"], lab["EGRESS_IP"], 6L),
            (nat.GetProperty("kind").GetString(), nat.GetProperty("inside").GetString(), nat.GetProperty("outside").GetString(), nat.GetProperty("packets").GetInt64()));
        JsonElement summary = Summary(records);
        Assert.Equal((6L, 6L, 0L), (summary.GetProperty("journeys").GetInt64(), summary.GetProperty("complete").GetInt64(), summary.GetProperty("lost").GetInt64()));
    }

    [Fact]
    public async Task Follow_HopsOnlyWithEgress_CapturesTheEgressAndReachesIt()
    {
        var lab = LabEnvironment.Load();
        // --egress beside --hop only: the egress is captured (added after the hops given) and ends the outbound path.
        var records = await FollowWhilePinging(lab,
            ["follow", "--hop", $"eth0@{lab["C1_NETNS"]}", "--hop", lab["C1_VETH"], "--hop", lab["BRIDGE"], "--egress", lab["EGRESS_IF"],
             "--filter", $"icmp and ip[2:2] = {PingLength}"]);

        var start = Assert.Single(records, r => Type(r) == "start");
        Assert.Equal([$"eth0@{lab["C1_PID"]}", lab["C1_VETH"], lab["BRIDGE"], lab["EGRESS_IF"]],
            start.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()));
        var hops = Hops(records);
        Assert.Equal(3, hops[(lab["BRIDGE"], lab["EGRESS_IF"])]);
        Assert.Equal(3, hops[(lab["EGRESS_IF"], lab["BRIDGE"])]);
        Assert.Equal("snat", Assert.Single(records, r => Type(r) == "nat").GetProperty("kind").GetString());
    }

    [Fact]
    public async Task FollowAndReplay_SameWindowAndEgress_SameReport()
    {
        var lab = LabEnvironment.Load();
        string netns = lab["C1_NETNS"];
        string inside = Path.Combine(Path.GetTempPath(), $"vethtrace-engine-inside-{Environment.ProcessId}.pcapng");
        string host = Path.Combine(Path.GetTempPath(), $"vethtrace-engine-host-{Environment.ProcessId}.pcapng");
        string filter = $"icmp and ip[2:2] = {PingLength}";
        try
        {
            // follow's handles and dumpcap's get their own copy of each packet, and a sent packet is stamped per socket:
            // the two captures' timestamps differ by a few µs. So the reports are compared exactly at a window no hop
            // comes near (5 ms: the hops take µs, the pings are far apart), and a window shorter than the NAT hop
            // (20 µs) is shown to split journeys in each command on its own (an exact comparison there failed about
            // once in five runs, on a hop within a µs of the window).
            List<JsonElement> live;
            using (var dumpInside = new DumpcapSession(inside, netns, "eth0"))
            using (var dumpHost = new DumpcapSession(host, null, lab["C1_VETH"], lab["BRIDGE"], lab["EGRESS_IF"]))
            {
                live = await FollowWhilePinging(lab,
                    ["follow", "--hop", $"eth0@{netns}", "--hop", lab["C1_VETH"], "--hop", lab["BRIDGE"], "--egress", lab["EGRESS_IF"],
                     "--window", "5ms", "--filter", filter]);
                dumpInside.Stop();
                dumpHost.Stop();
            }
            // dumpcap names the namespace's interface eth0, follow eth0@PID: the one difference between the two reports.
            string eth0 = $"eth0@{lab["C1_PID"]}";
            List<JsonElement> Replay(string window)
            {
                var output = new StringWriter();
                ExitCode code = VethTraceCommand.Run(["replay", inside, host, "--window", window, "--filter", filter, "--egress", lab["EGRESS_IF"], "--format", "json"],
                    output, new StringWriter());
                Assert.Equal(ExitCode.Success, code);
                return Parse(output.ToString());
            }
            List<JsonElement> replayed = Replay("5ms");

            // The same journeys, hop by hop: the names differ only in how the container's eth0 is shown.
            static List<string> Shape(List<JsonElement> records, string eth0) => records
                .Where(r => Type(r) is "hop" or "path")
                .Select(r => r.GetRawText())
                .Select(text => text.Replace("\"eth0\"", $"\"{eth0}\"", StringComparison.Ordinal))
                .Select(text => System.Text.RegularExpressions.Regex.Replace(text, "\"(p50|p90|p99|max)_us\":[^,}]*", ""))
                .Order(StringComparer.Ordinal).ToList();
            Assert.NotEmpty(Shape(live, eth0));
            Assert.Equal(Shape(replayed, eth0), Shape(live, eth0));
            JsonElement liveSummary = Summary(live), replaySummary = Summary(replayed);
            foreach (string field in new[] { "journeys", "multi_hop_journeys", "complete", "lost" })
            {
                Assert.True(liveSummary.GetProperty(field).GetInt64() == replaySummary.GetProperty(field).GetInt64(), $"{field}: follow {liveSummary}, replay {replaySummary}");
            }
            // 6 echo packets, each seen on 4 hops, are 6 whole journeys at 5 ms.
            Assert.Equal(6, liveSummary.GetProperty("journeys").GetInt64());

            // At 20 µs the NAT hop (tens of µs) splits journeys, in replay of the capture and in a follow of its own.
            JsonElement replaySplit = Summary(Replay("20us"));
            Assert.True(replaySplit.GetProperty("journeys").GetInt64() > 6, $"a 20 µs window should split journeys in replay: {replaySplit}");
            JsonElement liveSplit = Summary(await FollowWhilePinging(lab,
                ["follow", "--hop", $"eth0@{netns}", "--hop", lab["C1_VETH"], "--hop", lab["BRIDGE"], "--egress", lab["EGRESS_IF"],
                 "--window", "20us", "--filter", filter]));
            Assert.True(liveSplit.GetProperty("journeys").GetInt64() > 6, $"a 20 µs window should split journeys in follow: {liveSplit}");
        }
        finally
        {
            File.Delete(inside);
            File.Delete(host);
        }
    }

    [Fact]
    public async Task Follow_PacketAndNotIpCounts_EqualDumpcapOnTheSameInterfaces()
    {
        LabEnvironment.Load();
        // Two namespaces of this test's own, joined by a veth pair, with IPv6 off and static neighbours: nothing travels
        // between them but what the test sends (UDP datagrams, which b answers with ICMP port unreachable, and frames of
        // the local experimental EtherType 0x88b5).
        string id = (Environment.ProcessId % 100000).ToString(CultureInfo.InvariantCulture);
        string a = $"vt-engine-a{id}", b = $"vt-engine-b{id}";
        string file = Path.Combine(Path.GetTempPath(), $"vethtrace-engine-count-{id}");
        try
        {
            LabEnvironment.Run("bash", "-ec", $"""
                ip netns add {a}; ip netns add {b}
                ip link add vteng{id}a type veth peer name vteng{id}b
                ip link set vteng{id}a netns {a}; ip link set vteng{id}b netns {b}
                for ns in {a} {b}; do
                  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
                done
                ip -n {a} link set vteng{id}a name eth0; ip -n {b} link set vteng{id}b name eth0
                ip -n {a} link set eth0 address 02:00:00:00:0e:0a; ip -n {b} link set eth0 address 02:00:00:00:0e:0b
                ip -n {a} addr add 10.213.0.1/24 dev eth0; ip -n {b} addr add 10.213.0.2/24 dev eth0
                ip -n {a} neigh add 10.213.0.2 lladdr 02:00:00:00:0e:0b dev eth0 nud permanent
                ip -n {b} neigh add 10.213.0.1 lladdr 02:00:00:00:0e:0a dev eth0 nud permanent
                ip -n {a} link set eth0 up; ip -n {b} link set eth0 up
                """);
            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            List<JsonElement> records;
            using (var dumpA = new DumpcapSession(file + "-a.pcapng", $"/run/netns/{a}", "eth0"))
            using (var dumpB = new DumpcapSession(file + "-b.pcapng", $"/run/netns/{b}", "eth0"))
            {
                var follow = Task.Run(() => VethTraceCommand.Run(
                    ["follow", "--hop", $"eth0@/run/netns/{a}", "--hop", $"eth0@/run/netns/{b}", "--duration", "6s", "--format", "json"], output, error));
                Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
                LabEnvironment.Run("ip", "netns", "exec", a, "python3", "-c",
                    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'vethtrace', ('10.213.0.2', 9)) for _ in range(3)]");
                LabEnvironment.Run("ip", "netns", "exec", a, "python3", "-c",
                    "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); " +
                    "[s.send(bytes.fromhex('02000000 0e0b 02000000 0e0a 88b5'.replace(' ', '')) + bytes(46)) for _ in range(5)]");
                ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(30));
                Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
                dumpA.Stop();
                dumpB.Stop();
                records = Parse(output.ToString());
            }
            // What dumpcap caught on the same two interfaces, counted by tshark: every frame, and those without IP.
            long Count(string filter) => (file + "-a.pcapng", file + "-b.pcapng") switch
            {
                var (x, y) => new[] { x, y }.Sum(f => (long)LabEnvironment.Run("tshark", "-n", "-r", f, "-Y", filter, "-T", "fields", "-e", "frame.number")
                    .Split('\n', StringSplitOptions.RemoveEmptyEntries).Length),
            };
            long frames = Count("frame"), notIp = Count("not ip and not ipv6");
            // The traffic the test made, seen on both ends: a check of the set-up, not of VethTrace.
            Assert.Equal((2 * 3L, 2 * 5L), (Count("udp and not icmp"), notIp));
            JsonElement summary = Summary(records);
            Assert.Equal((frames, notIp), (summary.GetProperty("packets").GetInt64(), summary.GetProperty("not_ip").GetInt64()));
            Assert.Equal(frames, records.Where(r => Type(r) == "capture").Sum(r => r.GetProperty("packets").GetInt64()));
        }
        finally
        {
            LabEnvironment.TryRun("ip", "netns", "del", a);
            LabEnvironment.TryRun("ip", "netns", "del", b);
            File.Delete(file + "-a.pcapng");
            File.Delete(file + "-b.pcapng");
        }
    }

    /// <summary>Runs follow (JSON, 6 s) while vt-c1 sends three pings of <see cref="PingPayload"/> bytes to the upstream namespace.</summary>
    private static async Task<List<JsonElement>> FollowWhilePinging(LabEnvironment lab, string[] arguments)
    {
        var output = new SignallingWriter("\"type\":\"start\"");
        var error = new StringWriter();
        var follow = Task.Run(() => VethTraceCommand.Run([.. arguments, "--duration", "6s", "--format", "json"], output, error));
        Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
        LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "3", "-s", PingPayload.ToString(CultureInfo.InvariantCulture), "-W", "2", lab["UPSTREAM_IP"]);
        ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        return Parse(output.ToString());
    }

    private static List<JsonElement> Parse(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];

    private static string? Type(JsonElement record) => record.GetProperty("type").GetString();

    /// <summary>The final report's summary (follow's per-second ones say "live").</summary>
    private static JsonElement Summary(List<JsonElement> records) =>
        Assert.Single(records, r => Type(r) == "summary" && !r.TryGetProperty("live", out _));

    private static Dictionary<(string?, string?), long> Hops(List<JsonElement> records) => records.Where(r => Type(r) == "hop")
        .ToDictionary(h => (h.GetProperty("from").GetString(), h.GetProperty("to").GetString()), h => h.GetProperty("packets").GetInt64());
}
