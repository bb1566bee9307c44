using VethTrace.Capture.Docker;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>The hops to capture for a target (a container, netns:NAME, pid:N), from its resolved topology.</summary>
public static class LiveTargets
{
    public sealed record Resolution(IReadOnlyList<HopTarget> Hops, string Description, ContainerTopology Topology);

    /// <summary>Resolves the target; throws <see cref="DockerException"/> or <see cref="TopologyException"/> with one line.</summary>
    public static async Task<Resolution> ResolveAsync(string target, string? egress, CancellationToken cancel)
    {
        DockerClient? docker = TopologyTarget.Parse(target).Kind == TopologyTargetKind.Container ? DockerClient.FromEnvironment() : null;
        ContainerTopology topology = await ContainerTopology.ResolveAsync(target, docker, cancel);
        string name = topology.SharesNamespaceWith ?? topology.DisplayName;
        var hops = new List<HopTarget>();
        void Add(HopTarget hop)
        {
            if (!hops.Exists(h => h.Interface == hop.Interface && h.NetworkNamespace == hop.NetworkNamespace))
            {
                hops.Add(hop);
            }
        }
        if (topology.Shape == TopologyShape.Interfaces)
        {
            foreach (ContainerInterface inside in topology.Interfaces)
            {
                Add(new HopTarget(inside.Name, topology.NamespacePath, InterfaceRole.Container, $"{inside.Name}({ShortName(name)})"));
                if (inside.HostPeer is not null)
                {
                    Add(new HopTarget(inside.HostPeer, null, InterfaceRole.Veth, inside.HostPeer));
                }
                if (inside.Bridge is not null)
                {
                    Add(new HopTarget(inside.Bridge, null, InterfaceRole.Bridge, inside.Bridge));
                }
                if (inside.Parent is not null)
                {
                    Add(new HopTarget(inside.Parent, null, InterfaceRole.Egress, inside.Parent));
                }
            }
        }
        // A macvlan or ipvlan container sends straight out of its parent: the host's routed egress is not on its
        // path (unless --egress names one anyway).
        string? egressInterface = egress ?? (topology.SubInterfacesOnly ? null : topology.Egress);
        if (topology.Shape != TopologyShape.NoNetwork && egressInterface is not null)
        {
            Add(new HopTarget(egressInterface, null, InterfaceRole.Egress, egressInterface));
        }
        string description = topology.DisplayName
            + (topology.NetworkMode is { } mode && topology.SharesNamespaceWith is null ? $" (network mode {mode})" : "")
            + (topology.Description is { } more ? $": {more}" : "");
        return new Resolution(hops, description, topology);
    }

    private static string ShortName(string name) => name.StartsWith('/') ? name[1..] : name;
}
