using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using VethTrace.Packets.Headers;

namespace VethTrace.Packets;

/// <summary>
/// The zero-allocation packet parser. It reads a captured frame laxly: every layer whose header was
/// captured is kept, and <see cref="ParsedPacket.StoppedAt"/> and <see cref="ParsedPacket.Outcome"/>
/// say where and why it stopped. It never throws on any input and never allocates.
/// </summary>
public static class PacketParser
{
    /// <summary>Parses with <see cref="ParserOptions.Default"/>.</summary>
    public static ParseOutcome Parse(ReadOnlySpan<byte> frame, LinkType linkType, out ParsedPacket packet) =>
        Parse(frame, linkType, ParserOptions.Default, out packet);

    /// <summary>Parses a frame whose length on the wire is unknown: an IP length beyond the captured bytes is taken to be the snaplen's cut.</summary>
    public static ParseOutcome Parse(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, out ParsedPacket packet) =>
        Parse(frame, linkType, options, originalLength: 0, out packet);

    /// <summary>
    /// Parses a frame, given its length on the wire from the capture record (pcap <c>orig_len</c>, pcapng "original
    /// packet length"). With it the parser tells a frame the snaplen cut (the IP length fits in the original length)
    /// from one that contradicts its record (it does not: <see cref="PacketFlags.IpLengthBeyondFrame"/>), and takes a zero
    /// IP length (big TCP) from the original length rather than the captured one, so every hop agrees on it whatever its
    /// snaplen. A value below <paramref name="frame"/>'s length means unknown.
    /// </summary>
    // Inlined into the caller's loop: what is left of it is the link type's switch and one call.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ParseOutcome Parse(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, int originalLength, out ParsedPacket packet)
    {
        // Every field Parse sets is written below (Inner only when a tunnel is found: it is only meaningful when
        // TunnelDepth > 0), so the ~400-byte result is not zeroed first.
        Unsafe.SkipInit(out packet);
        // Stored first and read back only where an IP length passes the capture, so the hot code keeps one argument
        // fewer in registers.
        packet.OriginalLength = originalLength >= frame.Length ? originalLength : 0;
        // The first tier's Ethernet instance is inlined here, so the packet nearly every capture is made of costs no
        // call; every other frame (the Linux cooked headers' first tier included, and Ethernet TCP with options other than
        // timestamps, which this instance leaves to the out-of-line one) takes the one call below. The success
        // path returns a constant and does not meet the call's path before the caller sees the result: when both paths
        // returned through one test of a bool, the caller's loop spilled the frame and its length on the way and
        // reloaded them at the test, on every packet (docs/performance.md, "Parser round 6").
        if (linkType.Value == 1 && TryParseCommonAfterLinkInline<EthernetLink>(frame, linkType, options, walkOptions: false, ref packet))
        {
            return ParseOutcome.Complete;
        }
        // The same for Linux cooked v2, what `tcpdump -i any` writes: every packet of such a capture took the call below
        // (docs/performance.md, "Replay reading thread on SLL2").
        if (linkType.Value == 276 && TryParseCommonAfterLinkInline<LinuxSll2Link>(frame, linkType, options, walkOptions: false, ref packet))
        {
            return ParseOutcome.Complete;
        }
        return ParseOtherShapes(frame, linkType, options, ref packet);
    }

    /// <summary>
    /// A frame the first tier's Ethernet instance did not take: the first tier for the Linux cooked headers, the frames
    /// that are not IP, the second tier, then the general parser.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ParseOutcome ParseOtherShapes(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, ref ParsedPacket packet)
    {
        bool common = linkType.Value switch
        {
            1 => IsUntaggedIpv4(frame) && TryParseCommonAfterLink<EthernetLink>(frame, linkType, options, ref packet),
            113 => TryParseCommonAfterLinkInline<LinuxSllLink>(frame, linkType, options, walkOptions: true, ref packet),
            276 => IsUntaggedIpv4<LinuxSll2Link>(frame) && TryParseCommonAfterLinkInline<LinuxSll2Link>(frame, linkType, options, walkOptions: true, ref packet),
            _ => false,
        };
        if (common)
        {
            return ParseOutcome.Complete;
        }
        bool notIp = linkType.Value switch
        {
            1 => TryParseNotIp<EthernetLink>(frame, linkType, ref packet),
            113 => TryParseNotIp<LinuxSllLink>(frame, linkType, ref packet),
            276 => TryParseNotIp<LinuxSll2Link>(frame, linkType, ref packet),
            _ => false,
        };
        if (notIp)
        {
            return ParseOutcome.UnsupportedProtocol;
        }
        if (TryParseCommonStacks(frame, linkType, options, ref packet))
        {
            return ParseOutcome.Complete;
        }
        // OriginalLength is already 0 or at least the frame's length, which ParseGeneral keeps as it is.
        return ParseGeneral(frame, linkType, options, packet.OriginalLength, ref packet);
    }

    /// <summary>
    /// An Ethernet frame whose EtherType is IPv4 (no VLAN tag) and whose IPv4 header is 20 bytes: the only frames the first
    /// tier's Ethernet instance can take. Read before the out-of-line call to it, so the frames it cannot take (VLAN, IPv6,
    /// ARP) do not pay for the call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsUntaggedIpv4(ReadOnlySpan<byte> frame) => IsUntaggedIpv4<EthernetLink>(frame);

    /// <summary>The same test after a link header of <typeparamref name="TLink"/>'s shape.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsUntaggedIpv4<TLink>(ReadOnlySpan<byte> frame)
        where TLink : struct, ICommonLink =>
        frame.Length >= TLink.HeaderLength + Ipv4Header.Field.FixedLength && IsIpv4WithoutOptions<TLink>(ref MemoryMarshal.GetReference(frame));

    /// <summary>
    /// The link header's EtherType is IPv4 (0x0800, so no VLAN tag) and the byte after the link header holds version 4
    /// and IHL 5; the frame holds both (the caller checked). Where the EtherType ends the link header (Ethernet, Linux
    /// cooked v1) it is one load of the three bytes, in network order; Linux cooked v2 keeps its protocol at the header's
    /// start, 18 bytes before the IP header, so there it is two. The offsets are constants: only one form is compiled.
    /// (Linux cooked v2 once took the one load too, which read the protocol and the reserved field: no frame ever matched,
    /// and every one went on to the second tier; docs/performance.md, "Replay reading thread on SLL2".)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsIpv4WithoutOptions<TLink>(ref byte start)
        where TLink : struct, ICommonLink =>
        TLink.EtherType + 2 == TLink.HeaderLength
            ? (ReadBigEndian32(ref start, TLink.EtherType) & 0xFFFF_FF00) == 0x0800_4500
            : ReadBigEndian16(ref start, TLink.EtherType) == 0x0800 && Unsafe.Add(ref start, TLink.HeaderLength) == 0x45;

    /// <summary>
    /// A link header of <typeparamref name="TLink"/>'s shape whose EtherType names neither IP nor a VLAN tag nor MPLS nor
    /// an 802.3 length (ARP, LLDP, IEEE 1905 and the like, about one frame in ten on a container bridge): the general
    /// parser reads the link header and stops at the network layer, unsupported; this writes the same fields without it.
    /// Returns false, having written nothing, for any other frame.
    /// </summary>
    private static bool TryParseNotIp<TLink>(ReadOnlySpan<byte> frame, LinkType linkType, ref ParsedPacket packet)
        where TLink : struct, ICommonLink
    {
        if (frame.Length < TLink.HeaderLength)
        {
            return false;
        }
        ref byte start = ref MemoryMarshal.GetReference(frame);
        var type = new EtherType(ReadBigEndian16(ref start, TLink.EtherType));
        if (type.IsLength || type.Value == EtherType.Ipv4.Value || type.Value == EtherType.Ipv6.Value || type.IsVlanTag || type.IsMpls)
        {
            return false;
        }
        ref PacketLayers layers = ref packet.Outer;
        Clear(ref layers);
        TLink.ReadFields(ref start, ref layers);
        layers.Layers = LayerSet.Link;
        layers.LinkType = linkType;
        layers.EtherType = type;
        layers.NetworkOffset = TLink.HeaderLength;
        packet.TunnelDepth = 0;
        packet.Vni = 0;
        packet.CapturedLength = frame.Length;
        packet.StoppedAt = ParseLayer.Network;
        packet.Outcome = ParseOutcome.UnsupportedProtocol;
        packet.Required = 0;
        packet.Available = 0;
        return true;
    }

    /// <summary>
    /// The general parser, every link type and every shape. <see cref="Parse(ReadOnlySpan{byte}, LinkType, ParserOptions, out ParsedPacket)"/>
    /// tries <see cref="TryParseCommon"/> first; tests compare the two.
    /// </summary>
    internal static ParseOutcome ParseGeneral(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, int originalLength, ref ParsedPacket packet)
    {
        packet.OriginalLength = originalLength >= frame.Length ? originalLength : 0;
        packet.Outer = default;
        packet.TunnelDepth = 0;
        packet.Vni = 0;
        packet.Required = 0;
        packet.Available = 0;
        packet.CapturedLength = frame.Length;
        int innerOffset = ParseStack(frame, 0, linkType, options, ref packet.Outer, ref packet);
        while (innerOffset >= 0)
        {
            if (packet.TunnelDepth >= options.MaxTunnelDepth)
            {
                Stop(ref packet, ParseLayer.Tunnel, ParseOutcome.LimitExceeded);
                break;
            }
            packet.TunnelDepth++;
            packet.Inner = default;
            // VXLAN carries a whole Ethernet frame (RFC 7348 section 5).
            innerOffset = ParseStack(frame, innerOffset, LinkType.Ethernet, options, ref packet.Inner, ref packet);
        }
        return packet.Outcome;
    }

    /// <summary>
    /// The shapes nearly every captured packet has, read with fewer branches: Ethernet, the Linux cooked headers v1 and v2
    /// (what <c>tcpdump -i any</c> writes) or raw IP; up to two VLAN tags (802.1Q, 802.1ad, 0x9100) within
    /// <see cref="ParserOptions.MaxVlanTags"/>; IPv4 with a 20-byte header that is not a fragment and declares at least its
    /// header, or IPv6 with a non-zero payload length and no extension header; then TCP (header captured whole), UDP or
    /// ICMP/ICMPv6, with the transport header inside both the captured bytes and the IP length. UDP to the VXLAN port with
    /// a whole VXLAN header (I flag set) continues into the inner Ethernet frame, which must have the same shape and no
    /// second tunnel. It fills exactly the fields <see cref="ParseGeneral"/> fills for such a packet, which is
    /// <see cref="ParseOutcome.Complete"/>; for any other packet it returns false, and what it wrote is overwritten. Every
    /// read is at an offset below a length checked first, so it never reads past <paramref name="frame"/>.
    /// </summary>
    internal static bool TryParseCommon(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, int originalLength, ref ParsedPacket packet)
    {
        packet.OriginalLength = originalLength >= frame.Length ? originalLength : 0;
        return TryParseCommonIpv4(frame, linkType, options, ref packet) || TryParseCommonStacks(frame, linkType, options, ref packet);
    }

    /// <summary>
    /// The first tier alone (<see cref="TryParseCommonIpv4"/>: Ethernet or Linux cooked v1/v2, IPv4 with a 20-byte header,
    /// TCP, UDP or ICMP, TCP options walked), or with <paramref name="inlinedOnly"/> the instance that
    /// <see cref="Parse(ReadOnlySpan{byte}, LinkType, ParserOptions, int, out ParsedPacket)"/> inlines for the link type
    /// (Ethernet and Linux cooked v2; TCP with no options or NOP, NOP, Timestamps only). True when it took the frame, which
    /// it then filled as <see cref="ParseGeneral"/> does. For the tests: which tier takes which frame.
    /// </summary>
    internal static bool TryParseFirstTier(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, int originalLength, bool inlinedOnly,
        ref ParsedPacket packet)
    {
        packet.OriginalLength = originalLength >= frame.Length ? originalLength : 0;
        if (!inlinedOnly)
        {
            return TryParseCommonIpv4(frame, linkType, options, ref packet);
        }
        return linkType.Value switch
        {
            1 => TryParseCommonAfterLinkInline<EthernetLink>(frame, linkType, options, walkOptions: false, ref packet),
            276 => TryParseCommonAfterLinkInline<LinuxSll2Link>(frame, linkType, options, walkOptions: false, ref packet),
            _ => false,
        };
    }

    /// <summary>
    /// The second tier of <see cref="TryParseCommon"/>: the outer stack, and the inner one after VXLAN.
    /// <see cref="ParsedPacket.OriginalLength"/> is set already.
    /// </summary>
    private static bool TryParseCommonStacks(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, ref ParsedPacket packet)
    {
        int inner = TryParseCommonStack(frame, 0, linkType, options, ref packet.Outer, ref packet);
        if (inner < 0)
        {
            return false;
        }
        if (inner > 0)
        {
            // VXLAN carries a whole Ethernet frame (RFC 7348 section 5). A depth limit of 0 stops at the tunnel, and a
            // tunnel inside the tunnel is the general parser's.
            if (options.MaxTunnelDepth < 1 || TryParseCommonStack(frame, inner, LinkType.Ethernet, options, ref packet.Inner, ref packet) != 0)
            {
                return false;
            }
            packet.TunnelDepth = 1;
        }
        else
        {
            packet.TunnelDepth = 0;
            packet.Vni = 0;
        }
        packet.CapturedLength = frame.Length;
        packet.StoppedAt = ParseLayer.Payload;
        packet.Outcome = ParseOutcome.Complete;
        packet.Required = 0;
        packet.Available = 0;
        return true;
    }

    /// <summary>
    /// The first tier of <see cref="TryParseCommon"/>, for the shape of nearly every packet a tracer sees: Ethernet or the
    /// Linux cooked headers without a VLAN tag, IPv4 with a 20-byte header, TCP, UDP (not to the VXLAN port) or ICMP. It
    /// is generic over the link header, so each link type gets code with the offsets as constants; the second tier
    /// (<see cref="TryParseCommonStack"/>), which takes VLAN tags, IPv6, raw IP and VXLAN, reads at offsets it computes.
    /// Returns false for any other packet.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryParseCommonIpv4(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, ref ParsedPacket packet) =>
        linkType.Value switch
        {
            1 => TryParseCommonAfterLinkInline<EthernetLink>(frame, linkType, options, walkOptions: true, ref packet),
            113 => TryParseCommonAfterLink<LinuxSllLink>(frame, linkType, options, ref packet),
            276 => TryParseCommonAfterLink<LinuxSll2Link>(frame, linkType, options, ref packet),
            _ => false,
        };

    /// <summary>Where a link header of the common shape keeps its EtherType, how long it is, and what else it says.</summary>
    private interface ICommonLink
    {
        static abstract int EtherType { get; }

        static abstract int HeaderLength { get; }

        /// <summary>Stores the link header's own fields (the frame holds the whole header).</summary>
        static abstract void ReadFields(ref byte start, ref PacketLayers layers);
    }

    private struct EthernetLink : ICommonLink
    {
        public static int EtherType => EthernetHeader.Field.EtherType;

        public static int HeaderLength => EthernetHeader.Field.HeaderLength;

        public static void ReadFields(ref byte start, ref PacketLayers layers)
        {
        }
    }

    private struct LinuxSllLink : ICommonLink
    {
        public static int EtherType => LinuxSllHeader.Field.Protocol;

        public static int HeaderLength => LinuxSllHeader.Field.HeaderLength;

        public static void ReadFields(ref byte start, ref PacketLayers layers) =>
            layers.PacketType = (LinuxPacketType)ReadBigEndian16(ref start, LinuxSllHeader.Field.PacketType);
    }

    private struct LinuxSll2Link : ICommonLink
    {
        public static int EtherType => LinuxSll2Header.Field.Protocol;

        public static int HeaderLength => LinuxSll2Header.Field.HeaderLength;

        public static void ReadFields(ref byte start, ref PacketLayers layers)
        {
            layers.PacketType = (LinuxPacketType)Unsafe.Add(ref start, LinuxSll2Header.Field.PacketType);
            layers.InterfaceIndex = (int)ReadBigEndian32(ref start, LinuxSll2Header.Field.InterfaceIndex);
        }
    }

    /// <summary>
    /// <see cref="TryParseCommon(ReadOnlySpan{byte}, LinkType, ParserOptions, int, ref ParsedPacket)"/> after a link header
    /// of <typeparamref name="TLink"/>'s shape. Generic over a struct, so each link type gets its own code with the
    /// offsets as constants (a version taking them as arguments measured 2.3 ns slower per Ethernet packet).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool TryParseCommonAfterLink<TLink>(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, ref ParsedPacket packet)
        where TLink : struct, ICommonLink =>
        TryParseCommonAfterLinkInline<TLink>(frame, linkType, options, walkOptions: true, ref packet);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryParseCommonAfterLinkInline<TLink>(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, bool walkOptions,
        ref ParsedPacket packet)
        where TLink : struct, ICommonLink
    {
        int ip = TLink.HeaderLength;
        int length = frame.Length;
        int transportStart = ip + Ipv4Header.Field.FixedLength;
        // The smallest frame taken: ICMP or UDP's 8-byte header after IPv4 (and the link header, which holds the EtherType).
        if (length < transportStart + UdpHeader.Field.HeaderLength)
        {
            return false;
        }
        ref byte start = ref MemoryMarshal.GetReference(frame);
        // EtherType 0x0800 (no VLAN tag), then version 4 and IHL 5.
        if (!IsIpv4WithoutOptions<TLink>(ref start))
        {
            return false;
        }
        // The flags and fragment offset as the two bytes lie in memory, not byte-swapped (the swap of a 16-bit load cost
        // one instruction more): the fragment bits (0x3FFF big-endian) are 0xFF3F of the little-endian read, DF (0x4000)
        // its bit 6.
        uint flagsAndOffset = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, ip + Ipv4Header.Field.FlagsAndFragmentOffset));
        Debug.Assert(BitConverter.IsLittleEndian);
        int totalLength = ReadBigEndian16(ref start, ip + Ipv4Header.Field.TotalLength);
        // Not a fragment (MF clear, offset 0), and a length of at least the header (zero is big TCP: the general path).
        if ((flagsAndOffset & 0xFF3F) != 0 || totalLength < Ipv4Header.Field.FixedLength)
        {
            return false;
        }
        // An IP length past the original length (not only past the capture): the frame contradicts its record. That is an
        // IP length beyond what the original length leaves after the link header; OriginalLength is 0 when unknown (then
        // 0 - ip is a huge unsigned number and nothing is beyond it) or at least the frame's length (then an IP length
        // within the capture is within it too, so the test need not ask first whether the capture cut the packet).
        if ((uint)totalLength > (uint)(packet.OriginalLength - ip))
        {
            return false;
        }
        // Whether the snaplen cut the packet goes either way from one packet to the next (in a bulk transfer the data
        // segments are cut and the ACKs are not), so the decisions that depend on it are arithmetic, not branches (callgrind's
        // branch simulation had those branches mispredicted on about one bulk packet in six; measured, `Parse` gained about
        // 2 %: docs/performance.md, "Parser round 8"). `beyond` is
        // the IP length past the captured bytes: > 0 when the capture cut the packet, < 0 when bytes follow it (padding).
        int captured = length - ip;
        int beyond = totalLength - captured;
        int trailing = beyond >> 31;
        int transportCaptured = captured + (beyond & trailing) - Ipv4Header.Field.FixedLength;
        // The network layer's flags, made now so that only they stay live, not what they are made of: DF (bit 6 of the
        // little-endian flags and offset, PacketFlags.DontFragment bit 2), IpLengthBeyondCapture (bit 3) from the sign of -beyond and
        // TrailingBytes (bit 4) from the sign of beyond.
        Debug.Assert((int)PacketFlags.DontFragment == 0x40 >> 4);
        Debug.Assert((int)PacketFlags.IpLengthBeyondCapture == 8 && (int)PacketFlags.TrailingBytes == 16);
        uint networkFlags = ((flagsAndOffset >> 4) & (uint)PacketFlags.DontFragment) | (uint)(((-beyond >> 31) & 8) | (trailing & 16));
        byte protocol = Unsafe.Add(ref start, ip + Ipv4Header.Field.Protocol);

        ref PacketLayers layers = ref packet.Outer;
        // Only the fields from ColdStart on: every field before it is written below.
        ClearCold(ref layers);
        uint flags = networkFlags;
        if (!ReadCommonTransport(frame, protocol, transportStart, totalLength, Ipv4Header.Field.FixedLength, transportCaptured,
            ref flags, v6: false, takeVxlanPort: false, walkOptions, options, ref layers))
        {
            return false;
        }
        TLink.ReadFields(ref start, ref layers);
        layers.SetV4Addresses(ReadBigEndian32(ref start, ip + Ipv4Header.Field.Source), ReadBigEndian32(ref start, ip + Ipv4Header.Field.Destination));
        // Pairs and runs of adjacent fields, one store each (the order of PacketLayers' fields is made for this).
        StoreFour(ref layers.LinkType, linkType.Value, (uint)ip, Ipv4Header.Field.FixedLength, (uint)transportStart, ref layers.TransportOffset);
        layers.IpId = ReadBigEndian16(ref start, ip + Ipv4Header.Field.Identification);
        layers.IpTotalLength = totalLength;
        // The network layer's flags and the transport's, as a uint, not a PacketFlags (a ushort): a 32-bit value needs no
        // zero-extension before the shift below.
        Debug.Assert(flags <= ushort.MaxValue);
        // EtherType, Flags, Layers, IpVersion, then TTL and protocol as the header has them (byte 8, then 9).
        Debug.Assert(Unsafe.ByteOffset(ref Unsafe.As<EtherType, byte>(ref layers.EtherType), ref Unsafe.As<IpProtocol, byte>(ref layers.Protocol)) == 7);
        Unsafe.WriteUnaligned(ref Unsafe.As<EtherType, byte>(ref layers.EtherType),
            EtherType.Ipv4.Value | (ulong)flags << 16 | (ulong)(LayerSet.Link | LayerSet.Network | LayerSet.Transport) << 32 | 4UL << 40
            | (ulong)Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, ip + Ipv4Header.Field.Ttl)) << 48);
        layers.TrafficClass = Unsafe.Add(ref start, ip + Ipv4Header.Field.Tos);
        SetCompleteWithoutTunnel(ref packet, length);
        return true;
    }

    /// <summary>Returned by <see cref="TryParseCommonStack"/> and <see cref="ReadCommonTransport"/> when the frame is not of the common shape.</summary>
    private const int NotCommon = -1;

    /// <summary>
    /// Stores two adjacent 4-byte fields with one 8-byte store: <paramref name="low"/> into <paramref name="first"/> and
    /// <paramref name="high"/> into <paramref name="second"/>, which must be the field right after it (PacketLayoutTests
    /// check every pair this is used for; <paramref name="second"/> is only there to say which field is written).
    /// Little-endian only (x64 and arm64, what VethTrace is built for).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTwo<TFirst, TSecond>(ref TFirst first, uint low, uint high, ref TSecond second)
        where TFirst : unmanaged
        where TSecond : unmanaged
    {
        Debug.Assert(Unsafe.SizeOf<TFirst>() == 4 && Unsafe.SizeOf<TSecond>() == 4
            && Unsafe.ByteOffset(ref Unsafe.As<TFirst, byte>(ref first), ref Unsafe.As<TSecond, byte>(ref second)) == 4);
        Unsafe.WriteUnaligned(ref Unsafe.As<TFirst, byte>(ref first), low | (ulong)high << 32);
    }

    /// <summary>
    /// Stores four adjacent 4-byte fields, <paramref name="first"/> to <paramref name="fourth"/>, with one 16-byte store
    /// (a constant one when the four values are: the first tier's link type and offsets). PacketLayoutTests check the
    /// run this is used for; <paramref name="fourth"/> is only there to say which fields are written.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreFour<TFirst, TFourth>(ref TFirst first, uint a, uint b, uint c, uint d, ref TFourth fourth)
        where TFirst : unmanaged
        where TFourth : unmanaged
    {
        Debug.Assert(Unsafe.SizeOf<TFirst>() == 4 && Unsafe.SizeOf<TFourth>() == 4
            && Unsafe.ByteOffset(ref Unsafe.As<TFirst, byte>(ref first), ref Unsafe.As<TFourth, byte>(ref fourth)) == 12);
        Vector128.Create(a, b, c, d).AsByte().StoreUnsafe(ref Unsafe.As<TFirst, byte>(ref first));
    }

    /// <summary>
    /// The end of a parse that went through: <see cref="ParseLayer.Payload"/>, <see cref="ParseOutcome.Complete"/>, no tunnel
    /// (<see cref="ParsedPacket.TunnelDepth"/> and <see cref="ParsedPacket.Vni"/> 0), nothing required, in one 16-byte
    /// store of a constant (the fields are declared in this order for it), and the captured length.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetCompleteWithoutTunnel(ref ParsedPacket packet, int capturedLength)
    {
        Debug.Assert(Unsafe.ByteOffset(ref Unsafe.As<ParseLayer, byte>(ref packet.StoppedAt), ref Unsafe.As<uint, byte>(ref packet.Vni)) == 4);
        Debug.Assert(Unsafe.ByteOffset(ref Unsafe.As<ParseLayer, byte>(ref packet.StoppedAt), ref Unsafe.As<int, byte>(ref packet.Available)) == 12);
        // StoppedAt, Outcome, TunnelDepth and Vni, then Required and Available: 16 bytes of a constant, one store.
        Vector128.Create((ulong)ParseLayer.Payload | (ulong)ParseOutcome.Complete << 8, 0UL).AsByte()
            .StoreUnsafe(ref Unsafe.As<ParseLayer, byte>(ref packet.StoppedAt));
        packet.CapturedLength = capturedLength;
    }

    /// <summary>
    /// The transport header of both tiers of <see cref="TryParseCommon"/>: TCP (header captured whole), UDP or ICMP/ICMPv6,
    /// inside both the captured bytes (<paramref name="transportCaptured"/>: what the capture holds of the IP length after
    /// the IP header, so at most the segment) and the segment the IP header declares (<paramref name="ipLength"/> less
    /// <paramref name="ipHeaderLength"/>), read into <paramref name="layers"/>, which the caller zeroed.
    /// UDP to the VXLAN port is not common unless <paramref name="takeVxlanPort"/> (the caller then reads the tunnel from
    /// the payload). TCP options other than none or NOP, NOP, Timestamps are not common unless <paramref name="walkOptions"/>:
    /// the instance inlined into the caller's loop leaves them to an out-of-line one, so that the call that walks them is
    /// not in the loop (with it there, the loop kept more values across it, in callee-saved registers and on the stack:
    /// 290 instructions per bulk packet against 272 without; docs/performance.md, "Parser round 7"). Adds the
    /// transport's flags to <paramref name="flags"/> (the caller's network flags: it keeps them in a register and stores
    /// them once) and returns true, or returns false. A bool, not the flags or -1: every return is then a constant, so
    /// the inlined success path jumps to the caller's success path without a test of the result (with -1 for "not
    /// common", both paths met at a compare of the flags with -1; docs/performance.md, "Parser round 9"). Inlined into
    /// each tier, so the constant arguments fold away.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool ReadCommonTransport(ReadOnlySpan<byte> frame, int protocol, int transportStart, int ipLength, int ipHeaderLength,
        int transportCaptured, ref uint flags, bool v6, bool takeVxlanPort, bool walkOptions, ParserOptions options, ref PacketLayers layers)
    {
        // The segment the IP header declares is ipLength - ipHeaderLength, written out where it is used rather than held in
        // a local: the first tier's path through the inlined code then keeps one value fewer live (it was spilled to the
        // stack and read back).
        Debug.Assert(transportCaptured <= ipLength - ipHeaderLength);
        ref byte start = ref MemoryMarshal.GetReference(frame);
        // An if chain with TCP first, not a switch: the switch's compares put TCP behind two others (6 instructions, 2 here).
        if (protocol == 6) // TCP
        {
            if (transportCaptured < TcpHeader.Field.FixedLength)
            {
                return false;
            }
            int tcp = transportStart;
            // The data offset, the flags and the window.
            uint offsetFlagsAndWindow = ReadBigEndian32(ref start, tcp + TcpHeader.Field.DataOffsetAndFlags);
            int headerLength = (int)(offsetFlagsAndWindow >> 28) * 4;
            int optionsLength = headerLength - TcpHeader.Field.FixedLength;
            // Data offset below 5 words (malformed), past the segment (malformed) or past the capture (truncated): one
            // unsigned compare, as the captured bytes are at most the segment (and at least the fixed header, checked above).
            if ((uint)optionsLength > (uint)(transportCaptured - TcpHeader.Field.FixedLength))
            {
                return false;
            }
            // Each pair with one load and one store (PacketLayers declares them for it): the ports (destination,
            // then source), the acknowledgment and sequence numbers, the window and the flags (the data offset
            // masked off), the header and options lengths.
            StorePorts(ref start, tcp, ref layers);
            Unsafe.WriteUnaligned(ref Unsafe.As<uint, byte>(ref layers.TcpAcknowledgment), ReadBigEndian64(ref start, tcp + TcpHeader.Field.Sequence));
            Unsafe.WriteUnaligned(ref Unsafe.As<ushort, byte>(ref layers.TcpWindow), offsetFlagsAndWindow & 0x01FF_FFFF);
            Unsafe.WriteUnaligned(ref layers.TcpHeaderLength, (ushort)(headerLength | optionsLength << 8));
            // The options are captured whole (checked above). NOP, NOP, Timestamps, the layout of nearly every
            // segment of an established Linux connection (RFC 7323 appendix A), is read here, as ReadTcpOptions
            // reads it, without the call; any other is walked there.
            const int Options = TcpHeader.Field.FixedLength;
            if (headerLength == Options + TcpHeader.AlignedTimestampsLength
                && ReadBigEndian32(ref start, tcp + Options) == TcpHeader.AlignedTimestampsPrefix)
            {
                // TSval, then TSecr: one load, one store (TcpTsEcr is declared first).
                Unsafe.WriteUnaligned(ref Unsafe.As<uint, byte>(ref layers.TcpTsEcr), ReadBigEndian64(ref start, tcp + Options + 4));
                flags |= (uint)PacketFlags.TcpTimestamps;
            }
            else if (headerLength > Options)
            {
                if (!walkOptions)
                {
                    return false;
                }
                flags |= (uint)ReadTcpOptions(frame.Slice(tcp, headerLength), headerLength, ref layers);
            }
            SetPayloadWithin(ref layers, tcp + headerLength, ipLength - ipHeaderLength - headerLength, transportCaptured - headerLength);
        }
        else if (protocol == 17) // UDP
        {
            int udp = transportStart;
            ushort destinationPort = ReadBigEndian16(ref start, udp + UdpHeader.Field.DestinationPort);
            int udpLength = ReadBigEndian16(ref start, udp + UdpHeader.Field.Length);
            // Captured and declared header (the caller's length check covers the captured frame, not the IP length);
            // a UDP length below the header is malformed.
            if (transportCaptured < UdpHeader.Field.HeaderLength || udpLength < UdpHeader.Field.HeaderLength
                || (!takeVxlanPort && destinationPort == options.VxlanPort && options.VxlanPort != 0))
            {
                return false;
            }
            StorePorts(ref start, udp, ref layers);
            layers.UdpLength = (ushort)udpLength;
            if (udpLength != ipLength - ipHeaderLength)
            {
                flags |= (uint)PacketFlags.UdpLengthMismatch;
            }
            SetPayloadInRange(ref layers, udp + UdpHeader.Field.HeaderLength, Math.Min(udpLength, ipLength - ipHeaderLength) - UdpHeader.Field.HeaderLength,
                transportCaptured - UdpHeader.Field.HeaderLength);
        }
        else if (protocol is 1 or 58) // ICMP, ICMPv6 (the general parser reads either after either IP version, as this does)
        {
            // The captured bytes are at most the segment, so this covers the segment too.
            if (transportCaptured < IcmpHeader.Field.HeaderLength)
            {
                return false;
            }
            int icmp = transportStart;
            byte type = Unsafe.Add(ref start, icmp + IcmpHeader.Field.Type);
            layers.IcmpType = type;
            layers.IcmpCode = Unsafe.Add(ref start, icmp + IcmpHeader.Field.Code);
            if (IcmpHeader.HasIdentifier(v6, type))
            {
                layers.IcmpIdentifier = ReadBigEndian16(ref start, icmp + IcmpHeader.Field.Identifier);
                layers.IcmpSequence = ReadBigEndian16(ref start, icmp + IcmpHeader.Field.Sequence);
            }
            SetPayloadWithin(ref layers, icmp + IcmpHeader.Field.HeaderLength, ipLength - ipHeaderLength - IcmpHeader.Field.HeaderLength,
                transportCaptured - IcmpHeader.Field.HeaderLength);
        }
        else
        {
            return false;
        }
        return true;
    }

    /// <summary>
    /// The source and destination ports of TCP or UDP (both start with them) at <paramref name="transport"/>: one 32-bit load
    /// and one store, <see cref="PacketLayers.DestinationPort"/> being declared right before <see cref="PacketLayers.SourcePort"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePorts(ref byte start, int transport, ref PacketLayers layers) =>
        Unsafe.WriteUnaligned(ref Unsafe.As<ushort, byte>(ref layers.DestinationPort), ReadBigEndian32(ref start, transport));

    /// <summary>
    /// Zeroes <paramref name="layers"/>. <c>layers = default</c> does the same, and the JIT compiles it to a few wide
    /// stores where the machine has 32- or 64-byte vectors; but the Native AOT build (whose default instruction set has
    /// 16-byte vectors) compiles a struct of this size to a call to a memset helper, with the live values spilled to the
    /// stack around it. There the 16-byte stores are written out here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Clear(ref PacketLayers layers)
    {
        // The size and IsHardwareAccelerated are constants to the compiler: every test below folds away.
        int size = Unsafe.SizeOf<PacketLayers>();
        if (Vector256.IsHardwareAccelerated || RuntimeHelpers.IsReferenceOrContainsReferences<PacketLayers>()
            || size < Vector128<byte>.Count || size > 16 * Vector128<byte>.Count)
        {
            layers = default;
            return;
        }
        ref byte bytes = ref Unsafe.As<PacketLayers, byte>(ref layers);
        ClearBlock(ref bytes, 0, size);
        ClearBlock(ref bytes, 1, size);
        ClearBlock(ref bytes, 2, size);
        ClearBlock(ref bytes, 3, size);
        ClearBlock(ref bytes, 4, size);
        ClearBlock(ref bytes, 5, size);
        ClearBlock(ref bytes, 6, size);
        ClearBlock(ref bytes, 7, size);
        ClearBlock(ref bytes, 8, size);
        ClearBlock(ref bytes, 9, size);
        ClearBlock(ref bytes, 10, size);
        ClearBlock(ref bytes, 11, size);
        ClearBlock(ref bytes, 12, size);
        ClearBlock(ref bytes, 13, size);
        ClearBlock(ref bytes, 14, size);
        ClearBlock(ref bytes, 15, size);
    }

    /// <summary>
    /// Zeroes the fields of <paramref name="layers"/> from <see cref="PacketLayers.ColdStart"/> on (the transport fields,
    /// VLAN, MPLS, the link header's own and the rarer network fields: 6 16-byte stores instead of <see cref="Clear"/>'s 12).
    /// Both tiers of the fast path write every field before that offset themselves, on every path that takes the frame.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ClearCold(ref PacketLayers layers)
    {
        int size = Unsafe.SizeOf<PacketLayers>();
        ref byte cold = ref Unsafe.Add(ref Unsafe.As<PacketLayers, byte>(ref layers), PacketLayers.ColdStart);
        int coldSize = size - PacketLayers.ColdStart;
        if (coldSize < Vector128<byte>.Count || coldSize > 8 * Vector128<byte>.Count)
        {
            Unsafe.InitBlockUnaligned(ref cold, 0, (uint)coldSize);
            return;
        }
        ClearBlock(ref cold, 0, coldSize);
        ClearBlock(ref cold, 1, coldSize);
        ClearBlock(ref cold, 2, coldSize);
        ClearBlock(ref cold, 3, coldSize);
        ClearBlock(ref cold, 4, coldSize);
        ClearBlock(ref cold, 5, coldSize);
        ClearBlock(ref cold, 6, coldSize);
        ClearBlock(ref cold, 7, coldSize);
    }

    /// <summary>
    /// Zeroes the <paramref name="block"/>th 16 bytes of <paramref name="size"/> (the last, partial one with a store that
    /// overlaps the one before it); nothing past the end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ClearBlock(ref byte bytes, int block, int size)
    {
        int offset = block * Vector128<byte>.Count;
        if (offset < size)
        {
            Vector128<byte>.Zero.StoreUnsafe(ref bytes, (nuint)(offset + Vector128<byte>.Count <= size ? offset : size - Vector128<byte>.Count));
        }
    }

    /// <summary>
    /// One stack of <see cref="TryParseCommon"/>'s shape starting at <paramref name="linkOffset"/>, into
    /// <paramref name="layers"/>. Returns 0 for a complete stack, the frame offset of the inner Ethernet frame after a
    /// VXLAN header (and sets <see cref="ParsedPacket.Vni"/>), or <see cref="NotCommon"/>.
    /// </summary>
    private static int TryParseCommonStack(ReadOnlySpan<byte> frame, int linkOffset, LinkType linkType, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet)
    {
        int length = frame.Length;
        ref byte start = ref MemoryMarshal.GetReference(frame);
        int ip;
        int etherType;
        // The fields from ColdStart on zeroed first (every field before it is written below on every path that returns
        // a stack), and each field stored as soon as it is read, so few values stay live across the function (held in
        // locals they spilled to the stack). A frame that turns out not to be of this shape leaves these stores for the
        // general parser to overwrite.
        ClearCold(ref layers);
        // The smallest frame taken is a UDP or ICMP header after IPv4 and the link header: checked here for the link header
        // and its EtherType, below again for the network header the EtherType names.
        const int SmallestIp = Ipv4Header.Field.FixedLength + UdpHeader.Field.HeaderLength;
        switch (linkType.Value)
        {
            case 1: // Ethernet
                ip = linkOffset + EthernetHeader.Field.HeaderLength;
                if (length < ip + SmallestIp)
                {
                    return NotCommon;
                }
                etherType = ReadBigEndian16(ref start, linkOffset + EthernetHeader.Field.EtherType);
                break;
            case 113: // Linux cooked v1
                ip = linkOffset + LinuxSllHeader.Field.HeaderLength;
                if (length < ip + SmallestIp)
                {
                    return NotCommon;
                }
                etherType = ReadBigEndian16(ref start, linkOffset + LinuxSllHeader.Field.Protocol);
                layers.PacketType = (LinuxPacketType)ReadBigEndian16(ref start, linkOffset + LinuxSllHeader.Field.PacketType);
                break;
            case 276: // Linux cooked v2
                ip = linkOffset + LinuxSll2Header.Field.HeaderLength;
                if (length < ip + SmallestIp)
                {
                    return NotCommon;
                }
                etherType = ReadBigEndian16(ref start, linkOffset + LinuxSll2Header.Field.Protocol);
                layers.PacketType = (LinuxPacketType)Unsafe.Add(ref start, linkOffset + LinuxSll2Header.Field.PacketType);
                layers.InterfaceIndex = (int)ReadBigEndian32(ref start, linkOffset + LinuxSll2Header.Field.InterfaceIndex);
                break;
            case 101: // Raw IP: the version nibble decides.
            case 228: // IPv4
            case 229: // IPv6
                ip = linkOffset;
                if (length < ip + SmallestIp)
                {
                    return NotCommon;
                }
                int version = Unsafe.Add(ref start, ip) >> 4;
                etherType = linkType.Value == 228 ? 0x0800 : linkType.Value == 229 ? 0x86DD : version == 4 ? 0x0800 : version == 6 ? 0x86DD : 0;
                break;
            default:
                return NotCommon;
        }

        // VLAN tags after any link header (libpcap re-inserts the tag the kernel moved into skb metadata, for cooked
        // captures too); the raw link types carry none.
        LayerSet vlan = 0;
        if (etherType is 0x8100 or 0x88A8 or 0x9100)
        {
            if (options.MaxVlanTags < 1 || length < ip + VlanTag.Field.HeaderLength + SmallestIp)
            {
                return NotCommon;
            }
            layers.OuterVlanType = new EtherType((ushort)etherType);
            layers.OuterVlanId = (ushort)(ReadBigEndian16(ref start, ip + VlanTag.Field.TagControl) & 0x0FFF);
            etherType = ReadBigEndian16(ref start, ip + VlanTag.Field.EtherType);
            ip += VlanTag.Field.HeaderLength;
            layers.VlanCount = 1;
            vlan = LayerSet.Vlan;
            if (etherType is 0x8100 or 0x88A8 or 0x9100)
            {
                if (options.MaxVlanTags < 2 || length < ip + VlanTag.Field.HeaderLength + SmallestIp)
                {
                    return NotCommon;
                }
                layers.InnerVlanId = (ushort)(ReadBigEndian16(ref start, ip + VlanTag.Field.TagControl) & 0x0FFF);
                etherType = ReadBigEndian16(ref start, ip + VlanTag.Field.EtherType);
                ip += VlanTag.Field.HeaderLength;
                layers.VlanCount = 2;
            }
        }

        ref byte network = ref Unsafe.Add(ref start, ip);
        int headerLength;
        int totalLength;
        byte protocol;
        // Built here and stored once: a read-modify-write of the field just zeroed by wide stores would wait for them
        // (store-to-load forwarding from a vector store to a narrower load at another offset fails).
        PacketFlags flags;
        if (etherType == 0x0800)
        {
            // Version 4 and IHL 5 (the length check above covers the 20-byte header and 8 bytes after it).
            if (network != 0x45)
            {
                return NotCommon;
            }
            uint flagsAndOffset = ReadBigEndian16(ref network, Ipv4Header.Field.FlagsAndFragmentOffset);
            totalLength = ReadBigEndian16(ref network, Ipv4Header.Field.TotalLength);
            // Not a fragment (MF clear, offset 0), and a length of at least the header (zero is big TCP: the general path).
            if ((flagsAndOffset & 0x3FFF) != 0 || totalLength < Ipv4Header.Field.FixedLength)
            {
                return NotCommon;
            }
            headerLength = Ipv4Header.Field.FixedLength;
            protocol = Unsafe.Add(ref network, Ipv4Header.Field.Protocol);
            layers.IpId = ReadBigEndian16(ref network, Ipv4Header.Field.Identification);
            flags = (flagsAndOffset & 0x4000) != 0 ? PacketFlags.DontFragment : 0;
        }
        else if (etherType == 0x86DD)
        {
            // Version 6, the fixed header and 8 bytes after it captured, a payload length (zero is a jumbogram or big
            // TCP: the general path), and the upper layer right after the fixed header (no extension header).
            if (length < ip + Ipv6Header.Field.HeaderLength + UdpHeader.Field.HeaderLength || network >> 4 != 6)
            {
                return NotCommon;
            }
            int payloadLength = ReadBigEndian16(ref network, Ipv6Header.Field.PayloadLength);
            protocol = Unsafe.Add(ref network, Ipv6Header.Field.NextHeader);
            if (payloadLength == 0 || protocol is not (6 or 17 or 1 or 58))
            {
                return NotCommon;
            }
            headerLength = Ipv6Header.Field.HeaderLength;
            totalLength = Ipv6Header.Field.HeaderLength + payloadLength;
            // No fragment header, so no identification (the field is not in the zeroed part).
            layers.IpId = 0;
            flags = 0;
        }
        else
        {
            return NotCommon;
        }
        int captured = length - ip;
        // An IP length past the original length too (not only past the capture): the frame contradicts its record.
        // OriginalLength is 0 when unknown, so the unsigned difference is huge and the compare false then.
        if (totalLength > captured && (uint)(packet.OriginalLength - length) < (uint)(totalLength - captured))
        {
            return NotCommon;
        }
        int transportStart = ip + headerLength;
        int transportCaptured = Math.Min(totalLength, captured) - headerLength;

        uint transportFlags = 0;
        if (!ReadCommonTransport(frame, protocol, transportStart, totalLength, headerLength, transportCaptured, ref transportFlags,
            v6: etherType == 0x86DD, takeVxlanPort: true, walkOptions: true, options, ref layers))
        {
            return NotCommon;
        }
        flags |= (PacketFlags)transportFlags;
        int tunnel = 0;
        // VXLAN when the declared UDP data holds its 8-byte header; the I flag set (RFC 7348 section 5), or it is plain UDP
        // to that port. A header the capture cut is the general parser's (it stops there, truncated).
        if (protocol == 17 && layers.DestinationPort == options.VxlanPort && options.VxlanPort != 0
            && layers.PayloadLength >= VxlanHeader.Field.HeaderLength)
        {
            if (layers.CapturedPayloadLength < VxlanHeader.Field.HeaderLength)
            {
                return NotCommon;
            }
            int vxlan = layers.PayloadOffset;
            if ((Unsafe.Add(ref start, vxlan + VxlanHeader.Field.Flags) & 0x08) != 0)
            {
                packet.Vni = ReadBigEndian32(ref start, vxlan + VxlanHeader.Field.Vni) >> 8;
                tunnel = vxlan + VxlanHeader.Field.HeaderLength;
            }
        }

        layers.Layers = LayerSet.Link | LayerSet.Network | LayerSet.Transport
            | vlan | (tunnel != 0 ? LayerSet.Tunnel : 0);
        layers.LinkType = linkType;
        layers.LinkOffset = linkOffset;
        layers.EtherType = new EtherType((ushort)etherType);
        layers.NetworkOffset = ip;
        layers.Protocol = new IpProtocol(protocol);
        if (etherType == 0x0800)
        {
            layers.IpVersion = 4;
            layers.SetV4Addresses(ReadBigEndian32(ref network, Ipv4Header.Field.Source), ReadBigEndian32(ref network, Ipv4Header.Field.Destination));
            layers.Ttl = Unsafe.Add(ref network, Ipv4Header.Field.Ttl);
            layers.TrafficClass = Unsafe.Add(ref network, Ipv4Header.Field.Tos);
        }
        else
        {
            uint versionClassLabel = ReadBigEndian32(ref network, Ipv6Header.Field.VersionClassLabel);
            layers.IpVersion = 6;
            layers.SourceHigh = ReadBigEndian64(ref network, Ipv6Header.Field.Source);
            layers.SourceLow = ReadBigEndian64(ref network, Ipv6Header.Field.Source + 8);
            layers.DestinationHigh = ReadBigEndian64(ref network, Ipv6Header.Field.Destination);
            layers.DestinationLow = ReadBigEndian64(ref network, Ipv6Header.Field.Destination + 8);
            layers.Ttl = Unsafe.Add(ref network, Ipv6Header.Field.HopLimit);
            layers.TrafficClass = (byte)(versionClassLabel >> 20);
            layers.FlowLabel = versionClassLabel & 0x000F_FFFF;
        }
        layers.IpHeaderLength = headerLength;
        layers.IpTotalLength = totalLength;
        layers.TransportOffset = transportStart;
        layers.Flags = flags | (totalLength > captured ? PacketFlags.IpLengthBeyondCapture : totalLength < captured ? PacketFlags.TrailingBytes : 0);
        return tunnel;
    }

    /// <summary>
    /// The TCP options of a header captured whole (<paramref name="header"/> is the header, <paramref name="headerLength"/>
    /// bytes): NOP, NOP, Timestamps read directly, any other layout walked. Returns the flags to add: the caller ORs
    /// them into <see cref="PacketLayers.Flags"/> (the fast path keeps its flags in a register and stores them once).
    /// </summary>
    private static PacketFlags ReadTcpOptions(ReadOnlySpan<byte> header, int headerLength, ref PacketLayers layers)
    {
        if (headerLength == TcpHeader.Field.FixedLength + TcpHeader.AlignedTimestampsLength
            && TcpHeader.TryReadAlignedTimestamps(header, out uint timestampValue, out uint timestampEcho))
        {
            // The options of nearly every segment of an established Linux connection (RFC 7323 appendix A layout):
            // read directly, the same values the walk below finds, without walking.
            layers.TcpTsVal = timestampValue;
            layers.TcpTsEcr = timestampEcho;
            return PacketFlags.TcpTimestamps;
        }
        TcpHeader.TryCreate(header, out var tcp);
        var options = tcp.ReadOptions();
        layers.TcpMss = options.MaximumSegmentSize;
        PacketFlags flags = 0;
        if (options.HasTimestamps)
        {
            flags |= PacketFlags.TcpTimestamps;
            layers.TcpTsVal = options.TimestampValue;
            layers.TcpTsEcr = options.TimestampEcho;
        }
        if (options.Malformed)
        {
            flags |= PacketFlags.TcpOptionsMalformed;
        }
        return flags;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort ReadBigEndian16(ref byte start, int offset) =>
        BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, offset)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint ReadBigEndian32(ref byte start, int offset) =>
        BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, offset)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadBigEndian64(ref byte start, int offset) =>
        BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset)));

    /// <summary>
    /// Whether <see cref="Parse(ReadOnlySpan{byte}, LinkType, ParserOptions, out ParsedPacket)"/> decodes this link type
    /// (the cases of ParseLink below); any other stops at the link layer as unsupported.
    /// </summary>
    public static bool Decodes(LinkType linkType) => linkType.Value is 0 or 1 or 9 or 101 or 108 or 113 or 228 or 229 or 276;

    /// <summary>Parses one stack starting at <paramref name="offset"/>. Returns the offset of a VXLAN-encapsulated frame, or -1.</summary>
    private static int ParseStack(ReadOnlySpan<byte> frame, int offset, LinkType linkType, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet)
    {
        packet.Outcome = ParseOutcome.Complete;
        packet.StoppedAt = ParseLayer.Payload;
        layers.LinkType = linkType;
        layers.LinkOffset = offset;
        if (!ParseLink(frame, ref offset, linkType, options, ref layers, ref packet))
        {
            return -1;
        }
        EtherType type = layers.EtherType;
        if (type.IsMpls && !ParseMpls(frame, ref offset, options, ref layers, ref packet, out type))
        {
            layers.NetworkOffset = offset;
            return -1;
        }
        layers.NetworkOffset = offset;
        ReadOnlySpan<byte> network = frame[offset..];
        int transportEnd;
        int segmentLength;
        if (type == EtherType.Ipv4)
        {
            if (!ParseIpv4(network, ref layers, ref packet, out transportEnd, out segmentLength))
            {
                return -1;
            }
        }
        else if (type == EtherType.Ipv6)
        {
            if (!ParseIpv6(network, options, ref layers, ref packet, out transportEnd, out segmentLength))
            {
                return -1;
            }
        }
        else
        {
            Stop(ref packet, ParseLayer.Network, ParseOutcome.UnsupportedProtocol);
            return -1;
        }
        int transportStart = offset + layers.IpHeaderLength;
        layers.TransportOffset = transportStart;
        return ParseTransport(frame[transportStart..(offset + transportEnd)], transportStart, segmentLength, options, ref layers, ref packet);
    }

    private static bool ParseLink(ReadOnlySpan<byte> frame, ref int offset, LinkType linkType, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet)
    {
        ReadOnlySpan<byte> data = frame[offset..];
        EtherType type;
        switch (linkType.Value)
        {
            case 1: // Ethernet
                if (!EthernetHeader.TryCreate(data, out var ethernet))
                {
                    return Truncated(ref packet, ParseLayer.Link, EthernetHeader.Field.HeaderLength, data.Length);
                }
                type = ethernet.EtherType;
                offset += EthernetHeader.Field.HeaderLength;
                break;
            case 113: // Linux cooked v1
                if (!LinuxSllHeader.TryCreate(data, out var sll))
                {
                    return Truncated(ref packet, ParseLayer.Link, LinuxSllHeader.Field.HeaderLength, data.Length);
                }
                type = sll.Protocol;
                layers.PacketType = sll.PacketType;
                offset += LinuxSllHeader.Field.HeaderLength;
                break;
            case 276: // Linux cooked v2
                if (!LinuxSll2Header.TryCreate(data, out var sll2))
                {
                    return Truncated(ref packet, ParseLayer.Link, LinuxSll2Header.Field.HeaderLength, data.Length);
                }
                type = sll2.Protocol;
                layers.PacketType = sll2.PacketType;
                layers.InterfaceIndex = sll2.InterfaceIndex;
                offset += LinuxSll2Header.Field.HeaderLength;
                break;
            case 0: // BSD loopback, host byte order
            case 108: // OpenBSD loopback, big-endian
                if (!NullHeader.TryReadEtherType(data, alwaysBigEndian: linkType.Value == 108, out type))
                {
                    return Truncated(ref packet, ParseLayer.Link, NullHeader.HeaderLength, data.Length);
                }
                offset += NullHeader.HeaderLength;
                break;
            case 9: // PPP: IPv4, IPv6 and MPLS by the PPP protocol
                if (!PppHeader.TryReadProtocol(data, out ushort protocol, out int pppLength))
                {
                    return Truncated(ref packet, ParseLayer.Link, pppLength, data.Length);
                }
                offset += pppLength;
                type = PppHeader.ToEtherType(protocol);
                if (type.Value == 0)
                {
                    // LCP, IPCP and the other control protocols: not IP, as ARP is on Ethernet.
                    layers.Layers |= LayerSet.Link;
                    return Stop(ref packet, ParseLayer.Network, ParseOutcome.UnsupportedProtocol);
                }
                break;
            case 101: // Raw IP: the version nibble decides.
                if (data.IsEmpty)
                {
                    return Truncated(ref packet, ParseLayer.Network, 1, 0);
                }
                type = (data[0] >> 4) switch
                {
                    4 => EtherType.Ipv4,
                    6 => EtherType.Ipv6,
                    _ => default,
                };
                if (type.Value == 0)
                {
                    layers.Layers |= LayerSet.Link;
                    return Stop(ref packet, ParseLayer.Network, ParseOutcome.Malformed);
                }
                break;
            case 228:
                type = EtherType.Ipv4;
                break;
            case 229:
                type = EtherType.Ipv6;
                break;
            default:
                return Stop(ref packet, ParseLayer.Link, ParseOutcome.UnsupportedProtocol);
        }
        layers.Layers |= LayerSet.Link;

        // VLAN tags may follow any link header: libpcap re-inserts the tag the kernel stripped into
        // skb metadata, for cooked captures too.
        while (type.IsVlanTag)
        {
            if (layers.VlanCount >= options.MaxVlanTags)
            {
                layers.EtherType = type;
                return Stop(ref packet, ParseLayer.Vlan, ParseOutcome.LimitExceeded);
            }
            if (!VlanTag.TryCreate(frame[offset..], out var tag))
            {
                layers.EtherType = type;
                return Truncated(ref packet, ParseLayer.Vlan, VlanTag.Field.HeaderLength, frame.Length - offset);
            }
            if (layers.VlanCount == 0)
            {
                layers.OuterVlanType = type;
                layers.OuterVlanId = tag.VlanId;
            }
            else
            {
                layers.InnerVlanId = tag.VlanId;
            }
            layers.VlanCount++;
            layers.Layers |= LayerSet.Vlan;
            type = tag.EtherType;
            offset += VlanTag.Field.HeaderLength;
        }
        layers.EtherType = type;
        if (type.IsLength)
        {
            // An 802.3 length: LLC/SNAP follows, which carries no IP VethTrace traces.
            return Stop(ref packet, ParseLayer.Link, ParseOutcome.UnsupportedProtocol);
        }
        return true;
    }

    /// <summary>
    /// Reads an MPLS label stack (RFC 3032 section 2.1) at <paramref name="offset"/> up to the entry with the
    /// bottom-of-stack bit, and moves <paramref name="offset"/> past it. Nothing in the stack names what the bottom label
    /// carries (the label's binding does, RFC 3032 section 2.2), so IPv4 and IPv6 are told by the version nibble, as
    /// Linux's MPLS forwarding (net/mpls/af_mpls.c) and Wireshark do; anything else (a pseudowire control word, an
    /// Ethernet pseudowire) is a protocol not dissected, with <paramref name="offset"/> after the stack.
    /// </summary>
    private static bool ParseMpls(ReadOnlySpan<byte> frame, ref int offset, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet, out EtherType network)
    {
        network = default;
        int limit = Math.Min(options.MaxMplsLabels, MplsLabelStack.Capacity);
        while (true)
        {
            if (layers.MplsCount >= limit)
            {
                return Stop(ref packet, ParseLayer.Mpls, ParseOutcome.LimitExceeded);
            }
            if (!MplsHeader.TryCreate(frame[offset..], out var entry))
            {
                return Truncated(ref packet, ParseLayer.Mpls, MplsHeader.Field.HeaderLength, frame.Length - offset);
            }
            MplsLabel label = entry.ToLabel();
            layers.MplsStack[layers.MplsCount++] = label;
            layers.Layers |= LayerSet.Mpls;
            offset += MplsHeader.Field.HeaderLength;
            if (label.BottomOfStack)
            {
                break;
            }
        }
        if (offset >= frame.Length)
        {
            return Truncated(ref packet, ParseLayer.Network, 1, 0);
        }
        network = (frame[offset] >> 4) switch
        {
            4 => EtherType.Ipv4,
            6 => EtherType.Ipv6,
            _ => default,
        };
        return network.Value != 0 || Stop(ref packet, ParseLayer.Network, ParseOutcome.UnsupportedProtocol);
    }

    /// <summary>
    /// The bytes of the frame from <paramref name="networkOffset"/> to its end on the wire, when the caller gave the
    /// original length; otherwise unbounded (an IP length past the capture is then the snaplen's cut).
    /// </summary>
    private static int WireBytesFrom(in ParsedPacket packet, int networkOffset) =>
        packet.OriginalLength > 0 ? packet.OriginalLength - networkOffset : int.MaxValue;

    /// <summary>
    /// Bounds a declared IP length by the frame's length on the wire (see <see cref="WireBytesFrom"/>), flagging a
    /// packet whose IP length claims bytes the frame never held.
    /// </summary>
    private static int CarriedLength(ref PacketLayers layers, int totalLength, int wireBytes)
    {
        if (totalLength > wireBytes)
        {
            layers.Flags |= PacketFlags.IpLengthBeyondFrame;
            return wireBytes;
        }
        return totalLength;
    }

    /// <summary>
    /// Reads IPv4. <paramref name="transportEnd"/> is where the transport bytes end inside
    /// <paramref name="data"/> (IP length or captured end, whichever is first); <paramref name="segmentLength"/>
    /// is the transport length the IP header declares.
    /// </summary>
    private static bool ParseIpv4(ReadOnlySpan<byte> data, ref PacketLayers layers, ref ParsedPacket packet, out int transportEnd, out int segmentLength)
    {
        transportEnd = 0;
        segmentLength = 0;
        switch (Ipv4Header.TryCreate(data, out var ip))
        {
            case HeaderCheck.Truncated:
                return Truncated(ref packet, ParseLayer.Network, Ipv4Header.Field.FixedLength, data.Length);
            case HeaderCheck.Malformed:
                return Stop(ref packet, ParseLayer.Network, ParseOutcome.Malformed);
        }
        layers.Layers |= LayerSet.Network;
        layers.IpVersion = 4;
        layers.SetAddresses(ip.Source, ip.Destination);
        layers.Protocol = ip.Protocol;
        layers.IpId = ip.Identification;
        layers.Ttl = ip.Ttl;
        layers.TrafficClass = ip.Tos;
        int headerLength = ip.HeaderLength;
        layers.IpHeaderLength = headerLength;
        int totalLength = ip.TotalLength;
        int wireBytes = WireBytesFrom(in packet, layers.NetworkOffset);
        if (totalLength == 0 && data.Length > headerLength)
        {
            // A TSO/GSO super-packet captured before segmentation may carry a zero total length
            // (Linux big TCP for IPv4, net/ipv4: "BIG TCP"): the frame's length on the wire when known (the same on
            // every hop, whatever its snaplen), else the captured length.
            totalLength = wireBytes == int.MaxValue ? data.Length : wireBytes;
            layers.Flags |= PacketFlags.IpLengthFromCapture;
        }
        layers.IpTotalLength = totalLength;
        if (ip.DontFragment)
        {
            layers.Flags |= PacketFlags.DontFragment;
        }
        if (ip.MoreFragments || ip.FragmentOffset != 0)
        {
            layers.Flags |= PacketFlags.Fragment | (ip.MoreFragments ? PacketFlags.MoreFragments : 0);
            layers.FragmentOffset = ip.FragmentOffset;
        }
        if (totalLength < headerLength)
        {
            return Stop(ref packet, ParseLayer.Network, ParseOutcome.Malformed);
        }
        if (ip.IsCutShort)
        {
            return Truncated(ref packet, ParseLayer.Network, headerLength, data.Length);
        }
        transportEnd = ClampToCapture(ref layers, totalLength, data.Length);
        segmentLength = CarriedLength(ref layers, totalLength, wireBytes) - headerLength;
        if (ip.FragmentOffset != 0)
        {
            // Only the first fragment carries the transport header (RFC 791 section 2.3).
            SetPayload(ref layers, layers.NetworkOffset + headerLength, segmentLength, transportEnd - headerLength);
            return Stop(ref packet, ParseLayer.Transport, ParseOutcome.NonFirstFragment);
        }
        return true;
    }

    private static bool ParseIpv6(ReadOnlySpan<byte> data, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet, out int transportEnd, out int segmentLength)
    {
        transportEnd = 0;
        segmentLength = 0;
        switch (Ipv6Header.TryCreate(data, out var ip))
        {
            case HeaderCheck.Truncated:
                return Truncated(ref packet, ParseLayer.Network, Ipv6Header.Field.HeaderLength, data.Length);
            case HeaderCheck.Malformed:
                return Stop(ref packet, ParseLayer.Network, ParseOutcome.Malformed);
        }
        layers.Layers |= LayerSet.Network;
        layers.IpVersion = 6;
        layers.SetAddresses(ip.Source, ip.Destination);
        layers.Ttl = ip.HopLimit;
        layers.TrafficClass = ip.TrafficClass;
        layers.FlowLabel = ip.FlowLabel;
        IpProtocol next = ip.NextHeader;
        layers.Protocol = next;
        int totalLength = Ipv6Header.Field.HeaderLength + ip.PayloadLength;
        int wireBytes = WireBytesFrom(in packet, layers.NetworkOffset);
        if (ip.PayloadLength == 0 && next != IpProtocol.NoNextHeader && data.Length > Ipv6Header.Field.HeaderLength)
        {
            // A jumbogram (RFC 2675) or a big-TCP GSO packet: the length lives elsewhere or nowhere, so the frame's
            // length on the wire when known, else the captured length.
            totalLength = wireBytes == int.MaxValue ? data.Length : wireBytes;
            layers.Flags |= PacketFlags.IpLengthFromCapture;
        }
        layers.IpTotalLength = totalLength;
        int end = ClampToCapture(ref layers, totalLength, data.Length);
        // What the frame held of the IP packet: the segment lengths below count no byte that was never there.
        int carried = CarriedLength(ref layers, totalLength, wireBytes);
        int offset = Ipv6Header.Field.HeaderLength;
        layers.IpHeaderLength = offset;

        // Walk the extension headers (RFC 8200 section 4), bounded by MaxExtensionHeaders.
        while (Ipv6ExtensionHeader.IsExtension(next))
        {
            if (layers.ExtensionHeaderCount >= options.MaxExtensionHeaders)
            {
                return Stop(ref packet, ParseLayer.IpExtension, ParseOutcome.LimitExceeded);
            }
            ReadOnlySpan<byte> rest = data[offset..end];
            if (Ipv6ExtensionHeader.TryCreate(rest, next, out var extension) != HeaderCheck.Ok)
            {
                // With the whole IP packet captured, a header that does not fit runs past the
                // payload length: malformed. Otherwise the snaplen cut it.
                int declared = Ipv6ExtensionHeader.DeclaredLength(rest, next);
                return carried <= data.Length
                    ? Stop(ref packet, ParseLayer.IpExtension, ParseOutcome.Malformed)
                    : Truncated(ref packet, ParseLayer.IpExtension, Math.Max(declared, Ipv6ExtensionHeader.Field.MinimumLength), rest.Length);
            }
            layers.ExtensionHeaderCount++;
            offset += extension.Length;
            layers.IpHeaderLength = offset;
            next = extension.NextHeader;
            layers.Protocol = next;
            if (extension.IsFragment)
            {
                layers.Flags |= PacketFlags.Fragment | (extension.MoreFragments ? PacketFlags.MoreFragments : 0);
                layers.FragmentOffset = extension.FragmentOffset;
                layers.IpId = extension.FragmentIdentification;
                if (extension.FragmentOffset != 0)
                {
                    SetPayload(ref layers, layers.NetworkOffset + offset, carried - offset, end - offset);
                    return Stop(ref packet, ParseLayer.Transport, ParseOutcome.NonFirstFragment);
                }
            }
        }
        if (offset > carried)
        {
            return Stop(ref packet, ParseLayer.IpExtension, ParseOutcome.Malformed);
        }
        transportEnd = end;
        segmentLength = carried - offset;
        return true;
    }

    /// <summary>
    /// Reads TCP, UDP, ICMP or ICMPv6 from <paramref name="data"/> (captured transport bytes, at most the IP length).
    /// Returns the frame offset of a VXLAN-encapsulated frame, or -1.
    /// </summary>
    private static int ParseTransport(ReadOnlySpan<byte> data, int transportStart, int segmentLength, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet)
    {
        IpProtocol protocol = layers.Protocol;
        if (protocol == IpProtocol.Tcp)
        {
            ParseTcp(data, transportStart, segmentLength, ref layers, ref packet);
        }
        else if (protocol == IpProtocol.Udp)
        {
            return ParseUdp(data, transportStart, segmentLength, options, ref layers, ref packet);
        }
        else if (protocol == IpProtocol.Icmp || protocol == IpProtocol.IcmpV6)
        {
            ParseIcmp(data, transportStart, segmentLength, ref layers, ref packet);
        }
        else
        {
            // No next header (59) ends the chain cleanly; anything else is a protocol we don't dissect.
            SetPayload(ref layers, transportStart, segmentLength, data.Length);
            if (protocol != IpProtocol.NoNextHeader)
            {
                Stop(ref packet, ParseLayer.Transport, ParseOutcome.UnsupportedProtocol);
            }
        }
        return -1;
    }

    private static void ParseTcp(ReadOnlySpan<byte> data, int transportStart, int segmentLength, ref PacketLayers layers, ref ParsedPacket packet)
    {
        switch (TcpHeader.TryCreate(data, out var tcp))
        {
            case HeaderCheck.Truncated:
                Short(ref packet, TcpHeader.Field.FixedLength, data.Length, segmentLength);
                return;
            case HeaderCheck.Malformed:
                Stop(ref packet, ParseLayer.Transport, ParseOutcome.Malformed);
                return;
        }
        layers.Layers |= LayerSet.Transport;
        layers.SourcePort = tcp.SourcePort;
        layers.DestinationPort = tcp.DestinationPort;
        layers.TcpSequence = tcp.Sequence;
        layers.TcpAcknowledgment = tcp.Acknowledgment;
        layers.TcpFlags = tcp.Flags;
        layers.TcpWindow = tcp.Window;
        int headerLength = tcp.HeaderLength;
        layers.TcpHeaderLength = (byte)headerLength;
        layers.TcpOptionsLength = (byte)(headerLength - TcpHeader.Field.FixedLength);
        if (headerLength > segmentLength)
        {
            // The data offset points past the segment the IP header declares.
            Stop(ref packet, ParseLayer.Transport, ParseOutcome.Malformed);
            return;
        }
        if (tcp.IsCutShort)
        {
            Truncated(ref packet, ParseLayer.Transport, headerLength, data.Length);
            return;
        }
        if (headerLength > TcpHeader.Field.FixedLength)
        {
            layers.Flags |= ReadTcpOptions(data[..headerLength], headerLength, ref layers);
        }
        SetPayload(ref layers, transportStart + headerLength, segmentLength - headerLength, data.Length - headerLength);
    }

    private static int ParseUdp(ReadOnlySpan<byte> data, int transportStart, int segmentLength, ParserOptions options, ref PacketLayers layers, ref ParsedPacket packet)
    {
        if (!UdpHeader.TryCreate(data, out var udp))
        {
            Short(ref packet, UdpHeader.Field.HeaderLength, data.Length, segmentLength);
            return -1;
        }
        layers.Layers |= LayerSet.Transport;
        layers.SourcePort = udp.SourcePort;
        layers.DestinationPort = udp.DestinationPort;
        int udpLength = udp.Length;
        layers.UdpLength = (ushort)udpLength;
        // On a first fragment the UDP length is the whole datagram's, and this packet holds only part of it: the
        // payload is the UDP data in this fragment (what this packet carries, and what every hop sees alike); UdpLength
        // keeps the header's value.
        bool firstFragment = (layers.Flags & PacketFlags.MoreFragments) != 0;
        if (udpLength == 0 && (layers.IpVersion == 6 || (layers.Flags & PacketFlags.IpLengthFromCapture) != 0))
        {
            // RFC 2675 section 4: a jumbogram's length is the IPv6 one. A big-TCP GSO packet sent through a UDP tunnel
            // (VXLAN, Geneve) has no length that fits 16 bits either: Linux leaves the outer IPv4 total length and the
            // UDP length 0, and the IP length the parser took from the frame is the datagram's.
            udpLength = segmentLength;
        }
        if (udpLength < UdpHeader.Field.HeaderLength)
        {
            Stop(ref packet, ParseLayer.Transport, ParseOutcome.Malformed);
            return -1;
        }
        if (udpLength != segmentLength && !firstFragment)
        {
            // Larger: the IP length wins. Smaller: the bytes after the datagram are not UDP data.
            layers.Flags |= PacketFlags.UdpLengthMismatch;
        }
        int datagramLength = firstFragment ? segmentLength : Math.Min(udpLength, segmentLength);
        int payloadStart = transportStart + UdpHeader.Field.HeaderLength;
        SetPayload(ref layers, payloadStart, datagramLength - UdpHeader.Field.HeaderLength, data.Length - UdpHeader.Field.HeaderLength);

        // A datagram whose declared data cannot hold the 8-byte VXLAN header is not VXLAN: plain UDP to
        // that port. (Checking only the captured bytes would call a complete datagram "truncated", or
        // read a header from bytes past the UDP length.)
        if (options.VxlanPort == 0 || layers.DestinationPort != options.VxlanPort || firstFragment
            || layers.PayloadLength < VxlanHeader.Field.HeaderLength)
        {
            return -1;
        }
        ReadOnlySpan<byte> payload = data[UdpHeader.Field.HeaderLength..];
        switch (VxlanHeader.TryCreate(payload, out var vxlan))
        {
            case HeaderCheck.Ok:
                layers.Layers |= LayerSet.Tunnel;
                packet.Vni = vxlan.Vni;
                return payloadStart + VxlanHeader.Field.HeaderLength;
            case HeaderCheck.Truncated:
                Truncated(ref packet, ParseLayer.Tunnel, VxlanHeader.Field.HeaderLength, payload.Length);
                return -1;
            default:
                // Without the I flag this is not VXLAN (RFC 7348 section 5): plain UDP to port 4789.
                return -1;
        }
    }

    private static void ParseIcmp(ReadOnlySpan<byte> data, int transportStart, int segmentLength, ref PacketLayers layers, ref ParsedPacket packet)
    {
        if (!IcmpHeader.TryCreate(data, out var icmp))
        {
            Short(ref packet, IcmpHeader.Field.HeaderLength, data.Length, segmentLength);
            return;
        }
        if (segmentLength < IcmpHeader.Field.HeaderLength)
        {
            Stop(ref packet, ParseLayer.Transport, ParseOutcome.Malformed);
            return;
        }
        layers.Layers |= LayerSet.Transport;
        layers.IcmpType = icmp.Type;
        layers.IcmpCode = icmp.Code;
        if (IcmpHeader.HasIdentifier(layers.IpVersion == 6, icmp.Type))
        {
            layers.IcmpIdentifier = icmp.Identifier;
            layers.IcmpSequence = icmp.Sequence;
        }
        SetPayload(ref layers, transportStart + IcmpHeader.Field.HeaderLength, segmentLength - IcmpHeader.Field.HeaderLength, data.Length - IcmpHeader.Field.HeaderLength);
    }

    /// <summary>Returns the captured end of the IP packet and flags a mismatch with the declared length.</summary>
    private static int ClampToCapture(ref PacketLayers layers, int totalLength, int captured)
    {
        if (totalLength > captured)
        {
            layers.Flags |= PacketFlags.IpLengthBeyondCapture;
            return captured;
        }
        if (totalLength < captured)
        {
            layers.Flags |= PacketFlags.TrailingBytes;
        }
        return totalLength;
    }

    /// <summary>
    /// <see cref="SetPayload"/> where both lengths are known not to be negative (the fast path checked that the header fits
    /// both the captured bytes and the declared segment, and the captured bytes are at most the segment): no clamp but
    /// the captured length's to the declared one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetPayloadInRange(ref PacketLayers layers, int offset, int declaredLength, int capturedLength)
    {
        Debug.Assert(declaredLength >= 0 && capturedLength >= 0);
        StoreTwo(ref layers.PayloadOffset, (uint)offset, (uint)declaredLength, ref layers.PayloadLength);
        layers.CapturedPayloadLength = Math.Min(capturedLength, declaredLength);
    }

    /// <summary>
    /// <see cref="SetPayloadInRange"/> where the captured length is also known to be at most the declared one (TCP and ICMP
    /// in the fast path: the captured transport bytes are at most the segment, and the same header is taken from both).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetPayloadWithin(ref PacketLayers layers, int offset, int declaredLength, int capturedLength)
    {
        Debug.Assert(capturedLength >= 0 && capturedLength <= declaredLength);
        StoreTwo(ref layers.PayloadOffset, (uint)offset, (uint)declaredLength, ref layers.PayloadLength);
        layers.CapturedPayloadLength = capturedLength;
    }

    private static void SetPayload(ref PacketLayers layers, int offset, int declaredLength, int capturedLength)
    {
        int payloadLength = Math.Max(declaredLength, 0);
        StoreTwo(ref layers.PayloadOffset, (uint)offset, (uint)payloadLength, ref layers.PayloadLength);
        layers.CapturedPayloadLength = Math.Clamp(capturedLength, 0, payloadLength);
    }

    /// <summary>
    /// A transport header that does not fit: malformed when the whole segment was captured
    /// (the IP length leaves no room for it), truncated when the capture ended first.
    /// </summary>
    private static void Short(ref ParsedPacket packet, int required, int captured, int segmentLength)
    {
        if (captured >= segmentLength)
        {
            Stop(ref packet, ParseLayer.Transport, ParseOutcome.Malformed);
        }
        else
        {
            Truncated(ref packet, ParseLayer.Transport, required, captured);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool Truncated(ref ParsedPacket packet, ParseLayer layer, int required, int available)
    {
        packet.Required = required;
        packet.Available = available;
        return Stop(ref packet, layer, ParseOutcome.Truncated);
    }

    private static bool Stop(ref ParsedPacket packet, ParseLayer layer, ParseOutcome outcome)
    {
        packet.StoppedAt = layer;
        packet.Outcome = outcome;
        return false;
    }
}
