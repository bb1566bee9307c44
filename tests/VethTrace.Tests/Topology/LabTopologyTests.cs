using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Topology;
using VethTrace.Tests.Lab;

namespace VethTrace.Tests.Topology;

/// <summary>
/// Container resolution and the interfaces listing on the real Docker lab (tests/lab/lab-up.sh). Expected
/// values come from the lab's state file, or from <c>ip</c> run by the test itself, never from VethTrace.
/// Containers and namespaces a test makes are named vt-topo-* and removed in a finally block.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed partial class LabTopologyTests
{
    private const string Image = "vethtrace/busybox:lab";

    [Fact]
    public async Task ResolveAsync_LabContainerByName_Eth0WithVethBridgeAndAddress()
    {
        var lab = LabEnvironment.Load();
        using DockerClient docker = DockerClient.FromEnvironment();

        ContainerTopology topology = await ContainerTopology.ResolveAsync(lab["C1_NAME"], docker);

        AssertC1(lab, topology);
    }

    [Fact]
    public async Task ResolveAsync_LabContainerByIdPrefix_SameAsByName()
    {
        var lab = LabEnvironment.Load();
        using DockerClient docker = DockerClient.FromEnvironment();

        ContainerTopology topology = await ContainerTopology.ResolveAsync(lab["C1_ID"][..10], docker);

        AssertC1(lab, topology);
    }

    [Fact]
    public async Task ResolveAsync_LabContainer_EgressIsTheDeviceOfIpRouteShowDefault()
    {
        var lab = LabEnvironment.Load();
        string expected = DefaultRouteDevice();
        using DockerClient docker = DockerClient.FromEnvironment();

        ContainerTopology topology = await ContainerTopology.ResolveAsync(lab["C2_NAME"], docker);

        Assert.Equal(expected, topology.Egress);
        ContainerInterface eth0 = Assert.Single(topology.Interfaces);
        Assert.Equal((lab["C2_VETH"], lab["BRIDGE"]), (eth0.HostPeer, eth0.Bridge));
    }

    [Fact]
    public async Task ResolveAsync_NetnsAndPidTargets_OwnVethPairOnOwnBridge()
    {
        const string ns = "vt-topo-test", bridge = "vt-topo-br", hostSide = "vt-topo-h", inside = "vt-topo-c";
        Process? sleeper = null;
        try
        {
            Cleanup(ns, bridge, hostSide);
            LabEnvironment.Run("ip", "netns", "add", ns);
            LabEnvironment.Run("ip", "link", "add", bridge, "type", "bridge");
            LabEnvironment.Run("ip", "link", "add", hostSide, "type", "veth", "peer", "name", inside, "netns", ns);
            LabEnvironment.Run("ip", "link", "set", hostSide, "master", bridge);
            LabEnvironment.Run("ip", "-n", ns, "addr", "add", "10.252.7.2/30", "dev", inside);
            int insideIndex = int.Parse(LabEnvironment.Run("ip", "netns", "exec", ns, "cat", $"/sys/class/net/{inside}/ifindex").Trim(), CultureInfo.InvariantCulture);
            int hostIndex = int.Parse(File.ReadAllText($"/sys/class/net/{hostSide}/ifindex").Trim(), CultureInfo.InvariantCulture);

            ContainerTopology byName = await ContainerTopology.ResolveAsync($"netns:{ns}", docker: null);

            Assert.Equal(($"netns:{ns}", $"/run/netns/{ns}", TopologyShape.Interfaces), (byName.DisplayName, byName.NamespacePath, byName.Shape));
            Assert.Null(byName.ContainerId);
            ContainerInterface veth = Assert.Single(byName.Interfaces);
            Assert.Equal((inside, insideIndex, "veth", hostSide, (int?)hostIndex, bridge), (veth.Name, veth.Index, veth.Kind, veth.HostPeer, veth.HostPeerIndex, veth.Bridge));
            Assert.Equal("10.252.7.2/30", Assert.Single(veth.Addresses, a => a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).ToString());

            sleeper = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", ns, "sleep", "60"]))!;
            WaitUntilInNamespace(sleeper.Id, byName.NamespaceIdentity);
            ContainerTopology byPid = await ContainerTopology.ResolveAsync($"pid:{sleeper.Id}", docker: null);

            Assert.Equal($"pid:{sleeper.Id} (sleep)", byPid.DisplayName);
            Assert.Equal(byName.NamespaceIdentity, byPid.NamespaceIdentity);
            Assert.Equal((inside, hostSide, bridge), (byPid.Interfaces[0].Name, byPid.Interfaces[0].HostPeer, byPid.Interfaces[0].Bridge));
        }
        finally
        {
            if (sleeper is not null)
            {
                sleeper.Kill();
                sleeper.WaitForExit(5_000);
                sleeper.Dispose();
            }
            Cleanup(ns, bridge, hostSide);
        }
    }

    [Fact]
    public async Task ResolveAsync_MissingNamespaceOrProcess_OneLineNamespaceMissing()
    {
        var byName = await Assert.ThrowsAsync<TopologyException>(() => ContainerTopology.ResolveAsync("netns:vt-topo-does-not-exist", null));
        var byPid = await Assert.ThrowsAsync<TopologyException>(() => ContainerTopology.ResolveAsync("pid:999999999", null));

        Assert.Equal(TopologyErrorKind.NamespaceMissing, byName.Kind);
        Assert.Equal("no network namespace named vt-topo-does-not-exist (/run/netns/vt-topo-does-not-exist missing; see ip netns list)", byName.Message);
        Assert.Equal(("no process 999999999", TopologyErrorKind.NamespaceMissing), (byPid.Message, byPid.Kind));
    }

    [Fact]
    public async Task InspectAsync_UnknownName_NotFound()
    {
        LabEnvironment.Load();
        using DockerClient docker = DockerClient.FromEnvironment();

        var exception = await Assert.ThrowsAsync<DockerException>(() => ContainerTopology.ResolveAsync("vt-topo-no-such-container", docker));

        Assert.Equal(DockerErrorKind.NotFound, exception.Kind);
        Assert.Equal("no such container: vt-topo-no-such-container", exception.Message);
    }

    [Fact]
    public async Task InspectAsync_SharedOneCharacterPrefixAndStoppedContainer_AmbiguousAndNotRunning()
    {
        LabEnvironment.Load();
        var created = new List<string>();
        try
        {
            // Make sure some first hex digit is shared by two containers: after 17 IDs one must be (pigeonhole).
            created.Add(Create($"vt-topo-stopped-{Environment.ProcessId}"));
            string? shared = SharedFirstDigit();
            for (int i = 0; shared is null && i < 17; i++)
            {
                created.Add(Create($"vt-topo-amb-{Environment.ProcessId}-{i}"));
                shared = SharedFirstDigit();
            }
            Assert.NotNull(shared);
            using DockerClient docker = DockerClient.FromEnvironment();

            var ambiguous = await Assert.ThrowsAsync<DockerException>(() => docker.InspectAsync(shared));
            var stopped = await Assert.ThrowsAsync<DockerException>(() => ContainerTopology.ResolveAsync($"vt-topo-stopped-{Environment.ProcessId}", docker));

            Assert.Equal(DockerErrorKind.Ambiguous, ambiguous.Kind);
            Assert.StartsWith($"container ID prefix {shared} is ambiguous: it matches ", ambiguous.Message);
            Assert.Equal(DockerErrorKind.NotRunning, stopped.Kind);
            Assert.Equal($"container vt-topo-stopped-{Environment.ProcessId} is not running (state: created)", stopped.Message);
        }
        finally
        {
            foreach (string id in created)
            {
                LabEnvironment.TryRun("docker", "rm", "-f", id);
            }
        }
    }

    [Fact]
    public async Task ResolveAsync_HostNoneAndSharedNetworkModes_DescribedAndResolvedToTheOwner()
    {
        var lab = LabEnvironment.Load();
        string suffix = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        string host = $"vt-topo-host-{suffix}", none = $"vt-topo-none-{suffix}", shared = $"vt-topo-shared-{suffix}";
        try
        {
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", host, "--network", "host", Image, "sleep", "300");
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", none, "--network", "none", Image, "sleep", "300");
            LabEnvironment.Run("docker", "run", "-d", "--pull", "never", "--name", shared, "--network", $"container:{lab["C1_NAME"]}", Image, "sleep", "300");
            using DockerClient docker = DockerClient.FromEnvironment();

            ContainerTopology hostMode = await ContainerTopology.ResolveAsync(host, docker);
            ContainerTopology noneMode = await ContainerTopology.ResolveAsync(none, docker);
            ContainerTopology sharedMode = await ContainerTopology.ResolveAsync(shared, docker);

            Assert.Equal((TopologyShape.HostNetwork, "host"), (hostMode.Shape, hostMode.NetworkMode));
            Assert.Equal("host network: the container shares the host's interfaces; only the egress hop exists", hostMode.Description);
            Assert.Equal(DefaultRouteDevice(), hostMode.Egress);
            Assert.Equal((TopologyShape.NoNetwork, "none"), (noneMode.Shape, noneMode.NetworkMode));
            Assert.Equal(lab["C1_NAME"], sharedMode.SharesNamespaceWith);
            Assert.Equal($"{shared} (in {lab["C1_NAME"]}'s network namespace)", sharedMode.DisplayName);
            ContainerInterface eth0 = Assert.Single(sharedMode.Interfaces);
            Assert.Equal((lab["C1_VETH"], lab["BRIDGE"], "bridge"), (eth0.HostPeer, eth0.Bridge, eth0.DockerNetwork));
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", host, none, shared);
        }
    }

    [Fact]
    public async Task ListAsync_LabHost_VethsOwnedByTheirContainersOnTheBridge()
    {
        var lab = LabEnvironment.Load();
        using DockerClient docker = DockerClient.FromEnvironment();

        HostInterfaceListing listing = await HostInterfaces.ListAsync(docker);

        HostInterface bridge = Assert.Single(listing.Interfaces, i => i.Name == lab["BRIDGE"]);
        Assert.Equal(("bridge", int.Parse(lab["BRIDGE_IFINDEX"], CultureInfo.InvariantCulture)), (bridge.Kind, bridge.Index));
        Assert.Contains(bridge.Addresses, a => a.Address.ToString() == lab["BRIDGE_IP"]);
        foreach (string c in new[] { "C1", "C2" })
        {
            HostInterface veth = Assert.Single(listing.Interfaces, i => i.Name == lab[$"{c}_VETH"]);
            Assert.Equal(("veth", lab["BRIDGE"]), (veth.Kind, veth.Master));
            Assert.Equal(int.Parse(lab[$"{c}_VETH_IFINDEX"], CultureInfo.InvariantCulture), veth.Index);
            VethOwner owner = Assert.IsType<VethOwner>(veth.Owner);
            Assert.Equal((lab[$"{c}_NAME"], lab[$"{c}_ID"], "eth0", "bridge"), (owner.ContainerName, owner.ContainerId, owner.InterfaceInside, owner.NetworkMode));
            Assert.Contains(owner.Addresses, a => a.Address.ToString() == lab[$"{c}_IP"]);
        }
        // The stand-in uplink is a veth without a container: its peer is in the ip-netns namespace "upstream", which
        // names it (issue 19: a namespace no engine knows is named by its netns path).
        VethOwner upstream = Assert.IsType<VethOwner>(Assert.Single(listing.Interfaces, i => i.Name == lab["EGRESS_IF"]).Owner);
        Assert.Equal(($"netns:{lab["UPSTREAM_NS"]}", $"/run/netns/{lab["UPSTREAM_NS"]}", lab["UPSTREAM_IF"], "netns"),
            (upstream.ContainerName, upstream.ContainerId, upstream.InterfaceInside, upstream.NetworkMode));
        Assert.Contains(upstream.Addresses, a => a.Address.ToString() == lab["UPSTREAM_IP"]);
        Assert.Equal(DefaultRouteDevice(), listing.Egress);

        var text = new StringWriter();
        listing.Format(text);
        Assert.Contains(text.ToString().Split('\n'), line => line.StartsWith(lab["C1_VETH"], StringComparison.Ordinal) && line.Contains($"{lab["C1_NAME"]}:eth0 {lab["C1_IP"]}/16"));
    }

    private static void AssertC1(LabEnvironment lab, ContainerTopology topology)
    {
        Assert.Equal((lab["C1_NAME"], lab["C1_ID"], "bridge"), (topology.DisplayName, topology.ContainerId, topology.NetworkMode));
        Assert.Equal(lab["C1_NETNS"], topology.NamespacePath);
        Assert.Equal(TopologyShape.Interfaces, topology.Shape);
        ContainerInterface eth0 = Assert.Single(topology.Interfaces);
        Assert.Equal((lab["C1_IF"], int.Parse(lab["C1_IFINDEX"], CultureInfo.InvariantCulture), "veth"), (eth0.Name, eth0.Index, eth0.Kind));
        Assert.Equal((lab["C1_VETH"], (int?)int.Parse(lab["C1_VETH_IFINDEX"], CultureInfo.InvariantCulture), lab["BRIDGE"]), (eth0.HostPeer, eth0.HostPeerIndex, eth0.Bridge));
        Assert.Equal(lab["C1_MAC"], eth0.HardwareAddress);
        Assert.Equal("bridge", eth0.DockerNetwork);
        Assert.Contains(eth0.Addresses, a => a.Address.ToString() == lab["C1_IP"]);
        Assert.Equal([lab["C1_IF"], lab["C1_VETH"], lab["BRIDGE"], DefaultRouteDevice()], topology.Hops().Select(h => h.Interface));
    }

    /// <summary>The device of <c>ip route show default</c> (the host's real uplink, not the lab's vt-up0).</summary>
    private static string DefaultRouteDevice()
    {
        Match match = DeviceWord().Match(LabEnvironment.Run("ip", "-4", "route", "show", "default"));
        Assert.True(match.Success, "the host has no IPv4 default route");
        return match.Groups[1].Value;
    }

    private static string Create(string name) =>
        LabEnvironment.Run("docker", "create", "--pull", "never", "--name", name, "--network", "none", Image, "true").Trim();

    /// <summary>A first hex digit shared by two or more containers' IDs, or null.</summary>
    private static string? SharedFirstDigit() => LabEnvironment.Run("docker", "ps", "-aq", "--no-trunc")
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .GroupBy(id => id[..1]).FirstOrDefault(group => group.Count() > 1)?.Key;

    private static void WaitUntilInNamespace(int pid, string identity)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        // ip netns exec enters the namespace and then execs the command: wait for both, or the name is still "ip".
        while (NetworkNamespace.ReadIdentity($"/proc/{pid}/ns/net") != identity || File.ReadAllText($"/proc/{pid}/comm").Trim() == "ip")
        {
            Assert.True(DateTime.UtcNow < deadline, $"process {pid} did not enter {identity} and exec its command");
            Thread.Sleep(20);
        }
    }

    private static void Cleanup(string ns, string bridge, string hostSide)
    {
        LabEnvironment.TryRun("ip", "link", "del", hostSide);
        LabEnvironment.TryRun("ip", "link", "del", bridge);
        LabEnvironment.TryRun("ip", "netns", "del", ns);
    }


    [GeneratedRegex(@"\bdev (\S+)")]
    private static partial Regex DeviceWord();
}
