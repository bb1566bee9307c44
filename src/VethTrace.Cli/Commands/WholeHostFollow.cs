using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Cli.Metrics;
using VethTrace.Cli.Output;
using VethTrace.Packets;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace follow</c> with no target (the whole host), with several containers, or with <c>--network NAME</c>; and
/// <c>vethtrace record</c> with no target. One <see cref="HostCapture"/> (the <c>any</c> device) carries every bridge,
/// every veth on one and the egress; <see cref="HostWatch"/> says which interfaces exist (netlink) and whose they are
/// (Docker's events and inspect). Interfaces are attached and detached as containers come and go, each change said
/// with its time; a detached interface keeps its figures. Every name comes from the kernel or Docker and is escaped
/// (<see cref="TerminalText"/>) where it is printed.
/// </summary>
public static class WholeHostFollow
{
    /// <summary>How long a new veth waits for its container's name before it is captured unnamed.</summary>
    private static readonly TimeSpan OwnerWait = TimeSpan.FromMilliseconds(800);

    /// <summary>How often the interfaces are compared with the host's (well inside the one second a new container has).</summary>
    private static readonly TimeSpan ReconcileEvery = TimeSpan.FromMilliseconds(200);

    /// <summary>The <c>interface</c> and <c>role</c> of the one handle's own counters in the metrics, as the JSON's capture record names it.</summary>
    public const string AnyInterface = "any";

    /// <summary>How often the metrics' snapshot (losses, NAT, capture counters) is taken from the report, as single-target follow's tick.</summary>
    private static readonly TimeSpan MetricsEvery = TimeSpan.FromSeconds(1);

    /// <summary>What to follow. <paramref name="Containers"/> empty and <paramref name="Network"/> null: every container.</summary>
    public sealed record Settings(
        IReadOnlyList<string> Containers,
        string? Network,
        string? Egress,
        ReplayCommand.Format OutputFormat,
        TimeSpan? Duration,
        long WindowNs,
        string? Filter,
        ParserOptions Parser,
        string? RecordPath,
        RotationOptions? Rotation,
        bool Terminal,
        int SnapLength,
        int BufferBytes)
    {
        public FlowTimeouts FlowTimeouts { get; init; } = FlowTimeouts.Default;

        public bool NatDetail { get; init; }

        public IReadOnlyDictionary<string, InterfaceRole> Roles { get; init; } = new Dictionary<string, InterfaceRole>();

        /// <summary>--container NAME: the live view also shows this container's path view.</summary>
        public string? Focus { get; init; }

        /// <summary>--prometheus: serve /metrics while following (<see cref="FollowAgent"/>), every container with its label.</summary>
        public PrometheusSettings? Prometheus { get; init; }

        /// <summary>No live view and no progress lines (--quiet, or an agent); events and the final report are still written.</summary>
        public bool Quiet { get; init; }

        public bool Selective => Containers.Count > 0 || Network is not null;

        /// <summary>--engine docker|podman: only that engine names the containers; null: every engine that answers.</summary>
        public string? Engine { get; init; }

        public string Description => Network is not null
            ? $"the containers of network {Network}" + (Containers.Count > 0 ? " and " + string.Join(", ", Containers) : "")
            : Containers.Count > 0 ? "containers " + string.Join(", ", Containers) : "the whole host";
    }

    /// <summary>Whether a command line is for the whole-host engine: no target and no --hop, several targets, or --network.</summary>
    public static bool Applies(string[] targets, string[]? hops, string? network) =>
        targets.Length == 0 && (hops ?? []).Length == 0 || targets.Length > 1 || network is not null;

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error, CancellationToken cancel)
    {
        if (VethTrace.Capture.Live.Capabilities.Missing(entersNamespaces: false) is { } missing)
        {
            error.WriteLine($"vethtrace: {missing}");
            return ExitCode.CaptureFailed;
        }
        bool recording = settings.RecordPath is not null;
        // Every engine that answers (Docker and Podman), or the one --engine or DOCKER_HOST names; the selection
        // (several targets, --network) is checked against the first.
        IReadOnlyList<DockerClient> engines = [];
        try
        {
            engines = DockerClient.AllFromEnvironment(settings.Engine);
        }
        catch (DockerException e)
        {
            if (settings.Selective)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
                return ExitCode.ContainerUnavailable;
            }
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}; interfaces are captured without container names"));
        }
        DockerClient? docker = engines.Count > 0 ? engines[0] : null;
        using var disposeEngines = new EngineClients(engines);
        {
            if (settings.Selective && CheckSelection(settings, docker!, error, cancel) is { } exit)
            {
                return exit;
            }
            using PacketFilter? userFilter = recording || settings.Filter is null ? null : PacketFilter.TryCreate(settings.Filter, out _);
            AddressSelector? selector = settings.Selective ? new AddressSelector(userFilter) : null;
            var session = new TraceSession(new TraceSessionOptions
            {
                WindowNs = settings.WindowNs, Roles = settings.Roles, Parser = settings.Parser, Filter = (IPacketSelector?)selector ?? userFilter,
                FlowTimeouts = settings.FlowTimeouts, NatDetail = settings.NatDetail,
            });
            HostWatch watch;
            HostCapture capture;
            try
            {
                watch = HostWatch.Start(engines, settings.Egress);
            }
            catch (TopologyException e)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
                return ExitCode.CaptureFailed;
            }
            try
            {
                capture = new HostCapture(session, recording ? settings.Filter : null, settings.SnapLength, settings.BufferBytes);
            }
            catch (Exception e) when (e is LiveCaptureException or SharpPcap.PcapException)
            {
                watch.Dispose();
                error.WriteLine(TerminalText.Escape($"vethtrace: {Permissions.Explain(e.Message)}"));
                return ExitCode.CaptureFailed;
            }
            using (watch)
            using (capture)
            {
                var run = new Run(settings, session, capture, watch, selector, output, error);
                return run.Go(cancel);
            }
        }
    }

    /// <summary>Disposes the engine clients at the end of a run.</summary>
    private sealed class EngineClients(IReadOnlyList<DockerClient> clients) : IDisposable
    {
        public void Dispose()
        {
            foreach (DockerClient client in clients)
            {
                client.Dispose();
            }
        }
    }

    /// <summary>
    /// The capture rows whole-host follow hands the metrics: each interface's packets (kernel drops are not known per
    /// interface with one handle: null), except one detached longer ago than <see cref="FollowMetrics.GoneAfter"/> (a
    /// host whose containers come and go does not pile up a series per veth it ever had); then the <c>any</c> handle's
    /// packets and kernel drops, interface and role <see cref="AnyInterface"/>.
    /// </summary>
    internal static List<(string Interface, string Role, long Packets, long? KernelDrops)> CaptureRows(IReadOnlyList<string> names,
        Func<int, InterfaceRole> roleOf, Func<int, long> packetsOf, IReadOnlyDictionary<int, DateTime> detachedAt, DateTime now, long received, long dropped)
    {
        var rows = new List<(string, string, long, long?)>(names.Count + 1);
        for (int id = 0; id < names.Count; id++)
        {
            if (!detachedAt.TryGetValue(id, out DateTime gone) || now - gone <= FollowMetrics.GoneAfter)
            {
                rows.Add((names[id], InterfaceRoles.Name(roleOf(id)), packetsOf(id), null));
            }
        }
        rows.Add((AnyInterface, AnyInterface, received, dropped));
        return rows;
    }

    /// <summary>Every named container and the network must exist now (a typo should not wait forever); later restarts are followed.</summary>
    private static ExitCode? CheckSelection(Settings settings, DockerClient docker, TextWriter error, CancellationToken cancel)
    {
        try
        {
            IReadOnlyList<DockerContainerSummary> running = docker.ListSummariesAsync(all: true, cancel).GetAwaiter().GetResult();
            foreach (string name in settings.Containers)
            {
                ContainerMatch match = ContainerNameResolver.Match(running, name);
                if (match.Status != ContainerMatchStatus.Found)
                {
                    ContainerNameResolver.Resolve(running, name); // throws the one-line message (not found, ambiguous)
                }
            }
            return null;
        }
        catch (DockerException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
            return ExitCode.ContainerUnavailable;
        }
    }

    /// <summary>One run: the attach/detach loop, the live output, and the final report.</summary>
    private sealed class Run(Settings settings, TraceSession session, HostCapture capture, HostWatch watch, AddressSelector? selector, TextWriter output, TextWriter error)
    {
        private readonly bool _json = settings.OutputFormat == ReplayCommand.Format.Json;
        private readonly ContainerOwners _owners = new();
        private readonly Dictionary<int, (string Name, InterfaceRole Role, string? Container)> _attached = [];
        private readonly Dictionary<int, DateTime> _pending = [];
        /// <summary>Selective runs: veths not named yet, since when (they may be a target's: held, not declined, for <see cref="OwnerWait"/>).</summary>
        private readonly Dictionary<int, DateTime> _unnamed = [];
        private readonly List<string> _events = [];
        private readonly Stopwatch _clock = new();
        private HostRecording? _recording;
        private FollowAgent? _agent;
        private TimeSpan _nextMetrics;
        /// <summary>When each detached interface went away (by interface id): its packet series go with its container's.</summary>
        private readonly Dictionary<int, DateTime> _detachedAt = [];

        public ExitCode Go(CancellationToken cancel)
        {
            // The endpoint first, hooked before the first packet: a port in use ends the run at once.
            if (settings.Prometheus is { } served)
            {
                _agent = FollowAgent.Start(served, session, id => _owners.Of(id)?.Name, error);
                if (_agent is null)
                {
                    return ExitCode.CaptureFailed;
                }
                // Losses and NAT rows as the report attributes them (the JSON's container field).
                _agent.Attribute(loss => _owners.OfLoss(loss)?.Name, inside => _owners.OfNatInside(inside)?.Name);
            }
            using (_agent)
            {
                return Follow(cancel);
            }
        }

        private ExitCode Follow(CancellationToken cancel)
        {
            // A veth (or bridge) that appears is expected by the capture as netlink says so: its packets are held until
            // this thread, which a busy host can keep off the CPU a while, attaches it (they are then traced) or not.
            // One that goes before it was decided (a container gone at once) is let go at once.
            watch.OnWantedLink(index => capture.Expect(index), index => capture.Decline(index));
            // The container map first (up to 3 s), so the interfaces present at the start are attached with their names.
            var loading = Stopwatch.StartNew();
            while (!watch.Loaded && loading.Elapsed < TimeSpan.FromSeconds(3) && !cancel.IsCancellationRequested)
            {
                Thread.Sleep(20);
            }
            if (settings.RecordPath is { } path)
            {
                _recording = HostRecording.Create(path, settings.Rotation ?? RotationOptions.None, settings.SnapLength, error);
                if (_recording is null)
                {
                    return ExitCode.CaptureFailed;
                }
                capture.Sink = _recording;
            }
            using (_recording)
            {
                Reconcile(initial: true);
                if (!_json)
                {
                    output.WriteLine(TerminalText.Escape($"{settings.Description}: {_attached.Count} interfaces through one 'any' handle"
                        + (settings.Duration is { } d ? string.Create(CultureInfo.InvariantCulture, $" for {d.TotalSeconds:0.#} s") : "; Ctrl-C to stop")));
                }
                capture.Start();
                _clock.Start();
                if (_json)
                {
                    output.WriteLine(FollowCommand.StartRecord(settings.Description, _attached.Values.Select(a => a.Name)));
                }
                else
                {
                    output.WriteLine("capturing.");
                }
                FlushEvents();
                output.Flush();
                if (settings.Quiet)
                {
                    // An agent: the events as they happen (rare), no view and no line a second.
                    while (Tick(cancel))
                    {
                        FlushEvents();
                    }
                }
                else if (LiveView)
                {
                    AnsiConsole.Live(new Markup("starting…")).AutoClear(false).Start(context =>
                    {
                        while (Tick(cancel))
                        {
                            // One report a redraw (it settles every flow's losses: a cost that grows with the flows).
                            CorrelationReport report = session.Report();
                            AnnounceFirstJourneys(() => report);
                            context.UpdateTarget(ContainerView.Render(settings.Description, _clock.Elapsed, report, session.Interfaces, _owners,
                                Figures(report), _events, capture.HandleStatistics().KernelDropped, settings.Focus));
                        }
                    });
                }
                else
                {
                    TimeSpan nextLine = TimeSpan.FromSeconds(1);
                    while (Tick(cancel))
                    {
                        FlushEvents();
                        if (_clock.Elapsed >= nextLine)
                        {
                            nextLine += TimeSpan.FromSeconds(1);
                            AnnounceFirstJourneys(session.Report);
                            FlushEvents();
                            WriteProgress();
                        }
                    }
                }
                capture.Stop();
                Reconcile(initial: false);
                FlushEvents();
                // The endpoint's last figures are the final report's (served until follow exits).
                if (_agent is not null)
                {
                    UpdateMetrics(session.Report());
                }
                _recording?.Dispose();
                if (_recording?.Failure is { } failure)
                {
                    error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {_recording.FailedPath}: {failure.Message}; recording stopped " +
                        "(the file ends at the last whole packet written)"));
                }
                WriteReport();
                return _recording?.Failure is null ? ExitCode.Success : ExitCode.CaptureFailed;
            }
        }

        private bool Tick(CancellationToken cancel)
        {
            if (cancel.IsCancellationRequested || settings.Duration is { } limit && _clock.Elapsed >= limit || _recording?.Failure is not null)
            {
                return false;
            }
            TimeSpan wait = ReconcileEvery;
            if (settings.Duration is { } total && total - _clock.Elapsed < wait)
            {
                wait = total - _clock.Elapsed;
            }
            // A link change (a new container's veth) ends the wait: it is attached as it appears.
            watch.WaitForLinkChange(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, cancel);
            Reconcile(initial: false);
            // First packets before the pump: a journey matched in it was captured by now, and is said after its first packet.
            AnnounceFirstPackets();
            HookFirstJourneys();
            capture.Pump();
            while (watch.TryTakeNote(out string note))
            {
                Event($"note: {note}", "note", null, null, note);
            }
            if (_agent is not null && _clock.Elapsed >= _nextMetrics)
            {
                _nextMetrics = _clock.Elapsed + MetricsEvery;
                UpdateMetrics(session.Report());
            }
            return !cancel.IsCancellationRequested && (settings.Duration is not { } end || _clock.Elapsed < end - TimeSpan.FromMilliseconds(20));
        }

        /// <summary>
        /// The metrics' snapshot: each interface's packets (kernel drops are not known per interface with one handle),
        /// the <c>any</c> handle's packets and kernel drops (role <c>any</c>), and the containers whose veths are attached.
        /// </summary>
        private void UpdateMetrics(CorrelationReport report)
        {
            if (_agent is null)
            {
                return;
            }
            var (received, dropped, _) = capture.HandleStatistics();
            _agent.Update(report, CaptureRows(session.Interfaces.Names, session.Interfaces.RoleOf, capture.PacketsOf, _detachedAt, DateTime.UtcNow, received, dropped),
                _attached.Values.Select(a => a.Container).OfType<string>().Distinct(StringComparer.Ordinal));
        }

        /// <summary>Compares the host's interfaces with the attached ones: attaches the new, detaches the gone, names the newly known.</summary>
        private void Reconcile(bool initial)
        {
            IReadOnlyList<HostLink> wanted = watch.Wanted();
            var present = new HashSet<int>();
            var selectedBridges = new HashSet<string>(StringComparer.Ordinal);
            var veths = new List<(HostLink Link, VethContainer? Owner)>();
            // Selective runs: veths not named yet and younger than OwnerWait, and the bridges they are on, are left undecided
            // (the capture holds their packets): a target's container sends its first packets before its engine names it.
            var undecided = new HashSet<int>();
            var undecidedBridges = new HashSet<string>(StringComparer.Ordinal);
            foreach (HostLink link in wanted.Where(l => l.Role == InterfaceRole.Veth))
            {
                VethContainer? owner = watch.OwnerOf(link.Index);
                if (settings.Selective && (owner is null || !Selected(owner)))
                {
                    if (owner is null && !initial)
                    {
                        if (DateTime.UtcNow - AwaitingName(_unnamed, link.Index) < OwnerWait)
                        {
                            undecided.Add(link.Index);
                            if (link.Master is { } master)
                            {
                                undecidedBridges.Add(master);
                            }
                        }
                    }
                    continue;
                }
                _unnamed.Remove(link.Index);
                veths.Add((link, owner));
                if (link.Master is { } bridge)
                {
                    selectedBridges.Add(bridge);
                }
            }
            // Bridges and the egress before the veths, so the bridges' ids come first (as a path reads).
            foreach (HostLink link in wanted.Where(l => l.Role != InterfaceRole.Veth))
            {
                if (link.Role == InterfaceRole.Bridge && settings.Selective && !selectedBridges.Contains(link.Name))
                {
                    continue;
                }
                present.Add(link.Index);
                Attach(link, null, initial);
            }
            foreach ((HostLink link, VethContainer? owner) in veths)
            {
                present.Add(link.Index);
                if (owner is null && !capture.IsAttached(link.Index))
                {
                    // A veth seen before its container's start event: ask, and wait a little for the name.
                    DateTime first = AwaitingName(_pending, link.Index);
                    if (!initial && DateTime.UtcNow - first < OwnerWait)
                    {
                        if (!settings.Selective && _recording is null)
                        {
                            // The whole host: captured at once, said when named (or unnamed after the wait). The container
                            // runs before Docker's start event names its veth; waiting for the name missed its first
                            // packets (a first ping and fetch, answered in milliseconds, then a second's sleep).
                            Attach(link, null, initial, announce: false);
                        }
                        continue;
                    }
                }
                else if (owner is null && _pending.TryGetValue(link.Index, out DateTime since))
                {
                    // Captured before it was named: still waiting for the name, or said unnamed now.
                    if (DateTime.UtcNow - since < OwnerWait)
                    {
                        continue;
                    }
                    _pending.Remove(link.Index);
                    AnnounceAttached(_attached[link.Index].Name, link.Role, null);
                    continue;
                }
                Attach(link, owner, initial); // reads _pending: a veth captured before it was named is said as attached
                _pending.Remove(link.Index);
            }
            foreach (int index in capture.AttachedIndexes.Where(i => !present.Contains(i)).ToList())
            {
                if (capture.Detach(index) is { } detached)
                {
                    _detachedAt[detached] = DateTime.UtcNow;
                }
                var (name, role, container) = _attached[index];
                _attached.Remove(index);
                if (_pending.Remove(index))
                {
                    AnnounceAttached(name, role, null); // captured at once, gone before it was named or said
                }
                Event($"detached {name}" + (container is null ? "" : $" ({container})") + ": it went away; its figures are kept", "detached", name, container, null);
            }
            foreach (int index in _pending.Keys.Where(i => !present.Contains(i)).ToList())
            {
                _pending.Remove(index);
            }
            // Links announced to the capture and looked at here, but not attached and not waiting for their name (another
            // container's, in a selective run): what it holds of them is let go. One announced after the look above is
            // left to the next.
            var looked = wanted.Where(l => !undecided.Contains(l.Index) && !(l.Role == InterfaceRole.Bridge && undecidedBridges.Contains(l.Name)))
                .Select(l => l.Index).ToHashSet();
            foreach (int index in capture.ExpectedIndexes())
            {
                if (looked.Contains(index) && !capture.IsAttached(index) && !_pending.ContainsKey(index))
                {
                    capture.Decline(index);
                }
            }
            var wantedIndexes = wanted.Select(l => l.Index).ToHashSet();
            foreach (int index in _unnamed.Keys.Where(i => !wantedIndexes.Contains(i)).ToList())
            {
                _unnamed.Remove(index);
            }
            UpdateSelection();
        }

        /// <summary>When a veth without a name was first seen (now, the first time: its container is then asked for).</summary>
        private DateTime AwaitingName(Dictionary<int, DateTime> since, int index)
        {
            if (!since.TryGetValue(index, out DateTime first))
            {
                since[index] = first = DateTime.UtcNow;
                watch.RequestLookup(index);
            }
            return first;
        }

        private bool Selected(VethContainer owner)
        {
            if (settings.Network is { } network && owner.Network == network)
            {
                return true;
            }
            foreach (string name in settings.Containers)
            {
                if (owner.ContainerName == name || owner.ContainerId.StartsWith(name, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            return false;
        }

        private void Attach(HostLink link, VethContainer? owner, bool initial, bool announce = true)
        {
            if (capture.IsAttached(link.Index))
            {
                var known = _attached[link.Index];
                if (known.Container is null && owner is not null)
                {
                    // Attached before its container was known (the engine was slow to answer): named from now on,
                    // its journeys so far included.
                    int named = capture.IdOf(link.Index)!.Value;
                    string shown = $"{link.Name}({owner.ContainerName})";
                    capture.Rename(named, shown, link.Role);
                    _owners.Assign(named, Owner(owner));
                    _awaitingChanged = true;
                    _attached[link.Index] = (shown, link.Role, owner.ContainerName);
                    _unseen[named] = owner.ContainerName;
                    if (_pending.Remove(link.Index))
                    {
                        // Captured at once, named within the wait: said as an attach with its name.
                        AnnounceAttached(shown, link.Role, owner);
                    }
                    else
                    {
                        Event($"{link.Name} is {owner.ContainerName}'s", "named", shown, owner.ContainerName, null);
                    }
                    return;
                }
                if (known.Name != link.Name && known.Container is null)
                {
                    // Renamed in place (same ifindex): shown under its new name from now on.
                    capture.Rename(capture.IdOf(link.Index)!.Value, link.Name, link.Role);
                    Event($"{known.Name} is now {link.Name}", "renamed", link.Name, null, known.Name);
                    _attached[link.Index] = (link.Name, link.Role, null);
                }
                return;
            }
            string name = owner is null ? link.Name : $"{link.Name}({owner.ContainerName})";
            // The recording's interface block first: the capture thread writes the interface's packets (those held while
            // it was expected among them) as soon as it is attached.
            int? id = capture.Attach(link.Index, name, link.Role, _recording is null ? null : captured => _recording.Attached(captured, name, link.Role, owner), out string? problem);
            if (problem is not null)
            {
                Event($"warning: {problem}", "warning", name, owner?.ContainerName, problem);
            }
            if (id is not { } attachedId)
            {
                return;
            }
            _attached[link.Index] = (name, link.Role, owner?.ContainerName);
            if (owner is not null)
            {
                _owners.Assign(attachedId, Owner(owner));
                _awaitingChanged = true;
                _unseen[attachedId] = owner.ContainerName;
            }
            if (!initial && announce)
            {
                AnnounceAttached(name, link.Role, owner);
            }
        }

        private void AnnounceAttached(string name, InterfaceRole role, VethContainer? owner)
        {
            string what = role switch
            {
                InterfaceRole.Veth => owner is null ? "veth (no container named it)" : $"veth of {owner.ContainerName}" + (owner.Network is { } n ? $" on {n}" : ""),
                InterfaceRole.Bridge => "bridge",
                InterfaceRole.Tunnel => "tunnel",
                _ => "egress",
            };
            Event($"attached {name}: {what}", "attached", name, owner?.ContainerName, null);
        }

        private static ContainerOwner Owner(VethContainer owner) =>
            new(owner.ContainerName, owner.Network, [.. (owner.Addresses ?? []).Select(a => IpAddress.Parse(a.ToString()))]);

        private readonly HashSet<string> _journeyed = new(StringComparer.Ordinal);
        private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
        /// <summary>Named veths whose container has not had a packet captured yet (interface id, container).</summary>
        private readonly Dictionary<int, string> _unseen = [];

        /// <summary>
        /// Says, once per container, when the capture first saw a packet on one of its veths (checked every
        /// <see cref="ReconcileEvery"/>): the container is traced from then on. Its first matched journey comes later,
        /// after the journey window and the orderer's slack (<see cref="AnnounceFirstJourneys"/>).
        /// </summary>
        private void AnnounceFirstPackets()
        {
            if (_unseen.Count == 0)
            {
                return;
            }
            foreach (var (id, container) in _unseen.ToList())
            {
                if (_seen.Contains(container))
                {
                    _unseen.Remove(id);
                }
                else if (capture.PacketsOf(id) > 0)
                {
                    _unseen.Remove(id);
                    _seen.Add(container);
                    Event($"first packet of {container} captured", "first_packet", session.Interfaces.Names[id], container, null);
                }
            }
        }

        /// <summary>Interface id → its container has had no first journey yet; rebuilt when owners or first journeys change.</summary>
        private bool[] _awaiting = [];
        private bool _awaitingChanged = true;

        /// <summary>
        /// Hooks the correlator (<see cref="Correlator.Joined"/>) while some container's veth awaits its first journey,
        /// so that <see cref="Joined"/> says it as the journey is matched, not a journey window and the orderer's slack
        /// later; unhooked when none awaits (the hook costs a call per copy matched).
        /// </summary>
        private void HookFirstJourneys()
        {
            if (!_awaitingChanged)
            {
                return;
            }
            _awaitingChanged = false;
            int count = session.Interfaces.Names.Count;
            var awaiting = new bool[count];
            bool any = false;
            for (int id = 0; id < count; id++)
            {
                awaiting[id] = _owners.Of(id) is { } owner && !_journeyed.Contains(owner.Name);
                any |= awaiting[id];
            }
            _awaiting = awaiting;
            session.Correlator.Joined = any ? Joined : null;
        }

        /// <summary>
        /// A copy joined an open journey (on the matching thread: this one, in <see cref="HostCapture.Pump"/>). A journey
        /// of a container awaiting its first that has reached an end of the host (a veth, the egress, a tunnel) from
        /// another interface is matched through the host for good: the window can only add copies to it. Said now; its
        /// figures count when its window closes, as every journey's. Journeys that end on a bridge (traffic to the host
        /// itself) are said when they appear in the report (<see cref="AnnounceFirstJourneys"/>).
        /// </summary>
        private void Joined(int first, int joined, bool selected)
        {
            bool[] awaiting = _awaiting;
            if (!selected || !((uint)first < (uint)awaiting.Length && awaiting[first] || (uint)joined < (uint)awaiting.Length && awaiting[joined]))
            {
                return;
            }
            if (session.Interfaces.RoleOf(joined) is not (InterfaceRole.Veth or InterfaceRole.Egress or InterfaceRole.Tunnel))
            {
                return;
            }
            ContainerOwner? owner = _owners.Of(first) ?? _owners.Of(joined);
            if (owner is not null && _journeyed.Add(owner.Name))
            {
                IReadOnlyList<string> names = session.Interfaces.Names;
                Event($"first journey of {owner.Name} matched", "first_journey", null, owner.Name, $"{names[first]} → {names[joined]}");
                _awaitingChanged = true;
            }
        }

        /// <summary>
        /// Says, once per container, when its first journey appears in the report: one the correlator's hook did not say
        /// (<see cref="Joined"/>; a journey that ended on a bridge), a journey window and the orderer's slack after it.
        /// </summary>
        private void AnnounceFirstJourneys(Func<CorrelationReport> report)
        {
            // Only a container the capture has seen packets of can have a first journey: with every such container
            // announced, no report is built (a report settles every flow's losses; at 200 containers, one a second was
            // about a sixth of follow's CPU at the ping/HTTP load, for idle containers that never journey).
            if (!_seen.Any(name => !_journeyed.Contains(name)))
            {
                return;
            }
            foreach (PathStats path in report().Paths)
            {
                if (_owners.OfPath(path.Interfaces) is { } owner && _journeyed.Add(owner.Name))
                {
                    Event($"first journey of {owner.Name} matched", "first_journey", null, owner.Name, null);
                    _awaitingChanged = true;
                }
            }
        }

        /// <summary>The selected containers' addresses as now known (a restarted container may have a new one).</summary>
        private void UpdateSelection()
        {
            if (selector is null || selector.Count == _owners.Containers.Sum(o => o.Addresses.Count))
            {
                return;
            }
            selector.Set(_owners.Containers.SelectMany(o => o.Addresses));
        }

        private void Event(string text, string kind, string? interfaceName, string? container, string? detail)
        {
            double at = _clock.Elapsed.TotalSeconds;
            if (_json)
            {
                _events.Add(TerminalText.EscapeJson(JsonLine(w =>
                {
                    w.WriteString("type", "event");
                    w.WriteString("event", kind);
                    w.WriteNumber("elapsed_s", Math.Round(at, 3));
                    w.WriteString("at", DateTimeOffset.UtcNow.ToString("o", CultureInfo.InvariantCulture));
                    if (interfaceName is not null)
                    {
                        w.WriteString("interface", interfaceName);
                    }
                    if (container is not null)
                    {
                        w.WriteString("container", container);
                    }
                    if (detail is not null)
                    {
                        w.WriteString("detail", detail);
                    }
                })));
            }
            else
            {
                _events.Add(TerminalText.Escape(string.Create(CultureInfo.InvariantCulture, $"[{at,5:0.0}s] {text}")));
            }
        }

        private int _eventsWritten;

        /// <summary>The table redrawn on the terminal (not an agent, not JSON), which shows the events again at each redraw.</summary>
        private bool LiveView => settings.Terminal && !_json && !settings.Quiet;

        private void FlushEvents()
        {
            for (; _eventsWritten < _events.Count; _eventsWritten++)
            {
                output.WriteLine(_events[_eventsWritten]);
            }
            output.Flush();
            if (!LiveView)
            {
                // Written, and no live view shows them again: not kept for the life of the run (containers come and go).
                _events.Clear();
                _eventsWritten = 0;
            }
        }

        private IReadOnlyList<ContainerFigures> Figures(CorrelationReport report)
        {
            long dropped = Math.Max(0, capture.HandleStatistics().KernelDropped);
            return ContainerReport.Build(report, session.Interfaces.RoleOf, _owners, _ => dropped);
        }

        private void WriteProgress()
        {
            var (received, dropped, _) = capture.HandleStatistics();
            Correlator correlator = session.Correlator;
            if (_json)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{{\"type\":\"summary\",\"live\":true,\"elapsed_s\":{_clock.Elapsed.TotalSeconds:0.0},\"packets\":{session.Packets},\"journeys\":{correlator.Journeys},\"open\":{correlator.OpenJourneys},\"kernel_dropped\":{Math.Max(0, dropped)},\"interfaces\":{_attached.Count},\"containers\":{_owners.Count}}}"));
                return;
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{_clock.Elapsed.TotalSeconds,5:0.0}s] {_attached.Count} interfaces, {_owners.Count} containers | packets {session.Packets} | journeys {correlator.Journeys} | drops {Math.Max(0, dropped)}"));
        }

        private void WriteReport()
        {
            CorrelationReport report = session.Report();
            IReadOnlyList<string> names = session.Interfaces.Names;
            var (received, dropped, ifDropped) = capture.HandleStatistics();
            IReadOnlyList<ContainerFigures> figures = Figures(report);
            if (dropped > 0)
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"vethtrace: the kernel dropped {dropped} packets before VethTrace could read them (the any ring was full); journeys reported lost may have been lost by the capture, not the network: lower --snaplen or raise --buffer-size"));
            }
            if (capture.LatePackets > 0)
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"vethtrace: {capture.LatePackets} packets came more than {HostCapture.OrderSlackNs / 1_000_000} ms out of time order (at most {capture.OutOfOrderMaxNs / 1e6:0.###} ms): their journeys may have been matched without them"));
            }
            if (capture.Refused > 0)
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"vethtrace: {capture.Refused} interfaces were not captured: one whole-host run attaches at most {HostCapture.MaxInterfaces}"));
            }
            if (_json)
            {
                ReplayJson.Write(output, report, names, session.Interfaces, _owners);
                ReplayJson.WriteContainers(output, figures, names);
                for (int id = 0; id < names.Count; id++)
                {
                    int captured = id;
                    output.WriteLine(TerminalText.EscapeJson(JsonLine(w =>
                    {
                        w.WriteString("type", "capture");
                        w.WriteString("interface", names[captured]);
                        w.WriteNumber("packets", capture.PacketsOf(captured));
                        if (_owners.Of(captured) is { } owner)
                        {
                            w.WriteString("container", owner.Name);
                        }
                        w.WriteBoolean("attached", capture.AttachedIndexes.Any(i => capture.IdOf(i) == captured));
                    })));
                }
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{{\"type\":\"capture\",\"interface\":\"any\",\"packets\":{received},\"kernel_dropped\":{dropped},\"interface_dropped\":{ifDropped},\"other_interfaces_packets\":{capture.OtherPackets},\"out_of_order_max_us\":{capture.OutOfOrderMaxNs / 1e3:0.###},\"late_packets\":{capture.LatePackets},\"held_then_traced\":{capture.HeldThenTraced},\"held_dropped\":{capture.HeldDropped}}}"));
                return;
            }
            output.WriteLine();
            ReplayTable.Write(output, report, names, session.Interfaces.RoleOf, session.Interfaces);
            output.WriteLine();
            ContainerTable.Write(output, figures, names);
            output.WriteLine();
            output.WriteLine("Capture (one 'any' handle; packets seen per interface)");
            for (int id = 0; id < names.Count; id++)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {TerminalText.Escape(names[id]),-36}{capture.PacketsOf(id),10}"));
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  any: {received} received, {Math.Max(0, dropped)} dropped by the kernel; {capture.OtherPackets} on other interfaces (not traced); at most {capture.OutOfOrderMaxNs / 1e3:0.#} µs out of time order"));
            if (capture.HeldThenTraced > 0 || capture.HeldDropped > 0)
            {
                // Said only when it happened: packets of an interface that had appeared and was not attached yet.
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {capture.HeldThenTraced} packets held for new interfaces until they were attached, then traced; {capture.HeldDropped} held and let go (not attached within {HostCapture.HoldNs / 1e9:0.#} s, or no room)"));
            }
            if (_recording is not null)
            {
                output.WriteLine();
                output.WriteLine(TerminalText.Escape(_recording.Summary(names.Count)));
            }
        }

        internal static string JsonLine(Action<System.Text.Json.Utf8JsonWriter> body)
        {
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                writer.WriteStartObject();
                body(writer);
                writer.WriteEndObject();
            }
            return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        }
    }

    /// <summary>
    /// <c>record</c> with no target: one pcapng, an Interface Description Block per attached interface (added as each
    /// is attached, LINUX_SLL2 as captured) with if_name as follow names it and an if_description that gives the role
    /// and the container (<see cref="Describe"/>), so <c>replay</c> names, places and attributes every hop with no
    /// <c>--ifname</c>.
    /// </summary>
    private sealed class HostRecording : IPacketSink, IDisposable
    {
        private readonly RotatingPcapngWriter _writer;
        private readonly RotationOptions _rotation;
        private readonly string _path;
        private readonly int _snapLength;
        private volatile int[] _idbs = [];

        private HostRecording(RotatingPcapngWriter writer, RotationOptions rotation, string path, int snapLength)
        {
            _writer = writer;
            _rotation = rotation;
            _path = path;
            _snapLength = snapLength;
        }

        public IOException? Failure => _writer.Failure;

        public string? FailedPath => _writer.FailedPath;

        public static HostRecording? Create(string path, RotationOptions rotation, int snapLength, TextWriter error)
        {
            try
            {
                return new HostRecording(new RotatingPcapngWriter(path, rotation), rotation, path, snapLength);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {RotatingPcapngWriter.FileName(path, 0, rotation)}: {e.Message}"));
                return null;
            }
        }

        public void Attached(int id, string name, InterfaceRole role, VethContainer? owner)
        {
            int idb = _writer.AddInterface(name, Describe(role, owner), LinkType.LinuxSll2, _snapLength);
            int[] idbs = _idbs.Length > id ? (int[])_idbs.Clone() : [.. _idbs, .. Enumerable.Repeat(-1, id + 1 - _idbs.Length)];
            idbs[id] = idb;
            _idbs = idbs;
            _writer.Flush();
        }

        /// <summary>The if_description of a whole-host IDB; <see cref="HostInterfaceDescription"/> reads it back.</summary>
        public static string Describe(InterfaceRole role, VethContainer? owner) => HostInterfaceDescription.Format(role, owner?.ContainerName, owner?.Network,
            owner?.Addresses?.Select(a => a.ToString()) ?? []);

        public void Write(int hop, LinkType linkType, long timestampNs, ReadOnlySpan<byte> data, int originalLength, PacketDirection direction)
        {
            int[] idbs = _idbs;
            if ((uint)hop < (uint)idbs.Length && idbs[hop] >= 0)
            {
                _writer.WritePacket(idbs[hop], timestampNs, data, Math.Max(originalLength, data.Length), direction);
            }
        }

        public string Summary(int interfaces)
        {
            int files = _writer.FilesStarted;
            string where = files == 1 ? _writer.CurrentPath : $"{files} files ({RotatingPcapngWriter.FileName(_path, 0, _rotation)} to {_writer.CurrentPath})";
            return string.Create(CultureInfo.InvariantCulture, $"wrote {_writer.PacketsInFiles} packets on {interfaces} interfaces to {where}");
        }

        public void Dispose() => _writer.Dispose();
    }
}
