using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VethTrace.Packets;
using VethTrace.Packets.Headers;

namespace VethTrace.Flows;

/// <summary>
/// A flow as one hop sees it: protocol, source and destination endpoints. For ICMP and ICMPv6 echo,
/// the identifier stands in for a port the way conntrack uses it (request: source side; reply:
/// destination side), so a request and its reply canonicalise to the same key. Other ICMP messages
/// have ports 0. A key is a plain value; it allocates nothing.
/// </summary>
/// <remarks>Auto layout: the fields are ordered to leave no padding (56 bytes), as keys are copied into every observation.</remarks>
[StructLayout(LayoutKind.Auto)]
public readonly record struct FlowKey(IpProtocol Protocol, IpAddress Source, ushort SourcePort, IpAddress Destination, ushort DestinationPort)
{
    /// <summary>The flow of the packet's innermost stack. Returns default when there is no network layer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FlowKey From(in ParsedPacket packet) => From(in packet.Innermost);

    /// <remarks>
    /// Inlined: its caller stores the key into an observation, and a key returned through a stack temporary was
    /// copied out with loads wider than the stores that built it (a store-forwarding stall, session 9's profile).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FlowKey From(in PacketLayers layers)
    {
        if (!layers.Has(LayerSet.Network))
        {
            return default;
        }
        uint ports = PortsOf(in layers);
        return new FlowKey(layers.Protocol, layers.Source, (ushort)ports, layers.Destination, (ushort)(ports >> 16));
    }

    /// <summary>
    /// The key's ports of <paramref name="layers"/> (a packet with a network layer): the source port in the low 16 bits,
    /// the destination port in the high 16. TCP and UDP ports; an ICMP echo's identifier on the request's source side or
    /// the reply's destination side; 0 otherwise. <see cref="From(in PacketLayers)"/> and the observation's packed flow
    /// (<c>Correlator.FlowBits</c>, written straight from the layers) both take them from here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint PortsOf(in PacketLayers layers)
    {
        if (layers.IsTcp || layers.IsUdp)
        {
            return layers.SourcePort | (uint)layers.DestinationPort << 16;
        }
        if (layers.IsIcmp && IcmpHeader.HasIdentifier(layers.IpVersion == 6, layers.IcmpType))
        {
            bool isRequest = layers.IcmpType is IcmpHeader.V4Type.EchoRequest or IcmpHeader.V4Type.Timestamp or IcmpHeader.V6Type.EchoRequest;
            return isRequest ? layers.IcmpIdentifier : (uint)layers.IcmpIdentifier << 16;
        }
        return 0;
    }

    public bool IsEmpty => Source.IsNone;

    /// <summary>
    /// Control traffic that never crosses a router: a link-local source or destination, link-scoped multicast (MLD and
    /// neighbour discovery to ff02::, 224.0.0.0/24), or IGMP. Such a packet is matched only within one link, never read
    /// as NAT and never lost beyond its link (docs/DESIGN.md, "Link-scoped traffic").
    /// </summary>
    public bool IsLinkScoped => Protocol == IpProtocol.Igmp || Source.IsLinkLocal || Destination.IsLinkLocal || Destination.IsLinkScopedMulticast;

    public FlowKey Reversed => new(Protocol, Destination, DestinationPort, Source, SourcePort);

    /// <summary>
    /// The same key for both directions: the lower endpoint (address, then port) first.
    /// <paramref name="reversed"/> tells whether this packet runs from the higher endpoint to the lower.
    /// </summary>
    public FlowKey Canonical(out bool reversed)
    {
        int order = Source.CompareTo(Destination);
        reversed = order > 0 || order == 0 && SourcePort > DestinationPort;
        return reversed ? Reversed : this;
    }

    public string SourceEndpoint => Endpoint(Source, SourcePort);

    public string DestinationEndpoint => Endpoint(Destination, DestinationPort);

    private string Endpoint(IpAddress address, ushort port) =>
        Protocol == IpProtocol.Icmp || Protocol == IpProtocol.IcmpV6 ? address.ToString() : address.ToEndpointString(port);

    public override string ToString() => $"{Protocol} {SourceEndpoint} > {DestinationEndpoint}";
}
