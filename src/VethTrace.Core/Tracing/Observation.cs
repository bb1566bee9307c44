using System.Runtime.CompilerServices;
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
/// <remarks>
/// Not a <c>readonly</c> struct, so that <see cref="Write"/> can fill one where it will be read (a batch slot on the
/// heap) field by field: a constructor's value is built in a stack temporary and copied (112 bytes, a <c>memmove</c>
/// call), twice when returned (session 9's profile of the reading thread: 8 % of it). Its properties' getters are
/// <c>readonly</c> all the same (auto-properties), so reading one through an <c>in</c> reference copies nothing.
/// </remarks>
[StructLayout(LayoutKind.Auto)] // no padding between the small fields: observations are copied and queued per packet
public record struct Observation(
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
        Unsafe.SkipInit(out Observation observation); // Write sets every field
        Write(ref observation, in packet, frame, timestampNs, interfaceId, order, selected, direction, timestampInvalid);
        return observation;
    }

    /// <summary>
    /// <see cref="From"/> into <paramref name="observation"/>, every field written in place: no temporary, no copy
    /// (the reading thread writes each observation straight into the batch the matching thread will read).
    /// </summary>
    public static void Write(ref Observation observation, in ParsedPacket packet, ReadOnlySpan<byte> frame, long timestampNs, int interfaceId, long order,
        bool selected = true, PacketDirection direction = PacketDirection.Unknown, bool timestampInvalid = false)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        bool tcp = layers.IsTcp;
        bool tcpData = tcp && layers.PayloadLength > 0;
        observation.TimestampNs = timestampNs;
        observation.Interface = interfaceId;
        observation.Order = order;
        observation.Fingerprint = PacketFingerprint.Compute(in packet, frame);
        observation.Flow = FlowKey.From(in packet);
        observation.Length = frame.Length;
        observation.Selected = selected;
        observation.SegmentKey = tcpData ? SegmentKeyOf(in layers) : 0;
        observation.TcpSequence = layers.TcpSequence;
        observation.TcpPayload = tcpData ? layers.PayloadLength : 0;
        observation.Direction = direction;
        observation.TimestampInvalid = timestampInvalid;
        observation.Ttl = layers.Ttl;
        observation.Tunnelled = packet.TunnelDepth > 0;
        observation.TcpFlags = tcp ? layers.TcpFlags : 0;
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

    public readonly bool IsTcpData => SegmentKey != 0;

    // Ttl: the innermost IPv4 TTL or IPv6 hop limit. Routing decrements it, bridging does not: it tells which copies of a
    // packet were on one L2 segment (role inference, bridge side copies; docs/DESIGN.md, "Roles"). Tunnelled: this copy
    // came encapsulated (VXLAN), so the interface is an underlay, outside the tunnel device.

    /// <summary>The sequence range after the data: [TcpSequence, SequenceEnd), modulo 2^32.</summary>
    public readonly uint SequenceEnd => TcpSequence + (uint)TcpPayload;
}
