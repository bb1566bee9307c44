using System.Text.Json;
using static VethTrace.Tests.Lab.LiveScenarioTests;

namespace VethTrace.Tests.Lab;

/// <summary>
/// <c>vethtrace follow</c> in every Docker network mode of issue 6, on the real engine with real traffic: a container
/// on two user-defined bridges, host, none, container:&lt;X&gt;, macvlan, and the two-host VXLAN overlay built from
/// namespaces (tests/lab/overlay.sh). The expected interfaces come from Docker and sysfs (a veth's peer index, a
/// network's ID), the expected counts from the traffic the test sends.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class NetworkModeTests
{
    private const string Image = "vethtrace/busybox:lab";

    [Fact]
    public async Task Follow_ContainerOnTwoUserDefinedBridges_TracesBothPathsThroughTheirBrInterfaces()
    {
        var lab = LabEnvironment.Load();
        const string container = "vt-mode-multi", peer = "vt-mode-peer", netA = "vt-mode-a", netB = "vt-mode-b";
        try
        {
            string idA = LabEnvironment.Run("docker", "network", "create", "--subnet", "10.77.1.0/24", netA).Trim();
            string idB = LabEnvironment.Run("docker", "network", "create", "--subnet", "10.77.2.0/24", netB).Trim();
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", container, "--network", netA, Image, "sleep", "300");
            LabEnvironment.Run("docker", "network", "connect", netB, container);
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", peer, "--network", netB, "--ip", "10.77.2.20", Image, "sleep", "300");
            // Independent of VethTrace: each interface's host veth by the peer index sysfs gives, the bridges by network ID.
            string vethA = HostVethOf(container, "eth0"), vethB = HostVethOf(container, "eth1");
            string bridgeA = "br-" + idA[..12], bridgeB = "br-" + idB[..12];

            var records = await FollowAsync(["follow", container, "--egress", lab["EGRESS_IF"], "--filter", "icmp"], () =>
            {
                LabEnvironment.Run("docker", "exec", container, "ping", "-c", "2", "-W", "2", lab["UPSTREAM_IP"]);
                LabEnvironment.Run("docker", "exec", container, "ping", "-c", "3", "-W", "2", "10.77.2.20");
            });

            string eth0 = $"eth0({container})", eth1 = $"eth1({container})";
            Assert.Equal([eth0, vethA, bridgeA, eth1, vethB, bridgeB, lab["EGRESS_IF"]], Interfaces(records));
            var paths = Paths(records);
            Assert.Equal(2, paths.GetValueOrDefault($"{eth0} {vethA} {bridgeA} {lab["EGRESS_IF"]}"));
            Assert.Equal(2, paths.GetValueOrDefault($"{lab["EGRESS_IF"]} {bridgeA} {vethA} {eth0}"));
            // To the peer on the second bridge, over eth1: the replies enter at the peer's veth, which is not followed,
            // and where the bridge's own promiscuous copy falls against the forwarded one is measured, not fixed
            // (br_forward runs before br_pass_frame_up), so only the ends and the members are asserted.
            Assert.Equal(3, paths.GetValueOrDefault($"{eth1} {vethB} {bridgeB}"));
            var replies = paths.Where(p => p.Key.EndsWith($" {eth1}", StringComparison.Ordinal)).ToList();
            Assert.Equal(3, replies.Sum(p => p.Value));
            Assert.All(replies, p => Assert.Equal(new[] { bridgeB, eth1, vethB }, p.Key.Split(' ').Order(StringComparer.Ordinal)));
            Assert.Single(Records(records, "nat"));
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", container, peer);
            LabEnvironment.TryRun("docker", "network", "rm", netA, netB);
        }
    }

    [Fact]
    public async Task Follow_HostNetwork_SaysSoAndCapturesOnlyTheEgress()
    {
        var lab = LabEnvironment.Load();
        const string container = "vt-mode-host";
        try
        {
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", container, "--network", "host", Image, "sleep", "300");
            // Pings of an odd size (20 + 8 + 321 = 349 bytes of IP), so the filter tells them from other pings that cross
            // the egress meanwhile: follow filters in the engine and captures everything on its hops.
            var records = await FollowAsync(["follow", container, "--egress", lab["EGRESS_IF"], "--filter", $"icmp and host {lab["UPSTREAM_IP"]} and ip[2:2] = 349"], () =>
                LabEnvironment.Run("docker", "exec", container, "ping", "-c", "3", "-s", "321", "-W", "2", lab["UPSTREAM_IP"]));

            JsonElement start = Records(records, "start").Single();
            Assert.Equal($"{container} (network mode host): host network: the container shares the host's interfaces; only the egress hop exists",
                start.GetProperty("target").GetString());
            Assert.Equal([lab["EGRESS_IF"]], Interfaces(records));
            // Six packets (three requests, three replies) on the one hop, none of them matched across hops.
            JsonElement summary = Records(records, "summary").Single(r => !r.TryGetProperty("live", out _));
            Assert.Equal((6L, 0L), (summary.GetProperty("journeys").GetInt64(), summary.GetProperty("multi_hop_journeys").GetInt64()));
            Assert.True(Records(records, "capture").Single().GetProperty("packets").GetInt64() >= 6);
            Assert.Empty(Records(records, "path"));
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", container);
        }
    }

    [Fact]
    public void Follow_NoNetwork_ExplainsAndExitsZero()
    {
        const string container = "vt-mode-none";
        try
        {
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", container, "--network", "none", Image, "sleep", "300");
            // The ground truth: the container cannot send a packet anywhere.
            var ping = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("docker", ["exec", container, "ping", "-c", "1", "-W", "1", "198.51.100.2"])
            { RedirectStandardError = true, RedirectStandardOutput = true })!;
            string pingError = ping.StandardError.ReadToEnd();
            ping.WaitForExit();
            Assert.NotEqual(0, ping.ExitCode);
            Assert.Contains("unreachable", pingError, StringComparison.OrdinalIgnoreCase);

            var output = new StringWriter();
            var error = new StringWriter();
            VethTrace.Cli.ExitCode code = VethTrace.Cli.VethTraceCommand.Run(["follow", container, "--duration", "2s"], output, error);
            Assert.Equal(VethTrace.Cli.ExitCode.Success, code);
            Assert.Equal("", error.ToString());
            Assert.Equal($"{container} (network mode none): no network: the container has only lo, so no packet can leave it", output.ToString().Trim());

            // The JSON stream says it in a start record with no interfaces.
            var json = new StringWriter();
            Assert.Equal(VethTrace.Cli.ExitCode.Success, VethTrace.Cli.VethTraceCommand.Run(["follow", container, "--format", "json"], json, error));
            JsonElement start = JsonDocument.Parse(json.ToString()).RootElement;
            Assert.Equal("start", start.GetProperty("type").GetString());
            Assert.Equal(output.ToString().Trim(), start.GetProperty("target").GetString());
            Assert.Equal(0, start.GetProperty("interfaces").GetArrayLength());
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", container);
        }
    }

    [Fact]
    public async Task Follow_ContainerInAnothersNamespace_ResolvesToTheOwnersPathAndNamesBoth()
    {
        var lab = LabEnvironment.Load();
        const string container = "vt-mode-shared";
        try
        {
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", container, "--network", $"container:{lab["C1_NAME"]}", Image, "sleep", "300");
            var records = await FollowAsync(["follow", container, "--egress", lab["EGRESS_IF"], "--filter", "icmp"], () =>
                LabEnvironment.Run("docker", "exec", container, "ping", "-c", "2", "-W", "2", lab["UPSTREAM_IP"]));

            string target = Records(records, "start").Single().GetProperty("target").GetString()!;
            Assert.StartsWith($"{container} (in {lab["C1_NAME"]}'s network namespace)", target);
            string eth0 = $"eth0({lab["C1_NAME"]})";
            Assert.Equal([eth0, lab["C1_VETH"], lab["BRIDGE"], lab["EGRESS_IF"]], Interfaces(records));
            var paths = Paths(records);
            Assert.Equal(2, paths.GetValueOrDefault($"{eth0} {lab["C1_VETH"]} {lab["BRIDGE"]} {lab["EGRESS_IF"]}"));
            Assert.Equal(2, paths.GetValueOrDefault($"{lab["EGRESS_IF"]} {lab["BRIDGE"]} {lab["C1_VETH"]} {eth0}"));
            JsonElement nat = Records(records, "nat").Single();
            Assert.Equal(lab["C1_IP"], nat.GetProperty("inside").GetString());
            Assert.Equal(lab["EGRESS_IP"], nat.GetProperty("outside").GetString());

            // interfaces names the namespace's owner beside its veth, not the container that joined it.
            var listing = new StringWriter();
            Assert.Equal(VethTrace.Cli.ExitCode.Success, VethTrace.Cli.VethTraceCommand.Run(["interfaces"], listing, new StringWriter()));
            string row = listing.ToString().Split('\n').Single(l => l.StartsWith(lab["C1_VETH"] + " ", StringComparison.Ordinal));
            Assert.Contains($" {lab["C1_NAME"]}:eth0 ", row);
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", container);
        }
    }

    [Fact]
    public async Task Follow_Macvlan_TracesOnTheParentWithNoBridgeHop()
    {
        // The parent is a veth whose other end is in a namespace of the test's own: the "LAN" the macvlan joins.
        const string parent = "vt-mvp", lan = "vt-mvlan", network = "vt-mode-macvlan", container = "vt-mode-mv";
        try
        {
            LabEnvironment.Run("ip", "netns", "add", lan);
            LabEnvironment.Run("ip", "link", "add", parent, "type", "veth", "peer", "name", "lan0", "netns", lan);
            LabEnvironment.Run("ip", "link", "set", parent, "up");
            LabEnvironment.Run("ip", "-n", lan, "addr", "add", "192.0.2.2/24", "dev", "lan0");
            LabEnvironment.Run("ip", "-n", lan, "link", "set", "lan0", "up");
            LabEnvironment.Run("docker", "network", "create", "-d", "macvlan", "--subnet", "192.0.2.0/24", "--gateway", "192.0.2.1", "-o", $"parent={parent}", network);
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", container, "--network", network, "--ip", "192.0.2.10", Image, "sleep", "300");

            var records = await FollowAsync(["follow", container, "--filter", "icmp"], () =>
                LabEnvironment.Run("docker", "exec", container, "ping", "-c", "3", "-W", "2", "192.0.2.2"));

            string target = Records(records, "start").Single().GetProperty("target").GetString()!;
            Assert.EndsWith($"macvlan on {parent}: traced on the parent; there is no bridge hop", target);
            string eth0 = $"eth0({container})";
            Assert.Equal([eth0, parent], Interfaces(records));
            var paths = Paths(records);
            Assert.Equal(3, paths.GetValueOrDefault($"{eth0} {parent}"));
            Assert.Equal(3, paths.GetValueOrDefault($"{parent} {eth0}"));
            Assert.Empty(Records(records, "nat"));
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", container);
            LabEnvironment.TryRun("docker", "network", "rm", network);
            LabEnvironment.TryRun("ip", "link", "del", parent);
            LabEnvironment.TryRun("ip", "netns", "del", lan);
        }
    }

    [Fact]
    public async Task Follow_OverlayAcrossTwoHosts_VxlanOnTheWireAndEveryHopInOrder()
    {
        string script = Path.Combine(Captures.CaptureCorpus.RepositoryRoot, "tests", "lab", "overlay.sh");
        try
        {
            LabEnvironment.Run("bash", script, "up");
            string[] hops =
            [
                "eth0@/run/netns/vt-ovc1", "vethov1@/run/netns/vt-ovh1", "br-ov1@/run/netns/vt-ovh1", "vxlan1@/run/netns/vt-ovh1", "wire1@/run/netns/vt-ovh1",
                "wire2@/run/netns/vt-ovh2", "vxlan2@/run/netns/vt-ovh2", "br-ov2@/run/netns/vt-ovh2", "vethov2@/run/netns/vt-ovh2", "eth0@/run/netns/vt-ovc2",
            ];
            var records = await FollowAsync(["follow", .. hops.SelectMany(h => new[] { "--hop", h }), "--filter", "icmp or (udp port 4789 and udp[39] = 1)"], () =>
                LabEnvironment.Run("ip", "netns", "exec", "vt-ovc1", "busybox", "ping", "-c", "3", "-i", "0.3", "-W", "2", "10.42.0.2"));

            // Ping's echo requests and replies cross both hosts. Each bridge forwards the frame between two of its ports
            // (veth and vxlan), so its own copy is handed up beside the forward (br_forward, then br_pass_frame_up): a side
            // copy, not a hop (docs/DESIGN.md, bridge copies). Each journey is one chain over the eight other hops, with
            // both bridges beside it.
            var paths = Records(records, "path").Select(p => (Hops: p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()!).ToArray(),
                Journeys: p.GetProperty("journeys").GetInt64(),
                Side: p.TryGetProperty("side_copies", out JsonElement side)
                    ? side.EnumerateArray().Select(c => c.GetProperty("interface").GetString()!).Order().ToArray() : [])).ToList();
            // (Once in five runs by hand one journey came out with the sending container's eth0 after its veth; so
            // journeys are told apart by where they end.)
            Assert.Equal(3, paths.Where(p => p.Hops[^1] == "eth0@vt-ovc2").Sum(p => p.Journeys));
            Assert.Equal(3, paths.Where(p => p.Hops[^1] == "eth0@vt-ovc1").Sum(p => p.Journeys));
            Assert.All(paths, p => Assert.Equal(8, p.Hops.Length));
            Assert.All(paths, p => Assert.Equal(["br-ov1@vt-ovh1", "br-ov2@vt-ovh2"], p.Side));
            Assert.All(paths.Where(p => p.Hops[^1] == "eth0@vt-ovc2"), p =>
                Assert.Equal(["wire1@vt-ovh1", "wire2@vt-ovh2", "vxlan2@vt-ovh2", "vethov2@vt-ovh2", "eth0@vt-ovc2"], p.Hops[3..]));
            Assert.All(paths.Where(p => p.Hops[^1] == "eth0@vt-ovc1"), p =>
                Assert.Equal(["wire2@vt-ovh2", "wire1@vt-ovh1", "vxlan1@vt-ovh1", "vethov1@vt-ovh1", "eth0@vt-ovc1"], p.Hops[3..]));
            // The wire carried them in VXLAN 42 between the hosts' underlay addresses, three each way on each end. A tunnel
            // record counts every IP packet the tunnel carried on the hop, as replay's does (follow filters in the engine
            // and captures the whole wire): an IGMP report of the namespaces' own may come along, so at least three.
            var tunnels = Records(records, "tunnel").Select(t => (t.GetProperty("interface").GetString(), t.GetProperty("vni").GetInt32(),
                t.GetProperty("outer_src").GetString(), t.GetProperty("outer_dst").GetString(), t.GetProperty("packets").GetInt64())).ToList();
            Assert.Equal(
                new HashSet<(string?, int, string?, string?)>
                {
                    ("wire1@vt-ovh1", 42, "203.0.113.1", "203.0.113.2"), ("wire1@vt-ovh1", 42, "203.0.113.2", "203.0.113.1"),
                    ("wire2@vt-ovh2", 42, "203.0.113.1", "203.0.113.2"), ("wire2@vt-ovh2", 42, "203.0.113.2", "203.0.113.1"),
                },
                tunnels.Select(t => (t.Item1, t.Item2, t.Item3, t.Item4)).ToHashSet());
            Assert.All(tunnels, t => Assert.InRange(t.Item5, 3, 5));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            LabEnvironment.TryRun("bash", script, "down");
        }
    }

    private static List<string> Interfaces(List<JsonElement> records) =>
        [.. Records(records, "start").Single().GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()!)];

    private static Dictionary<string, long> Paths(List<JsonElement> records) =>
        Records(records, "path").ToDictionary(p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())),
            p => p.GetProperty("journeys").GetInt64());

    /// <summary>
    /// The host veth of a container's interface, as iproute2 shows it: inside, <c>eth1@if123</c> names the peer's
    /// ifindex; on the host, the link with that index.
    /// </summary>
    private static string HostVethOf(string container, string inside)
    {
        string pid = LabEnvironment.Run("docker", "inspect", "-f", "{{.State.Pid}}", container).Trim();
        string line = LabEnvironment.Run("nsenter", $"--net=/proc/{pid}/ns/net", "ip", "-o", "link", "show", "dev", inside);
        string peerIndex = System.Text.RegularExpressions.Regex.Match(line, @"@if(\d+):").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(peerIndex), line);
        string host = LabEnvironment.Run("ip", "-o", "link", "show");
        return System.Text.RegularExpressions.Regex.Match(host, $@"(?m)^{peerIndex}: ([^@:]+)[@:]").Groups[1].Value;
    }
}
