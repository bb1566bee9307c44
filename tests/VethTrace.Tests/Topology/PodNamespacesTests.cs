using System.Net;
using VethTrace.Capture.Files;
using VethTrace.Capture.Topology;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Tests.Captures;
using VethTrace.Tracing;
using static VethTrace.Tests.Topology.RtnetlinkParserTests;

namespace VethTrace.Tests.Topology;

/// <summary>
/// Naming pods from CNI files (issue 19). The files under Topology/cni are the lab's own (tests/lab/cni-up.sh): the
/// bridge plugin's host-local leases as it wrote them, and the libcni-format result cache cni-up.sh wrote for pod 1
/// with the Kubernetes pod name in its cniArgs.
/// </summary>
public sealed class PodNamespacesTests
{
    private static readonly string Fixture = Path.Combine(CaptureCorpus.RepositoryRoot, "tests", "VethTrace.Tests", "Topology", "cni");

    // Host: cni0 (3, bridge), veth1 (40, peer 2 in ns 0, on cni0), veth2 (41, peer 2 in ns 1, on cni0), veth3 (42, peer 2, on cni0).
    private static readonly NamespaceSnapshot Host = new("host", null, "net:[1]",
        [
            LinkRecord("cni0", 3, "bridge"),
            LinkRecord("veth1", 40, "veth", link: 2, netnsId: 0, master: 3),
            LinkRecord("veth2", 41, "veth", link: 2, netnsId: 1, master: 3),
            LinkRecord("veth3", 42, "veth", link: 2, netnsId: 2, master: 3),
        ], [], [], []);

    private static NamespaceSnapshot Pod(string path, string identity, int peer, string address) =>
        new(path, path, identity, [LinkRecord("lo", 1, flags: 0x49), LinkRecord("eth0", 2, "veth", link: peer, netnsId: 0)],
            [new NetlinkAddress(2, IPAddress.Parse(address), 24, "eth0")], [], []);

    [Fact]
    public void ReadCni_LabFiles_TheCacheWithItsPodName_AndEveryLease_NotTheBookkeeping()
    {
        IReadOnlyList<CniRecord> records = PodNamespaces.ReadCni(Fixture);

        Assert.Equal(3, records.Count);   // the cache, two leases; last_reserved_ip.0 is no lease
        CniRecord cache = records[0];
        Assert.Equal(("vtcni-cni19-pod1", "vtcni", "eth0", "/run/netns/cni19-pod1", "cni19/web"),
            (cache.ContainerId, cache.Network, cache.InterfaceName, cache.Namespace, cache.PodName));
        Assert.Equal([IPAddress.Parse("10.244.77.2")], cache.Addresses);
        CniRecord lease = Assert.Single(records, r => r.Source.EndsWith("/10.244.77.3", StringComparison.Ordinal));
        // host-local writes "<id>\r\n<ifname>".
        Assert.Equal(("vtcni-cni19-pod2", "vtcni", "eth0", (string?)null, (string?)null), (lease.ContainerId, lease.Network, lease.InterfaceName, lease.Namespace, lease.PodName));
    }

    [Fact]
    public void ReadCache_NotACniCache_IsSkippedWithoutAnException()
    {
        string directory = Directory.CreateTempSubdirectory("cni19-").FullName;
        try
        {
            string results = Directory.CreateDirectory(Path.Combine(directory, "results")).FullName;
            File.WriteAllText(Path.Combine(results, "truncated"), "{\"kind\":\"cniCacheV1\",\"containerId\":");
            File.WriteAllText(Path.Combine(results, "other-kind"), "{\"kind\":\"somethingElse\",\"containerId\":\"a\",\"networkName\":\"n\"}");
            File.WriteAllText(Path.Combine(results, "no-network"), "{\"kind\":\"cniCacheV1\",\"containerId\":\"a\"}");
            File.WriteAllText(Path.Combine(results, "bad-args"), "{\"kind\":\"cniCacheV1\",\"containerId\":\"a\",\"networkName\":\"n\",\"cniArgs\":[[\"K8S_POD_NAME\"],5,[1,2]],\"result\":{\"ips\":[{\"address\":7}]}}");

            CniRecord only = Assert.Single(PodNamespaces.ReadCni(directory));
            Assert.Equal(("a", "n", (string?)null), (only.ContainerId, only.Network, only.PodName));
            Assert.Empty(only.Addresses);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Build_NamesEachPodVeth_FromTheCache_TheLease_OrTheNetnsPath()
    {
        IReadOnlyList<CniRecord> records = PodNamespaces.ReadCni(Fixture);
        NamespaceSnapshot[] spaces =
        [
            Pod("/run/netns/cni19-pod1", "net:[11]", 40, "10.244.77.2"),
            Pod("/run/netns/cni19-pod2", "net:[12]", 41, "10.244.77.3"),
            Pod("/run/netns/plain", "net:[13]", 42, "10.244.77.9"),
            Pod("/run/netns/host-again", "net:[1]", 40, "10.244.77.2"),   // the host's own namespace pinned: skipped
        ];

        var pods = PodNamespaces.Build(Host, spaces, records).ToDictionary(p => p.HostName);

        Assert.Equal(3, pods.Count);
        Assert.Equal(("cni19/web", "vtcni-cni19-pod1", "eth0"), (pods["veth1"].Name, pods["veth1"].Cni!.ContainerId, pods["veth1"].InterfaceInside));
        Assert.Equal($"CNI result cache {Path.Combine(Fixture, "results", "vtcni-vtcni-cni19-pod1-eth0")}", pods["veth1"].NameSource);
        Assert.Equal("vtcni-cni19-pod2", pods["veth2"].Name);
        Assert.Equal($"host-local lease {Path.Combine(Fixture, "networks", "vtcni", "10.244.77.3")}", pods["veth2"].NameSource);
        Assert.Equal(("netns:plain", (CniRecord?)null, "netns path /run/netns/plain"), (pods["veth3"].Name, pods["veth3"].Cni, pods["veth3"].NameSource));
    }

    [Fact]
    public void Build_APeerWhoseIndexOnlyCollides_IsNotNamed()
    {
        // The pod's eth0 says its peer is 40, but host link 40 says its peer is 7: not this pod's veth.
        var space = new NamespaceSnapshot("/run/netns/x", "/run/netns/x", "net:[20]", [LinkRecord("eth0", 7, "veth", link: 40, netnsId: 0)], [], [], []);
        Assert.Empty(PodNamespaces.Build(Host, [space], []));
    }

    [Fact]
    public void Listing_WithPods_FillsOnlyUnnamedVeths_AndSaysTheSource_TunnelsListed()
    {
        var host = new NamespaceSnapshot("host", null, "net:[1]",
            [
                LinkRecord("cni0", 3, "bridge"),
                LinkRecord("veth1", 40, "veth", link: 2, netnsId: 0, master: 3),
                LinkRecord("flannel.1", 44, "vxlan"),
            ],
            [new NetlinkAddress(44, IPAddress.Parse("10.244.0.0"), 32, "flannel.1")], [], []);
        HostInterfaceListing listing = HostInterfaces.Build(host, [], []);
        IReadOnlyList<PodVeth> pods = PodNamespaces.Build(host, [Pod("/run/netns/cni19-pod1", "net:[11]", 40, "10.244.77.2")], PodNamespaces.ReadCni(Fixture));

        var output = new StringWriter();
        HostInterfaces.WithPods(listing, pods).Format(output);

        string[] lines = output.ToString().Split('\n');
        // Clipped at 80 columns: the network mode "[cni vtcni]" is cut, the name and address are not.
        Assert.Equal("veth1            veth   cni0             up    cni19/web:eth0 10.244.77.2/24 [c…", Assert.Single(lines, l => l.StartsWith("veth1 ", StringComparison.Ordinal)));
        Assert.Equal("flannel.1        vxlan  -                up    tunnel 10.244.0.0/32", Assert.Single(lines, l => l.StartsWith("flannel.1", StringComparison.Ordinal)));
        string flat = string.Join(' ', output.ToString().Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"veth1: eth0 of cni19/web in /run/netns/cni19-pod1, CNI network vtcni, container vtcni-cni19-pod1 (name from the CNI result cache {Fixture}/results/vtcni-vtcni-cni19-pod1-eth0)", flat, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(InterfaceRole.Tunnel, "tunnel of the whole host")]
    [InlineData(InterfaceRole.Veth, "host veth of the whole host")]
    public void HostInterfaceDescription_Tunnel_RoundTrips(InterfaceRole role, string text)
    {
        Assert.Equal(text, HostInterfaceDescription.Format(role, null, null, []));
        Assert.True(HostInterfaceDescription.TryParse(text, out InterfaceRole parsed, out _));
        Assert.Equal(role, parsed);
    }
}
