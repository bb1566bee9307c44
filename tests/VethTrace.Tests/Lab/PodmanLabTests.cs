using System.Globalization;
using System.Text.Json;
using VethTrace.Cli;
using static VethTrace.Tests.Lab.LiveScenarioTests;

namespace VethTrace.Tests.Lab;

/// <summary>
/// Issue 19: rootful Podman (netavark, podman0 10.88.0.0/16) beside the lab's dockerd, its API served by
/// <c>podman system service</c> on /run/podman/podman.sock (tests/lab/podman-up.sh). VethTrace finds the engine by
/// itself: DOCKER_HOST is unset, Docker's socket answers first and does not know the container, Podman's does. The
/// expected interfaces come from <c>podman inspect</c> and sysfs (a veth's peer index), the expected counts from the
/// traffic sent, tshark over dumpcap captures and iptables counters.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class PodmanLabTests
{
    private const string Image = "localhost/vethtrace/busybox:lab";
    private const string Bridge = "podman0";

    [Fact]
    public async Task Follow_PodmanContainer_EngineFoundByItself_MasqueradesToUpstream()
    {
        var lab = LabEnvironment.Load();
        Assert.True(string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOCKER_HOST")), "these tests find the engine with DOCKER_HOST unset");
        const string container = "podman19-t-masq";
        string capture = Path.Combine(Path.GetTempPath(), $"podman19-masq-{Guid.NewGuid():N}.pcapng");
        try
        {
            Run(container);
            string ip = PodmanIp(container), veth = HostVethOf(container);
            // Pings of 20 + 8 + 131 = 159 bytes of IP: the filter tells them from any other ping on vt-up0.
            const string filter = "icmp and ip[2:2] = 159";
            List<JsonElement> records;
            using (var dumpcap = new DumpcapSession(capture, null, lab["EGRESS_IF"]))
            {
                records = await FollowAsync(["follow", container, "--egress", lab["EGRESS_IF"], "--filter", filter], () =>
                    LabEnvironment.Run("podman", "exec", container, "ping", "-c", "3", "-i", "0.3", "-s", "131", "-W", "2", lab["UPSTREAM_IP"]));
                dumpcap.Stop();
            }
            string eth0 = $"eth0({container})";
            Assert.Equal($"{container} (network mode bridge)", Records(records, "start").Single().GetProperty("target").GetString());
            Assert.Equal([eth0, veth, Bridge, lab["EGRESS_IF"]], Interfaces(records));
            var paths = Paths(records);
            Assert.Equal(3, paths.GetValueOrDefault($"{eth0} {veth} {Bridge} {lab["EGRESS_IF"]}"));
            Assert.Equal(3, paths.GetValueOrDefault($"{lab["EGRESS_IF"]} {Bridge} {veth} {eth0}"));
            // Independently: on vt-up0 the requests leave from the egress address (MASQUERADE), 3 of them.
            string onEgress = LabEnvironment.Run("tshark", "-r", capture, "-Y", "icmp.type == 8 && ip.len == 159", "-T", "fields", "-e", "ip.src");
            Assert.Equal([lab["EGRESS_IP"], lab["EGRESS_IP"], lab["EGRESS_IP"]], onEgress.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            JsonElement nat = Assert.Single(Records(records, "nat"));
            Assert.Equal(("snat", "icmp", ip, lab["EGRESS_IP"], 6L), (nat.GetProperty("kind").GetString(), nat.GetProperty("proto").GetString(),
                nat.GetProperty("inside").GetString(), nat.GetProperty("outside").GetString(), nat.GetProperty("packets").GetInt64()));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", container);
            File.Delete(capture);
        }
    }

    [Fact]
    public async Task Follow_PodmanPublishedPort_ShowsTheDnat()
    {
        var lab = LabEnvironment.Load();
        const string container = "podman19-t-pub";
        const int port = 18089;
        try
        {
            Run(container, "-p", $"{port}:80", "--", "httpd", "-f", "-p", "80", "-h", "/www");
            string ip = PodmanIp(container), veth = HostVethOf(container);
            // Independently: netavark's DNAT rule for the port names the container's address.
            Assert.Contains($"--dport {port} -j DNAT --to-destination {ip}:80", LabEnvironment.Run("iptables", "-t", "nat", "-S"), StringComparison.Ordinal);
            string body = "";
            var records = await FollowAsync(["follow", container, "--egress", lab["EGRESS_IF"], "--filter", $"tcp port 80 or tcp port {port}"], () =>
                body = LabEnvironment.Run("ip", "netns", "exec", lab["UPSTREAM_NS"], "sh", "-c",
                    $"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -T 5 - TCP:{lab["EGRESS_IP"]}:{port.ToString(CultureInfo.InvariantCulture)}"));
            Assert.StartsWith("HTTP/1.1 200 OK", body, StringComparison.Ordinal);   // the request reached busybox httpd through the DNAT
            string eth0 = $"eth0({container})";
            JsonElement nat = Assert.Single(Records(records, "nat"));
            Assert.Equal(("dnat", "tcp", $"{ip}:80", $"{lab["EGRESS_IP"]}:{port}", lab["UPSTREAM_IP"]), (nat.GetProperty("kind").GetString(),
                nat.GetProperty("proto").GetString(), nat.GetProperty("inside").GetString(), nat.GetProperty("outside").GetString(), nat.GetProperty("peer").GetString()));
            var paths = Paths(records);
            Assert.True(paths.GetValueOrDefault($"{lab["EGRESS_IF"]} {Bridge} {veth} {eth0}") >= 3, string.Join("; ", paths));
            Assert.True(paths.GetValueOrDefault($"{eth0} {veth} {Bridge} {lab["EGRESS_IF"]}") >= 3, string.Join("; ", paths));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", container);
        }
    }

    [Fact]
    public async Task Follow_PodmanEastWest_TracesBothContainersThroughPodman0()
    {
        LabEnvironment.Load();   // before anything touches Podman: with the lab down, nothing is created
        const string a = "podman19-t-ew-a", b = "podman19-t-ew-b";
        string capture = Path.Combine(Path.GetTempPath(), $"podman19-ew-{Guid.NewGuid():N}.pcapng");
        try
        {
            Run(a);
            Run(b);
            string vethA = HostVethOf(a), vethB = HostVethOf(b), ipB = PodmanIp(b);
            string pidB = LabEnvironment.Run("podman", "inspect", "-f", "{{.State.Pid}}", b).Trim();
            // dumpcap holds podman0 in promiscuous mode, as in the Docker lab: a bridge passes frames it forwards between
            // two ports up to its own device (where a capture sees them) only then. Its count is the expected one.
            List<JsonElement> records;
            using (var dumpcap = new DumpcapSession(capture, null, Bridge))
            {
                records = await FollowAsync(["follow", a, "--hop", vethB, "--hop", $"eth0@/proc/{pidB}/ns/net", "--filter", "icmp and ip[2:2] = 171"], () =>
                    LabEnvironment.Run("podman", "exec", a, "ping", "-c", "3", "-i", "0.3", "-s", "143", "-W", "2", ipB));
                dumpcap.Stop();
            }
            string onBridge = LabEnvironment.Run("tshark", "-r", capture, "-Y", "icmp && ip.len == 171", "-T", "fields", "-e", "icmp.type");
            Assert.Equal(["8", "0", "8", "0", "8", "0"], onBridge.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            string ethA = $"eth0({a})", ethB = $"eth0@{pidB}";
            // Veth to veth through the bridge: the forwarded frame's copy on podman0 (seen because dumpcap made it
            // promiscuous) is a side copy of each journey, 3 each way as tshark counted 3 + 3 on podman0.
            var paths = Records(records, "path").ToDictionary(
                p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())),
                p => (p.GetProperty("journeys").GetInt64(), p.TryGetProperty("side_copies", out JsonElement side)
                    ? string.Join(' ', side.EnumerateArray().Select(c => $"{c.GetProperty("interface").GetString()}={c.GetProperty("journeys").GetInt64()}"))
                    : ""));
            Assert.Equal((3L, $"{Bridge}=3"), paths.GetValueOrDefault($"{ethA} {vethA} {vethB} {ethB}"));
            Assert.Equal((3L, $"{Bridge}=3"), paths.GetValueOrDefault($"{ethB} {vethB} {vethA} {ethA}"));
            Assert.Equal(2, paths.Count);
            Assert.Empty(Records(records, "nat"));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", a, b);
            File.Delete(capture);
        }
    }

    [Fact]
    public async Task Follow_PodmanLossAtTheBridge_EndsAtPodman0AsTheIptablesCounterSays()
    {
        var lab = LabEnvironment.Load();
        const string container = "podman19-t-loss";
        // 20 + 8 + 349 = 377 bytes of IP, dropped on the way from podman0 to the egress.
        string[] rule = ["FORWARD", "-i", Bridge, "-o", lab["EGRESS_IF"], "-p", "icmp", "-m", "length", "--length", "377",
            "-m", "comment", "--comment", "podman19-loss-test", "-j", "DROP"];
        try
        {
            Run(container);
            string ip = PodmanIp(container), veth = HostVethOf(container);
            LabEnvironment.Run("iptables", ["-I", .. rule[..1], "1", .. rule[1..]]);
            string ping = "";
            var records = await FollowAsync(["follow", container, "--egress", lab["EGRESS_IF"], "--filter", "icmp and ip[2:2] = 377"], () =>
                ping = LabEnvironment.Run("sh", "-c", $"podman exec {container} ping -c 3 -i 0.3 -s 349 -W 1 {lab["UPSTREAM_IP"]} 2>&1; true"));
            Assert.Contains("3 packets transmitted, 0 packets received", ping, StringComparison.Ordinal);
            // Independently: the rule's own packet counter.
            string counters = LabEnvironment.Run("iptables", "-vxnL", "FORWARD", "1");
            Assert.Contains("podman19-loss-test", counters, StringComparison.Ordinal);
            long dropped = long.Parse(counters.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
            Assert.True(dropped == 3, counters + "\n" + LabEnvironment.Run("iptables", "-S", "FORWARD"));
            JsonElement loss = Assert.Single(Records(records, "loss"));
            Assert.Equal((ip, lab["UPSTREAM_IP"], Bridge, dropped), (loss.GetProperty("src").GetString(), loss.GetProperty("dst").GetString(),
                loss.GetProperty("last_seen").GetString(), loss.GetProperty("packets").GetInt64()));
            Assert.Equal(3, Paths(records).GetValueOrDefault($"eth0({container}) {veth} {Bridge}"));
        }
        finally
        {
            LabEnvironment.TryRun("iptables", ["-D", .. rule]);
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", container);
        }
        Assert.DoesNotContain("podman19-loss-test", LabEnvironment.Run("iptables", "-S", "FORWARD"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Record_PodmanContainer_WritesEveryHopAsTsharkCountsThem()
    {
        var lab = LabEnvironment.Load();
        const string container = "podman19-t-rec";
        string file = Path.Combine(Path.GetTempPath(), $"podman19-rec-{Guid.NewGuid():N}.pcapng");
        try
        {
            Run(container);
            string veth = HostVethOf(container);
            var output = new StringWriter();
            var error = new StringWriter();
            var record = Task.Run(() => VethTraceCommand.Run(["record", container, "-o", file, "--egress", lab["EGRESS_IF"],
                "--filter", "icmp and ip[2:2] = 191", "--duration", "6s"], output, error));
            await Task.Delay(3000);
            LabEnvironment.Run("podman", "exec", container, "ping", "-c", "4", "-i", "0.3", "-s", "163", "-W", "2", lab["UPSTREAM_IP"]);
            Assert.Equal(ExitCode.Success, await record.WaitAsync(TimeSpan.FromSeconds(40)));
            // tshark, not VethTrace, reads the file back: 4 requests and 4 replies on each of the four hops.
            string fields = LabEnvironment.Run("tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name");
            var perHop = fields.Split('\n', StringSplitOptions.RemoveEmptyEntries).GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(new Dictionary<string, int> { [$"eth0({container})"] = 8, [veth] = 8, [Bridge] = 8, [lab["EGRESS_IF"]] = 8 }, perHop);
        }
        finally
        {
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", container);
            File.Delete(file);
        }
    }

    [Fact]
    public void Interfaces_ListsPodmanContainersBesideDockers_AndNamesBothEngines()
    {
        LabEnvironment.Load();   // before anything touches Podman: with the lab down, nothing is created
        const string container = "podman19-t-if";
        try
        {
            Run(container);
            string ip = PodmanIp(container), veth = HostVethOf(container);
            var output = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["interfaces"], output, new StringWriter()));
            string[] lines = output.ToString().Split('\n');
            Assert.Contains("engine: docker on /var/run/docker.sock (found), podman on /run/podman/podman.sock (found)", lines);
            string row = Assert.Single(lines, l => l.StartsWith(veth + " ", StringComparison.Ordinal));
            // A row is clipped at 79 columns and an ellipsis (a three-digit host part, 10.88.0.107, reaches it): compared up to there.
            string expected = $"{veth.PadRight(16)} veth   {Bridge.PadRight(16)} up    {container}:eth0 {ip}/16";
            Assert.StartsWith(expected.Length <= 79 ? expected : expected[..79], row, StringComparison.Ordinal);

            var podmanOnly = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["interfaces", "--engine", "podman"], podmanOnly, new StringWriter()));
            Assert.Contains("engine: podman on /run/podman/podman.sock (--engine podman)", podmanOnly.ToString().Split('\n'));
        }
        finally
        {
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", container);
        }
    }

    [Fact]
    public async Task FollowWholeHost_EnginePodman_NamesPodmanContainersOnly()
    {
        var lab = LabEnvironment.Load();
        const string container = "podman19-t-host";
        string capture = Path.Combine(Path.GetTempPath(), $"podman19-host-{Guid.NewGuid():N}.pcapng");
        try
        {
            Run(container);
            string ip = PodmanIp(container), veth = HostVethOf(container), egress = lab["EGRESS_IF"];
            // The network's name as Podman gives it (netavark's default network is "podman").
            string network = LabEnvironment.Run("podman", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}", container).Trim();
            var output = new StringWriter();
            var error = new StringWriter();
            // 20 + 8 + 175 = 203 bytes of IP.
            using (var dumpcap = new DumpcapSession(capture, null, egress))
            {
                var follow = Task.Run(() => VethTraceCommand.Run(["follow", "--engine", "podman", "--egress", egress, "--duration", "8s", "--format", "json",
                    "--filter", "icmp and ip[2:2] = 203"], output, error));
                for (int i = 0; i < 200 && !output.ToString().Contains("\"type\":\"start\"", StringComparison.Ordinal); i++)
                {
                    await Task.Delay(100);
                }
                await Task.Delay(1000);
                LabEnvironment.Run("podman", "exec", container, "ping", "-c", "3", "-i", "0.3", "-s", "175", "-W", "2", lab["UPSTREAM_IP"]);
                ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
                Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
                dumpcap.Stop();
            }
            var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            string named = $"{veth}({container})";
            var interfaces = Records(records, "start").Single().GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()).ToList();
            Assert.Contains(named, interfaces);
            Assert.Contains(Bridge, interfaces);
            Assert.Contains(egress, interfaces);
            // --engine podman: Docker's containers are captured (their veths are on a bridge) but not named.
            Assert.Contains(lab["C1_VETH"], interfaces);
            Assert.DoesNotContain($"{lab["C1_VETH"]}({lab["C1_NAME"]})", interfaces);

            JsonElement mine = Assert.Single(Records(records, "container"), c => c.GetProperty("name").GetString() == container);
            Assert.Equal((network, 3L, 3L), (mine.GetProperty("network").GetString(), mine.GetProperty("packets_out").GetInt64(), mine.GetProperty("packets_in").GetInt64()));
            JsonElement outbound = Assert.Single(Records(records, "path"), p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())) == $"{named} {Bridge} {egress}");
            Assert.Equal((3L, container), (outbound.GetProperty("journeys").GetInt64(), outbound.GetProperty("container").GetString()));
            // Independently: tshark sees the 3 requests leave vt-up0 MASQUERADEd to the egress address.
            string sources = LabEnvironment.Run("tshark", "-r", capture, "-Y", "icmp.type == 8 && ip.len == 203", "-T", "fields", "-e", "ip.src");
            Assert.Equal([lab["EGRESS_IP"], lab["EGRESS_IP"], lab["EGRESS_IP"]], sources.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            JsonElement nat = Assert.Single(Records(records, "nat"), n => n.GetProperty("inside").GetString() == ip);
            Assert.Equal((lab["EGRESS_IP"], container), (nat.GetProperty("outside").GetString(), nat.GetProperty("container").GetString()));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", container);
            File.Delete(capture);
        }
    }

    /// <summary>podman run -d with the sandbox's limits (see issue 19) and NET_RAW for ping; the rest after "--" is the command.</summary>
    private static void Run(string name, params string[] more)
    {
        // The lab (and podman-up.sh's guard rules with it) must be up before a container is made: without them netavark
        // would make podman0 and its rules on a host nobody cleans up after.
        LabEnvironment.Load();
        int split = Array.IndexOf(more, "--");
        string[] options = split < 0 ? more : more[..split];
        string[] command = split < 0 ? ["sleep", "300"] : more[(split + 1)..];
        LabEnvironment.TryRun("podman", "rm", "-f", "-t", "0", name);
        LabEnvironment.Run("podman", ["run", "-d", "--name", name, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--cap-add", "NET_RAW", .. options, Image, .. command]);
    }

    private static string PodmanIp(string container) =>
        LabEnvironment.Run("podman", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", container).Trim();

    /// <summary>
    /// The host veth of the container's eth0, as iproute2 shows it: inside, <c>eth0@if123</c> names the peer's ifindex;
    /// on the host, the link with that index (sysfs would not do: nsenter --net keeps the host's /sys mount).
    /// </summary>
    private static string HostVethOf(string container)
    {
        string pid = LabEnvironment.Run("podman", "inspect", "-f", "{{.State.Pid}}", container).Trim();
        string line = LabEnvironment.Run("nsenter", $"--net=/proc/{pid}/ns/net", "ip", "-o", "link", "show", "dev", "eth0");
        string peerIndex = System.Text.RegularExpressions.Regex.Match(line, @"@if(\d+):").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(peerIndex), line);
        string host = LabEnvironment.Run("ip", "-o", "link", "show");
        string veth = System.Text.RegularExpressions.Regex.Match(host, $@"(?m)^{peerIndex}: ([^@:]+)[@:]").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(veth), $"no host link with index {peerIndex}");
        return veth;
    }

    private static List<string> Interfaces(List<JsonElement> records) =>
        [.. Records(records, "start").Single().GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()!)];

    private static Dictionary<string, long> Paths(List<JsonElement> records) =>
        Records(records, "path").ToDictionary(p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())),
            p => p.GetProperty("journeys").GetInt64());
}
