using System.Net;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Tracing;
using static VethTrace.Tests.Topology.RtnetlinkParserTests;

namespace VethTrace.Tests.Topology;

/// <summary>The joining logic of <see cref="ContainerTopology.Build"/> and <see cref="HostInterfaces.Build"/>, over made-up snapshots.</summary>
public sealed class ContainerTopologyTests
{
    private const uint Loopback = 0x49;

    // Host: eth0 (egress, 2), docker0 (3), br-1a2b3c4d5e6f (4), vethaaa (50, peer 7 in ns 0, on docker0),
    // vethbbb (51, peer 8, on br-…), vethzzz (52, peer 5 but its own IFLA_LINK says 9: an index collision).
    private static readonly NamespaceSnapshot Host = new("host", null, "net:[4026531840]",
        [
            LinkRecord("lo", 1, flags: Loopback), LinkRecord("eth0", 2), LinkRecord("docker0", 3, "bridge"), LinkRecord("br-1a2b3c4d5e6f", 4, "bridge"),
            LinkRecord("vethaaa", 50, "veth", link: 7, netnsId: 0, master: 3),
            LinkRecord("vethbbb", 51, "veth", link: 8, netnsId: 0, master: 4),
            LinkRecord("vethzzz", 52, "veth", link: 9, netnsId: 1),
        ],
        [new NetlinkAddress(3, IPAddress.Parse("172.17.0.1"), 16, "docker0")],
        [new NetlinkRoute(2, 0, null, IPAddress.Parse("192.0.2.1"), 2, 254, 1, 0)],
        []);

    [Fact]
    public void Build_TwoNetworks_EachInterfaceWithItsVethAndBridge()
    {
        var inside = new NamespaceSnapshot("pid:100", "/proc/100/ns/net", "net:[4026532000]",
            [LinkRecord("lo", 1, flags: Loopback), LinkRecord("eth0", 7, "veth", link: 50, netnsId: 0), LinkRecord("eth1", 8, "veth", link: 51, netnsId: 0)],
            [new NetlinkAddress(7, IPAddress.Parse("172.17.0.2"), 16, "eth0"), new NetlinkAddress(8, IPAddress.Parse("172.18.0.5"), 16, "eth1")],
            [], []);
        DockerNetworkAttachment[] networks =
        [
            new("bridge", "n1", "172.17.0.2", 16, "172.17.0.1", null, null),
            new("backend", "n2", "172.18.0.5", 16, "172.18.0.1", null, null),
        ];

        ContainerTopology topology = ContainerTopology.Build("web", "abc", "bridge", null, networks, "/proc/100/ns/net", Host, inside);

        Assert.Equal(TopologyShape.Interfaces, topology.Shape);
        Assert.Null(topology.Description);
        Assert.Equal("eth0", topology.Egress);
        Assert.Equal(2, topology.Interfaces.Count);
        IReadOnlyList<NetlinkAddress> addresses = topology.Interfaces[0].Addresses;
        Assert.Equal(new ContainerInterface("eth0", 7, "veth", null, addresses, "vethaaa", 50, "docker0", null, "bridge"), topology.Interfaces[0]);
        Assert.Equal("172.17.0.2/16", Assert.Single(addresses).ToString());
        Assert.Equal(("eth1", "vethbbb", "br-1a2b3c4d5e6f", "backend"),
            (topology.Interfaces[1].Name, topology.Interfaces[1].HostPeer, topology.Interfaces[1].Bridge, topology.Interfaces[1].DockerNetwork));
        // Each interface's path, then the host's egress (the default route's device) once; eth0 inside and eth0 the uplink stay apart.
        Assert.Equal(
            [("eth0", "/proc/100/ns/net", InterfaceRole.Container, "eth0(web)"), ("vethaaa", null, InterfaceRole.Veth, "vethaaa"), ("docker0", null, InterfaceRole.Bridge, "docker0"),
             ("eth1", "/proc/100/ns/net", InterfaceRole.Container, "eth1(web)"), ("vethbbb", null, InterfaceRole.Veth, "vethbbb"), ("br-1a2b3c4d5e6f", null, InterfaceRole.Bridge, "br-1a2b3c4d5e6f"),
             ("eth0", null, InterfaceRole.Egress, "eth0")],
            topology.Hops().Select(h => (h.Interface, h.NetworkNamespace, h.Role, h.DisplayName)));
        Assert.All(topology.Hops(), h => Assert.Equal(RoleSource.Topology, h.RoleSource));
        // --egress replaces the default route's device, and its role is given.
        HopTarget given = topology.Hops("vt-up0")[^1];
        Assert.Equal(("vt-up0", (string?)null, InterfaceRole.Egress, RoleSource.Given), (given.Interface, given.NetworkNamespace, given.Role, given.RoleSource));
    }

    [Fact]
    public void Build_PeerIndexCollidesButDoesNotPointBack_NoHostPeer()
    {
        // eth0's peer ifindex 52 exists on the host, but that veth's IFLA_LINK is 9, not 5: a different pair.
        var inside = new NamespaceSnapshot("netns:x", "/run/netns/x", "net:[9]", [LinkRecord("eth0", 5, "veth", link: 52, netnsId: 0)], [], [], []);

        ContainerTopology topology = ContainerTopology.Build("netns:x", null, null, null, [], "/run/netns/x", Host, inside);

        ContainerInterface only = Assert.Single(topology.Interfaces);
        Assert.Null(only.HostPeer);
        Assert.Null(only.Bridge);
    }

    [Fact]
    public void Build_SameNamespaceAsHost_HostNetworkOnlyEgress()
    {
        ContainerTopology topology = ContainerTopology.Build("h", "id", "host", null, [], "/proc/5/ns/net", Host, Host with { Description = "pid:5" });

        Assert.Equal(TopologyShape.HostNetwork, topology.Shape);
        Assert.Empty(topology.Interfaces);
        Assert.Equal("host network: the container shares the host's interfaces; only the egress hop exists", topology.Description);
        Assert.Equal("eth0", topology.Egress);
    }

    [Fact]
    public void Build_OnlyLoopback_NoNetwork()
    {
        var inside = new NamespaceSnapshot("pid:6", "/proc/6/ns/net", "net:[77]", [LinkRecord("lo", 1, flags: Loopback)], [], [], []);

        ContainerTopology topology = ContainerTopology.Build("n", "id", "none", null, [], "/proc/6/ns/net", Host, inside);

        Assert.Equal(TopologyShape.NoNetwork, topology.Shape);
        Assert.Equal(ContainerTopology.NoNetworkDescription, topology.Description);
    }

    [Fact]
    public void Build_Macvlan_ParentAndNoBridge()
    {
        var inside = new NamespaceSnapshot("pid:7", "/proc/7/ns/net", "net:[78]", [LinkRecord("eth0", 11, "macvlan", link: 2, netnsId: 0)], [], [], []);

        ContainerTopology topology = ContainerTopology.Build("m", "id", "macnet", null, [], "/proc/7/ns/net", Host, inside);

        ContainerInterface only = Assert.Single(topology.Interfaces);
        Assert.Equal(("eth0", (string?)null, (string?)null), (only.Parent, only.HostPeer, only.Bridge));
        Assert.Equal("macvlan on eth0: traced on the parent; there is no bridge hop", topology.Description);
        // The container's side and its parent; the routed egress is not on a macvlan's path unless --egress names one.
        Assert.Equal([("eth0", "/proc/7/ns/net"), ("eth0", null)], topology.Hops().Select(h => (h.Interface, h.NetworkNamespace)));
        Assert.Equal([InterfaceRole.Container, InterfaceRole.Egress], topology.Hops().Select(h => h.Role));
        Assert.Equal("vt-up0", topology.Hops("vt-up0")[^1].Interface);
    }

    [Fact]
    public void Build_TapOnly_RootlessUserModeNetwork_SaysTheLimit()
    {
        // slirp4netns's namespace as the lab saw it (ip -d link: "tun type tap"; IFLA_INFO_KIND "tun"): tap0 with no peer.
        var inside = new NamespaceSnapshot("netns:rl", "/run/netns/rl", "net:[79]", [LinkRecord("lo", 1, flags: Loopback), LinkRecord("tap0", 2, "tun")], [], [], []);

        ContainerTopology topology = ContainerTopology.Build("netns:rl", null, null, null, [], "/run/netns/rl", Host, inside);

        Assert.Equal(("tap0", (string?)null, (string?)null), (Assert.Single(topology.Interfaces).Name, topology.Interfaces[0].HostPeer, topology.Interfaces[0].Parent));
        Assert.Equal("tap0: a tap device, no veth: a user-mode network stack (slirp4netns or pasta, as rootless Podman uses) reads it and sends " +
            "each connection again from its own host socket, so packets are traced inside only, not across the host", topology.Description);
        Assert.Equal([("tap0", "/run/netns/rl"), ("eth0", null)], topology.Hops().Select(h => (h.Interface, h.NetworkNamespace)));
    }

    [Fact]
    public void HostInterfacesBuild_VethsMappedToContainers_TableFitsEightyColumns()
    {
        var web = new DockerContainer(new string('a', 64), "a-container-with-a-rather-long-name", "running", true, 100, "bridge", []);
        var api = new DockerContainer(new string('b', 64), "api", "running", true, 101, "backend", []);
        var hostMode = new DockerContainer(new string('c', 64), "agent", "running", true, 102, "host", []);
        var webNs = new NamespaceSnapshot("pid:100", "/proc/100/ns/net", "net:[10]",
            [LinkRecord("lo", 1, flags: Loopback), LinkRecord("eth0", 7, "veth", link: 50, netnsId: 0)],
            [new NetlinkAddress(7, IPAddress.Parse("172.17.0.2"), 16, "eth0"), new NetlinkAddress(7, IPAddress.Parse("fe80::1"), 64, null)], [], []);
        var apiNs = new NamespaceSnapshot("pid:101", "/proc/101/ns/net", "net:[11]",
            [LinkRecord("eth0", 8, "veth", link: 51, netnsId: 0)], [new NetlinkAddress(8, IPAddress.Parse("172.18.0.5"), 16, "eth0")], [], []);

        HostInterfaceListing listing = HostInterfaces.Build(Host, [(web, webNs), (api, apiNs), (hostMode, Host)],
            ["a warning", "no Docker socket at /a/rather/long/path/to/a/docker.sock (from DOCKER_HOST=unix:///a/rather/long/path/to/a/docker.sock)"]);

        Assert.Equal(["docker0", "br-1a2b3c4d5e6f", "vethaaa", "vethbbb", "vethzzz"], listing.Interfaces.Select(i => i.Name));
        HostInterface vethaaa = listing.Interfaces.Single(i => i.Name == "vethaaa");
        Assert.Equal(("docker0", "a-container-with-a-rather-long-name", "eth0"), (vethaaa.Master, vethaaa.Owner?.ContainerName, vethaaa.Owner?.InterfaceInside));
        Assert.Equal("api", listing.Interfaces.Single(i => i.Name == "vethbbb").Owner?.ContainerName);
        Assert.Null(listing.Interfaces.Single(i => i.Name == "vethzzz").Owner);
        Assert.Equal("agent", Assert.Single(listing.OtherContainers).ContainerName);
        Assert.Equal("eth0", listing.Egress);

        var text = new StringWriter();
        listing.Format(text);
        string[] lines = text.ToString().TrimEnd().Split('\n');
        Assert.All(lines, line => Assert.True(line.Length <= 80, $"{line.Length} columns: {line}"));
        Assert.StartsWith("INTERFACE", lines[0]);
        Assert.StartsWith("br-1a2b3c4d5e6f", lines[1]);
        Assert.StartsWith("vethbbb", lines[2]);
        Assert.Contains("api:eth0 172.18.0.5/16 [backend]", lines[2]);
        Assert.StartsWith("docker0", lines[3]);
        Assert.StartsWith("vethaaa", lines[4]);
        Assert.StartsWith("vethzzz", lines[5]);
        Assert.Contains("agent [host]", lines[6]);
        Assert.Equal("egress: eth0", lines[7]);
        Assert.Equal("warning: a warning", lines[8]);
        Assert.Equal("warning: no Docker socket at /a/rather/long/path/to/a/docker.sock (from", lines[9]);
        Assert.Equal("  DOCKER_HOST=unix:///a/rather/long/path/to/a/docker.sock)", lines[10]);
    }

    [Theory]
    [InlineData("web", TopologyTargetKind.Container, "web")]
    [InlineData("netns:upstream", TopologyTargetKind.NamedNamespace, "upstream")]
    [InlineData("netns:/var/run/netns/x", TopologyTargetKind.NamedNamespace, "/var/run/netns/x")]
    [InlineData("pid:4242", TopologyTargetKind.Process, "4242")]
    public void TargetParse_EachForm_KindAndValue(string text, TopologyTargetKind kind, string value)
    {
        TopologyTarget target = TopologyTarget.Parse(text);

        Assert.Equal((kind, value), (target.Kind, target.Value));
        Assert.Equal(text, target.ToString());
    }

    [Fact]
    public void TargetToNamespace_NameAndPid_SetnsPaths()
    {
        Assert.Equal("/run/netns/upstream", TopologyTarget.Parse("netns:upstream").ToNamespace().Path);
        Assert.Equal("/proc/4242/ns/net", TopologyTarget.Parse("pid:4242").ToNamespace().Path);
    }

    [Theory]
    [InlineData("netns:")]
    [InlineData("netns:a/b")]
    [InlineData("netns:..")]
    [InlineData("pid:")]
    [InlineData("pid:0")]
    [InlineData("pid:-3")]
    [InlineData("pid:12x")]
    [InlineData("")]
    public void TargetParse_Invalid_OneLineInvalidTarget(string text)
    {
        var exception = Assert.Throws<TopologyException>(() => TopologyTarget.Parse(text));

        Assert.Equal(TopologyErrorKind.InvalidTarget, exception.Kind);
    }
}
