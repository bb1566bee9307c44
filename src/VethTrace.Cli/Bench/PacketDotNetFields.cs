using System.Buffers.Binary;
using System.Net;
using PacketDotNet;
using VethTrace.Packets;

namespace VethTrace.Cli.Bench;

/// <summary>
/// Reads <see cref="PacketFields"/> with PacketDotNet, the baseline. <see cref="Packet.ParsePacket"/> is
/// lazy: it decodes the link header and defers every payload until asked, so this walks the same layers
/// VethTrace's parser reads (link, IP, TCP or UDP) and reads every field, forcing the work to happen.
/// It stops at the transport header: asking for the payload packet would decode VXLAN, DHCP and others
/// that VethTrace does not.
/// </summary>
public static class PacketDotNetFields
{
    /// <summary>
    /// PacketDotNet's link layer for a capture's link type. Its enum carries the LINKTYPE_ numbers, except
    /// LINKTYPE_IPV4 and LINKTYPE_IPV6 (228, 229), which are raw IP with the version fixed.
    /// </summary>
    public static LinkLayers ToLinkLayer(LinkType linkType) => linkType.Value switch
    {
        228 or 229 => LinkLayers.Raw,
        _ => (LinkLayers)linkType.Value,
    };

    /// <summary>Parses one frame and reads its fields. Throws whatever PacketDotNet throws.</summary>
    public static PacketFields Read(LinkLayers linkLayer, byte[] frame) =>
        Read(Packet.ParsePacket(linkLayer, frame));

    public static PacketFields Read(Packet packet)
    {
        IPPacket? ip = packet.Extract<IPPacket>();
        if (ip is null)
        {
            return default;
        }
        byte version = ip.Version == IPVersion.IPv4 ? (byte)4 : (byte)6;
        UInt128 source = ToNumber(ip.SourceAddress);
        UInt128 destination = ToNumber(ip.DestinationAddress);
        var protocol = (byte)ip.Protocol;
        var ttl = (byte)ip.TimeToLive;
        uint id = ip is IPv4Packet v4 ? v4.Id : 0u;
        // The IP packet's payload only, as Extract<TcpPacket>() would walk on into tunnels.
        switch (ip.PayloadPacket)
        {
            case TcpPacket tcp:
                return new PacketFields(version, source, destination, protocol, ttl, id, TransportKind.Tcp,
                    tcp.SourcePort, tcp.DestinationPort, tcp.SequenceNumber, tcp.AcknowledgmentNumber, tcp.Flags,
                    Math.Max(IpPayloadLength(ip) - tcp.DataOffset * 4, 0));
            case UdpPacket udp:
                return new PacketFields(version, source, destination, protocol, ttl, id, TransportKind.Udp,
                    udp.SourcePort, udp.DestinationPort, 0, 0, 0,
                    Math.Max(Math.Min(udp.Length, IpPayloadLength(ip)) - UdpHeaderLength, 0));
            default:
                return new PacketFields(version, source, destination, protocol, ttl, id, TransportKind.None, 0, 0, 0, 0, 0, 0);
        }
    }

    /// <summary>
    /// PacketDotNet's transport payload segment length. It is not one thing: over IPv4 a TCP payload's
    /// segment is stretched to the length the IP header declares, even past the captured bytes (TcpPacket's
    /// constructor), while over IPv6, and for UDP, it stops at the captured end. `compare` reports it.
    /// </summary>
    public static int PayloadSegmentLength(Packet transport) =>
        transport.PayloadDataSegment?.Length ?? transport.PayloadPacket?.TotalPacketLength ?? 0;

    private const int UdpHeaderLength = 8;

    /// <summary>
    /// The transport length the IP header declares. The payload length is computed from header fields,
    /// like VethTrace's declared <see cref="PacketLayers.PayloadLength"/>, because PacketDotNet's payload
    /// segment means declared bytes in one case and captured bytes in others (<see cref="PayloadSegmentLength"/>).
    /// </summary>
    private static int IpPayloadLength(IPPacket ip) => ip switch
    {
        IPv4Packet v4 => v4.TotalLength - v4.HeaderLength * 4,
        IPv6Packet v6 => v6.PayloadLength - v6.ExtensionHeadersLength,
        _ => 0,
    };

    private static UInt128 ToNumber(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int written))
        {
            return 0;
        }
        return written == 4 ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }
}
