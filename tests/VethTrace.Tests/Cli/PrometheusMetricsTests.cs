using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using VethTrace.Capture.Files;
using VethTrace.Cli.Metrics;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using VethTrace.Tracing;
using Xunit.Abstractions;

namespace VethTrace.Tests.Cli;

/// <summary>
/// The metrics of <c>follow --prometheus</c> without the lab: a recorded lab capture fed to the engine the way follow
/// feeds it (a concurrent feed per interface, pumped), <see cref="FollowMetrics"/> told of every journey and served by
/// the real exporter on loopback, the scrape read over HTTP and compared with the engine's report of the same run and
/// with iptables' counter recorded beside the capture.
/// </summary>
public sealed partial class PrometheusMetricsTests(ITestOutputHelper output)
{
    private static string Replay => Path.Combine(CaptureCorpus.CapturesDirectory, "replay");

    [Fact]
    public async Task BlockedPortCapture_ScrapeHasTheReportsJourneysHopsAndTheLossOnTheBridge()
    {
        var clock = DateTime.UtcNow;
        using var run = Traced(Path.Combine(Replay, "blocked-port.pcapng"), () => clock);
        string scrape = await run.ScrapeAsync();
        CorrelationReport report = run.Report;

        Assert.Equal(report.Journeys, Sum(scrape, "vethtrace_journeys_total", ""));
        Assert.Equal(report.Journeys, Sum(scrape, "vethtrace_journeys_total", "container=\"web\""));
        // iptables counted 8 datagrams dropped by the DOCKER-USER rule (recorded beside the capture): lost on docker0.
        long dropped = long.Parse(File.ReadAllText(Path.Combine(Replay, "blocked-port.iptables-counter.tsv")).Split('\t')[0], CultureInfo.InvariantCulture);
        Assert.Equal(dropped, Sum(scrape, "vethtrace_journeys_lost_total", "container=\"web\",last_seen=\"docker0\""));
        Assert.Equal(dropped, Sum(scrape, "vethtrace_journeys_lost_total", ""));
        foreach (HopReport hop in report.Hops)
        {
            string names = $"from=\"{run.Names[hop.From]}\",to=\"{run.Names[hop.To]}\"";
            // A hop is in the histogram unless its copies shared a receive stamp; those are counted apart.
            Assert.Equal(hop.Histogram.Count - hop.Histogram.Zeros, Sum(scrape, "vethtrace_hop_latency_seconds_count", names));
            Assert.Equal(hop.Histogram.Zeros, Sum(scrape, "vethtrace_hop_reused_timestamps_total", names));
        }
        Assert.Contains(report.Hops, h => h.Histogram.Zeros > 0); // the veth-to-bridge hop reuses the veth's stamp
        // The NAT mapping in use: the container's address matched to it (MASQUERADE of the pings).
        Assert.True(Sum(scrape, "vethtrace_nat_mappings", "container=\"web\",kind=\"snat\"") >= 1, scrape);
        // The capture counters, one series per interface with its role.
        Assert.Equal(report.Packets, Sum(scrape, "vethtrace_capture_packets_total", ""));
        Assert.Equal(1, Sum(scrape, "vethtrace_capture_packets_total", "interface=\"docker0\",role=\"bridge\"") > 0 ? 1 : 0);
        Assert.Equal(1, Sum(scrape, "vethtrace_build_info", ""));
        // Every series carries host, and no label carries an address.
        foreach (string line in Samples(scrape))
        {
            Assert.Contains("host=\"lab-test\"", line);
            Assert.DoesNotMatch(@"\d+\.\d+\.\d+\.\d+", line.Split('}')[0]);
        }
    }

    [Fact]
    public async Task WholeHost_HostSideOnly_ContainerByItsVethLossesAndNatAsTheReportAndDropsOnTheAnyHandle()
    {
        // Whole-host follow captures the host side only (veths, the bridge, the egress; no container's eth0) and knows
        // each veth's container and address from Docker: here the capture's veth is web's, at the address its pings
        // carry on eth0 and the veth (tshark: 172.17.0.2). Without the report's attribution, no NAT row would be web's:
        // no container's own interface shows its address.
        string path = Path.Combine(Replay, "blocked-port.pcapng");
        int veth;
        using (var reader = CaptureFileReader.Open(path))
        {
            while (reader.TryReadNext(out _))
            {
                // pcapng declares its interfaces as it goes: read them all.
            }
            veth = reader.Interfaces.Select((i, id) => (i.Name, id)).Single(i => i.Name.StartsWith("veth", StringComparison.Ordinal)).id;
        }
        var session = new TraceSession(new TraceSessionOptions());
        var owners = new ContainerOwners();
        owners.Assign(veth, new ContainerOwner("web", "bridge", [IpAddress.Parse("172.17.0.2")]));
        using var metrics = new FollowMetrics(session.Interfaces.RoleOf, session.Interfaces.Names, id => owners.Of(id)?.Name)
        {
            LossOwner = loss => owners.OfLoss(loss)?.Name,
            NatOwner = inside => owners.OfNatInside(inside)?.Name,
        };
        session.Correlator.Observer = metrics;
        using var exporter = StartOnFreePort(metrics);
        var feeds = Engine.FollowFeeding.Feed(session, path, captured: name => name != "eth0");
        CorrelationReport report = session.Report();
        // As WholeHostFollow hands them: each interface's packets with no kernel drops (not known per interface with
        // one handle), and the any handle's own counts.
        metrics.Update(report, [.. feeds.Select(f => (session.Interfaces.Names[f.Id], InterfaceRoles.Name(session.Interfaces.RoleOf(f.Id)), f.Feed.Packets, (long?)null)),
            ("any", "any", feeds.Sum(f => f.Feed.Packets), 3L)], ["web"]);
        using var http = new HttpClient();
        string scrape = await http.GetStringAsync($"http://{exporter.Bound}/metrics");

        // The journeys are web's, each way as the report's container record counts them.
        ContainerFigures web = Assert.Single(ContainerReport.Build(report, session.Interfaces.RoleOf, owners));
        Assert.Equal(report.Journeys, Sum(scrape, "vethtrace_journeys_total", "container=\"web\""));
        Assert.Equal(web.PacketsOut, Sum(scrape, "vethtrace_journeys_total", "container=\"web\",direction=\"outbound\""));
        Assert.Equal(web.PacketsIn, Sum(scrape, "vethtrace_journeys_total", "container=\"web\",direction=\"inbound\""));
        // iptables' 8 drops: all web's, as the report's loss records attribute them, each by the interface it was last
        // seen on as the report says (with the host side only, the engine places one of them on the veth).
        long dropped = long.Parse(File.ReadAllText(Path.Combine(Replay, "blocked-port.iptables-counter.tsv")).Split('\t')[0], CultureInfo.InvariantCulture);
        Assert.Equal(dropped, web.Lost);
        Assert.Equal(dropped, Sum(scrape, "vethtrace_journeys_lost_total", "container=\"web\""));
        Assert.Equal(dropped, Sum(scrape, "vethtrace_journeys_lost_total", ""));
        foreach (var at in report.Losses.GroupBy(l => l.LastSeen))
        {
            Assert.Equal(at.Sum(l => l.Packets), Sum(scrape, "vethtrace_journeys_lost_total", $"container=\"web\",last_seen=\"{session.Interfaces.Names[at.Key]}\""));
        }
        // The pings' MASQUERADE: web's by the address Docker gave it.
        Assert.True(Sum(scrape, "vethtrace_nat_mappings", "container=\"web\",kind=\"snat\"") >= 1, scrape);
        Assert.Equal(0, Sum(scrape, "vethtrace_nat_mappings", $"container=\"{FollowMetrics.Unattributed}\""));
        // Kernel drops: one series, the any handle's; packets per interface and the handle's total.
        string drops = Assert.Single(Samples(scrape), l => l.StartsWith("vethtrace_capture_kernel_drops_total{", StringComparison.Ordinal));
        Assert.Contains("interface=\"any\"", drops);
        Assert.Contains("role=\"any\"", drops);
        Assert.Equal(3, Sum(scrape, "vethtrace_capture_kernel_drops_total", ""));
        Assert.Equal(report.Packets, Sum(scrape, "vethtrace_capture_packets_total", "interface=\"any\""));
        Assert.True(Sum(scrape, "vethtrace_capture_packets_total", "interface=\"docker0\",role=\"bridge\"") > 0, scrape);
        Assert.True(Sum(scrape, "vethtrace_capture_packets_total", $"interface=\"{session.Interfaces.Names[veth]}\",role=\"veth\"") > 0, scrape);
    }

    [Fact]
    public async Task WholeHost_CaptureRows_InterfacesGoneLongerThanTheirContainersLeaveAndTheAnyHandleCarriesTheDrops()
    {
        // As WholeHostFollow hands them to the metrics: a veth detached 4 minutes ago stays, one detached 6 minutes
        // ago (its container's series are gone too) leaves; the any handle's row carries the only kernel-drop figure.
        string[] names = ["docker0", "vt-up0", "veth1(web)", "veth2(old)", "veth3(recent)"];
        InterfaceRole[] roles = [InterfaceRole.Bridge, InterfaceRole.Egress, InterfaceRole.Veth, InterfaceRole.Veth, InterfaceRole.Veth];
        DateTime now = DateTime.UtcNow;
        var detached = new Dictionary<int, DateTime> { [3] = now - TimeSpan.FromMinutes(6), [4] = now - TimeSpan.FromMinutes(4) };
        var rows = VethTrace.Cli.Commands.WholeHostFollow.CaptureRows(names, id => roles[id], id => 10L * (id + 1), detached, now, received: 1234, dropped: 7);

        Assert.Equal(["docker0", "vt-up0", "veth1(web)", "veth3(recent)", "any"], rows.Select(r => r.Interface));
        Assert.Equal(["bridge", "egress", "veth", "veth", "any"], rows.Select(r => r.Role));
        Assert.Equal([10L, 20L, 30L, 50L, 1234L], rows.Select(r => r.Packets));
        Assert.Equal([null, null, null, null, 7L], rows.Select(r => r.KernelDrops));

        // Served: one kernel-drop series, the handle's; a packet series per interface kept.
        var session = new TraceSession(new TraceSessionOptions());
        using var metrics = new FollowMetrics(session.Interfaces.RoleOf, session.Interfaces.Names, _ => null);
        using var exporter = StartOnFreePort(metrics);
        metrics.Update(session.Report(), rows, []);
        using var http = new HttpClient();
        string scrape = await http.GetStringAsync($"http://{exporter.Bound}/metrics");
        Assert.Equal(["vethtrace_capture_kernel_drops_total{interface=\"any\",role=\"any\",host=\"lab-test\"} 7"],
            Samples(scrape).Where(l => l.StartsWith("vethtrace_capture_kernel_drops_total", StringComparison.Ordinal)));
        Assert.Equal(5, Samples(scrape).Count(l => l.StartsWith("vethtrace_capture_packets_total", StringComparison.Ordinal)));
        Assert.DoesNotContain("veth2(old)", scrape);
    }

    [Fact]
    public async Task LatencyHistogram_BucketsFromOneMicrosecondToAHundredMillisecondsFourPerDecade()
    {
        using var run = Traced(Path.Combine(Replay, "blocked-port.pcapng"), () => DateTime.UtcNow);
        string scrape = await run.ScrapeAsync();

        string series = Samples(scrape).First(l => l.StartsWith("vethtrace_hop_latency_seconds_bucket{", StringComparison.Ordinal));
        string labels = series[..series.IndexOf(",le=", StringComparison.Ordinal)];
        double[] bounds = [.. Samples(scrape).Where(l => l.StartsWith(labels + ",le=", StringComparison.Ordinal))
            .Select(l => LeOf().Match(l).Groups[1].Value).Where(le => le != "+Inf").Select(le => double.Parse(le, CultureInfo.InvariantCulture))];
        Assert.Equal(21, bounds.Length);
        Assert.Equal(1e-6, bounds[0], 12);
        Assert.Equal(0.1, bounds[^1], 12);
        for (int i = 1; i < bounds.Length; i++)
        {
            Assert.InRange(bounds[i] / bounds[i - 1], 1.77, 1.79); // 10^(1/4)
        }
    }

    [Fact]
    public async Task ContainerGoneForFiveMinutes_ItsSeriesAreDropped()
    {
        var clock = DateTime.UtcNow;
        using var run = Traced(Path.Combine(Replay, "blocked-port.pcapng"), () => clock);
        Assert.Contains("container=\"web\"", await run.ScrapeAsync());

        // Its interfaces are no longer captured: kept for GoneAfter, then dropped.
        clock += FollowMetrics.GoneAfter - TimeSpan.FromSeconds(10);
        run.Update(captured: []);
        Assert.Contains("container=\"web\"", await run.ScrapeAsync());
        clock += TimeSpan.FromSeconds(20);
        run.Update(captured: []);
        // The SDK exports a disposed meter's series one last time, then no more.
        await run.ScrapeAsync();
        string scrape = await run.ScrapeAsync();
        Assert.DoesNotContain("container=\"web\"", scrape);
        Assert.Contains("vethtrace_capture_packets_total{", scrape); // the host's own series stay
    }

    [Fact]
    public async Task FiftyContainers_SeriesPerContainerAndScrapeSize()
    {
        // The blocked-port capture fed 50 times, each pass as another container's interfaces (eth0-c7, veth…-c7: the
        // bridge and the egress shared), an hour apart so no journey spans two: 50 containers with real hops, NAT and loss.
        var session = new TraceSession(new TraceSessionOptions());
        using var metrics = new FollowMetrics(session.Interfaces.RoleOf, session.Interfaces.Names,
            id => session.Interfaces.Names[id] is var name && name.LastIndexOf("-c", StringComparison.Ordinal) is > 0 and var at ? name[(at + 1)..] : null);
        session.Correlator.Observer = metrics;
        using var exporter = StartOnFreePort(metrics);
        var feeds = new Dictionary<string, (PacketFeed Feed, int Id)>();
        const int containers = 50;
        for (int pass = 0; pass < containers; pass++)
        {
            using var reader = CaptureFileReader.Open(Path.Combine(Replay, "blocked-port.pcapng"));
            long shift = pass * 3_600_000_000_000L, last = 0;
            while (reader.TryReadNext(out CaptureRecord record))
            {
                string name = reader.Interfaces[record.InterfaceId].Name;
                InterfaceRole role = InterfaceRoles.FromName(name);
                string own = role is InterfaceRole.Bridge or InterfaceRole.Egress ? name : $"{name}-c{pass}";
                if (!feeds.TryGetValue(own, out var feed))
                {
                    feeds[own] = feed = (session.OpenConcurrentFeed(), session.Interfaces.Add(own, role, RoleSource.Name));
                }
                feed.Feed.Arrive(feed.Id, record.TimestampNs + shift, record.Data, record.OriginalLength, record.LinkType, record.Direction);
                last = record.TimestampNs + shift;
            }
            session.Pump(last + 3_000_000_000L);
        }
        session.Finish(long.MinValue);
        metrics.Update(session.Report(), [.. feeds.Values.Select(f => (session.Interfaces.Names[f.Id], InterfaceRoles.Name(session.Interfaces.RoleOf(f.Id)), f.Feed.Packets, 0L))],
            Enumerable.Range(0, containers).Select(c => $"c{c}"));

        using var http = new HttpClient();
        await http.GetStringAsync($"http://{exporter.Bound}/metrics");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string scrape = await http.GetStringAsync($"http://{exporter.Bound}/metrics");
        TimeSpan took = clock.Elapsed;
        // NAT rows are matched to containers by address and losses kept per flow, and every pass has the same addresses
        // and flows (the last pass takes them): those two are left out of the comparison.
        var perContainer = Samples(scrape).Where(l => l.Contains("container=\"c", StringComparison.Ordinal)
                && !l.StartsWith("vethtrace_nat_mappings", StringComparison.Ordinal) && !l.StartsWith("vethtrace_journeys_lost", StringComparison.Ordinal))
            .GroupBy(l => Regex.Match(l, "container=\"(c\\d+)\"").Groups[1].Value).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(containers, perContainer.Count);
        // Each container the same: its 5 hops' histograms (22 buckets, sum and count each: 120), a reused-timestamp
        // counter, 4 journey directions, segmented.
        Assert.Equal(126, Assert.Single(perContainer.Values.Distinct()));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{containers} containers: {Samples(scrape).Count()} series, {perContainer.Values.First()} per container, {scrape.Length} bytes, scraped in {took.TotalMilliseconds:0.0} ms"));
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>
    /// An exporter on a loopback port free a moment ago. The port is free when <see cref="FreePort"/> lets it go, but another
    /// test or process may take it before the exporter binds it (once seen as "Address already in use" in a full suite
    /// run): then another port is tried, a few times.
    /// </summary>
    private static PrometheusEndpoint StartOnFreePort(FollowMetrics metrics)
    {
        string? problem = null;
        for (int attempt = 0; attempt < 5; attempt++)
        {
            if (PrometheusEndpoint.Start(new IPEndPoint(IPAddress.Loopback, FreePort()), "lab-test", metrics, out problem) is { } exporter)
            {
                return exporter;
            }
        }
        throw new InvalidOperationException(problem);
    }

    [Theory]
    [InlineData("9417", "127.0.0.1:9417")]
    [InlineData("0.0.0.0:9417", "0.0.0.0:9417")]
    [InlineData("[::1]:9417", "[::1]:9417")]
    [InlineData("10.0.0.5:80", "10.0.0.5:80")]
    public void Parse_PortAloneBindsLoopback(string text, string expected)
    {
        Assert.Equal(expected, PrometheusEndpoint.Parse(text, out string? problem)?.ToString());
        Assert.Null(problem);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("70000")]
    [InlineData("localhost:9417")]
    [InlineData("1.2.3:9417")]
    [InlineData("9417x")]
    [InlineData("")]
    public void Parse_NotAnAddressAndPort_OneLine(string text)
    {
        Assert.Null(PrometheusEndpoint.Parse(text, out string? problem));
        Assert.StartsWith("--prometheus expects", problem);
    }

    [Fact]
    public void Start_PortInUse_OneLineNoExporter()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var endpoint = (IPEndPoint)taken.LocalEndpoint;
        using var metrics = new FollowMetrics(_ => InterfaceRole.Egress, [], _ => null);

        Assert.Null(PrometheusEndpoint.Start(endpoint, "h", metrics, out string? problem));
        Assert.StartsWith($"cannot listen on {endpoint} for --prometheus: ", problem);
    }

    private static long Sum(string scrape, string name, string labels) =>
        (long)Math.Round(Samples(scrape).Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.Split(',', StringSplitOptions.RemoveEmptyEntries).All(l.Contains))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)));

    private static IEnumerable<string> Samples(string scrape) => scrape.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#'));

    [GeneratedRegex("le=\"([^\"]+)\"")]
    private static partial Regex LeOf();

    /// <summary>
    /// A capture fed to a session as follow feeds it, with the metrics attached before the first packet: eth0 and the
    /// veth are the container <c>web</c>'s; served on a free loopback port with host <c>lab-test</c>.
    /// </summary>
    private static TracedRun Traced(string path, Func<DateTime> clock)
    {
        var session = new TraceSession(new TraceSessionOptions());
        var metrics = new FollowMetrics(session.Interfaces.RoleOf, session.Interfaces.Names,
            id => session.Interfaces.RoleOf(id) is InterfaceRole.Container or InterfaceRole.Veth ? "web" : null, clock);
        session.Correlator.Observer = metrics;
        // Serving before the first packet, as follow does: the SDK aggregates only what is recorded while it listens.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var endpoint = (IPEndPoint)probe.LocalEndpoint;
        probe.Stop();
        PrometheusEndpoint exporter = PrometheusEndpoint.Start(endpoint, "lab-test", metrics, out string? problem) ?? throw new InvalidOperationException(problem);
        var run = new TracedRun(session, metrics, exporter, Engine.FollowFeeding.Feed(session, path));
        run.Update(captured: ["web"]);
        return run;
    }

    private sealed class TracedRun(TraceSession session, FollowMetrics metrics, PrometheusEndpoint exporter, List<(PacketFeed Feed, int Id)> feeds) : IDisposable
    {
        private readonly HttpClient _http = new();

        public CorrelationReport Report { get; } = session.Report();

        public IReadOnlyList<string> Names => session.Interfaces.Names;

        public void Update(string[] captured) => metrics.Update(Report,
            [.. feeds.Select(f => (session.Interfaces.Names[f.Id], InterfaceRoles.Name(session.Interfaces.RoleOf(f.Id)), f.Feed.Packets, 0L))], captured);

        public Task<string> ScrapeAsync() => _http.GetStringAsync($"http://{exporter.Bound}/metrics");

        public void Dispose()
        {
            _http.Dispose();
            exporter.Dispose();
            metrics.Dispose();
        }
    }
}
