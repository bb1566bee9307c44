namespace VethTrace.Tracing;

/// <summary>Where an interface sits on a Docker host's path, for ordering equal timestamps (docs/DESIGN.md, "Roles").</summary>
public enum InterfaceRole : byte
{
    /// <summary>The container's own interface (eth0 inside its namespace).</summary>
    Container = 0,
    /// <summary>The host end of the container's veth pair.</summary>
    Veth = 1,
    /// <summary>docker0 or a user-defined br-… bridge.</summary>
    Bridge = 2,
    /// <summary>A tunnel device that encapsulates the bridge's frames (vxlan0, Docker's vx-…, flannel.1).</summary>
    Tunnel = 3,
    /// <summary>The host's egress (uplink) or anything else.</summary>
    Egress = 4,
}

/// <summary>An interface's role guessed from its name, for captures and hops that come without a topology.</summary>
public static partial class InterfaceRoles
{
    /// <summary>
    /// vethXXXX is a veth, docker0 and br-… are bridges, vxlanN, vx-… (Docker's overlay), flannel.N and geneveN are
    /// tunnels, <paramref name="egress"/> is the egress, and ethN (or
    /// ethN(container) or ethN@namespace, as follow and record name a container's own interface) is taken for a
    /// container's side;
    /// anything else counts as egress. On a host whose uplink is itself eth0, pass it as <paramref name="egress"/>.
    /// </summary>
    public static InterfaceRole FromName(string name, string? egress = null)
    {
        if (name == egress)
        {
            return InterfaceRole.Egress;
        }
        if (name.StartsWith("veth", StringComparison.Ordinal))
        {
            return InterfaceRole.Veth;
        }
        if (name == "docker0" || name.StartsWith("br-", StringComparison.Ordinal))
        {
            return InterfaceRole.Bridge;
        }
        if (name.StartsWith("vxlan", StringComparison.Ordinal) || name.StartsWith("vx-", StringComparison.Ordinal)
            || name.StartsWith("flannel.", StringComparison.Ordinal) || name.StartsWith("geneve", StringComparison.Ordinal))
        {
            return InterfaceRole.Tunnel;
        }
        return ContainerInterface().IsMatch(name) ? InterfaceRole.Container : InterfaceRole.Egress;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^eth\d+(\(.+\)|@.+)?$")]
    private static partial System.Text.RegularExpressions.Regex ContainerInterface();
}

/// <summary>How an interface's role was decided: what the report can say about how sure it is.</summary>
public enum RoleSource : byte
{
    /// <summary>Guessed from the interface's name (<see cref="InterfaceRoles.FromName"/>).</summary>
    Name = 0,
    /// <summary>Given on the command line (<c>--egress</c>).</summary>
    Given = 1,
    /// <summary>Resolved from the kernel's and Docker's view of the target (follow's hops of a container).</summary>
    Topology = 2,
    /// <summary>Inferred from the traffic the interface carried.</summary>
    Inferred = 3,
}
