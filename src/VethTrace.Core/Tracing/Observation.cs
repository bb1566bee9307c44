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
    bool TimestampInvalid = false)
{
    /// <summary>Builds an observation from a parsed packet (its innermost stack, as the fingerprint).</summary>
    public static Observation From(in ParsedPacket packet, ReadOnlySpan<byte> frame, long timestampNs, int interfaceId, long order, bool selected = true,
        PacketDirection direction = PacketDirection.Unknown, bool timestampInvalid = false)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        bool tcpData = layers.IsTcp && layers.PayloadLength > 0;
        return new(timestampNs, interfaceId, order, PacketFingerprint.Compute(in packet, frame), FlowKey.From(in packet), frame.Length, selected,
            tcpData ? SegmentKeyOf(in layers) : 0, layers.TcpSequence, tcpData ? layers.PayloadLength : 0, direction, timestampInvalid);
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

    /// <summary>The sequence range after the data: [TcpSequence, SequenceEnd), modulo 2^32.</summary>
    public uint SequenceEnd => TcpSequence + (uint)TcpPayload;
}

/// <summary>Where an interface sits on a Docker host's path, for ordering equal timestamps (DESIGN.md).</summary>
public enum InterfaceRole : byte
{
    /// <summary>The container's own interface (eth0 inside its namespace).</summary>
    Container = 0,
    /// <summary>The host end of the container's veth pair.</summary>
    Veth = 1,
    /// <summary>docker0 or a user-defined br-… bridge.</summary>
    Bridge = 2,
    /// <summary>A tunnel device that encapsulates the bridge's frames (vxlan0, Docker's vx-…, flannel.1).</summary>
    Tunnel = 3,
    /// <summary>The host's egress (uplink) or anything else.</summary>
    Egress = 4,
}

/// <summary>An interface's role guessed from its name, for captures and hops that come without a topology.</summary>
public static partial class InterfaceRoles
{
    /// <summary>
    /// vethXXXX is a veth, docker0 and br-… are bridges, vxlanN, vx-… (Docker's overlay), flannel.N and geneveN are
    /// tunnels, <paramref name="egress"/> is the egress, and ethN (or
    /// ethN(container) or ethN@namespace, as follow and record name a container's own interface) is taken for a
    /// container's side;
    /// anything else counts as egress. On a host whose uplink is itself eth0, pass it as <paramref name="egress"/>.
    /// </summary>
    public static InterfaceRole FromName(string name, string? egress = null)
    {
        if (name == egress)
        {
            return InterfaceRole.Egress;
        }
        if (name.StartsWith("veth", StringComparison.Ordinal))
        {
            return InterfaceRole.Veth;
        }
        if (name == "docker0" || name.StartsWith("br-", StringComparison.Ordinal))
        {
            return InterfaceRole.Bridge;
        }
        if (name.StartsWith("vxlan", StringComparison.Ordinal) || name.StartsWith("vx-", StringComparison.Ordinal)
            || name.StartsWith("flannel.", StringComparison.Ordinal) || name.StartsWith("geneve", StringComparison.Ordinal))
        {
            return InterfaceRole.Tunnel;
        }
        return ContainerInterface().IsMatch(name) ? InterfaceRole.Container : InterfaceRole.Egress;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^eth\d+(\(.+\)|@.+)?$")]
    private static partial System.Text.RegularExpressions.Regex ContainerInterface();
}
