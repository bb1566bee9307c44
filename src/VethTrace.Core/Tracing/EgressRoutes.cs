using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// Where the host routes a packet from the inside (issue 14 §1, "in follow, the route lookup says it"): whether a
/// packet to <c>destination</c> leaves by a captured egress interface. A journey of a flow that started on the inside
/// (container, veth, bridge) and ended on the inside, to a destination the host routes out of the egress, was lost
/// at its last hop, even when no other packet to that destination showed the way (a port blocked outright to an
/// address nothing else talks to). follow asks the host's routing table (<c>HostEgressRoutes</c>, RTM_GETROUTE);
/// replay has none (docs/DESIGN.md, "Losses").
/// </summary>
public interface IEgressRoutes
{
    /// <summary>
    /// True when the host routes a unicast packet to <paramref name="destination"/> out of a captured egress
    /// interface. Called on the matching thread when a flow's losses are settled; the answer may be cached.
    /// </summary>
    bool LeavesByEgress(IpAddress destination);
}
