using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// How long per-flow state (a flow's reach, a NAT translation, a learned way to the egress) is kept after the flow's
/// last packet, per protocol, the way conntrack expires its entries. The defaults are conntrack's
/// (Documentation/networking/nf_conntrack-sysctl.rst): UDP 30 s (<c>nf_conntrack_udp_timeout</c>), ICMP and ICMPv6 30 s
/// (<c>nf_conntrack_icmp_timeout</c>, <c>nf_conntrack_icmpv6_timeout</c>), TCP 5 days while open
/// (<c>nf_conntrack_tcp_timeout_established</c>) and 120 s once a FIN or RST went by (<c>nf_conntrack_tcp_timeout_time_wait</c>),
/// anything else 600 s (<c>nf_conntrack_generic_timeout</c>). Memory is then bounded by the flows active at once, not
/// by the flows seen (docs/DESIGN.md, "Memory bounds"). <c>--flow-timeout PROTO=DURATION</c> changes them.
/// </summary>
public sealed record FlowTimeouts
{
    private const long Second = 1_000_000_000;

    public static FlowTimeouts Default { get; } = new();

    public long TcpNs { get; init; } = 432_000 * Second;

    /// <summary>A TCP flow after a FIN or RST.</summary>
    public long TcpClosingNs { get; init; } = 120 * Second;

    public long UdpNs { get; init; } = 30 * Second;

    public long IcmpNs { get; init; } = 30 * Second;

    public long OtherNs { get; init; } = 600 * Second;

    /// <summary>The shortest of them: per-flow state is swept for expiry eight times per this much trace time.</summary>
    public long ShortestNs => Math.Min(Math.Min(TcpNs, TcpClosingNs), Math.Min(Math.Min(UdpNs, IcmpNs), OtherNs));

    public long For(IpProtocol protocol, bool closing) => protocol.Value switch
    {
        6 => closing ? TcpClosingNs : TcpNs,
        17 => UdpNs,
        1 or 58 => IcmpNs,
        _ => OtherNs,
    };

    /// <summary>The names <c>--flow-timeout</c> takes: tcp, tcp-closing, udp, icmp, other.</summary>
    public static readonly IReadOnlyList<string> Names = ["tcp", "tcp-closing", "udp", "icmp", "other"];

    /// <summary>These timeouts with the one named changed; null for an unknown name.</summary>
    public FlowTimeouts? With(string name, long ns) => name switch
    {
        "tcp" => this with { TcpNs = ns },
        "tcp-closing" => this with { TcpClosingNs = ns },
        "udp" => this with { UdpNs = ns },
        "icmp" => this with { IcmpNs = ns },
        "other" => this with { OtherNs = ns },
        _ => null,
    };
}
