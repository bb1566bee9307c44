using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

public enum NatKind : byte
{
    /// <summary>Source NAT (MASQUERADE): an inside source leaves as an outside address.</summary>
    Snat,
    /// <summary>Destination NAT (a published port): an outside destination is delivered to an inside one.</summary>
    Dnat,
}

/// <summary>One translation: <see cref="Inside"/> (the container side) appears as <see cref="Outside"/> to <see cref="Peer"/>.</summary>
public sealed record NatMapping(NatKind Kind, IpProtocol Protocol, string Inside, string Outside, string Peer, long Packets);

/// <summary>
/// NAT mappings inferred from matched journeys. Consecutive sightings of one packet whose source changed are a
/// source rewrite (before → after), whose destination changed a destination rewrite. A source rewrite A→B towards
/// P and a destination rewrite B→A from P are the two directions of one mapping (conntrack undoes the translation
/// for replies); which of them came first tells SNAT (the inside side spoke first) from DNAT.
/// </summary>
internal sealed class NatTable
{
    private readonly Dictionary<(IpProtocol, Endpoint Inside, Endpoint Outside, Endpoint Peer), Entry> _entries = [];

    public void Observe(FlowKey before, FlowKey after, long timestampNs)
    {
        if (before.IsEmpty || after.IsEmpty || before.Protocol != after.Protocol)
        {
            return;
        }
        var (beforeSource, beforeDestination) = Endpoints(before);
        var (afterSource, afterDestination) = Endpoints(after);
        if (beforeSource != afterSource)
        {
            // Outbound through SNAT, or a reply leaving through DNAT's reverse: inside = before, outside = after.
            Add(NatKind.Snat, before.Protocol, beforeSource, afterSource, beforeDestination, timestampNs);
        }
        if (beforeDestination != afterDestination)
        {
            // Inbound through DNAT, or a reply entering through SNAT's reverse: outside = before, inside = after.
            Add(NatKind.Dnat, before.Protocol, afterDestination, beforeDestination, beforeSource, timestampNs);
        }
    }

    public List<NatMapping> Mappings() => _entries
        .Select(e => new NatMapping(e.Value.FirstKind, e.Key.Item1, e.Key.Inside.Format(e.Key.Item1), e.Key.Outside.Format(e.Key.Item1), e.Key.Peer.Format(e.Key.Item1), e.Value.Packets))
        .OrderByDescending(m => m.Packets)
        .ToList();

    /// <summary>
    /// ICMP endpoints are bare addresses: the echo identifier is kept out of the key, so a request (identifier on the
    /// source side) and its reply (on the destination side) land in one mapping.
    /// </summary>
    private static (Endpoint Source, Endpoint Destination) Endpoints(FlowKey flow)
    {
        bool icmp = flow.Protocol == IpProtocol.Icmp || flow.Protocol == IpProtocol.IcmpV6;
        return (new Endpoint(flow.Source, icmp ? (ushort)0 : flow.SourcePort), new Endpoint(flow.Destination, icmp ? (ushort)0 : flow.DestinationPort));
    }

    private void Add(NatKind kind, IpProtocol protocol, Endpoint inside, Endpoint outside, Endpoint peer, long timestampNs)
    {
        var key = (protocol, inside, outside, peer);
        if (!_entries.TryGetValue(key, out var entry))
        {
            _entries[key] = entry = new Entry { FirstKind = kind, FirstSeenNs = timestampNs };
        }
        else if (timestampNs < entry.FirstSeenNs)
        {
            entry.FirstKind = kind;
            entry.FirstSeenNs = timestampNs;
        }
        entry.Packets++;
    }

    private readonly record struct Endpoint(IpAddress Address, ushort Port)
    {
        public string Format(IpProtocol protocol) =>
            protocol == IpProtocol.Icmp || protocol == IpProtocol.IcmpV6 ? Address.ToString() : Address.ToEndpointString(Port);
    }

    private sealed class Entry
    {
        public NatKind FirstKind;
        public long FirstSeenNs;
        public long Packets;
    }
}
