using VethTrace.Capture.Live;
using VethTrace.Cli.Commands;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>The interface registry (ids, names, roles and how each was decided) and the hops follow builds from --hop and --egress.</summary>
public sealed class InterfaceRegistryTests
{
    [Fact]
    public void IdOf_SameKeyTwiceAndASecondEth0_OneIdEachAndEth0Hash2()
    {
        var registry = new InterfaceRegistry();

        int first = registry.IdOf(new InterfaceKey(0, 0, 0), "eth0");
        int veth = registry.IdOf(new InterfaceKey(0, 1, 0), "veth1");
        int again = registry.IdOf(new InterfaceKey(0, 0, 0), "eth0");
        int second = registry.IdOf(new InterfaceKey(1, 0, 0), "eth0");

        Assert.Equal((0, 1, 0, 2), (first, veth, again, second));
        Assert.Equal(["eth0", "veth1", "eth0#2"], registry.Names);
        Assert.Equal([InterfaceRole.Container, InterfaceRole.Veth, InterfaceRole.Container], Enumerable.Range(0, 3).Select(registry.RoleOf));
        Assert.All(Enumerable.Range(0, 3), id => Assert.Equal(RoleSource.Name, registry.RoleSourceOf(id)));
    }

    [Fact]
    public void IdOf_NameGivenAsEgress_EgressRoleGiven()
    {
        var registry = new InterfaceRegistry(egress: "eth0");

        int id = registry.IdOf(new InterfaceKey(0, 0, 0), "eth0");

        Assert.Equal((InterfaceRole.Egress, RoleSource.Given), (registry.RoleOf(id), registry.RoleSourceOf(id)));
    }

    [Fact]
    public void DecideAndReplace_AnotherRoleOrInterface_TakesEffectWithItsSource()
    {
        var registry = new InterfaceRegistry();
        int hop = registry.Add("eth0(web)", InterfaceRole.Container, RoleSource.Topology);
        int other = registry.Add("vethaaa", InterfaceRole.Veth, RoleSource.Topology);

        registry.Decide(other, InterfaceRole.Bridge, RoleSource.Inferred);
        registry.Replace(hop, "eth0(web)", InterfaceRole.Container, RoleSource.Topology);

        Assert.Equal((InterfaceRole.Bridge, RoleSource.Inferred), (registry.RoleOf(other), registry.RoleSourceOf(other)));
        Assert.Equal(["eth0(web)", "vethaaa"], registry.Names);
    }

    [Fact]
    public void ParseHops_HopsOnlyWithEgress_ThatHopIsTheEgressGiven()
    {
        List<HopTarget> hops = LiveTargets.ParseHops(["eth0@/proc/7/ns/net", "vethaaa", "docker0", "uplink1"], egress: "uplink1");

        Assert.Equal([("eth0@7", InterfaceRole.Container, RoleSource.Name), ("vethaaa", InterfaceRole.Veth, RoleSource.Name),
            ("docker0", InterfaceRole.Bridge, RoleSource.Name), ("uplink1", InterfaceRole.Egress, RoleSource.Given)],
            hops.Select(h => (h.DisplayName, h.Role, h.RoleSource)));
    }

    [Fact]
    public void ParseHops_EgressNotAmongTheHops_AddedAfterThem()
    {
        List<HopTarget> hops = LiveTargets.ParseHops(["eth0@/run/netns/c1", "vethaaa", "docker0"], egress: "vt-up0");

        Assert.Equal(["eth0", "vethaaa", "docker0", "vt-up0"], hops.Select(h => h.Interface));
        Assert.Equal((null, InterfaceRole.Egress, RoleSource.Given), (hops[^1].NetworkNamespace, hops[^1].Role, hops[^1].RoleSource));
        // A host interface that looks like a container's eth0 is the uplink, without --egress too.
        Assert.Equal(InterfaceRole.Egress, LiveTargets.ParseHop("eth0").Role);
        Assert.Empty(LiveTargets.ParseHops([], egress: "vt-up0"));
    }
}
