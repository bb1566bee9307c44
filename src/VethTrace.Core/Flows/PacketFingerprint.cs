using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VethTrace.Packets;
using VethTrace.Packets.Headers;

namespace VethTrace.Flows;

/// <summary>
/// The NAT-invariant fingerprint (docs/DESIGN.md, "The NAT-invariant fingerprint"): a 64-bit hash of what stays the same when one packet
/// crosses a veth, a bridge, routing and netfilter NAT, and of what tells two packets of one flow apart.
/// <list type="bullet">
/// <item>Left out, because the path rewrites them: addresses and ports (SNAT, MASQUERADE, DNAT), the TTL or hop
/// limit (routing), checksums, the ICMP echo identifier (NAT rewrites it like a port), the TOS/traffic class
/// (ECN marks may change), the link layer, VLAN tags and MPLS labels (a label switch router swaps the top label and
/// decrements its TTL at every hop, and the last one may pop the stack).</item>
/// <item>Kept: IPv4 identification, protocol and total length; IPv6 payload length, upper-layer protocol,
/// flow label and fragment identification; fragment offset; TCP sequence, acknowledgment, flags, payload length
/// and RFC 7323 timestamps (which differ between a segment and its retransmission even where IP IDs don't, as on IPv6);
/// UDP payload length; ICMP type, code and sequence; for ICMP errors, the invariant of the quoted packet (its addresses
/// and ports are rewritten by conntrack along with the outer ones); and a hash of the first
/// <see cref="PayloadHashBytes"/> payload bytes.</item>
/// </list>
/// Every length is the one the headers claim, never one a capture point decides: a snaplen cuts the copies on
/// different hops differently, and a frame shorter than its IP length (<see cref="PacketFlags.IpLengthBeyondFrame"/>)
/// still carries the IP header every other copy carries, so its claimed payload length is hashed, not the bytes it held.
/// For VXLAN the inner packet is fingerprinted, so the encapsulated copy matches the container's copy.
/// Computing it reads the frame and allocates nothing.
/// </summary>
public static class PacketFingerprint
{
    /// <summary>
    /// Payload bytes folded into the fingerprint. Few on purpose: every hop must capture them for the
    /// copies to match. With a 128-byte snaplen, Linux cooked v2 (20) + IPv6 (40) + TCP with the largest
    /// options (60) leaves exactly 8.
    /// </summary>
    public const int PayloadHashBytes = 8;

    /// <summary>Bytes after the link header hashed for a packet that is not IP.</summary>
    private const int NonIpHashBytes = 32;

    /// <summary>Computes the fingerprint of the packet's innermost stack; <paramref name="frame"/> is the span it was parsed from.</summary>
    public static ulong Compute(in ParsedPacket packet, ReadOnlySpan<byte> frame)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        ulong hash = StableHash.Seed;
        if (!layers.Has(LayerSet.Network))
        {
            // Not IP (ARP, LLC) or cut before the network header: nothing is NATed, so the type and the
            // first bytes after the link header identify it well enough within a time window.
            // 32 bytes cover a whole ARP message (28), so who-has requests for different targets differ.
            hash = StableHash.Add(hash, layers.EtherType.Value);
            ReadOnlySpan<byte> rest = frame[Math.Min(layers.NetworkOffset, frame.Length)..];
            rest = rest[..Math.Min(rest.Length, NonIpHashBytes)];
            for (int i = 0; i < rest.Length; i += 8)
            {
                hash = StableHash.AddBytes(hash, rest[i..]);
            }
            return StableHash.Finish(hash);
        }

        if (layers.IpVersion == 4)
        {
            // The length gets 32 bits: a big-TCP super-packet's captured length may pass 65535.
            hash = StableHash.Add(hash, 4UL << 56 | (ulong)(ushort)layers.IpId << 40 | (ulong)layers.Protocol.Value << 32 | (uint)layers.IpTotalLength);
        }
        else
        {
            hash = StableHash.Add(hash, 6UL << 56 | (ulong)layers.Protocol.Value << 48 | (ulong)layers.FlowLabel << 24 | (uint)(layers.IpTotalLength - Ipv6Header.Field.HeaderLength) & 0xFF_FFFF);
            hash = StableHash.Add(hash, layers.IpId);
        }
        if ((layers.Flags & PacketFlags.Fragment) != 0)
        {
            hash = StableHash.Add(hash, (ulong)layers.FragmentOffset << 1 | ((layers.Flags & PacketFlags.MoreFragments) != 0 ? 1UL : 0UL));
        }

        if (layers.Has(LayerSet.Transport))
        {
            if (layers.IsTcp)
            {
                hash = StableHash.Add(hash, (ulong)layers.TcpSequence << 32 | layers.TcpAcknowledgment);
                hash = StableHash.Add(hash, (ulong)(ushort)layers.TcpFlags << 32 | (uint)ClaimedPayloadLength(in layers));
                if ((layers.Flags & PacketFlags.TcpTimestamps) != 0)
                {
                    hash = StableHash.Add(hash, (ulong)layers.TcpTsVal << 32 | layers.TcpTsEcr);
                }
            }
            else if (layers.IsUdp)
            {
                hash = StableHash.Add(hash, (uint)ClaimedPayloadLength(in layers));
            }
            else if (layers.IsIcmp)
            {
                hash = StableHash.Add(hash, (ulong)layers.IcmpType << 32 | (ulong)layers.IcmpCode << 16 | layers.IcmpSequence);
                if (layers.IsIcmpError)
                {
                    return StableHash.Finish(AddQuotedPacket(hash, Payload(in layers, frame), layers.IpVersion == 6));
                }
            }
        }
        return StableHash.Finish(AddPayload(hash, in layers, frame));
    }

    /// <summary>
    /// <c>StableHash.AddBytes(hash, payload[..PayloadHashBytes])</c> without the spans and the call: the first
    /// <see cref="PayloadHashBytes"/> captured payload bytes as one little-endian word, zero-padded, then their count
    /// (none when the payload lies outside the frame). Same value; once per packet, so inline.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddPayload(ulong hash, in PacketLayers layers, ReadOnlySpan<byte> frame)
    {
        int start = layers.PayloadOffset;
        int length = layers.CapturedPayloadLength;
        ulong word = 0;
        int count = 0;
        if ((uint)start <= (uint)frame.Length && (uint)length <= (uint)(frame.Length - start))
        {
            if (length >= PayloadHashBytes)
            {
                word = BinaryPrimitives.ReadUInt64LittleEndian(frame.Slice(start, PayloadHashBytes));
                count = PayloadHashBytes;
            }
            else
            {
                ReadOnlySpan<byte> payload = frame.Slice(start, length);
                for (int i = 0; i < payload.Length; i++)
                {
                    word |= (ulong)payload[i] << (8 * i);
                }
                count = length;
            }
        }
        return StableHash.Add(StableHash.Add(hash, word), (ulong)count);
    }

    /// <summary>
    /// True when every hashed payload byte was captured. When false the fingerprint hashed fewer bytes,
    /// and a copy of the same packet captured with a larger snaplen will not match it exactly.
    /// </summary>
    public static bool CoversPayload(in ParsedPacket packet)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        return layers.CapturedPayloadLength >= Math.Min(PayloadHashBytes, layers.PayloadLength);
    }

    /// <summary>
    /// The TCP or UDP payload length the headers claim. It is <see cref="PacketLayers.PayloadLength"/> except when the
    /// frame held less than its IP length (<see cref="PacketFlags.IpLengthBeyondFrame"/>): the parser then counts only
    /// the bytes that were there, and the claim is rebuilt from the IP length, the same way the parser derives it.
    /// </summary>
    private static int ClaimedPayloadLength(in PacketLayers layers)
    {
        if ((layers.Flags & PacketFlags.IpLengthBeyondFrame) == 0)
        {
            return layers.PayloadLength;
        }
        int segment = layers.IpTotalLength - layers.IpHeaderLength;
        if (layers.IsTcp)
        {
            return Math.Max(segment - layers.TcpHeaderLength, 0);
        }
        // UDP, as PacketParser.ParseUdp: a first fragment's data is its segment's; a zero UDP length is the IP one.
        int udpLength = layers.UdpLength == 0 || (layers.Flags & PacketFlags.MoreFragments) != 0 ? segment : Math.Min(layers.UdpLength, segment);
        return Math.Max(udpLength - UdpHeader.Field.HeaderLength, 0);
    }

    private static ReadOnlySpan<byte> Payload(in PacketLayers layers, ReadOnlySpan<byte> frame)
    {
        // The parser guarantees PayloadOffset + CapturedPayloadLength <= frame length; check anyway,
        // since a caller may pass a different frame than the one parsed.
        int start = layers.PayloadOffset;
        int length = layers.CapturedPayloadLength;
        return (uint)start <= (uint)frame.Length && (uint)length <= (uint)(frame.Length - start)
            ? frame.Slice(start, length)
            : ReadOnlySpan<byte>.Empty;
    }

    /// <summary>
    /// ICMP errors quote the offending packet (RFC 792; RFC 4443 section 3). NAT rewrites the quoted
    /// addresses, ports and checksums too (RFC 5508 section 7), so only the quoted invariants are hashed.
    /// </summary>
    private static ulong AddQuotedPacket(ulong hash, ReadOnlySpan<byte> quoted, bool v6)
    {
        IpProtocol protocol;
        ReadOnlySpan<byte> transport;
        if (!v6)
        {
            if (Ipv4Header.TryCreate(quoted, out var ip) != HeaderCheck.Ok || ip.IsCutShort)
            {
                return StableHash.AddBytes(hash, quoted[..Math.Min(quoted.Length, PayloadHashBytes)]);
            }
            protocol = ip.Protocol;
            hash = StableHash.Add(hash, (ulong)ip.Identification << 32 | (ulong)protocol.Value << 16 | ip.TotalLength);
            transport = quoted[ip.HeaderLength..];
        }
        else
        {
            if (Ipv6Header.TryCreate(quoted, out var ip) != HeaderCheck.Ok)
            {
                return StableHash.AddBytes(hash, quoted[..Math.Min(quoted.Length, PayloadHashBytes)]);
            }
            protocol = ip.NextHeader;
            hash = StableHash.Add(hash, (ulong)protocol.Value << 48 | (ulong)ip.FlowLabel << 24 | ip.PayloadLength);
            transport = quoted[Ipv6Header.Field.HeaderLength..];
        }
        // Only the first 8 transport bytes are guaranteed to be quoted (RFC 792).
        if (transport.Length < 8)
        {
            return hash;
        }
        if (protocol == IpProtocol.Tcp)
        {
            return StableHash.Add(hash, BinaryPrimitives.ReadUInt32BigEndian(transport[TcpHeader.Field.Sequence..]));
        }
        if (protocol == IpProtocol.Udp)
        {
            return StableHash.Add(hash, BinaryPrimitives.ReadUInt16BigEndian(transport[UdpHeader.Field.Length..]));
        }
        if (protocol == IpProtocol.Icmp || protocol == IpProtocol.IcmpV6)
        {
            return StableHash.Add(hash, (ulong)transport[0] << 24 | (ulong)transport[1] << 16 | BinaryPrimitives.ReadUInt16BigEndian(transport[IcmpHeader.Field.Sequence..]));
        }
        return hash;
    }
}
