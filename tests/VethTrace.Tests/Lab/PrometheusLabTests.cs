using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Cli.Metrics;

namespace VethTrace.Tests.Lab;

/// <summary>
/// <c>follow --prometheus</c> scraped by a real Prometheus (Debian's 2.42, started per test with the documented
/// configuration, docs/prometheus/prometheus.yml, its targets and interval replaced), on the lab with ping and HTTP
/// traffic from the containers. What Prometheus stored is read back through its HTTP API and compared with follow's
/// own JSON report of the same run, and the blocked port with iptables' own counter.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class PrometheusLabTests
{
    // Traffic of this test alone: pings of an odd size (IP total length 1045) and HTTP to a port of its own.
    private const int HttpPort = 8017;
    private const string Filter = "(icmp and ip[2:2] = 1045) or tcp port 8017";

    [Fact]
    public async Task Prometheus_PingAndHttp_MediansPerHopAndTotalsAgreeWithTheJsonReport()
    {
        var lab = LabEnvironment.Load();
        string www = Directory.CreateTempSubdirectory("vethtrace-prom17-www").FullName;
        File.WriteAllText(Path.Combine(www, "index.html"), new string('x', 3000));
        int port = FreePort();
        try
        {
            using var httpd = new BackgroundProcess("ip", "netns", "exec", lab["UPSTREAM_NS"], "busybox", "httpd", "-f", "-p", $"{lab["UPSTREAM_IP"]}:{HttpPort}", "-h", www);
            using var prometheus = new PrometheusServer($"127.0.0.1:{port}");
            var records = await FollowAsync(["follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--filter", Filter, "--prometheus", port.ToString(CultureInfo.InvariantCulture),
                "--host-label", "lab-a"], TimeSpan.FromSeconds(16), () =>
            {
                LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "20", "-i", "0.2", "-s", "1017", "-W", "2", lab["UPSTREAM_IP"]);
                for (int i = 0; i < 3; i++)
                {
                    LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "wget", "-q", "-O", "/dev/null", $"http://{lab["UPSTREAM_IP"]}:{HttpPort}/index.html");
                }
            });
            prometheus.WaitForScrapes(3);

            var summary = Records(records, "summary").Single(s => !s.TryGetProperty("live", out _));
            Assert.True(summary.GetProperty("journeys").GetInt64() >= 80, $"too few journeys: {summary}");
            Assert.Equal(summary.GetProperty("journeys").GetInt64(), prometheus.Scalar("sum(last_over_time(vethtrace_journeys_total{host=\"lab-a\"}[5m]))"));
            Assert.Equal(summary.GetProperty("lost").GetInt64(), prometheus.Scalar("sum(last_over_time(vethtrace_journeys_lost_total{host=\"lab-a\"}[5m]))") ?? 0);
            long kernelDropped = Records(records, "capture").Sum(c => Math.Max(0, c.GetProperty("kernel_dropped").GetInt64()));
            Assert.Equal(kernelDropped, prometheus.Scalar("sum(last_over_time(vethtrace_capture_kernel_drops_total{host=\"lab-a\"}[5m]))"));
            // Journeys are the container's: its own interface and veth carried them.
            Assert.Equal(summary.GetProperty("journeys").GetInt64(), prometheus.Scalar($"sum(last_over_time(vethtrace_journeys_total{{container=\"{lab["C1_NAME"]}\"}}[5m]))"));

            // Every hop is in the histogram or the reused-timestamp counter, never both.
            int compared = CompareHops(prometheus, Records(records, "hop"), (from, to, _) => $"host=\"lab-a\",from=\"{from}\",to=\"{to}\"");
            Assert.True(compared >= 3, $"only {compared} hops had no reused timestamps to compare medians on");
        }
        finally
        {
            Directory.Delete(www, recursive: true);
        }
    }

    [Fact]
    public async Task Prometheus_DockerUserDropsAPort_LostJourneysLastSeenOnTheBridge()
    {
        var lab = LabEnvironment.Load();
        // UDP to port 9917 is dropped between the bridge and the egress; the pings to the same upstream pass, which
        // shows the way on from the bridge (docs/DESIGN.md, "Losses"). The rule carries this branch's name.
        string[] rule = ["DOCKER-USER", "-i", lab["BRIDGE"], "-o", lab["EGRESS_IF"], "-p", "udp", "--dport", "9917",
            "-m", "comment", "--comment", "vethtrace-prom17", "-j", "DROP"];
        LabEnvironment.Run("iptables", ["-w", "-I", .. rule]);
        int port = FreePort();
        try
        {
            using var prometheus = new PrometheusServer($"127.0.0.1:{port}");
            var records = await FollowAsync(["follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--filter", "(icmp and ip[2:2] = 1045) or udp port 9917",
                "--prometheus", $"127.0.0.1:{port}", "--host-label", "lab-drop"], TimeSpan.FromSeconds(14), () =>
            {
                LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "4", "-i", "0.2", "-s", "1017", "-W", "2", lab["UPSTREAM_IP"]);
                LabEnvironment.Run("bash", "-c",
                    $"(for i in 1 2 3 4 5; do echo datagram$i; sleep 0.1; done; sleep 0.3) | nsenter --net={lab["C1_NETNS"]} socat -t 1 - UDP4:{lab["UPSTREAM_IP"]}:9917,sourceport=40917 >/dev/null");
            });
            string counters = LabEnvironment.Run("iptables", "-w", "-L", "DOCKER-USER", "-v", "-n", "-x");
            long dropped = long.Parse(counters.Split('\n').Single(l => l.Contains("vethtrace-prom17")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
            Assert.Equal(5, dropped);
            prometheus.WaitForScrapes(3);

            var loss = Assert.Single(Records(records, "loss"));
            Assert.Equal(lab["BRIDGE"], loss.GetProperty("last_seen").GetString());
            Assert.Equal(dropped, prometheus.Scalar(
                $"sum(last_over_time(vethtrace_journeys_lost_total{{host=\"lab-drop\",container=\"{lab["C1_NAME"]}\",last_seen=\"{lab["BRIDGE"]}\"}}[5m]))"));
            Assert.Equal(dropped, prometheus.Scalar("sum(last_over_time(vethtrace_journeys_lost_total{host=\"lab-drop\"}[5m]))"));
        }
        finally
        {
            LabEnvironment.Run("iptables", ["-w", "-D", .. rule]);
        }
    }

    [Fact]
    public async Task Prometheus_TwoHostsScrapedByOne_QueriesAggregateAcrossThem()
    {
        // Two agents, as on two Docker hosts: one follows vt-c1 as host lab-a, the other vt-c2 as lab-b, both
        // scraped by one Prometheus; a query sums and takes quantiles across them.
        var lab = LabEnvironment.Load();
        int portA = FreePort(), portB = FreePort();
        using var prometheus = new PrometheusServer($"127.0.0.1:{portA}", $"127.0.0.1:{portB}");
        var b = Task.Run(() => FollowAsync(["follow", lab["C2_NAME"], "--egress", lab["EGRESS_IF"], "--filter", "icmp and ip[2:2] = 1045",
            "--prometheus", portB.ToString(CultureInfo.InvariantCulture), "--host-label", "lab-b"], TimeSpan.FromSeconds(14),
            () => LabEnvironment.Run("docker", "exec", lab["C2_NAME"], "ping", "-c", "6", "-i", "0.2", "-s", "1017", "-W", "2", lab["UPSTREAM_IP"])));
        var a = await FollowAsync(["follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--filter", "icmp and ip[2:2] = 1045",
            "--prometheus", portA.ToString(CultureInfo.InvariantCulture), "--host-label", "lab-a"], TimeSpan.FromSeconds(14),
            () => LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "4", "-i", "0.2", "-s", "1017", "-W", "2", lab["UPSTREAM_IP"]));
        var bRecords = await b;
        prometheus.WaitForScrapes(3);

        long journeysA = Records(a, "summary").Single(s => !s.TryGetProperty("live", out _)).GetProperty("journeys").GetInt64();
        long journeysB = Records(bRecords, "summary").Single(s => !s.TryGetProperty("live", out _)).GetProperty("journeys").GetInt64();
        // 4 and 6 echo requests and their replies (the two follows share the bridge and the egress, and each filter
        // keeps the other's pings too: attributed to _other, as journeys crossing no interface of its container).
        Assert.Equal(2 * 4, prometheus.Scalar($"sum(last_over_time(vethtrace_journeys_total{{host=\"lab-a\",container=\"{lab["C1_NAME"]}\"}}[5m]))"));
        Assert.Equal(2 * 6, prometheus.Scalar($"sum(last_over_time(vethtrace_journeys_total{{host=\"lab-b\",container=\"{lab["C2_NAME"]}\"}}[5m]))"));
        var byHost = prometheus.Vector("sum by (host) (last_over_time(vethtrace_journeys_total[5m]))");
        Assert.Equal(new Dictionary<string, long> { ["lab-a"] = journeysA, ["lab-b"] = journeysB },
            byHost.ToDictionary(r => r.Labels["host"], r => (long)r.Value));
        Assert.Equal(journeysA + journeysB, prometheus.Scalar("sum(last_over_time(vethtrace_journeys_total[5m]))"));
        // One median of the bridge-to-egress hop across both hosts.
        double? median = prometheus.Value($"histogram_quantile(0.5, sum by (le) (last_over_time(vethtrace_hop_latency_seconds_bucket{{from=\"{lab["BRIDGE"]}\",to=\"{lab["EGRESS_IF"]}\"}}[5m])))");
        Assert.True(median is > 0 and < 0.1, $"median across hosts: {median}");
        // Every series carries its host.
        Assert.Empty(prometheus.Vector("count(last_over_time({__name__=~\"vethtrace_.+\",host=\"\"}[5m]))"));
    }

    [Fact]
    public async Task Prometheus_WholeHostAgent_EachContainersSeriesAsItsJsonRecords()
    {
        // Whole-host follow (no target) as an agent (--quiet), two containers of this test's own pinging the upstream
        // namespace at once (24 and 20 pings of a size of their own, IP total length 1046: --filter keeps only those,
        // for the lab is shared). Each container's series carry its label; counters and medians agree with the JSON.
        var lab = LabEnvironment.Load();
        string[] containers = ["prom17b-whole-a", "prom17b-whole-b"];
        int[] pings = [24, 20];
        int port = FreePort();
        try
        {
            foreach (string name in containers)
            {
                LabEnvironment.TryRun("docker", "rm", "-f", name);
                LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", name, lab["IMAGE"], "sleep", "300");
            }
            using var prometheus = new PrometheusServer($"127.0.0.1:{port}");
            var said = new string[containers.Length];
            var records = await FollowAsync(["follow", "--egress", lab["EGRESS_IF"], "--filter", "icmp and ip[2:2] = 1046", "--quiet",
                "--prometheus", port.ToString(CultureInfo.InvariantCulture), "--host-label", "lab-whole"], TimeSpan.FromSeconds(16), () =>
                Parallel.For(0, containers.Length, i => said[i] = LabEnvironment.Run("docker", "exec", containers[i], "ping", "-c",
                    pings[i].ToString(CultureInfo.InvariantCulture), "-i", "0.2", "-s", "1018", "-W", "2", lab["UPSTREAM_IP"])));
            prometheus.WaitForScrapes(3);

            // An agent: no live summary records, the final report all the same.
            Assert.DoesNotContain(Records(records, "summary"), s => s.TryGetProperty("live", out _));
            var summary = Records(records, "summary").Single();
            Assert.Equal(summary.GetProperty("journeys").GetInt64(), prometheus.Scalar("sum(last_over_time(vethtrace_journeys_total{host=\"lab-whole\"}[5m]))"));
            Assert.Equal(summary.GetProperty("lost").GetInt64(), prometheus.Scalar("sum(last_over_time(vethtrace_journeys_lost_total{host=\"lab-whole\"}[5m]))") ?? 0);
            // Kernel drops: the one any handle's, as its capture record says; none per interface.
            var any = Records(records, "capture").Single(c => c.GetProperty("interface").GetString() == "any");
            Assert.Equal(Math.Max(0, any.GetProperty("kernel_dropped").GetInt64()),
                prometheus.Scalar("sum(last_over_time(vethtrace_capture_kernel_drops_total{host=\"lab-whole\",interface=\"any\",role=\"any\"}[5m]))"));
            Assert.Equal(1, prometheus.Scalar("count(last_over_time(vethtrace_capture_kernel_drops_total{host=\"lab-whole\"}[5m]))"));

            for (int i = 0; i < containers.Length; i++)
            {
                string name = containers[i];
                var record = Records(records, "container").Single(c => c.GetProperty("name").GetString() == name);
                long outbound = record.GetProperty("packets_out").GetInt64(), inbound = record.GetProperty("packets_in").GetInt64();
                // Every echo request and reply of the container, as ping counts them ("24 packets transmitted, 24 packets received").
                var counts = System.Text.RegularExpressions.Regex.Match(said[i], @"(\d+) packets transmitted, (\d+) packets received");
                Assert.True(counts.Success, said[i]);
                Assert.Equal((long.Parse(counts.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(counts.Groups[2].Value, CultureInfo.InvariantCulture)),
                    (outbound, inbound));
                Assert.Equal(outbound, prometheus.Scalar($"sum(last_over_time(vethtrace_journeys_total{{host=\"lab-whole\",container=\"{name}\",direction=\"outbound\"}}[5m]))"));
                Assert.Equal(inbound, prometheus.Scalar($"sum(last_over_time(vethtrace_journeys_total{{host=\"lab-whole\",container=\"{name}\",direction=\"inbound\"}}[5m]))"));
                Assert.Equal(record.GetProperty("lost").GetInt64(),
                    prometheus.Scalar($"sum(last_over_time(vethtrace_journeys_lost_total{{host=\"lab-whole\",container=\"{name}\"}}[5m]))") ?? 0);
                // The container's veth is in its series' from/to, and its histogram carries its label.
                Assert.True(prometheus.Scalar($"count(last_over_time(vethtrace_hop_latency_seconds_count{{host=\"lab-whole\",container=\"{name}\",to=~\"veth.+\\\\({name}\\\\)\"}}[5m]))") >= 1,
                    $"{name}: no hop into its veth");
            }

            // A container's hop (its veth at one end) against its own series; a shared hop (bridge to egress, container
            // null in the JSON) against every container's series of it summed.
            int compared = CompareHops(prometheus, Records(records, "hop"), (from, to, owner) =>
                $"host=\"lab-whole\",from=\"{from}\",to=\"{to}\"" + (owner is null ? "" : $",container=\"{owner}\""));
            // docker0 -> each veth, and the two shared hops.
            Assert.True(compared >= 4, $"only {compared} hops had no reused timestamps to compare medians on");
            // Every series carries its host.
            Assert.Empty(prometheus.Vector("count(last_over_time({__name__=~\"vethtrace_.+\",host=\"\"}[5m]))"));
        }
        finally
        {
            foreach (string name in containers)
            {
                LabEnvironment.TryRun("docker", "rm", "-f", name);
            }
        }
    }

    [Fact]
    public void Prometheus_WholeHostNoTerminalNoFormat_AnAgentWithoutQuiet()
    {
        // A systemd service's stdout is no terminal: with --prometheus and no --format, whole-host follow is an agent
        // without --quiet (no line a second); without --prometheus the same run writes its line a second.
        var lab = LabEnvironment.Load();
        int port = FreePort();
        string[] run = ["follow", "--egress", lab["EGRESS_IF"], "--duration", "3.5s"];
        var agent = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run([.. run, "--prometheus", port.ToString(CultureInfo.InvariantCulture)], agent, error));
        var plain = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(run, plain, error));

        static int ProgressLines(string text) => text.Split('\n').Count(l => l.Contains(" containers | packets ", StringComparison.Ordinal));
        Assert.StartsWith("the whole host: ", agent.ToString());
        Assert.Contains("journeys", agent.ToString()); // the final report
        Assert.Equal(0, ProgressLines(agent.ToString()));
        Assert.True(ProgressLines(plain.ToString()) >= 2, plain.ToString());
    }

    /// <summary>Runs follow with <paramref name="duration"/>, --format json, does <paramref name="traffic"/> once it captures, returns its records.</summary>
    private static async Task<List<JsonElement>> FollowAsync(string[] arguments, TimeSpan duration, Action traffic)
    {
        var output = new SignallingWriter("\"type\":\"start\"");
        var error = new StringWriter();
        var follow = Task.Run(() => VethTraceCommand.Run([.. arguments, "--duration", $"{duration.TotalSeconds}s", "--format", "json"], output, error));
        Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
        traffic();
        ExitCode code = await follow.WaitAsync(duration + TimeSpan.FromSeconds(30));
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        return [.. output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
    }

    private static List<JsonElement> Records(List<JsonElement> records, string type) =>
        [.. records.Where(r => r.GetProperty("type").GetString() == type)];

    /// <summary>
    /// Each hop record of follow's JSON against its series in Prometheus (selected by <paramref name="labelsOf"/>(from,
    /// to, container)): its packets are in the histogram or the reused-timestamp counter, never both, and, for a hop
    /// with no reused stamps and at least 20 packets, Prometheus's median is within the bucket width of the report's
    /// p50. Returns how many hops had their medians compared.
    /// </summary>
    private static int CompareHops(PrometheusServer prometheus, List<JsonElement> hops, Func<string, string, string?, string> labelsOf)
    {
        int compared = 0;
        foreach (JsonElement hop in hops)
        {
            string from = hop.GetProperty("from").GetString()!, to = hop.GetProperty("to").GetString()!;
            long packets = hop.GetProperty("packets").GetInt64(), reused = hop.GetProperty("reused_timestamps").GetInt64();
            string labels = labelsOf(from, to, hop.TryGetProperty("container", out JsonElement owner) ? owner.GetString() : null);
            long counted = prometheus.Scalar($"sum(last_over_time(vethtrace_hop_latency_seconds_count{{{labels}}}[5m]))") ?? 0;
            long reusedCounted = prometheus.Scalar($"sum(last_over_time(vethtrace_hop_reused_timestamps_total{{{labels}}}[5m]))") ?? 0;
            Assert.Equal((packets - reused, reused), (counted, reusedCounted));
            if (reused > 0 || packets < 20)
            {
                continue; // the report's p50 counts reused stamps as 0 µs; the histogram leaves them out
            }
            double p50 = hop.GetProperty("p50_us").GetDouble() / 1e6;
            double median = prometheus.Value($"histogram_quantile(0.5, sum by (le) (last_over_time(vethtrace_hop_latency_seconds_bucket{{{labels}}}[5m])))")!.Value;
            (double lower, double upper) = BucketOf(p50);
            Assert.True(Math.Abs(median - p50) <= upper - lower,
                $"{from} -> {to}: Prometheus's median {median * 1e6:0.###} us, the report's p50 {p50 * 1e6:0.###} us, bucket {lower * 1e6:0.###}-{upper * 1e6:0.###} us");
            compared++;
        }
        return compared;
    }

    /// <summary>The histogram bucket (lower and upper bound, seconds) a value falls in.</summary>
    private static (double Lower, double Upper) BucketOf(double seconds)
    {
        double lower = 0;
        foreach (double upper in FollowMetrics.LatencyBuckets)
        {
            if (seconds <= upper)
            {
                return (lower, upper);
            }
            lower = upper;
        }
        return (lower, double.PositiveInfinity);
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// A Prometheus server of the test's own: the documented configuration (docs/prometheus/prometheus.yml) with the
/// targets given and a 1 s scrape interval, its storage in a temporary directory, listening on loopback; killed by
/// its PID and its directory removed at the end.
/// </summary>
public sealed class PrometheusServer : IDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly string _api;
    private readonly int _targets;

    public PrometheusServer(params string[] targets)
    {
        _targets = targets.Length;
        _directory = Directory.CreateTempSubdirectory("vethtrace-prom17-prometheus").FullName;
        string documented = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "prometheus", "prometheus.yml"));
        string config = documented
            .Replace("scrape_interval: 5s", "scrape_interval: 1s", StringComparison.Ordinal)
            .Replace("scrape_timeout: 4s", "scrape_timeout: 1s", StringComparison.Ordinal)
            .Replace("          - 127.0.0.1:9417", string.Join('\n', targets.Select(t => $"          - {t}")), StringComparison.Ordinal);
        Assert.Contains("scrape_interval: 1s", config);
        string configFile = Path.Combine(_directory, "prometheus.yml");
        File.WriteAllText(configFile, config);
        int port = PrometheusLabTests.FreePort();
        _api = $"http://127.0.0.1:{port}";
        var start = new ProcessStartInfo("prometheus",
            [$"--config.file={configFile}", $"--storage.tsdb.path={Path.Combine(_directory, "data")}", $"--web.listen-address=127.0.0.1:{port}"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        _process = Process.Start(start) ?? throw new InvalidOperationException("prometheus did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (!Ready())
        {
            Assert.False(_process.HasExited, $"prometheus exited with {(_process.HasExited ? _process.ExitCode : 0)}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "prometheus was not ready within 30 s");
            Thread.Sleep(200);
        }
    }

    private bool Ready()
    {
        try
        {
            return _http.GetAsync($"{_api}/-/ready").Result.IsSuccessStatusCode;
        }
        catch (AggregateException)
        {
            return false;
        }
    }

    /// <summary>Waits until every target has been scraped successfully at least <paramref name="count"/> times (up is 1).</summary>
    public void WaitForScrapes(int count)
    {
        var clock = Stopwatch.StartNew();
        while (Scalar($"count(sum_over_time(up[10m]) >= {count})") != _targets)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"Prometheus did not scrape every target {count} times: {Query("up")}");
            Thread.Sleep(500);
        }
        Assert.Equal(_targets, Scalar("count(max_over_time(up[10m]) == 1)"));
    }

    /// <summary>The raw JSON of an instant query.</summary>
    public string Query(string promql)
    {
        using var response = _http.GetAsync($"{_api}/api/v1/query?query={Uri.EscapeDataString(promql)}").Result;
        string body = response.Content.ReadAsStringAsync().Result;
        Assert.True(response.IsSuccessStatusCode, $"{promql}: {body}");
        return body;
    }

    /// <summary>An instant vector: each sample's labels and value.</summary>
    public List<(Dictionary<string, string> Labels, double Value)> Vector(string promql)
    {
        using var document = JsonDocument.Parse(Query(promql));
        JsonElement data = document.RootElement.GetProperty("data");
        Assert.Equal("vector", data.GetProperty("resultType").GetString());
        return [.. data.GetProperty("result").EnumerateArray().Select(r => (
            r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
            double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture)))];
    }

    /// <summary>The one value of a query, or null when it returned no sample.</summary>
    public double? Value(string promql)
    {
        var vector = Vector(promql);
        Assert.True(vector.Count <= 1, $"{promql} returned {vector.Count} samples");
        return vector.Count == 0 ? null : vector[0].Value;
    }

    /// <summary>The one value of a query as a whole number (counters), or null.</summary>
    public long? Scalar(string promql) => Value(promql) is { } value ? (long)Math.Round(value) : null;

    private static string RepositoryRoot()
    {
        string? directory = AppContext.BaseDirectory;
        while (directory is not null && !File.Exists(Path.Combine(directory, "VethTrace.sln")))
        {
            directory = Path.GetDirectoryName(directory);
        }
        return directory ?? throw new InvalidOperationException("the repository root (VethTrace.sln) was not found");
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }
        _process.Dispose();
        _http.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
