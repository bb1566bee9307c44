using System.Diagnostics.Metrics;
using System.Globalization;
using System.Reflection;
using VethTrace.Cli.Output;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Cli.Metrics;

/// <summary>
/// What <c>follow --prometheus</c> exports, as .NET <see cref="System.Diagnostics.Metrics"/> instruments
/// (docs/prometheus.md has the contract). Journeys and hop latencies are counted as the correlator counts them
/// (<see cref="IJourneyObserver"/>, on the matching thread); losses, NAT mappings and capture counters come from the
/// snapshot <see cref="Update"/> takes on the same thread once a tick, and the scrape thread reads only that
/// snapshot (observable instruments) and the SDK's own thread-safe aggregates.
/// </summary>
/// <remarks>
/// Labels are containers, interfaces, roles and directions, never flows or addresses. Each container's
/// synchronous instruments (the latency histogram, the journey and reused-timestamp counters) live on a
/// <see cref="Meter"/> of its own, so that a container gone for <see cref="GoneAfter"/> is dropped by disposing it; the
/// observable ones simply stop reporting it.
/// </remarks>
public sealed class FollowMetrics : IJourneyObserver, IDisposable
{
    private static int s_instances;

    /// <summary>The container label of journeys that crossed no followed container's own interface or veth.</summary>
    public const string Unattributed = "_other";

    /// <summary>How long a container whose interfaces are no longer captured keeps its series.</summary>
    public static readonly TimeSpan GoneAfter = TimeSpan.FromMinutes(5);

    public const string LatencyName = "vethtrace_hop_latency_seconds";

    /// <summary>Upper bounds of the latency histogram, in seconds: 1 µs to 100 ms, four per decade (10^(k/4), 4 significant digits).</summary>
    public static readonly double[] LatencyBuckets = [.. Enumerable.Range(-24, 21)
        .Select(k => double.Parse(Math.Pow(10, k / 4.0).ToString("G4", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture))];

    private readonly Meter _meter;
    private readonly Func<int, InterfaceRole> _roleOf;
    private readonly IReadOnlyList<string> _names;
    private readonly Func<DateTime> _clock;
    private readonly Dictionary<string, ContainerSeries> _containers = new(StringComparer.Ordinal);
    private readonly Dictionary<IpAddress, ContainerSeries> _addresses = [];
    private Func<int, string?> _containerOf;
    private int _meters;
    private volatile Snapshot _snapshot = Snapshot.Empty;

    /// <param name="roleOf">Each interface's role (the session's registry).</param>
    /// <param name="names">Each interface's name by id, as the report shows it (read when a series is made).</param>
    /// <param name="containerOf">The container whose own interface or veth an interface is, or null (bridges, the egress).</param>
    /// <param name="clock">The time a container was last seen captured is read from it (tests move it on).</param>
    public FollowMetrics(Func<int, InterfaceRole> roleOf, IReadOnlyList<string> names, Func<int, string?> containerOf, Func<DateTime>? clock = null)
    {
        _roleOf = roleOf;
        _names = names;
        _containerOf = containerOf;
        _clock = clock ?? (() => DateTime.UtcNow);
        MeterName = $"VethTrace.{Interlocked.Increment(ref s_instances)}";
        _meter = new Meter(MeterName);
        _meter.CreateObservableCounter("vethtrace_journeys_lost", () => _snapshot.Lost, null,
            "Journeys lost, by the container whose flow it was and the last interface they were seen on");
        _meter.CreateObservableCounter("vethtrace_capture_packets", () => _snapshot.Packets, null, "Packets captured on each interface");
        _meter.CreateObservableCounter("vethtrace_capture_kernel_drops", () => _snapshot.Drops, null,
            "Packets the kernel dropped before VethTrace read them (capture ring full), per interface");
        _meter.CreateObservableGauge("vethtrace_nat_mappings", () => _snapshot.Nat, null,
            "NAT translations in use (not idle for their protocol's timeout), by container, kind (snat, dnat) and protocol");
        _meter.CreateObservableCounter("vethtrace_journeys_segmented", () => _snapshot.Segmented, null,
            "TCP journeys that continued as coalesced or cut packets (GRO/GSO), matched by sequence range");
        _meter.CreateObservableGauge("vethtrace_build_info", () => new Measurement<long>(1, Tag("version", Version), Tag("build", Build)), null,
            "The VethTrace build serving these metrics");
    }

    /// <summary>
    /// The meter of the host-wide instruments, <c>VethTrace.N</c>, one per instance (two follows in one process, as the
    /// tests run them, export apart); each container's is <c>VethTrace.N.Container.M</c>.
    /// </summary>
    public string MeterName { get; }

    /// <summary>The version, without the commit (<c>0.1.0</c>).</summary>
    public static string Version { get; } = Informational.Split('+')[0];

    /// <summary>The commit it was built from, or <c>unknown</c>.</summary>
    public static string Build { get; } = Informational.Split('+') is [_, var commit, ..] ? commit : "unknown";

    private static string Informational =>
        typeof(FollowMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>Replaces the interface-to-container map (interfaces added or gone: a restart, whole-host follow).</summary>
    public void SetContainers(Func<int, string?> containerOf) => _containerOf = containerOf;

    /// <summary>
    /// The container a loss belongs to, when the caller knows better than the innermost interface of its flow
    /// (whole-host follow: as its report says, <see cref="ContainerOwners.OfLoss"/>); null: the innermost interface's.
    /// </summary>
    public Func<LossReport, string?>? LossOwner { get; set; }

    /// <summary>
    /// The container whose address a NAT row's inside endpoint is, when the caller knows the containers' addresses
    /// (whole-host follow: <see cref="ContainerOwners.OfNatInside"/>); null: the addresses seen on containers' own interfaces.
    /// </summary>
    public Func<string, string?>? NatOwner { get; set; }

    public void Journey(ReadOnlySpan<Observation> path, bool segmented)
    {
        int towardsEgress = ((int)_roleOf(path[^1].Interface)).CompareTo((int)_roleOf(path[0].Interface));
        Direction direction = towardsEgress > 0 ? Direction.Outbound : towardsEgress < 0 ? Direction.Inbound
            : path.Length == 1 ? Direction.Single : Direction.Other;
        ContainerSeries? owner = null;
        foreach (ref readonly Observation sighting in path)
        {
            if (_containerOf(sighting.Interface) is { } name)
            {
                owner = Series(name);
                break;
            }
        }
        owner ??= Series(Unattributed);
        owner.Journeys[(int)direction].Count++;
        if (segmented)
        {
            owner.Segmented++;
        }
        // The container's address, as its own interface shows it: the NAT rows' inside address is matched to it.
        ref readonly Observation inner = ref direction == Direction.Inbound ? ref path[^1] : ref path[0];
        if (direction is Direction.Outbound or Direction.Inbound && _roleOf(inner.Interface) == InterfaceRole.Container && owner.Name != Unattributed)
        {
            IpAddress address = direction == Direction.Outbound ? inner.Flow.Source : inner.Flow.Destination;
            // The latest owner wins: an address Docker gave another container after this one went.
            if (!address.IsNone && (!_addresses.TryGetValue(address, out ContainerSeries? known) || known != owner))
            {
                _addresses[address] = owner;
            }
        }
        for (int i = 1; i < path.Length; i++)
        {
            ref readonly Observation from = ref path[i - 1];
            ref readonly Observation to = ref path[i];
            if (from.TimestampInvalid || to.TimestampInvalid)
            {
                continue;
            }
            HopSeries hop = owner.Hop(from.Interface, to.Interface, direction, _names);
            long ns = to.TimestampNs - from.TimestampNs;
            if (ns <= 0)
            {
                // The kernel's receive stamp reused along the path: the time is not known, so it is not a 0 µs hop.
                owner.Reused.Add(1, hop.Tags);
            }
            else
            {
                owner.Latency.Record(ns / 1e9, hop.Tags);
            }
        }
    }

    /// <summary>
    /// Takes the snapshot the scrape reads: the report's losses and NAT rows, and each capture's counts with the role
    /// of its interface; forgets containers gone for <see cref="GoneAfter"/>. On the matching thread, between pumps.
    /// </summary>
    /// <param name="captures">Each interface's or capture handle's counts: the hop's interface and role
    /// (<see cref="InterfaceRoles.Name(InterfaceRole)"/>), or for one handle over many interfaces (whole-host follow's
    /// <c>any</c>) its name and a role of its own. Kernel drops null: not known for it (an interface of a shared handle),
    /// so no drop series.</param>
    /// <param name="capturedContainers">The containers whose interfaces are captured now (the others are gone).</param>
    public void Update(CorrelationReport report, IReadOnlyList<(string Interface, string Role, long Packets, long? KernelDrops)> captures,
        IEnumerable<string> capturedContainers)
    {
        DateTime now = _clock();
        foreach (string name in capturedContainers)
        {
            Series(name).LastCaptured = now;
        }
        foreach (ContainerSeries gone in _containers.Values.Where(c => c.Name != Unattributed && now - c.LastCaptured > GoneAfter).ToList())
        {
            _containers.Remove(gone.Name);
            gone.Meter.Dispose();
            foreach (IpAddress address in _addresses.Where(a => a.Value == gone).Select(a => a.Key).ToList())
            {
                _addresses.Remove(address);
            }
        }
        var lost = new Dictionary<(string Container, string LastSeen), long>();
        foreach (LossReport loss in report.Losses)
        {
            string container = (LossOwner is { } owner ? owner(loss) : loss.Inside >= 0 ? _containerOf(loss.Inside) : null) ?? Unattributed;
            if (_containers.ContainsKey(container) || container == Unattributed)
            {
                var key = (container, _names[loss.LastSeen]);
                lost[key] = lost.GetValueOrDefault(key) + loss.Packets;
            }
        }
        var byAddress = _addresses.ToDictionary(a => a.Key.ToString(), a => a.Value.Name, StringComparer.Ordinal);
        var nat = new Dictionary<(string Container, string Kind, string Protocol), long>();
        foreach (NatInUse row in report.NatInUse)
        {
            string? container = NatOwner is { } owner ? owner(row.Inside) : byAddress.GetValueOrDefault(AddressOf(row.Inside));
            var key = (container is not null && _containers.ContainsKey(container) ? container : Unattributed, ReplayTable.Kind(row.Kind), row.Protocol.Name);
            nat[key] = nat.GetValueOrDefault(key) + row.Translations;
        }
        _snapshot = new Snapshot(
            [.. lost.Select(l => new Measurement<long>(l.Value, Tag("container", l.Key.Container), Tag("last_seen", l.Key.LastSeen)))],
            [.. captures.Select(c => new Measurement<long>(c.Packets, Tag("interface", c.Interface), Tag("role", c.Role)))],
            [.. captures.Where(c => c.KernelDrops is not null)
                .Select(c => new Measurement<long>(Math.Max(0, c.KernelDrops!.Value), Tag("interface", c.Interface), Tag("role", c.Role)))],
            [.. nat.Select(n => new Measurement<long>(n.Value, Tag("container", n.Key.Container), Tag("kind", n.Key.Kind), Tag("proto", n.Key.Protocol)))],
            [.. _containers.Values.Select(c => new Measurement<long>(c.Segmented, Tag("container", c.Name)))]);
        foreach (ContainerSeries container in _containers.Values)
        {
            container.Publish();
        }
    }

    /// <summary>The address of a NAT row's inside endpoint: <c>172.17.0.2</c>, <c>172.17.0.2:80</c>, <c>[fd00::2]:80</c>.</summary>
    internal static string AddressOf(string endpoint)
    {
        if (endpoint.StartsWith('['))
        {
            int close = endpoint.IndexOf(']');
            return close > 0 ? endpoint[1..close] : endpoint;
        }
        int colon = endpoint.IndexOf(':');
        return colon > 0 && colon == endpoint.LastIndexOf(':') ? endpoint[..colon] : endpoint;
    }

    private ContainerSeries Series(string name)
    {
        if (!_containers.TryGetValue(name, out ContainerSeries? series))
        {
            _containers[name] = series = new ContainerSeries(name, $"{MeterName}.Container.{++_meters}", _clock());
        }
        return series;
    }

    private static KeyValuePair<string, object?> Tag(string key, string value) => new(key, value);

    public void Dispose()
    {
        foreach (ContainerSeries container in _containers.Values)
        {
            container.Meter.Dispose();
        }
        _meter.Dispose();
    }

    private enum Direction
    {
        Outbound,
        Inbound,
        Other,
        Single,
    }

    private static readonly string[] DirectionNames = ["outbound", "inbound", "other", "single"];

    private sealed record Snapshot(
        Measurement<long>[] Lost, Measurement<long>[] Packets, Measurement<long>[] Drops, Measurement<long>[] Nat, Measurement<long>[] Segmented)
    {
        public static readonly Snapshot Empty = new([], [], [], [], []);
    }

    /// <summary>A hop's label set, made once: the histogram and counters are handed the same array every time.</summary>
    private sealed record HopSeries(string From, string To, KeyValuePair<string, object?>[] Tags);

    /// <summary>One container's instruments, on a meter of its own.</summary>
    private sealed class ContainerSeries
    {
        private readonly Dictionary<(int From, int To, Direction Direction), HopSeries> _hops = [];
        private readonly Counter<long> _journeys;

        public ContainerSeries(string name, string meterName, DateTime now)
        {
            Name = name;
            LastCaptured = now;
            Meter = new Meter(meterName);
            Latency = Meter.CreateHistogram<double>(LatencyName, "s",
                "Time from one interface to the next on a packet's path, per hop (reused timestamps left out: vethtrace_hop_reused_timestamps_total)");
            Reused = Meter.CreateCounter<long>("vethtrace_hop_reused_timestamps", null,
                "Hops whose two copies carried the same receive timestamp (the kernel stamps once on receive): not in the latency histogram");
            _journeys = Meter.CreateCounter<long>("vethtrace_journeys", null,
                "Journeys (one packet's copies matched across the hops), by container and direction (outbound, inbound, other, single)");
            Journeys = [.. DirectionNames.Select(d => new Tally([Tag("container", name), Tag("direction", d)]))];
        }

        public string Name { get; }

        public Meter Meter { get; }

        public Histogram<double> Latency { get; }

        public Counter<long> Reused { get; }

        public Tally[] Journeys { get; }

        public long Segmented { get; set; }

        public DateTime LastCaptured { get; set; }

        public HopSeries Hop(int from, int to, Direction direction, IReadOnlyList<string> names)
        {
            if (!_hops.TryGetValue((from, to, direction), out HopSeries? hop) || !ReferenceEquals(hop.From, names[from]) || !ReferenceEquals(hop.To, names[to]))
            {
                // New, or an interface was replaced (a restarted container's new veth): a new label set.
                _hops[(from, to, direction)] = hop = new HopSeries(names[from], names[to],
                    [Tag("container", Name), Tag("direction", DirectionNames[(int)direction]), Tag("from", names[from]), Tag("to", names[to])]);
            }
            return hop;
        }

        /// <summary>Hands the journeys counted since the last tick to the counter (one call per series a tick, not per journey).</summary>
        public void Publish()
        {
            foreach (Tally tally in Journeys)
            {
                if (tally.Count > tally.Published || !tally.Started)
                {
                    _journeys.Add(tally.Count - tally.Published, tally.Tags);
                    tally.Published = tally.Count;
                    tally.Started = true;
                }
            }
        }
    }

    private sealed class Tally(KeyValuePair<string, object?>[] tags)
    {
        public KeyValuePair<string, object?>[] Tags { get; } = tags;

        public long Count;
        public long Published;
        public bool Started;
    }
}
