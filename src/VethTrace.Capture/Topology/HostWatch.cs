using System.Collections.Concurrent;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Tracing;

namespace VethTrace.Capture.Topology;

/// <summary>A host interface whole-host tracing captures: a bridge, a veth on one, or the egress; keyed by ifindex.</summary>
/// <param name="Master">For a veth: its bridge's name.</param>
public sealed record HostLink(int Index, string Name, InterfaceRole Role, string? Master);

/// <summary>
/// The host as whole-host tracing sees it, kept current: the interfaces from netlink (<see cref="LinkWatcher"/>: every
/// bridge, every veth enslaved to one, every VXLAN or Geneve device, and the egress; the role from the link's kind and
/// master, never its name), and their containers from the engine (<see cref="VethContainerMap"/>, kept by Docker's
/// event stream on a task of its own), else from the pinned namespaces and CNI files (<see cref="PodNamespaces"/>). Without Docker, or while the daemon is down, the interfaces
/// are still followed and only the names are missing: the daemon restarting never stops a capture. Notes for the user
/// (the daemon went away, came back, a container could not be read) queue in <see cref="TryTakeNote"/>; each holds
/// the daemon's words and must be escaped where it is printed.
/// </summary>
public sealed class HostWatch : IDisposable
{
    private readonly LinkWatcher _links;
    private readonly IReadOnlyList<Engine> _engines;
    private readonly string? _egress;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<string> _notes = new();
    private readonly ConcurrentQueue<int> _lookups = new();
    private readonly SemaphoreSlim _lookupSignal = new(0);
    private readonly Task _lookupTask;
    private volatile Dictionary<int, VethContainer> _pods = [];
    private long _generation;

    /// <summary>One container engine (Docker, Podman): its map of veths, kept by its own event stream.</summary>
    private sealed class Engine(DockerClient client)
    {
        public DockerClient Client { get; } = client;
        public VethContainerMap Map { get; } = new(client);
        public string Name { get; } = client.Endpoint.Engine == ContainerEngine.Podman ? "Podman" : "Docker";
        public volatile bool Loaded;
        public Task Events = Task.CompletedTask;
    }

    private HostWatch(LinkWatcher links, IReadOnlyList<DockerClient> engines, string? egress)
    {
        _links = links;
        _egress = egress ?? links.Initial.DefaultRouteDevice()?.Name;
        _engines = [.. engines.Select(client => new Engine(client))];
        foreach (Engine engine in _engines)
        {
            engine.Events = Task.Run(() => FollowEventsAsync(engine, _stop.Token));
        }
        _lookupTask = Task.Run(() => LookUpAsync(_stop.Token));
    }

    /// <summary>Starts watching the host's namespace; throws <see cref="TopologyException"/> when netlink fails.</summary>
    /// <param name="egress">The egress interface (<c>--egress</c>); null: the default route's device.</param>
    public static HostWatch Start(DockerClient? docker, string? egress) => Start(docker is null ? [] : [docker], egress);

    /// <summary>As <see cref="Start(DockerClient?, string?)"/>, naming containers from every engine given (Docker and Podman on one host).</summary>
    public static HostWatch Start(IReadOnlyList<DockerClient> engines, string? egress) => new(LinkWatcher.Start(NetworkNamespace.Current), engines, egress);

    /// <summary>The egress interface's name (given, or the default route's), or null when the host has no default route.</summary>
    public string? Egress => _egress;

    /// <summary>Goes up each time the container map changed (an event applied, a lookup done): the caller looks the owners up again.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>The container map has been loaded once (or Docker could not be asked): owners are as known as they will be at start.</summary>
    public bool Loaded => EnginesLoaded && _podsScanned;

    private bool EnginesLoaded => _engines.All(e => e.Loaded);

    private volatile bool _podsScanned;

    /// <summary>
    /// The interfaces to capture now: every bridge, every veth whose master is a bridge, and the egress. Takes the
    /// link watcher's pending changes (the table is current after them).
    /// </summary>
    public IReadOnlyList<HostLink> Wanted()
    {
        while (_links.Changes.TryRead(out _))
        {
            // The table (CurrentLinks) already holds every change; reading them keeps the watcher's queue from filling.
        }
        IReadOnlyList<NetlinkLink> links = _links.CurrentLinks;
        var bridges = links.Where(l => l.Kind == "bridge").ToDictionary(l => l.Index, l => l.Name);
        var wanted = new List<HostLink>();
        foreach (NetlinkLink link in links)
        {
            string? master = link.MasterIndex is int m ? bridges.GetValueOrDefault(m) : null;
            if (RoleOf(link, master is not null, _egress) is { } role)
            {
                wanted.Add(new HostLink(link.Index, link.Name, role, role is InterfaceRole.Veth or InterfaceRole.Tunnel ? master : null));
            }
        }
        return wanted;
    }

    /// <summary>
    /// Whether whole-host capture wants a link, and as what: every bridge, every veth whose master is a bridge
    /// (<paramref name="masterIsBridge"/>), the egress, and every tunnel device; null for the rest.
    /// </summary>
    public static InterfaceRole? RoleOf(NetlinkLink link, bool masterIsBridge, string? egress) =>
        link.Kind == "bridge" ? InterfaceRole.Bridge
        : link.Kind == "veth" && masterIsBridge ? InterfaceRole.Veth
        : link.Name == egress ? InterfaceRole.Egress
        // flannel.1, Docker's vx-…, any VXLAN or Geneve device: the kind says so, whatever its name.
        : HostInterfaceListing.IsTunnelKind(link.Kind) ? InterfaceRole.Tunnel
        : null;

    /// <summary>
    /// Calls <paramref name="appeared"/> on the link watcher's thread, as soon as netlink says so, with the ifindex of each
    /// link that <see cref="Wanted"/> would now list and that was added or changed (a veth created, or joining a bridge):
    /// before the thread that calls <see cref="Wanted"/> comes round, which on a busy host can be a while; and
    /// <paramref name="gone"/> with the ifindex of each link that left the namespace.
    /// </summary>
    public void OnWantedLink(Action<int> appeared, Action<int>? gone = null)
    {
        ArgumentNullException.ThrowIfNull(appeared);
        _links.Seen = change =>
        {
            if (change.Kind == LinkChangeKind.Removed)
            {
                gone?.Invoke(change.Index);
                return;
            }
            NetlinkLink link = change.Link;
            bool masterIsBridge = link.MasterIndex is int master && _links.KindOf(master) == "bridge";
            if (RoleOf(link, masterIsBridge, _egress) is not null)
            {
                appeared(link.Index);
            }
        };
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for netlink to report a link change (a veth created, enslaved, gone):
    /// true when one is waiting for <see cref="Wanted"/>, so a new veth is attached as it appears, not at the next
    /// periodic look.
    /// </summary>
    public bool WaitForLinkChange(TimeSpan timeout, CancellationToken cancel)
    {
        if (_links.Changes.TryPeek(out _))
        {
            return true;
        }
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        wait.CancelAfter(timeout);
        try
        {
            // Blocked on the wait handle, not Task.Wait: that spins (sched_yield) before it sleeps, five times a second
            // on whole-host follow's main thread.
            Task<bool> ready = _links.Changes.WaitToReadAsync(wait.Token).AsTask();
            ((IAsyncResult)ready).AsyncWaitHandle.WaitOne();
            if (ready.GetAwaiter().GetResult())
            {
                return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        // The watcher has ended (no change will come): wait out the time, so the caller's loop does not spin.
        cancel.WaitHandle.WaitOne(timeout);
        return false;
    }

    /// <summary>
    /// The container behind a host veth, when the engine has said; else the pod whose pinned namespace holds its peer
    /// (a CNI runtime's pod, named from /var/lib/cni, or an ip-netns namespace).
    /// </summary>
    public VethContainer? OwnerOf(int index)
    {
        foreach (Engine engine in _engines)
        {
            if (engine.Map.Find(index) is { } owner)
            {
                return owner;
            }
        }
        return _pods.GetValueOrDefault(index);
    }

    /// <summary>Asks the engine, then the pinned namespaces, in the background, who owns a veth seen before its container's start event.</summary>
    public void RequestLookup(int index)
    {
        _lookups.Enqueue(index);
        _lookupSignal.Release();
    }

    /// <summary>Reads the pinned namespaces and the CNI files again (<see cref="PodNamespaces"/>) and names their veths.</summary>
    private void ScanPods()
    {
        try
        {
            NamespaceSnapshot host = NetworkNamespace.Current.ReadSnapshot();
            var pods = new Dictionary<int, VethContainer>();
            foreach (PodVeth pod in PodNamespaces.Find(host))
            {
                NetlinkLink? veth = host.FindLink(pod.HostIndex);
                string? bridge = veth?.MasterIndex is int m ? host.FindLink(m)?.Name : null;
                pods[pod.HostIndex] = new VethContainer(pod.HostIndex, pod.HostName, pod.Cni?.ContainerId ?? pod.NamespacePath, pod.Name,
                    pod.Cni?.Network, pod.InterfaceInside, bridge, [.. pod.Addresses.Select(a => a.Address)]);
            }
            _pods = pods;
        }
        catch (TopologyException e)
        {
            _notes.Enqueue($"pods' namespaces not read: {e.Message}");
        }
        _podsScanned = true;
        Interlocked.Increment(ref _generation);
    }

    /// <summary>A line for the user (Docker's words inside: escape it).</summary>
    public bool TryTakeNote(out string note) => _notes.TryDequeue(out note!);

    private async Task FollowEventsAsync(Engine engine, CancellationToken cancel)
    {
        // The events from this moment, then the list: a container that starts in between is in one or the other.
        long since = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
        await LoadAsync(engine, cancel).ConfigureAwait(false);
        engine.Loaded = true;
        var stream = new DockerEventStream(engine.Client);
        try
        {
            await foreach (DockerEvent change in stream.ReadAsync(since, cancel).ConfigureAwait(false))
            {
                switch (change.Kind)
                {
                    case DockerEventKind.StreamLost:
                        _notes.Enqueue($"the {engine.Name} daemon is not answering ({change.Detail}); the interfaces already known are still captured, waiting for it");
                        break;
                    case DockerEventKind.StreamRestored:
                        _notes.Enqueue($"the {engine.Name} daemon answers again; events re-subscribed, containers listed again");
                        await LoadAsync(engine, cancel).ConfigureAwait(false);
                        break;
                    default:
                        if (await engine.Map.ApplyAsync(change, cancel).ConfigureAwait(false) is { } problem)
                        {
                            _notes.Enqueue(problem);
                        }
                        Interlocked.Increment(ref _generation);
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
    }

    private async Task LoadAsync(Engine engine, CancellationToken cancel)
    {
        try
        {
            foreach (string problem in await engine.Map.LoadRunningAsync(cancel).ConfigureAwait(false))
            {
                _notes.Enqueue(problem);
            }
        }
        catch (DockerException e)
        {
            _notes.Enqueue(_engines.Count > 1 ? $"{engine.Name} containers not named: {e.Message}" : $"containers not named: {e.Message}");
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        Interlocked.Increment(ref _generation);
    }

    private async Task LookUpAsync(CancellationToken cancel)
    {
        try
        {
            // The pods first (no engine involved), then wait for the engine's first load, which maps every running
            // container: a lookup before it ends would inspect them all again.
            ScanPods();
            while (!EnginesLoaded && !cancel.IsCancellationRequested)
            {
                await Task.Delay(50, cancel).ConfigureAwait(false);
            }
            var batch = new HashSet<int>();
            while (!cancel.IsCancellationRequested)
            {
                await _lookupSignal.WaitAsync(cancel).ConfigureAwait(false);
                batch.Clear();
                while (_lookups.TryDequeue(out int queued))
                {
                    batch.Add(queued);
                }
                bool unnamed = false;
                foreach (int index in batch)
                {
                    if (OwnerOf(index) is not null)
                    {
                        Interlocked.Increment(ref _generation);
                        continue;
                    }
                    bool named = false;
                    foreach (Engine engine in _engines)
                    {
                        try
                        {
                            if (await engine.Map.LookupAsync(index, cancel).ConfigureAwait(false) is not null)
                            {
                                Interlocked.Increment(ref _generation);
                                named = true;
                                break;
                            }
                        }
                        catch (DockerException)
                        {
                            // The daemon is down: the event stream says so once; the veth stays captured, unless a pod's.
                        }
                    }
                    unnamed |= !named;
                }
                if (unnamed)
                {
                    // No engine knows it: a CNI pod or an ip-netns namespace, perhaps (read once per batch).
                    ScanPods();
                }
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            Task.WaitAll([.. _engines.Select(e => e.Events), _lookupTask], TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
            // A background task failed; nothing left to report at the end.
        }
        _links.Dispose();
        _stop.Dispose();
        _lookupSignal.Dispose();
    }
}
