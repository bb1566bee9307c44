using System.Globalization;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Text;

namespace VethTrace.Capture.Topology;

/// <summary>The container at the far end of a host veth.</summary>
/// <param name="InterfaceInside">The container-side name (eth0, eth1, …).</param>
public sealed record VethOwner(
    string ContainerName,
    string ContainerId,
    string NetworkMode,
    string InterfaceInside,
    int IndexInside,
    IReadOnlyList<NetlinkAddress> Addresses);

/// <summary>A host bridge, veth or tunnel device, as <c>vethtrace interfaces</c> lists it.</summary>
/// <param name="Kind">bridge, veth, vxlan or geneve.</param>
/// <param name="Master">The bridge a veth is enslaved to; null for a bridge or a free veth.</param>
/// <param name="Owner">For a veth: the container whose interface is its peer; null when none was found.</param>
public sealed record HostInterface(
    string Name,
    int Index,
    string Kind,
    string? Master,
    LinkOperationalState State,
    IReadOnlyList<NetlinkAddress> Addresses,
    VethOwner? Owner);

/// <summary>A running container with no host veth (host, none, macvlan modes), so that it still shows up.</summary>
public sealed record ContainerWithoutVeth(string ContainerName, string ContainerId, string NetworkMode, string Path);

/// <summary>What <c>vethtrace interfaces</c> shows: the host's bridges and veths, who owns each veth, and the egress.</summary>
/// <param name="Warnings">Why some owner could not be found (Docker unreachable, a namespace that vanished), one line each.</param>
public sealed record HostInterfaceListing(
    IReadOnlyList<HostInterface> Interfaces,
    IReadOnlyList<ContainerWithoutVeth> OtherContainers,
    string? Egress,
    IReadOnlyList<string> Warnings)
{
    /// <summary>The engine that named the containers and its socket ("podman on /run/podman/podman.sock"), or null.</summary>
    public string? Engine { get; init; }

    /// <summary>Veths no engine named whose peer is in a pinned namespace (CNI pods, <c>ip netns</c>): their owner rows come from these.</summary>
    public IReadOnlyList<PodVeth> Pods { get; init; } = [];

    /// <summary>Tunnel kinds (IFLA_INFO_KIND) shown, and traced by whole-host follow with the tunnel role.</summary>
    public static bool IsTunnelKind(string? kind) => kind is "vxlan" or "geneve";

    private const int NameWidth = 16;
    private const int KindWidth = 6;
    private const int MasterWidth = 16;
    private const int StateWidth = 5;

    /// <summary>
    /// Prints an 80-column table: bridges first (each followed by its veths), then free veths, tunnels, containers
    /// without a veth, the engine, the pods named from CNI files or namespace paths, then the egress. Every
    /// name is the kernel's or Docker's and may hold any byte (a Linux interface name excludes only '/', ':', whitespace
    /// and NUL): each is escaped (<see cref="TerminalText"/>) before it is clipped to its column.
    /// </summary>
    public void Format(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteLine($"{"INTERFACE",-NameWidth} {"KIND",-KindWidth} {"MASTER",-MasterWidth} {"STATE",-StateWidth} CONTAINER / ADDRESS");
        foreach (HostInterface bridge in Interfaces.Where(i => i.Kind == "bridge").OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            WriteRow(writer, bridge);
            foreach (HostInterface veth in Interfaces.Where(i => i.Kind == "veth" && i.Master == bridge.Name).OrderBy(i => i.Name, StringComparer.Ordinal))
            {
                WriteRow(writer, veth);
            }
        }
        var bridges = Interfaces.Where(i => i.Kind == "bridge").Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        foreach (HostInterface veth in Interfaces.Where(i => i.Kind == "veth" && (i.Master is null || !bridges.Contains(i.Master))).OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            WriteRow(writer, veth);
        }
        foreach (HostInterface tunnel in Interfaces.Where(i => IsTunnelKind(i.Kind)).OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            WriteRow(writer, tunnel);
        }
        foreach (ContainerWithoutVeth other in OtherContainers)
        {
            writer.WriteLine(Fit(TerminalText.Escape($"{"-",-NameWidth} {"-",-KindWidth} {"-",-MasterWidth} {"-",-StateWidth} {other.ContainerName} [{other.NetworkMode}]: {other.Path}")));
        }
        if (Engine is not null)
        {
            writer.WriteLine(TerminalText.Escape($"engine: {Engine}"));
        }
        foreach (PodVeth pod in Pods.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            WriteWrapped(writer, TerminalText.Escape($"{pod.HostName}: {pod.InterfaceInside} of {pod.Name} in {pod.NamespacePath}" +
                (pod.Cni is { } cni ? $", CNI network {cni.Network}, container {cni.ContainerId}" : "") + $" (name from the {pod.NameSource})"));
        }
        writer.WriteLine($"egress: {(Egress is null ? "(no default route; pass --egress IFACE)" : TerminalText.Escape(Egress))}");
        foreach (string warning in Warnings)
        {
            WriteWrapped(writer, TerminalText.Escape($"warning: {warning}"));
        }
    }

    /// <summary>Warnings are wrapped, not clipped: the end of an error message (the path, DOCKER_HOST) is the useful part.</summary>
    private static void WriteWrapped(TextWriter writer, string text)
    {
        const int width = 80, indent = 2;
        string line = string.Empty;
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                writer.WriteLine(line);
                line = new string(' ', indent);
            }
            line = line.Length == 0 || line.Length == indent && string.IsNullOrWhiteSpace(line) ? line + word : line + " " + word;
        }
        writer.WriteLine(line);
    }

    private static void WriteRow(TextWriter writer, HostInterface entry)
    {
        string detail = IsTunnelKind(entry.Kind)
            ? string.Join(' ', ["tunnel", .. entry.Addresses.Where(a => a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).Select(a => a.ToString())])
            : entry.Owner is VethOwner owner
            ? TerminalText.Escape($"{owner.ContainerName}:{owner.InterfaceInside} {string.Join(' ', owner.Addresses.Where(a => a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork))} [{owner.NetworkMode}]")
            : string.Join(' ', entry.Addresses.Where(a => a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork));
        string state = entry.State switch
        {
            LinkOperationalState.Up => "up",
            LinkOperationalState.Down => "down",
            LinkOperationalState.LowerLayerDown => "lower",
            // IF_OPER_UNKNOWN: what a VXLAN, tun or dummy device reports while it works (ip link: "state UNKNOWN").
            LinkOperationalState.Unknown => "unkn",
            _ => "?",
        };
        string line = $"{Clip(TerminalText.Escape(entry.Name), NameWidth),-NameWidth} {Clip(TerminalText.Escape(entry.Kind), KindWidth),-KindWidth} {Clip(TerminalText.Escape(entry.Master ?? "-"), MasterWidth),-MasterWidth} {state,-StateWidth} {detail}";
        writer.WriteLine(Fit(line));
    }

    private static string Clip(string text, int width) => text.Length <= width ? text : text[..(width - 1)] + "…";

    private static string Fit(string line) => line.Length <= 80 ? line.TrimEnd() : line[..79] + "…";
}

/// <summary>Builds the <c>vethtrace interfaces</c> listing from a netlink dump of the host and of each running container.</summary>
public static class HostInterfaces
{
    /// <summary>
    /// Lists the host's bridges and veths and maps each veth to its container by reading every running container's
    /// namespace. With <paramref name="docker"/> null, or Docker unreachable, the list has no owners and a warning says why.
    /// </summary>
    public static Task<HostInterfaceListing> ListAsync(DockerClient? docker, CancellationToken cancellationToken = default) =>
        ListAsync(docker is null ? [] : [docker], cancellationToken);

    /// <summary>
    /// As <see cref="ListAsync(DockerClient?, CancellationToken)"/>, with the containers of every engine in
    /// <paramref name="engines"/> (Docker and Podman on one host); the engine line names each.
    /// </summary>
    public static async Task<HostInterfaceListing> ListAsync(IReadOnlyList<DockerClient> engines, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engines);
        NamespaceSnapshot host = NetworkNamespace.Current.ReadSnapshot();
        var warnings = new List<string>();
        var inside = new List<(DockerContainer Container, NamespaceSnapshot Snapshot)>();
        if (engines.Count == 0)
        {
            warnings.Add("no Docker client: veths are not mapped to containers");
        }
        foreach (DockerClient docker in engines)
        {
            IReadOnlyList<DockerContainer> containers = [];
            try
            {
                containers = await docker.ListContainersAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DockerException exception)
            {
                warnings.Add(exception.Message);
            }
            foreach (DockerContainer container in containers.Where(c => c.Pid > 0))
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    inside.Add((container, NetworkNamespace.FromPid(container.Pid).ReadSnapshot()));
                }
                catch (TopologyException exception)
                {
                    warnings.Add($"{container.Name}: {exception.Message}");
                }
            }
        }
        HostInterfaceListing listing = Build(host, inside, warnings);
        // Veths no engine named: a pod of a CNI runtime, or an ip-netns namespace, named from /var/lib/cni or the netns path.
        if (listing.Interfaces.Any(i => i.Kind == "veth" && i.Owner is null))
        {
            listing = WithPods(listing, PodNamespaces.Find(host));
        }
        return listing with
        {
            Engine = engines.Count == 0 ? null : string.Join(", ", engines.Select(e => DescribeEngine(e.Endpoint))),
        };
    }

    /// <summary>"podman on /run/podman/podman.sock (found)", "docker on /var/run/docker.sock (DOCKER_HOST)", or none answered.</summary>
    public static string DescribeEngine(DockerEndpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return endpoint.Engine == ContainerEngine.Unknown
            ? endpoint.Tried.Count > 0
                ? $"none (nothing answered on {string.Join(" or ", endpoint.Tried)})"
                : $"unknown (no answer on {endpoint.SocketPath}, {endpoint.ChosenBy})"
            : $"{DockerEndpoint.EngineName(endpoint.Engine)} on {endpoint.SocketPath} ({endpoint.ChosenBy})";
    }

    /// <summary>Fills the owner of each veth no engine named from <paramref name="pods"/> (network mode "cni NET" or "netns").</summary>
    public static HostInterfaceListing WithPods(HostInterfaceListing listing, IReadOnlyList<PodVeth> pods)
    {
        ArgumentNullException.ThrowIfNull(listing);
        ArgumentNullException.ThrowIfNull(pods);
        var used = new List<PodVeth>();
        var interfaces = new List<HostInterface>();
        foreach (HostInterface entry in listing.Interfaces)
        {
            if (entry.Kind == "veth" && entry.Owner is null && pods.FirstOrDefault(p => p.HostIndex == entry.Index) is { } pod)
            {
                used.Add(pod);
                interfaces.Add(entry with
                {
                    Owner = new VethOwner(pod.Name, pod.Cni?.ContainerId ?? pod.NamespacePath, pod.Cni is { } cni ? $"cni {cni.Network}" : "netns",
                        pod.InterfaceInside, pod.IndexInside, pod.Addresses),
                });
            }
            else
            {
                interfaces.Add(entry);
            }
        }
        return listing with { Interfaces = interfaces, Pods = used };
    }

    /// <summary>The pure part of <see cref="ListAsync"/>, over snapshots already taken.</summary>
    public static HostInterfaceListing Build(NamespaceSnapshot host, IReadOnlyList<(DockerContainer Container, NamespaceSnapshot Snapshot)> containers, IReadOnlyList<string> warnings)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(containers);
        var owners = new Dictionary<int, VethOwner>();
        var others = new List<ContainerWithoutVeth>();
        foreach ((DockerContainer container, NamespaceSnapshot snapshot) in containers)
        {
            if (snapshot.Identity == host.Identity)
            {
                others.Add(new ContainerWithoutVeth(container.Name, container.Id, container.NetworkMode, "host network (shares the host's interfaces)"));
                continue;
            }
            bool anyVeth = false;
            var paths = new List<string>();
            foreach (NetlinkLink link in snapshot.Links.Where(l => !l.IsLoopback))
            {
                if (link.Kind == "veth" && link.LinkIndex is int peerIndex && link.LinkNetnsId is not null
                    && host.FindLink(peerIndex) is NetlinkLink peer && peer.Kind == "veth" && peer.LinkIndex == link.Index)
                {
                    anyVeth = true;
                    // A container:X container shares X's namespace: the veth is X's, whichever of the two is listed first.
                    var owner = new VethOwner(container.Name, container.Id, container.NetworkMode, link.Name, link.Index, snapshot.AddressesOf(link.Index));
                    if (!container.NetworkMode.StartsWith("container:", StringComparison.Ordinal))
                    {
                        owners[peer.Index] = owner;
                    }
                    else
                    {
                        owners.TryAdd(peer.Index, owner);
                    }
                }
                else
                {
                    string parent = link.LinkIndex is int parentIndex && link.LinkNetnsId is not null && host.FindLink(parentIndex) is NetlinkLink p ? $" on {p.Name}" : string.Empty;
                    paths.Add($"{link.Name} ({link.Kind ?? "device"}{parent})");
                }
            }
            if (!anyVeth)
            {
                others.Add(new ContainerWithoutVeth(container.Name, container.Id, container.NetworkMode,
                    paths.Count == 0 ? "no network (only lo)" : string.Join(", ", paths)));
            }
        }
        var interfaces = new List<HostInterface>();
        foreach (NetlinkLink link in host.Links.Where(l => l.Kind is "bridge" or "veth" || HostInterfaceListing.IsTunnelKind(l.Kind)).OrderBy(l => l.Index))
        {
            string? master = link.MasterIndex is int m ? host.FindLink(m)?.Name ?? $"if{m.ToString(CultureInfo.InvariantCulture)}" : null;
            interfaces.Add(new HostInterface(link.Name, link.Index, link.Kind!, master, link.OperationalState,
                host.AddressesOf(link.Index), owners.GetValueOrDefault(link.Index)));
        }
        return new HostInterfaceListing(interfaces, others, host.DefaultRouteDevice()?.Name, [.. warnings, .. host.Problems]);
    }
}
