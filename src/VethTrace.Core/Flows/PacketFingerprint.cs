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

    // The hash (session 15): the invariant fields are packed, without loss, into six 64-bit words taken as three pairs;
    // each pair is mixed by one 64x64 -> 128-bit multiply of its two words, each xored with its own key, folded to 64
    // bits (high ^ low); the three products are xored and StableHash.Finish (xxHash64's avalanche) mixes the result.
    // Three wide multiplies and two narrow ones per packet, none waiting for another until the avalanche, where the
    // xxHash64 chain took up to 20 multiplies one after the other. The keys are StableHash.Finish(StableHash.Add(Seed, i))
    // for i = 0..5 (a test checks them), so the "VETHTRC1" seed still decides every fingerprint. A product is zero, and
    // forgets its other word, only when one of its words equals its key; the first word of every IP pair has bits that
    // keep it from ever equalling its key (a test checks them), so the second word always counts in full.
    internal const ulong Key0 = 0x2756F820CBA066C5UL; // top byte 0x27: never the network word's (0x00, 0x04, 0x06)
    internal const ulong Key1 = 0x6F3144EC96A8BB51UL;
    internal const ulong Key2 = 0x500541527C5A4942UL; // top byte 0x50: never the transport word's (kind 0-5)
    internal const ulong Key3 = 0x1B0418168D8FF008UL;
    internal const ulong Key4 = 0x4197F36407A3FBBCUL; // top byte 0x41: never an IP fragment word's (0x00, 0x80)
    internal const ulong Key5 = 0x5650005F0101B19CUL;

    // The kind of packet, in the transport word's top byte.
    internal const ulong KindNone = 0, KindTcp = 1, KindUdp = 2, KindIcmp = 3, KindIcmpError = 4, KindNotIp = 5;

    /// <summary>
    /// The six words a fingerprint hashes: every invariant field, packed so that different fields give different words.
    /// Mixed in pairs: (<see cref="Network"/>, <see cref="Payload"/>), (<see cref="Transport"/>, <see cref="Sequence"/>),
    /// (<see cref="Fragment"/>, <see cref="Timestamps"/>).
    /// </summary>
    internal struct Words
    {
        /// <summary>IPv4: 4, identification, protocol, total length. IPv6: 6, upper-layer protocol, flow label, payload length.
        /// Not IP: the count of bytes hashed and the EtherType.</summary>
        public ulong Network;

        /// <summary>The first <see cref="PayloadHashBytes"/> payload bytes (little-endian, zero-padded); for an ICMP error the
        /// quoted IP header's invariants; not IP, bytes 0-7 after the link header.</summary>
        public ulong Payload;

        /// <summary>The kind (top byte), TCP timestamps present (bit 55), payload bytes hashed (bits 48-51), TCP flags
        /// (bits 32-47) and the claimed TCP or UDP payload length; for ICMP, type, code and sequence instead.</summary>
        public ulong Transport;

        /// <summary>TCP sequence and acknowledgment; not IP, bytes 8-15.</summary>
        public ulong Sequence;

        /// <summary>For a fragment, bit 63, its offset and MF (bits 32-48); the IPv6 fragment identification (low 32 bits).
        /// Not IP, bytes 16-23.</summary>
        public ulong Fragment;

        /// <summary>TSval and TSecr; for an ICMP error the quoted transport word; not IP, bytes 24-31.</summary>
        public ulong Timestamps;
    }

    /// <summary>Computes the fingerprint of the packet's innermost stack; <paramref name="frame"/> is the span it was parsed from.</summary>
    public static ulong Compute(in ParsedPacket packet, ReadOnlySpan<byte> frame)
    {
        Gather(in packet, frame, out Words words);
        return Mix(in words);
    }

    /// <summary>The hash of the six words: three independent 128-bit products folded to 64 bits, xored, then the avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Mix(in Words words)
    {
        ulong a = Fold(words.Network ^ Key0, words.Payload ^ Key1);
        ulong b = Fold(words.Transport ^ Key2, words.Sequence ^ Key3);
        ulong c = Fold(words.Fragment ^ Key4, words.Timestamps ^ Key5);
        return StableHash.Finish(a ^ b ^ c);
    }

    /// <summary>The 128-bit product of <paramref name="x"/> and <paramref name="y"/>, its high half xored into its low half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Fold(ulong x, ulong y)
    {
        ulong high = Math.BigMul(x, y, out ulong low);
        return high ^ low;
    }

    /// <summary>Packs the packet's invariant fields into <paramref name="words"/> (see <see cref="Words"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Gather(in ParsedPacket packet, ReadOnlySpan<byte> frame, out Words words)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        if (!layers.Has(LayerSet.Network))
        {
            GatherNotIp(in layers, frame, out words);
            return;
        }

        if (layers.IpVersion == 4)
        {
            // The length gets 32 bits: a big-TCP super-packet's captured length may pass 65535.
            words.Network = 4UL << 56 | (ulong)(ushort)layers.IpId << 40 | (ulong)layers.Protocol.Value << 32 | (uint)layers.IpTotalLength;
            words.Fragment = 0;
        }
        else
        {
            words.Network = 6UL << 56 | (ulong)layers.Protocol.Value << 48 | (ulong)layers.FlowLabel << 24 | (uint)(layers.IpTotalLength - Ipv6Header.Field.HeaderLength) & 0xFF_FFFF;
            words.Fragment = layers.IpId;
        }
        if ((layers.Flags & PacketFlags.Fragment) != 0)
        {
            // The offset is in bytes, at most 65,528 (13 bits of 8-byte units).
            words.Fragment |= (0x8000_0000UL | (ulong)(ushort)layers.FragmentOffset << 1 | ((layers.Flags & PacketFlags.MoreFragments) != 0 ? 1UL : 0UL)) << 32;
        }

        ulong transport = KindNone << 56;
        words.Sequence = 0;
        words.Timestamps = 0;
        if (layers.Has(LayerSet.Transport))
        {
            if (layers.IsTcp)
            {
                words.Sequence = (ulong)layers.TcpSequence << 32 | layers.TcpAcknowledgment;
                transport = KindTcp << 56 | (ulong)(ushort)layers.TcpFlags << 32 | (uint)ClaimedPayloadLength(in layers);
                if ((layers.Flags & PacketFlags.TcpTimestamps) != 0)
                {
                    transport |= 1UL << 55;
                    words.Timestamps = (ulong)layers.TcpTsVal << 32 | layers.TcpTsEcr;
                }
            }
            else if (layers.IsUdp)
            {
                transport = KindUdp << 56 | (uint)ClaimedPayloadLength(in layers);
            }
            else if (layers.IsIcmp)
            {
                ulong icmp = (ulong)layers.IcmpType << 24 | (ulong)layers.IcmpCode << 16 | layers.IcmpSequence;
                if (layers.IsIcmpError)
                {
                    // The quoted packet's invariants instead of the payload bytes.
                    words.Transport = KindIcmpError << 56 | icmp;
                    QuotedWords(Payload(in layers, frame), layers.IpVersion == 6, out words.Payload, out words.Timestamps);
                    return;
                }
                transport = KindIcmp << 56 | icmp;
            }
        }

        // The first PayloadHashBytes captured payload bytes as one little-endian word, zero-padded, and their count
        // (none when the payload lies outside the frame).
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
        words.Payload = word;
        words.Transport = transport | (ulong)count << 48;
    }

    /// <summary>
    /// Not IP (ARP, LLC) or cut before the network header: nothing is NATed, so the type and the first bytes after the
    /// link header identify it well enough within a time window. 32 bytes cover a whole ARP message (28), so who-has
    /// requests for different targets differ.
    /// </summary>
    private static void GatherNotIp(in PacketLayers layers, ReadOnlySpan<byte> frame, out Words words)
    {
        ReadOnlySpan<byte> rest = frame[Math.Min(layers.NetworkOffset, frame.Length)..];
        rest = rest[..Math.Min(rest.Length, NonIpHashBytes)];
        words.Network = (ulong)rest.Length << 16 | layers.EtherType.Value;
        words.Transport = KindNotIp << 56;
        words.Payload = WordAt(rest, 0);
        words.Sequence = WordAt(rest, 8);
        words.Fragment = WordAt(rest, 16);
        words.Timestamps = WordAt(rest, 24);
    }

    /// <summary>Up to 8 bytes of <paramref name="bytes"/> from <paramref name="offset"/> as one little-endian word, zero-padded.</summary>
    private static ulong WordAt(ReadOnlySpan<byte> bytes, int offset)
    {
        ulong word = 0;
        for (int i = offset; i < bytes.Length && i < offset + 8; i++)
        {
            word |= (ulong)bytes[i] << (8 * (i - offset));
        }
        return word;
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
    /// addresses, ports and checksums too (RFC 5508 section 7), so only the quoted invariants are hashed:
    /// <paramref name="header"/> (top nibble 1: the first bytes, cut; 2: IPv4; 3: IPv6) and <paramref name="transport"/>
    /// (top nibble 1: TCP sequence; 2: UDP length; 3: ICMP type, code, sequence; 0: none).
    /// </summary>
    private static void QuotedWords(ReadOnlySpan<byte> quoted, bool v6, out ulong header, out ulong transport)
    {
        IpProtocol protocol;
        ReadOnlySpan<byte> rest;
        if (!v6)
        {
            if (Ipv4Header.TryCreate(quoted, out var ip) != HeaderCheck.Ok || ip.IsCutShort)
            {
                header = 1UL << 60 | (uint)Math.Min(quoted.Length, PayloadHashBytes);
                transport = WordAt(quoted, 0);
                return;
            }
            protocol = ip.Protocol;
            header = 2UL << 60 | (ulong)ip.Identification << 32 | (ulong)protocol.Value << 16 | ip.TotalLength;
            rest = quoted[ip.HeaderLength..];
        }
        else
        {
            if (Ipv6Header.TryCreate(quoted, out var ip) != HeaderCheck.Ok)
            {
                header = 1UL << 60 | (uint)Math.Min(quoted.Length, PayloadHashBytes);
                transport = WordAt(quoted, 0);
                return;
            }
            protocol = ip.NextHeader;
            header = 3UL << 60 | (ulong)protocol.Value << 48 | (ulong)ip.FlowLabel << 24 | ip.PayloadLength;
            rest = quoted[Ipv6Header.Field.HeaderLength..];
        }
        transport = 0;
        // Only the first 8 transport bytes are guaranteed to be quoted (RFC 792).
        if (rest.Length < 8)
        {
            return;
        }
        if (protocol == IpProtocol.Tcp)
        {
            transport = 1UL << 60 | BinaryPrimitives.ReadUInt32BigEndian(rest[TcpHeader.Field.Sequence..]);
        }
        else if (protocol == IpProtocol.Udp)
        {
            transport = 2UL << 60 | BinaryPrimitives.ReadUInt16BigEndian(rest[UdpHeader.Field.Length..]);
        }
        else if (protocol == IpProtocol.Icmp || protocol == IpProtocol.IcmpV6)
        {
            transport = 3UL << 60 | (ulong)rest[0] << 24 | (ulong)rest[1] << 16 | BinaryPrimitives.ReadUInt16BigEndian(rest[IcmpHeader.Field.Sequence..]);
        }
    }
}
