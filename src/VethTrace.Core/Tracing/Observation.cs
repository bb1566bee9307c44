using System.Runtime.InteropServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// What the correlator needs of one packet seen on one interface: a small value that crosses from the
/// capture (or file) side to the matching engine. The packet bytes stay behind. <see cref="Selected"/> is false
/// when a packet filter rejected this copy: a journey is reported when any of its copies was selected, so a filter
/// on the inside address still follows the packet past NAT. <see cref="TimestampInvalid"/> marks a copy whose capture
/// record had no valid time (a pcap sub-second field out of range): the reader placed it at its file position, so it
/// is matched and counted, but no latency is measured to or from it.
/// </summary>
[StructLayout(LayoutKind.Auto)] // no padding between the small fields: observations are copied and queued per packet
public readonly record struct Observation(
    long TimestampNs,
    int Interface,
    long Order,
    ulong Fingerprint,
    FlowKey Flow,
    int Length,
    bool Selected = true,
    ulong SegmentKey = 0,
    uint TcpSequence = 0,
    int TcpPayload = 0,
    PacketDirection Direction = PacketDirection.Unknown,
    bool TimestampInvalid = false,
    byte Ttl = 0,
    bool Tunnelled = false,
    TcpFlags TcpFlags = 0)
{
    /// <summary>Builds an observation from a parsed packet (its innermost stack, as the fingerprint).</summary>
    public static Observation From(in ParsedPacket packet, ReadOnlySpan<byte> frame, long timestampNs, int interfaceId, long order, bool selected = true,
        PacketDirection direction = PacketDirection.Unknown, bool timestampInvalid = false)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        bool tcpData = layers.IsTcp && layers.PayloadLength > 0;
        return new(timestampNs, interfaceId, order, PacketFingerprint.Compute(in packet, frame), FlowKey.From(in packet), frame.Length, selected,
            tcpData ? SegmentKeyOf(in layers) : 0, layers.TcpSequence, tcpData ? layers.PayloadLength : 0, direction, timestampInvalid, layers.Ttl, packet.TunnelDepth > 0,
            layers.IsTcp ? layers.TcpFlags : 0);
    }

    /// <summary>
    /// What GRO keeps equal across the segments it coalesces and GSO copies into every segment it cuts: the
    /// acknowledgment, the RFC 7323 timestamps and the flags other than CWR, FIN and PSH (Linux tcp_gro_receive).
    /// With the sequence range it ties a super-packet on one hop to its segments on another. Never 0.
    /// </summary>
    public static ulong SegmentKeyOf(in PacketLayers layers)
    {
        const TcpFlags mayDiffer = TcpFlags.Cwr | TcpFlags.Fin | TcpFlags.Psh;
        ulong hash = StableHash.Add(StableHash.Seed, (ulong)layers.TcpAcknowledgment << 16 | (ushort)(layers.TcpFlags & ~mayDiffer));
        hash = StableHash.Add(hash, (ulong)layers.TcpTsVal << 32 | layers.TcpTsEcr);
        return StableHash.Finish(hash) | 1;
    }

    public bool IsTcpData => SegmentKey != 0;

    // Ttl: the innermost IPv4 TTL or IPv6 hop limit. Routing decrements it, bridging does not: it tells which copies of a
    // packet were on one L2 segment (role inference, bridge side copies; docs/DESIGN.md, "Roles"). Tunnelled: this copy
    // came encapsulated (VXLAN), so the interface is an underlay, outside the tunnel device.

    /// <summary>The sequence range after the data: [TcpSequence, SequenceEnd), modulo 2^32.</summary>
    public uint SequenceEnd => TcpSequence + (uint)TcpPayload;
}
