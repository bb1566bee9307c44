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
            layers.Source.Value,
            layers.Destination.Value,
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

    /// <summary>Folds every field into <paramref name="hash"/>: cheap, order-sensitive, and impossible for the JIT to drop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Fold(ulong hash)
    {
        hash = Mix(hash, (ulong)IpVersion << 56 | (ulong)Protocol << 48 | (ulong)Ttl << 40 | (ulong)Transport << 32 | IpId);
        hash = Mix(hash, (ulong)Source);
        hash = Mix(hash, (ulong)(Source >> 64));
        hash = Mix(hash, (ulong)Destination);
        hash = Mix(hash, (ulong)(Destination >> 64));
        hash = Mix(hash, (ulong)SourcePort << 48 | (ulong)DestinationPort << 32 | (ulong)TcpFlags << 16);
        hash = Mix(hash, (ulong)Sequence << 32 | Acknowledgment);
        return Mix(hash, (uint)PayloadLength);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong hash, ulong value) => (hash ^ value) * 0x9E37_79B9_7F4A_7C15UL;
}

/// <summary>Which transport header was read.</summary>
public enum TransportKind : byte
{
    None = 0,
    Tcp = 6,
    Udp = 17,
}
