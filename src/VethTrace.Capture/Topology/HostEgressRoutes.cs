using VethTrace.Capture.Topology.Netlink;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Capture.Topology;

/// <summary>
/// follow's route lookup for losses (issue 14 §1, docs/DESIGN.md "Losses"): asks the kernel of the namespace it was
/// created in (the host's, where the bridge routes a container's packet) which interface a packet to a destination
/// leaves by (RTM_GETROUTE, as <c>ip route get DST</c>), and answers whether that is one of the captured egress
/// interfaces. The container's own routes (its namespace) only send the packet to the bridge's gateway; the host's
/// decide whether it goes out of the egress. Answers are cached per destination for <see cref="CacheMilliseconds"/>,
/// at most <see cref="MaxCached"/> of them, so a run with many destinations asks once per destination and second.
/// </summary>
public sealed class HostEgressRoutes : IEgressRoutes, IDisposable
{
    /// <summary>How long an answer is reused: a route change is seen within this.</summary>
    public const long CacheMilliseconds = 10_000;

    /// <summary>Bounds the cache: a run that meets more destinations starts it again.</summary>
    public const int MaxCached = 65_536;

    /// <summary>RTN_UNICAST: a local address (RTN_LOCAL), a broadcast or a multicast destination never "leaves by the egress" here.</summary>
    private const byte Unicast = RouteMessage.UnicastType;

    private readonly RtnetlinkSocket _socket;
    private readonly HashSet<int> _egressIndexes;
    private readonly Dictionary<IpAddress, (bool Leaves, long Until)> _cache = [];

    private HostEgressRoutes(RtnetlinkSocket socket, HashSet<int> egressIndexes)
    {
        _socket = socket;
        _egressIndexes = egressIndexes;
    }

    /// <summary>The kernel lookups made (cache misses).</summary>
    public long Lookups { get; private set; }

    /// <summary>
    /// Lookups for the egress interfaces named <paramref name="egressNames"/> in this thread's namespace; null when none
    /// of them exists here (an egress inside another namespace) or netlink is not available.
    /// </summary>
    public static HostEgressRoutes? TryCreate(IEnumerable<string> egressNames)
    {
        RtnetlinkSocket? socket = null;
        try
        {
            socket = new RtnetlinkSocket();
            var links = new NetlinkDump();
            socket.Dump(NetlinkMessageType.GetLink, InterfaceInfoMessage.Field.HeaderLength, links);
            var names = egressNames.ToHashSet(StringComparer.Ordinal);
            var indexes = links.Links.Where(l => names.Contains(l.Name)).Select(l => l.Index).ToHashSet();
            if (indexes.Count == 0)
            {
                socket.Dispose();
                return null;
            }
            return new HostEgressRoutes(socket, indexes);
        }
        catch (TopologyException)
        {
            socket?.Dispose();
            return null;
        }
    }

    public bool LeavesByEgress(IpAddress destination)
    {
        if (destination.IsNone || destination.IsLinkLocal || destination.IsLinkScopedMulticast)
        {
            return false;
        }
        long now = Environment.TickCount64;
        if (_cache.TryGetValue(destination, out var cached) && cached.Until > now)
        {
            return cached.Leaves;
        }
        bool leaves = Lookup(destination);
        if (_cache.Count >= MaxCached)
        {
            _cache.Clear();
        }
        _cache[destination] = (leaves, now + CacheMilliseconds);
        return leaves;
    }

    private bool Lookup(IpAddress destination)
    {
        Lookups++;
        try
        {
            NetlinkRoute? route = _socket.GetRoute(destination.ToIPAddress());
            return route is { Type: Unicast, OutputIndex: int index } && _egressIndexes.Contains(index);
        }
        catch (TopologyException)
        {
            // No answer: say nothing is lost rather than guess.
            return false;
        }
    }

    public void Dispose() => _socket.Dispose();
}
