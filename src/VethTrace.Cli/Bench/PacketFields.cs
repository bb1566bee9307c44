using System.Runtime.CompilerServices;
using VethTrace.Packets;

namespace VethTrace.Cli.Bench;

/// <summary>
/// The fields both parsers are asked for, in one comparable shape: addresses, protocol, TTL, IPv4
/// identification, ports, TCP sequence, acknowledgment and flags, and the transport payload length
/// the headers declare. Built from VethTrace's <see cref="PacketLayers"/> or from PacketDotNet's packet objects, it folds
/// into the same checksum either way, so equal checksums mean both parsers read the same values.
/// </summary>
public readonly record struct PacketFields(
    byte IpVersion,
    UInt128 Source,
    UInt128 Destination,
    byte Protocol,
    byte Ttl,
    uint IpId,
    TransportKind Transport,
    ushort SourcePort,
    ushort DestinationPort,
    uint Sequence,
    uint Acknowledgment,
    ushort TcpFlags,
    int PayloadLength)
{
    /// <summary>
    /// Reads the fields of one stack. The IP identification is the IPv4 one only (PacketDotNet does not
    /// surface an IPv6 fragment header's). The payload length is the declared one, whatever the snaplen kept.
    /// </summary>
    public static PacketFields From(in PacketLayers layers)
    {
        if (!layers.Has(LayerSet.Network))
        {
            return default;
        }
        TransportKind transport = layers.IsTcp ? TransportKind.Tcp : layers.IsUdp ? TransportKind.Udp : TransportKind.None;
        return new PacketFields(
            layers.IpVersion,
            new UInt128(layers.SourceHigh, layers.SourceLow),
            new UInt128(layers.DestinationHigh, layers.DestinationLow),
            layers.Protocol.Value,
            layers.Ttl,
            layers.IpVersion == 4 ? layers.IpId : 0,
            transport,
            transport == TransportKind.None ? (ushort)0 : layers.SourcePort,
            transport == TransportKind.None ? (ushort)0 : layers.DestinationPort,
            transport == TransportKind.Tcp ? layers.TcpSequence : 0,
            transport == TransportKind.Tcp ? layers.TcpAcknowledgment : 0,
            transport == TransportKind.Tcp ? (ushort)layers.TcpFlags : (ushort)0,
            transport == TransportKind.None ? 0 : layers.PayloadLength);
    }

    /// <summary>
    /// <c>From(layers).Hash()</c> without building the record between: the benchmark passes hash each packet's fields
    /// straight from where they were read (this for VethTrace's <see cref="PacketLayers"/>, <see cref="Hash(byte, UInt128,
    /// UInt128, byte, byte, uint, TransportKind, ushort, ushort, uint, uint, ushort, int)"/> for the floor's reads), so the
    /// passes differ only in how they get the fields: building the 80-byte record costs a copy (a memmove call in the
    /// Native AOT build) that the floor would not pay.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong HashOf(in PacketLayers layers)
    {
        if (!layers.Has(LayerSet.Network))
        {
            return default(PacketFields).Hash();
        }
        TransportKind transport = layers.IsTcp ? TransportKind.Tcp : layers.IsUdp ? TransportKind.Udp : TransportKind.None;
        return Hash(
            layers.IpVersion,
            new UInt128(layers.SourceHigh, layers.SourceLow),
            new UInt128(layers.DestinationHigh, layers.DestinationLow),
            layers.Protocol.Value,
            layers.Ttl,
            layers.IpVersion == 4 ? layers.IpId : 0,
            transport,
            transport == TransportKind.None ? (ushort)0 : layers.SourcePort,
            transport == TransportKind.None ? (ushort)0 : layers.DestinationPort,
            transport == TransportKind.Tcp ? layers.TcpSequence : 0,
            transport == TransportKind.Tcp ? layers.TcpAcknowledgment : 0,
            transport == TransportKind.Tcp ? (ushort)layers.TcpFlags : (ushort)0,
            transport == TransportKind.None ? 0 : layers.PayloadLength);
    }

    /// <summary>
    /// Adds this packet's <see cref="Hash"/> to <paramref name="hash"/>. The running value sees one add per packet, so
    /// the checksum is not a serial chain across packets: each packet's multiplies are independent of the previous
    /// packet's and the CPU overlaps them. (A chain of eight dependent multiplies per packet, ~32 cycles, would
    /// cost ~10 ns a packet by itself and cap any parser's measured speed.) The sum does not depend on packet
    /// order; equal checksums still mean both parsers read equal fields, packet for packet, up to a collision.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Fold(ulong hash) => hash + Hash();

    /// <summary>
    /// One packet's fields hashed on their own, NH-style: the eight 64-bit words in pairs, each word plus its own odd
    /// key, the two of a pair multiplied together (four multiplies, independent of each other), summed, then one
    /// final mix. Cheap, field-position-sensitive, and impossible for the JIT to drop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Hash() => Hash(IpVersion, Source, Destination, Protocol, Ttl, IpId, Transport, SourcePort, DestinationPort, Sequence,
        Acknowledgment, TcpFlags, PayloadLength);

    /// <summary><see cref="Hash()"/> of the fields given one by one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(byte ipVersion, UInt128 source, UInt128 destination, byte protocol, byte ttl, uint ipId, TransportKind transport,
        ushort sourcePort, ushort destinationPort, uint sequence, uint acknowledgment, ushort tcpFlags, int payloadLength)
    {
        ulong header = (ulong)ipVersion << 56 | (ulong)protocol << 48 | (ulong)ttl << 40 | (ulong)transport << 32 | ipId;
        ulong ports = (ulong)sourcePort << 48 | (ulong)destinationPort << 32 | (ulong)tcpFlags << 16;
        ulong sequenceAndAcknowledgment = (ulong)sequence << 32 | acknowledgment;
        ulong sum = (header + 0x9E37_79B9_7F4A_7C15UL) * ((ulong)source + 0xC2B2_AE3D_27D4_EB4FUL)
            + ((ulong)(source >> 64) + 0x1656_67B1_9E37_79F9UL) * ((ulong)destination + 0x85EB_CA77_C2B2_AE63UL)
            + ((ulong)(destination >> 64) + 0x27D4_EB2F_1656_67C5UL) * (ports + 0xFF51_AFD7_ED55_8CCDUL)
            + (sequenceAndAcknowledgment + 0xC4CE_B9FE_1A85_EC53UL) * ((uint)payloadLength + 0x9FB2_1C65_1E98_DF25UL);
        return Hash(sum);
    }

    /// <summary>A value hashed on its own, for <see cref="Fold"/>-style adding into a running checksum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(ulong value) => (value ^ (value >> 31)) * 0x94D0_49BB_1331_11EBUL;
}

/// <summary>Which transport header was read.</summary>
public enum TransportKind : byte
{
    None = 0,
    Tcp = 6,
    Udp = 17,
}
