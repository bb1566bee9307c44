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
        return TryFromName(name, out InterfaceRole role) ? role : InterfaceRole.Egress;
    }

    /// <summary>
    /// The role <paramref name="name"/> decides by the rules of <see cref="FromName"/>, or false when no rule matches
    /// (<c>if34</c>, <c>wan</c>, <c>web-eth0</c>): <see cref="FromName"/> then takes it for the egress, and the role is
    /// not known (<see cref="RoleSource.Default"/>), so inference from the traffic may decide it.
    /// </summary>
    public static bool TryFromName(string name, out InterfaceRole role)
    {
        role = InterfaceRole.Egress;
        if (name.StartsWith("veth", StringComparison.Ordinal))
        {
            role = InterfaceRole.Veth;
        }
        else if (name == "docker0" || name.StartsWith("br-", StringComparison.Ordinal))
        {
            role = InterfaceRole.Bridge;
        }
        else if (name.StartsWith("vxlan", StringComparison.Ordinal) || name.StartsWith("vx-", StringComparison.Ordinal)
            || name.StartsWith("flannel.", StringComparison.Ordinal) || name.StartsWith("geneve", StringComparison.Ordinal))
        {
            role = InterfaceRole.Tunnel;
        }
        else if (ContainerInterface().IsMatch(name))
        {
            role = InterfaceRole.Container;
        }
        else
        {
            return false;
        }
        return true;
    }

    /// <summary>The role's name on the command line (<c>--role NAME=ROLE</c>) and in reports: container, veth, bridge, tunnel, egress.</summary>
    public static string Name(InterfaceRole role) => role switch
    {
        InterfaceRole.Container => "container",
        InterfaceRole.Veth => "veth",
        InterfaceRole.Bridge => "bridge",
        InterfaceRole.Tunnel => "tunnel",
        _ => "egress",
    };

    /// <summary>A role by its name (<see cref="Name(InterfaceRole)"/>), case-insensitive.</summary>
    public static bool TryParse(string text, out InterfaceRole role)
    {
        foreach (InterfaceRole candidate in Enum.GetValues<InterfaceRole>())
        {
            if (string.Equals(Name(candidate), text, StringComparison.OrdinalIgnoreCase))
            {
                role = candidate;
                return true;
            }
        }
        role = InterfaceRole.Egress;
        return false;
    }

    /// <summary>How a role was decided, as reports say it: name, given, topology, inferred, unknown.</summary>
    public static string Name(RoleSource source) => source switch
    {
        RoleSource.Name => "name",
        RoleSource.Given => "given",
        RoleSource.Topology => "topology",
        RoleSource.Inferred => "inferred",
        _ => "unknown",
    };

    [System.Text.RegularExpressions.GeneratedRegex(@"^eth\d+(\(.+\)|@.+)?$")]
    private static partial System.Text.RegularExpressions.Regex ContainerInterface();
}

/// <summary>How an interface's role was decided: what the report can say about how sure it is.</summary>
public enum RoleSource : byte
{
    /// <summary>Guessed from the interface's name (<see cref="InterfaceRoles.FromName"/>).</summary>
    Name = 0,
    /// <summary>Given on the command line (<c>--role NAME=ROLE</c>, <c>--egress</c>).</summary>
    Given = 1,
    /// <summary>Resolved from the kernel's and Docker's view of the target (follow's hops of a container).</summary>
    Topology = 2,
    /// <summary>Inferred from the traffic the interface carried (<see cref="RoleInference"/>).</summary>
    Inferred = 3,
    /// <summary>
    /// Not known: no rule of <see cref="InterfaceRoles.TryFromName"/> matched and nothing else decided it, so it counts as
    /// the egress (<see cref="InterfaceRoles.FromName"/>) until inference decides it.
    /// </summary>
    Default = 4,
}
