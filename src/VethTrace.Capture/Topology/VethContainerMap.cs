using VethTrace.Capture.Docker;

namespace VethTrace.Capture.Topology;

/// <summary>The container behind one host veth, as Docker names it.</summary>
/// <param name="HostIndex">The host veth's ifindex: the key, since a name can be reused or changed.</param>
/// <param name="HostName">The host veth's name when the container was inspected.</param>
/// <param name="Network">The Docker network of the container's interface (matched by IP or MAC); null when none matched.</param>
/// <param name="InterfaceInside">The container-side name (eth0, eth1, …).</param>
/// <param name="Addresses">The container-side interface's addresses (whole-host tracing attributes flows by them).</param>
public sealed record VethContainer(int HostIndex, string HostName, string ContainerId, string ContainerName, string? Network, string InterfaceInside, string? Bridge,
    IReadOnlyList<System.Net.IPAddress>? Addresses = null);

/// <summary>
/// Maps host veth ifindexes to containers, one container at a time, from an inspect and a read of the container's
/// namespace (<see cref="ContainerTopology.ResolveAsync"/>, the same join <c>vethtrace interfaces</c> and <c>follow</c>
/// use). It holds the running containers only: <see cref="Apply"/> adds a container on start or network connect and
/// drops it on die or destroy, so its size follows the container count, not the run length. Thread-safe.
/// </summary>
public sealed class VethContainerMap(DockerClient docker)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<int, VethContainer> _byIndex = [];
    private readonly Dictionary<string, List<int>> _byContainer = new(StringComparer.Ordinal);

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byIndex.Count;
            }
        }
    }

    public VethContainer? Find(int hostIndex)
    {
        lock (_lock)
        {
            return _byIndex.GetValueOrDefault(hostIndex);
        }
    }

    /// <summary>
    /// Inspects a container and maps its veths, replacing what was known of it. Returns its veths (none for host,
    /// none and macvlan modes). Throws <see cref="DockerException"/> (NotFound, NotRunning, …) or <see cref="TopologyException"/>.
    /// </summary>
    /// <paramref name="host"/>: the host's links read once for a batch (see <see cref="LoadRunningAsync"/>); null reads them now.
    public async Task<IReadOnlyList<VethContainer>> AddContainerAsync(string containerId, CancellationToken cancellationToken = default, NamespaceSnapshot? host = null)
    {
        ContainerTopology topology = await ContainerTopology.ResolveAsync(containerId, docker, cancellationToken, host).ConfigureAwait(false);
        string id = topology.ContainerId ?? containerId;
        string name = topology.DisplayName;
        // container:X mode: the veths are X's and are mapped under X; this one is known, with none of its own.
        var veths = topology.Interfaces
            .Where(inside => topology.SharesNamespaceWith is null && inside.HostPeerIndex is not null)
            .Select(inside => new VethContainer(inside.HostPeerIndex!.Value, inside.HostPeer!, id, name, inside.DockerNetwork, inside.Name, inside.Bridge,
                [.. inside.Addresses.Select(a => a.Address)]))
            .ToList();
        lock (_lock)
        {
            RemoveLocked(id);
            foreach (VethContainer veth in veths)
            {
                // An ifindex now held by another container was reused: the newer inspect wins.
                if (_byIndex.TryGetValue(veth.HostIndex, out VethContainer? previous) && _byContainer.TryGetValue(previous.ContainerId, out List<int>? indexes))
                {
                    indexes.Remove(veth.HostIndex);
                }
                _byIndex[veth.HostIndex] = veth;
            }
            _byContainer[id] = [.. veths.Select(v => v.HostIndex)];
        }
        return veths;
    }

    /// <summary>Forgets a container's veths (by full ID); returns what was known of them.</summary>
    public IReadOnlyList<VethContainer> RemoveContainer(string containerId)
    {
        lock (_lock)
        {
            return RemoveLocked(containerId);
        }
    }

    /// <summary>
    /// Maps every running container; returns one line per container that could not be read. The host's links are read
    /// once, after the listing (a running container's veth exists by then), not once per container: at 200 containers
    /// the host dumps (every veth each time) were most of whole-host follow's start-up CPU.
    /// </summary>
    public async Task<IReadOnlyList<string>> LoadRunningAsync(CancellationToken cancellationToken = default)
    {
        var problems = new List<string>();
        IReadOnlyList<DockerContainerSummary> running = await docker.ListSummariesAsync(all: false, cancellationToken).ConfigureAwait(false);
        NamespaceSnapshot? host = HostSnapshot(running.Count);
        foreach (DockerContainerSummary container in running)
        {
            await TryAddAsync(container.Id, container.Name, problems, cancellationToken, host).ConfigureAwait(false);
        }
        return problems;
    }

    /// <summary>The host's links for a batch of more than one container (null: each reads its own, as does a failed read).</summary>
    private static NamespaceSnapshot? HostSnapshot(int containers)
    {
        if (containers < 2)
        {
            return null;
        }
        try
        {
            return NetworkNamespace.Current.ReadSnapshot();
        }
        catch (TopologyException)
        {
            return null;
        }
    }

    /// <summary>
    /// The container behind <paramref name="hostIndex"/>: from the map, else after mapping the running containers it
    /// does not know yet (a veth seen on netlink before its start event). Null when no running container owns it.
    /// </summary>
    public async Task<VethContainer?> LookupAsync(int hostIndex, CancellationToken cancellationToken = default)
    {
        if (Find(hostIndex) is VethContainer known)
        {
            return known;
        }
        IReadOnlyList<DockerContainerSummary> running = await docker.ListSummariesAsync(all: false, cancellationToken).ConfigureAwait(false);
        var problems = new List<string>();
        List<DockerContainerSummary> unmapped;
        lock (_lock)
        {
            unmapped = [.. running.Where(container => !_byContainer.ContainsKey(container.Id))];
        }
        NamespaceSnapshot? host = HostSnapshot(unmapped.Count);
        foreach (DockerContainerSummary container in unmapped)
        {
            await TryAddAsync(container.Id, container.Name, problems, cancellationToken, host).ConfigureAwait(false);
        }
        return Find(hostIndex);
    }

    /// <summary>
    /// Follows one event: start and network connect/disconnect (re)map the container, die and destroy forget it,
    /// rename renames its entries. Returns a one-line problem when the container could not be read, else null.
    /// </summary>
    public async Task<string?> ApplyAsync(DockerEvent change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (change.ContainerId is not string id)
        {
            return null;
        }
        switch (change.Kind)
        {
            case DockerEventKind.ContainerStart:
            case DockerEventKind.NetworkConnect:
            case DockerEventKind.NetworkDisconnect:
                var problems = new List<string>();
                await TryAddAsync(id, change.ContainerName ?? id, problems, cancellationToken).ConfigureAwait(false);
                return problems.FirstOrDefault();
            case DockerEventKind.ContainerDie:
            case DockerEventKind.ContainerDestroy:
                RemoveContainer(id);
                return null;
            case DockerEventKind.ContainerRename when change.ContainerName is string name:
                lock (_lock)
                {
                    if (_byContainer.TryGetValue(id, out List<int>? indexes))
                    {
                        foreach (int index in indexes)
                        {
                            _byIndex[index] = _byIndex[index] with { ContainerName = name };
                        }
                    }
                }
                return null;
            default:
                return null;
        }
    }

    private async Task TryAddAsync(string id, string shownAs, List<string> problems, CancellationToken cancellationToken, NamespaceSnapshot? host = null)
    {
        try
        {
            await AddContainerAsync(id, cancellationToken, host).ConfigureAwait(false);
        }
        catch (DockerException exception) when (exception.Kind is DockerErrorKind.NotFound or DockerErrorKind.NotRunning)
        {
            // Gone or stopped between the event (or the list) and the inspect; a network connect also comes before start.
            RemoveContainer(id);
        }
        catch (Exception exception) when (exception is DockerException or TopologyException)
        {
            problems.Add($"{shownAs}: {exception.Message}");
        }
    }

    private List<VethContainer> RemoveLocked(string containerId)
    {
        var removed = new List<VethContainer>();
        if (_byContainer.Remove(containerId, out List<int>? indexes))
        {
            foreach (int index in indexes)
            {
                if (_byIndex.Remove(index, out VethContainer? veth))
                {
                    removed.Add(veth);
                }
            }
        }
        return removed;
    }
}
