using System.Globalization;
using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;
using static VethTrace.Tests.Lab.LiveScenarioTests;

namespace VethTrace.Tests.Lab;

/// <summary>A lab test that needs Debian's containernetworking-plugins: skipped (and only then) when they are not installed.</summary>
public sealed class CniFactAttribute : FactAttribute
{
    public CniFactAttribute()
    {
        if (!File.Exists(CniLabTests.BridgePlugin))
        {
            Skip = $"{CniLabTests.BridgePlugin} missing: install containernetworking-plugins (tests/lab/install.sh does)";
        }
    }
}

/// <summary>
/// Issue 19: a Kubernetes-style CNI bridge node (tests/lab/cni-up.sh): cni0 10.244.77.0/24, two pods whose namespaces
/// the bridge and host-local plugins wired (invoked as a runtime does), the bridge plugin's ipMasq to the lab's
/// upstream, and a VXLAN device vtcni.1 (flannel's VNI 1 and port 8472, a name no rule knows) to a second node. No
/// engine knows any of it. The expected answers come from cni-up.sh's state (iproute2's view), dumpcap captures read by
/// tshark and tests/lab/derive-journeys.py, and the files the plugins wrote; never from VethTrace.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class CniLabTests
{
    public const string BridgePlugin = "/usr/lib/cni/bridge";
    private const string Bridge = "cni0";

    [CniFact]
    public async Task FollowNetns_CniPod_TopologyRolesAndMasqueradeToUpstream()
    {
        var lab = LabEnvironment.Load();
        var cni = LoadCni();
        string pod = cni["CNI_POD1_NETNS"], veth = cni["CNI_POD1_VETH"], ip = cni["CNI_POD1_IP"];
        string onEgressFile = TempFile("egress"), inPodFile = TempFile("pod");
        try
        {
            // 20 + 8 + 131 = 159 bytes of IP: the filter tells these pings from any other on vt-up0.
            List<JsonElement> records;
            using (var inPod = new DumpcapSession(inPodFile, $"/run/netns/{pod}", "eth0"))
            using (var onEgress = new DumpcapSession(onEgressFile, null, lab["EGRESS_IF"]))
            {
                records = await FollowAsync(["follow", $"netns:{pod}", "--egress", lab["EGRESS_IF"], "--filter", "icmp and ip[2:2] = 159"], () =>
                    Ping(pod, lab["UPSTREAM_IP"], 3, 131));
                inPod.Stop();
                onEgress.Stop();
            }
            string eth0 = $"eth0(netns:{pod})";
            Assert.Equal([eth0, veth, Bridge, lab["EGRESS_IF"]], Interfaces(records));
            // cni0 is no name VethTrace knows: its role is the topology's (the pod's veth peer and that veth's master).
            var roles = Records(records, "role").ToDictionary(r => r.GetProperty("interface").GetString()!,
                r => $"{r.GetProperty("role").GetString()} {r.GetProperty("decided_by").GetString()}");
            Assert.Equal("bridge topology", roles[Bridge]);
            Assert.Equal("veth topology", roles[veth]);
            Assert.Equal("container topology", roles[eth0]);
            // Independently: tshark counts 3 requests and 3 replies in the pod, and on vt-up0 the requests leave
            // MASQUERADEd to the egress address.
            Assert.Equal(6, TsharkCount(inPodFile, "icmp && ip.len == 159"));
            string sources = LabEnvironment.Run("tshark", "-r", onEgressFile, "-Y", "icmp.type == 8 && ip.len == 159", "-T", "fields", "-e", "ip.src");
            Assert.Equal([lab["EGRESS_IP"], lab["EGRESS_IP"], lab["EGRESS_IP"]], sources.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            var paths = Paths(records);
            Assert.Equal(3, paths.GetValueOrDefault($"{eth0} {veth} {Bridge} {lab["EGRESS_IF"]}"));
            Assert.Equal(3, paths.GetValueOrDefault($"{lab["EGRESS_IF"]} {Bridge} {veth} {eth0}"));
            JsonElement nat = Assert.Single(Records(records, "nat"));
            Assert.Equal(("snat", "icmp", ip, lab["EGRESS_IP"], 6L), (nat.GetProperty("kind").GetString(), nat.GetProperty("proto").GetString(),
                nat.GetProperty("inside").GetString(), nat.GetProperty("outside").GetString(), nat.GetProperty("packets").GetInt64()));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            File.Delete(onEgressFile);
            File.Delete(inPodFile);
        }
    }

    [CniFact]
    public async Task FollowWholeHost_CniNode_PathsAsDerivedFromDumpcap_PodsNamed_TunnelByKind()
    {
        var lab = LabEnvironment.Load();
        var cni = LoadCni();
        string pod1 = cni["CNI_POD1_NETNS"], pod2 = cni["CNI_POD2_NETNS"], veth1 = cni["CNI_POD1_VETH"], veth2 = cni["CNI_POD2_VETH"];
        string tunnel = cni["CNI_VXLAN"], egress = lab["EGRESS_IF"];
        // How follow must name the pods' veths: pod 1 by the Kubernetes name its CNI cache holds, pod 2 by the container
        // id in host-local's lease (cni-up.sh wrote both, the plugins the lease).
        string name1 = $"{veth1}({cni["CNI_POD1_K8S_NAME"]})", name2 = $"{veth2}({cni["CNI_POD2_ID"]})";
        string raw = TempFile("host"), marked = TempFile("host-marked"), topology = Path.ChangeExtension(raw, ".tsv"), derived = Path.ChangeExtension(raw, ".json");
        // 20 + 8 + 159 = 187 bytes of IP.
        const string Filter = "icmp and ip[2:2] = 187";
        try
        {
            var output = new StringWriter();
            var error = new StringWriter();
            using (var dumpcap = new DumpcapSession(raw, null, veth1, veth2, Bridge, egress, tunnel))
            {
                var follow = Task.Run(() => VethTraceCommand.Run(["follow", "--egress", egress, "--duration", "9s", "--format", "json", "--filter", Filter], output, error));
                for (int i = 0; i < 200 && !output.ToString().Contains("\"type\":\"start\"", StringComparison.Ordinal); i++)
                {
                    await Task.Delay(100);
                }
                await Task.Delay(1000);
                Ping(pod1, lab["UPSTREAM_IP"], 3, 159);           // MASQUERADE to the upstream
                Ping(pod2, cni["CNI_VXLAN_REMOTE_IP"], 3, 159);   // to the other node, through the VXLAN device
                Ping(pod1, cni["CNI_POD2_IP"], 3, 159);           // east-west on cni0
                ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
                Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
                dumpcap.Stop();
            }
            var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();

            // The expected journeys: tshark keeps the marked pings, derive-journeys.py groups them, bridge copies as side
            // copies. The tree as the node routes: vtcni.1 is no port of cni0 (flannel.1 is not enslaved, packets are
            // routed to it), so both hang off the host's routing, given as the egress; the role order would make the
            // tunnel a bridge port (Docker's overlay) and cni0's routed copy a side copy.
            LabEnvironment.Run("tshark", "-r", raw, "-Y", "ip.len == 187", "-w", marked);
            File.WriteAllText(topology, "# key\tname\tlabel\trole\tattach\n" +
                $"0\t{veth1}\t{name1}\tveth\t\n1\t{veth2}\t{name2}\tveth\t\n2\t{Bridge}\t{Bridge}\tbridge\t{egress}\n3\t{egress}\t{egress}\tegress\t\n4\t{tunnel}\t{tunnel}\ttunnel\t{egress}\n");
            LabEnvironment.Run("python3", Path.Combine(CaptureCorpus.RepositoryRoot, "tests", "lab", "derive-journeys.py"), "--topology", topology,
                "--bridge-copies", "side", "--out", derived, marked);
            using JsonDocument expected = JsonDocument.Parse(File.ReadAllText(derived));
            var expectedPaths = expected.RootElement.GetProperty("paths").EnumerateArray().ToDictionary(
                p => string.Join(' ', p.GetProperty("path").EnumerateArray().Select(i => i.GetString())), p => p.GetProperty("journeys").GetInt64());
            // Sanity of the derivation itself: the three flows each way, 3 journeys each.
            Assert.Equal(6, expectedPaths.Count);
            Assert.All(expectedPaths.Values, n => Assert.Equal(3, n));

            var actualPaths = Records(records, "path").ToDictionary(
                p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())), p => p.GetProperty("journeys").GetInt64());
            Assert.Equal(expectedPaths.OrderBy(p => p.Key, StringComparer.Ordinal), actualPaths.OrderBy(p => p.Key, StringComparer.Ordinal));
            // East-west: cni0's copy of each bridged frame is a side copy, as the derivation found.
            Assert.Equal(6, expected.RootElement.GetProperty("summary").GetProperty("journeys_with_bridge_side_copy").GetInt64());
            foreach (JsonElement path in Records(records, "path").Where(p => p.GetProperty("interfaces").GetArrayLength() == 2))
            {
                JsonElement side = Assert.Single(path.GetProperty("side_copies").EnumerateArray());
                Assert.Equal((Bridge, 3L), (side.GetProperty("interface").GetString(), side.GetProperty("journeys").GetInt64()));
            }

            // Roles from the topology: cni0 (a bridge by kind), the pods' veths (its ports), vtcni.1 (VXLAN by kind).
            var roles = Records(records, "role").ToDictionary(r => r.GetProperty("interface").GetString()!,
                r => $"{r.GetProperty("role").GetString()} {r.GetProperty("decided_by").GetString()}");
            Assert.Equal("bridge topology", roles[Bridge]);
            Assert.Equal("tunnel topology", roles[tunnel]);
            Assert.Equal("veth topology", roles[name1]);
            Assert.Equal("veth topology", roles[name2]);
            // The pods as containers of their own, with the upstream MASQUERADE as tshark saw it on vt-up0.
            var containers = Records(records, "container").ToDictionary(r => r.GetProperty("name").GetString()!);
            Assert.Equal(cni["CNI_NET"], containers[cni["CNI_POD1_K8S_NAME"]].GetProperty("network").GetString());
            Assert.Equal(cni["CNI_NET"], containers[cni["CNI_POD2_ID"]].GetProperty("network").GetString());
            string sources = LabEnvironment.Run("tshark", "-r", marked, "-Y", $"frame.interface_name == \"{egress}\" && icmp.type == 8", "-T", "fields", "-e", "ip.src");
            Assert.Equal([lab["EGRESS_IP"], lab["EGRESS_IP"], lab["EGRESS_IP"]], sources.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            var nat = Records(records, "nat").ToDictionary(r => r.GetProperty("inside").GetString()!);
            Assert.Equal((lab["EGRESS_IP"], cni["CNI_POD1_K8S_NAME"]), (nat[cni["CNI_POD1_IP"]].GetProperty("outside").GetString(),
                nat[cni["CNI_POD1_IP"]].GetProperty("container").GetString()));
            Assert.Empty(Records(records, "loss"));
        }
        finally
        {
            foreach (string file in new[] { raw, marked, topology, derived })
            {
                File.Delete(file);
            }
        }
    }

    [CniFact]
    public void Interfaces_CniPods_NamedFromTheResultCache_TheLease_OrTheNetnsPath_TunnelListed()
    {
        LabEnvironment.Load();
        var cni = LoadCni();
        // What the runtime and the plugin wrote, read here without VethTrace: the cache holds the Kubernetes pod name
        // (cni-up.sh passed it as CNI_ARGS), host-local's lease holds pod 2's container id and interface.
        string cache = Path.Combine(cni["CNI_CACHE"], $"{cni["CNI_NET"]}-{cni["CNI_POD1_ID"]}-eth0");
        Assert.Contains("[\"K8S_POD_NAME\", \"web\"]", File.ReadAllText(cache), StringComparison.Ordinal);
        string lease = $"/var/lib/cni/networks/{cni["CNI_NET"]}/{cni["CNI_POD2_IP"]}";
        Assert.Equal([cni["CNI_POD2_ID"], "eth0"], File.ReadAllText(lease).Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries));
        Assert.False(File.Exists(Path.Combine(cni["CNI_CACHE"], $"{cni["CNI_NET"]}-{cni["CNI_POD2_ID"]}-eth0")));

        var output = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["interfaces"], output, new StringWriter()));
        string text = output.ToString();
        string[] lines = text.Split('\n');
        string Row(string name) => Assert.Single(lines, l => l.StartsWith(name + " ", StringComparison.Ordinal));
        // A row is clipped at 79 columns and an ellipsis: compared up to there.
        static string Clipped(string row) => row.Length <= 79 ? row : row[..79];
        Assert.StartsWith(Clipped($"{cni["CNI_POD1_VETH"].PadRight(16)} veth   {Bridge.PadRight(16)} up    {cni["CNI_POD1_K8S_NAME"]}:eth0 {cni["CNI_POD1_IP"]}/24"),
            Row(cni["CNI_POD1_VETH"]), StringComparison.Ordinal);
        Assert.StartsWith(Clipped($"{cni["CNI_POD2_VETH"].PadRight(16)} veth   {Bridge.PadRight(16)} up    {cni["CNI_POD2_ID"]}:eth0 {cni["CNI_POD2_IP"]}/24"),
            Row(cni["CNI_POD2_VETH"]), StringComparison.Ordinal);
        Assert.StartsWith($"{cni["CNI_VXLAN"].PadRight(16)} vxlan  -                unkn  tunnel", Row(cni["CNI_VXLAN"]), StringComparison.Ordinal);
        Assert.EndsWith("tunnel 10.244.78.1/24", Row(cni["CNI_VXLAN"]).TrimEnd(), StringComparison.Ordinal);
        // The source of each name, on the lines after the table (wrapped at 80 columns: compared without the wrapping).
        string flat = string.Join(' ', text.Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"{cni["CNI_POD1_VETH"]}: eth0 of {cni["CNI_POD1_K8S_NAME"]} in /run/netns/{cni["CNI_POD1_NETNS"]}, CNI network {cni["CNI_NET"]}, " +
            $"container {cni["CNI_POD1_ID"]} (name from the CNI result cache {cache})", flat, StringComparison.Ordinal);
        Assert.Contains($"{cni["CNI_POD2_VETH"]}: eth0 of {cni["CNI_POD2_ID"]} in /run/netns/{cni["CNI_POD2_NETNS"]}, CNI network {cni["CNI_NET"]}, " +
            $"container {cni["CNI_POD2_ID"]} (name from the host-local lease {lease})", flat, StringComparison.Ordinal);
        // A namespace with no CNI file at all (the second node's underlay) is named by its netns path.
        Assert.Contains("vtcni-ul0: ul0 of netns:cni19-node2 in /run/netns/cni19-node2 (name from the netns path /run/netns/cni19-node2)", flat, StringComparison.Ordinal);
    }

    /// <summary>The CNI node's state file (tests/lab/cni-up.sh); fails with the way to bring it up.</summary>
    internal static Dictionary<string, string> LoadCni()
    {
        string path = Path.Combine(Path.GetDirectoryName(Environment.GetEnvironmentVariable(LabEnvironment.EnvironmentVariable) ?? "/run/vethtrace-lab/env")!, "cni.env");
        Assert.True(File.Exists(path), $"the CNI node is not up ({path} missing): tests/lab/lab-up.sh brings it up (tests/lab/cni-up.sh alone also does)");
        return File.ReadLines(path).Where(l => !l.StartsWith('#') && l.Contains('='))
            .ToDictionary(l => l[..l.IndexOf('=')], l => l[(l.IndexOf('=') + 1)..]);
    }

    private static void Ping(string pod, string address, int count, int size) =>
        LabEnvironment.Run("ip", "netns", "exec", pod, "busybox", "ping", "-c", count.ToString(CultureInfo.InvariantCulture), "-i", "0.3",
            "-s", size.ToString(CultureInfo.InvariantCulture), "-W", "2", address);

    private static string TempFile(string name) => Path.Combine(Path.GetTempPath(), $"cni19-{name}-{Guid.NewGuid():N}.pcapng");

    private static List<string> Interfaces(List<JsonElement> records) =>
        [.. Records(records, "start").Single().GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()!)];

    private static Dictionary<string, long> Paths(List<JsonElement> records) =>
        Records(records, "path").ToDictionary(p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())),
            p => p.GetProperty("journeys").GetInt64());
}
