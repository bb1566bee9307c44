using System.Net;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Tracing;

namespace VethTrace.Capture.Topology;

/// <summary>How a target's namespace is wired to the host.</summary>
public enum TopologyShape : byte
{
    /// <summary>Its own namespace with one or more interfaces (veth to a bridge, macvlan, …).</summary>
    Interfaces,
    /// <summary>Docker's host mode, or any target whose namespace is the host's: only the egress hop exists.</summary>
    HostNetwork,
    /// <summary>Only <c>lo</c>: no packet can leave.</summary>
    NoNetwork,
}

/// <summary>One non-loopback interface inside the target's namespace and where it leads on the host.</summary>
/// <param name="Index">Its ifindex inside the namespace.</param>
/// <param name="Kind">IFLA_INFO_KIND: veth, macvlan, ipvlan, vxlan, …; null for a device without one.</param>
/// <param name="HostPeer">For a veth: the host-side veth (whose ifindex is this one's IFLA_LINK); null when the peer is not in the host namespace.</param>
/// <param name="Bridge">The host veth's master (docker0, br-&lt;id&gt;), null when it has none.</param>
/// <param name="Parent">For macvlan/ipvlan: the parent device on the host (IFLA_LINK); there is no bridge hop.</param>
/// <param name="DockerNetwork">The Docker network this interface belongs to, matched by IP or MAC address.</param>
public sealed record ContainerInterface(
    string Name,
    int Index,
    string? Kind,
    string? HardwareAddress,
    IReadOnlyList<NetlinkAddress> Addresses,
    string? HostPeer,
    int? HostPeerIndex,
    string? Bridge,
    string? Parent,
    string? DockerNetwork);

/// <summary>
/// Where a container's (or a namespace's) packets go: its interfaces, each one's host veth and bridge, and the
/// host egress (the default route's device). Build one with <see cref="ResolveAsync"/>.
/// </summary>
/// <param name="DisplayName">The container's name, or <c>netns:NAME</c> / <c>pid:N (comm)</c>; for container:X mode both names.</param>
/// <param name="NamespacePath">The file to setns(2) into to capture on the interfaces inside (<c>/proc/PID/ns/net</c>).</param>
/// <param name="Egress">The host's default-route device; the caller replaces it with <c>--egress</c> when given.</param>
/// <param name="Description">One line for host and none modes (and macvlan), null otherwise.</param>
public sealed record ContainerTopology(
    string DisplayName,
    string? ContainerId,
    string? NetworkMode,
    string? SharesNamespaceWith,
    string NamespacePath,
    string NamespaceIdentity,
    TopologyShape Shape,
    IReadOnlyList<ContainerInterface> Interfaces,
    string? Egress,
    string? Description)
{
    /// <summary>
    /// Every interface is a macvlan/ipvlan-style sub-interface of a host device (no veth): packets leave straight
    /// through the parent, with no bridge hop and not through the host's routed egress.
    /// </summary>
    public bool SubInterfacesOnly => IsSubInterfacesOnly(Interfaces);

    private static bool IsSubInterfacesOnly(IReadOnlyList<ContainerInterface> interfaces) =>
        interfaces.Count > 0 && interfaces.All(i => i.Parent is not null && i.HostPeer is null);

    public const string HostNetworkDescription = "host network: the container shares the host's interfaces; only the egress hop exists";
    public const string NoNetworkDescription = "no network: the container has only lo, so no packet can leave it";

    /// <summary>Rootless Podman (slirp4netns, pasta) and rootless Docker: a tap device with a user-mode stack behind it, no veth on the host.</summary>
    public const string UserModeDescription = "{0}: a tap device, no veth: a user-mode network stack (slirp4netns or pasta, as rootless Podman uses) " +
        "reads it and sends each connection again from its own host socket, so packets are traced inside only, not across the host";

    /// <summary>
    /// Resolves a target: a container name or ID prefix (through <paramref name="docker"/>), <c>netns:NAME</c> or
    /// <c>pid:N</c>. Throws <see cref="DockerException"/> or <see cref="TopologyException"/>, each with a one-line message.
    /// <paramref name="host"/>: the host's links as read once for a batch of targets (whole-host follow maps every
    /// running container at the start: a host dump per container, each of every veth on the host, made the start cost
    /// grow with the square of the containers); null reads them now.
    /// </summary>
    public static async Task<ContainerTopology> ResolveAsync(string target, DockerClient? docker, CancellationToken cancellationToken = default,
        NamespaceSnapshot? host = null)
    {
        TopologyTarget parsed = TopologyTarget.Parse(target);
        string displayName;
        string? containerId = null, networkMode = null, sharedWith = null;
        IReadOnlyList<DockerNetworkAttachment> attachments = [];
        NetworkNamespace space;
        switch (parsed.Kind)
        {
            case TopologyTargetKind.Container:
                if (docker is null)
                {
                    throw new TopologyException(TopologyErrorKind.InvalidTarget, $"'{target}' names a container, but no Docker client was given");
                }
                DockerContainer container = await docker.InspectAsync(parsed.Value, requireRunning: true, cancellationToken).ConfigureAwait(false);
                displayName = container.Name;
                containerId = container.Id;
                networkMode = container.NetworkMode;
                attachments = container.Networks;
                if (networkMode.StartsWith("container:", StringComparison.Ordinal))
                {
                    // The container runs in X's namespace: its own PID's namespace is X's, but name X and use X's networks.
                    DockerContainer owner = await docker.InspectAsync(networkMode["container:".Length..], requireRunning: true, cancellationToken).ConfigureAwait(false);
                    sharedWith = owner.Name;
                    attachments = owner.Networks;
                    displayName = $"{container.Name} (in {owner.Name}'s network namespace)";
                }
                space = NetworkNamespace.FromPid(container.Pid);
                break;
            case TopologyTargetKind.Process:
                if (!Directory.Exists($"/proc/{parsed.Pid}"))
                {
                    throw new TopologyException(TopologyErrorKind.NamespaceMissing, $"no process {parsed.Pid}");
                }
                space = parsed.ToNamespace();
                string? command = TryReadLine($"/proc/{parsed.Pid}/comm");
                displayName = command is null ? parsed.ToString() : $"{parsed} ({command})";
                break;
            default:
                space = parsed.ToNamespace();
                if (!File.Exists(space.Path))
                {
                    throw new TopologyException(TopologyErrorKind.NamespaceMissing,
                        parsed.Value.StartsWith('/')
                            ? $"no network namespace at {space.Path}"
                            : $"no network namespace named {parsed.Value} ({space.Path} missing; see ip netns list)");
                }
                displayName = parsed.ToString();
                break;
        }

        host ??= NetworkNamespace.Current.ReadSnapshot();
        NamespaceSnapshot inside = space.ReadSnapshot();
        return Build(displayName, containerId, networkMode, sharedWith, attachments, space.Path!, host, inside);
    }

    /// <summary>
    /// The pure part of <see cref="ResolveAsync"/>: joins the target's links to the host's. A veth's IFLA_LINK is the
    /// peer's ifindex in the peer's namespace, so the host veth is the host link with that index, and, to rule out an
    /// index that only collides, whose own IFLA_LINK points back at this interface's index.
    /// </summary>
    public static ContainerTopology Build(
        string displayName,
        string? containerId,
        string? networkMode,
        string? sharedWith,
        IReadOnlyList<DockerNetworkAttachment> attachments,
        string namespacePath,
        NamespaceSnapshot host,
        NamespaceSnapshot inside)
    {
        string? egress = host.DefaultRouteDevice()?.Name;
        if (inside.Identity == host.Identity)
        {
            return new ContainerTopology(displayName, containerId, networkMode, sharedWith, namespacePath, inside.Identity,
                TopologyShape.HostNetwork, [], egress, HostNetworkDescription);
        }
        var interfaces = new List<ContainerInterface>();
        foreach (NetlinkLink link in inside.Links.OrderBy(link => link.Index))
        {
            if (link.IsLoopback)
            {
                continue;
            }
            IReadOnlyList<NetlinkAddress> addresses = inside.AddressesOf(link.Index);
            string? hostPeer = null, bridge = null, parent = null;
            int? hostPeerIndex = null;
            if (link.LinkIndex is int peerIndex && link.LinkNetnsId is not null)
            {
                NetlinkLink? peer = host.FindLink(peerIndex);
                if (link.Kind == "veth")
                {
                    if (peer is not null && peer.Kind == "veth" && peer.LinkIndex == link.Index)
                    {
                        hostPeer = peer.Name;
                        hostPeerIndex = peer.Index;
                        bridge = peer.MasterIndex is int master ? host.FindLink(master)?.Name : null;
                    }
                }
                else if (peer is not null)
                {
                    // macvlan, ipvlan, vlan: IFLA_LINK is the parent device (in the host when a netnsid is given).
                    parent = peer.Name;
                }
            }
            interfaces.Add(new ContainerInterface(link.Name, link.Index, link.Kind, link.HardwareAddress, addresses,
                hostPeer, hostPeerIndex, bridge, parent, MatchNetwork(attachments, link, addresses)));
        }
        TopologyShape shape = interfaces.Count == 0 ? TopologyShape.NoNetwork : TopologyShape.Interfaces;
        string? description = shape == TopologyShape.NoNetwork
            ? NoNetworkDescription
            : IsSubInterfacesOnly(interfaces)
                ? $"{interfaces[0].Kind ?? "sub-interface"} on {interfaces[0].Parent}: traced on the parent; there is no bridge hop"
                : interfaces.All(i => i.Kind == "tun")
                    ? string.Format(System.Globalization.CultureInfo.InvariantCulture, UserModeDescription, string.Join(", ", interfaces.Select(i => i.Name)))
                    : null;
        return new ContainerTopology(displayName, containerId, networkMode, sharedWith, namespacePath, inside.Identity,
            shape, interfaces, egress, description);
    }

    /// <summary>
    /// The hops to capture, in path order: for each interface inside, the interface itself (in the namespace), its host
    /// veth, the veth's bridge, or for a macvlan/ipvlan its parent; then the host's egress, each once. The egress is
    /// <paramref name="egress"/> when given (<c>--egress</c>: its role is then given), else the default route's device,
    /// except for a target whose interfaces are all sub-interfaces: those send straight out of their parent, so the
    /// routed egress is not on their path. None for a target without a network.
    /// </summary>
    public IReadOnlyList<HopTarget> Hops(string? egress = null)
    {
        var hops = new List<HopTarget>();
        void Add(HopTarget hop)
        {
            if (!hops.Exists(h => h.Interface == hop.Interface && h.NetworkNamespace == hop.NetworkNamespace))
            {
                hops.Add(hop);
            }
        }
        if (Shape == TopologyShape.NoNetwork)
        {
            return hops;
        }
        string name = SharesNamespaceWith ?? DisplayName;
        string shortName = name.StartsWith('/') ? name[1..] : name;
        foreach (ContainerInterface inside in Interfaces)
        {
            Add(new HopTarget(inside.Name, NamespacePath, InterfaceRole.Container, $"{inside.Name}({shortName})"));
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
        if (egress is not null)
        {
            Add(new HopTarget(egress, null, InterfaceRole.Egress, egress, RoleSource.Given));
        }
        else if (!SubInterfacesOnly && Egress is not null)
        {
            Add(new HopTarget(Egress, null, InterfaceRole.Egress, Egress));
        }
        return hops;
    }

    private static string? MatchNetwork(IReadOnlyList<DockerNetworkAttachment> attachments, NetlinkLink link, IReadOnlyList<NetlinkAddress> addresses)
    {
        foreach (DockerNetworkAttachment attachment in attachments)
        {
            if (attachment.MacAddress is not null && string.Equals(attachment.MacAddress, link.HardwareAddress, StringComparison.OrdinalIgnoreCase))
            {
                return attachment.Name;
            }
            foreach (NetlinkAddress address in addresses)
            {
                if ((attachment.IPAddress is not null && IPAddress.TryParse(attachment.IPAddress, out IPAddress? v4) && v4.Equals(address.Address))
                    || (attachment.GlobalIPv6Address is not null && IPAddress.TryParse(attachment.GlobalIPv6Address, out IPAddress? v6) && v6.Equals(address.Address)))
                {
                    return attachment.Name;
                }
            }
        }
        return null;
    }

    private static string? TryReadLine(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
