using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// The outer headers an interface carried a tunnel in: on an overlay's underlay (the egress), the VXLAN copy of a
/// container's packet is matched by its inner packet, and this says what it travelled in (VNI, outer addresses, UDP
/// port), once per interface, direction and tunnel.
/// </summary>
public sealed record TunnelReport(int Interface, uint Vni, IpAddress OuterSource, IpAddress OuterDestination, ushort Port, long Packets);

/// <summary>
/// Counts encapsulated packets per interface and outer header. <see cref="Add"/> may be called from several capture
/// threads (one per hop); it takes a lock only for a packet that came in a tunnel, and allocates only for a new
/// outer header.
/// </summary>
public sealed class TunnelTable
{
    private readonly Dictionary<Key, long> _counts = [];

    /// <summary>Counts <paramref name="packet"/> on <paramref name="interfaceId"/> when it carried VXLAN.</summary>
    public void Add(in ParsedPacket packet, int interfaceId)
    {
        if (packet.TunnelDepth == 0)
        {
            return;
        }
        var key = new Key(interfaceId, packet.Vni, packet.Outer.Source, packet.Outer.Destination, packet.Outer.DestinationPort);
        lock (_counts)
        {
            _counts[key] = _counts.GetValueOrDefault(key) + 1;
        }
    }

    /// <summary>Every (interface, tunnel, direction) seen, by interface, then by packets (most first).</summary>
    public IReadOnlyList<TunnelReport> Report()
    {
        lock (_counts)
        {
            return [.. _counts
                .Select(pair => new TunnelReport(pair.Key.Interface, pair.Key.Vni, pair.Key.Source, pair.Key.Destination, pair.Key.Port, pair.Value))
                .OrderBy(t => t.Interface).ThenByDescending(t => t.Packets).ThenBy(t => t.OuterSource)];
        }
    }

    private readonly record struct Key(int Interface, uint Vni, IpAddress Source, IpAddress Destination, ushort Port);
}
