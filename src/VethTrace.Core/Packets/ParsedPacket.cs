using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using VethTrace.Packets.Headers;

namespace VethTrace.Packets;

/// <summary>Which layers of one protocol stack were read.</summary>
[Flags]
public enum LayerSet : byte
{
    None = 0,
    Link = 1,
    Vlan = 2,
    Network = 4,
    Transport = 8,
    /// <summary>A VXLAN header followed the transport layer; the next stack holds the inner frame.</summary>
    Tunnel = 16,
    /// <summary>An MPLS label stack followed the link layer (EtherType 0x8847 or 0x8848).</summary>
    Mpls = 32,
}

/// <summary>Where parsing stopped.</summary>
public enum ParseLayer : byte
{
    Link,
    Vlan,
    /// <summary>The MPLS label stack: truncated, or deeper than <see cref="ParserOptions.MaxMplsLabels"/>.</summary>
    Mpls,
    Network,
    IpExtension,
    Transport,
    Tunnel,
    /// <summary>Every header was read; what is left is payload.</summary>
    Payload,
}

/// <summary>Why parsing stopped.</summary>
public enum ParseOutcome : byte
{
    /// <summary>Parsed through the last header VethTrace dissects.</summary>
    Complete,
    /// <summary>The captured bytes ended inside a header: the snaplen, usually.</summary>
    Truncated,
    /// <summary>A header contradicted itself or its enclosing header.</summary>
    Malformed,
    /// <summary>A protocol VethTrace does not dissect (ARP, LLC, GRE, ESP, an unknown link type).</summary>
    UnsupportedProtocol,
    /// <summary>An IP fragment with a non-zero offset: it carries no transport header (RFC 791, RFC 8200 section 4.5).</summary>
    NonFirstFragment,
    /// <summary>A bound was reached: VLAN tags, MPLS labels, IPv6 extension headers or tunnel depth.</summary>
    LimitExceeded,
}

/// <summary>Facts about one stack that are not layers.</summary>
[Flags]
public enum PacketFlags : ushort
{
    None = 0,
    /// <summary>IPv4 MF set or offset non-zero, or an IPv6 fragment header.</summary>
    Fragment = 1 << 0,
    MoreFragments = 1 << 1,
    DontFragment = 1 << 2,
    /// <summary>The IP length is larger than the captured bytes (the snaplen cut the packet).</summary>
    IpLengthBeyondCapture = 1 << 3,
    /// <summary>Bytes follow the IP packet inside the frame: Ethernet padding of short frames.</summary>
    TrailingBytes = 1 << 4,
    /// <summary>
    /// The IP length field was zero and the frame's length was used (its original length when the caller gave it,
    /// else the captured length): a TSO/GSO super-packet seen before segmentation (Linux big TCP, inside a UDP tunnel
    /// too, whose UDP length is then 0 as well), or an IPv6 jumbogram (RFC 2675).
    /// </summary>
    IpLengthFromCapture = 1 << 5,
    /// <summary>The UDP length disagrees with the IP length; the smaller one was used.</summary>
    UdpLengthMismatch = 1 << 6,
    /// <summary>A TCP option ran past the header; the options before it were kept.</summary>
    TcpOptionsMalformed = 1 << 7,
    /// <summary>The TCP header carried RFC 7323 timestamps (TSval and TSecr are valid).</summary>
    TcpTimestamps = 1 << 8,
    /// <summary>
    /// The IP length is larger than the frame was on the wire (<see cref="ParsedPacket.OriginalLength"/>), not only
    /// larger than what the snaplen kept: the packet contradicts its capture record. The bytes were never there, so
    /// <see cref="PacketLayers.PayloadLength"/> counts only what the frame held (as Wireshark's <c>tcp.len</c> does);
    /// <see cref="PacketLayers.IpTotalLength"/> stays the claimed length. Also sets <see cref="IpLengthBeyondCapture"/>.
    /// </summary>
    IpLengthBeyondFrame = 1 << 9,
}

/// <summary>
/// What the parser read from one protocol stack (link, network, transport): a plain value that
/// outlives the capture buffer. Offsets are from the start of the frame. A field is meaningful only
/// when its layer is in <see cref="Layers"/>; the others are zero.
/// </summary>
public struct PacketLayers
{
    // The fields are in this order on purpose (the struct is laid out sequentially; PacketLayoutTests check the offsets).
    // Writing this struct is most of what a parse of a common packet costs (docs/performance.md, "Parser round 5"), so:
    // - two groups: the first is written by every parse of the common shapes, so PacketParser's first tier does not zero
    //   it; the second (from ColdStart on: what only some shapes or transports have) it zeroes with a few 16-byte stores
    //   before writing what it has (zeroing all of it took 13);
    // - fields stored together are adjacent, so the fast path writes each pair or run with one store: fields next to each
    //   other in a header are declared in the order of a little-endian store of the big-endian read of both (the
    //   acknowledgment number before the sequence number, the destination port before the source port, TSecr before
    //   TSval, the window before the flags, the ICMP sequence before the identifier), TTL and protocol in the header's own
    //   order, and the constants of a shape next to each other.

    // Written by every parse.
    // The two addresses as IpAddress holds them (a 128-bit number in two halves, IPv4 in the low half's low 32 bits, the
    // rest zero), without IpAddress's family byte and its padding: the family is IpVersion's. 32 bytes instead of two
    // 24-byte IpAddress values, and an IPv4 address is one 16-byte store (the low half first, so the address zero-extended
    // is the whole block) instead of three (docs/performance.md, "Parser round 6"). Source and Destination read them.
    /// <summary>The low 64 bits of <see cref="Source"/> (an IPv4 address in the low 32); read <see cref="Source"/>.</summary>
    public ulong SourceLow;
    /// <summary>The high 64 bits of <see cref="Source"/> (0 for IPv4).</summary>
    public ulong SourceHigh;
    /// <summary>The low 64 bits of <see cref="Destination"/> (an IPv4 address in the low 32); read <see cref="Destination"/>.</summary>
    public ulong DestinationLow;
    /// <summary>The high 64 bits of <see cref="Destination"/> (0 for IPv4).</summary>
    public ulong DestinationHigh;
    // The four fields that are constants for a link type's IPv4 without options (the link type, where the network and
    // transport headers start, the IP header's length), in one 16-byte block: the first tier writes them with one
    // store of a constant (docs/performance.md, "Parser round 9").
    public LinkType LinkType;
    public int NetworkOffset;
    /// <summary>IPv4 header with options, or IPv6 header with all extension headers.</summary>
    public int IpHeaderLength;
    public int TransportOffset;
    /// <summary>IPv4 identification, or the identification of an IPv6 fragment header.</summary>
    public uint IpId;
    /// <summary>
    /// The IP packet's length as declared (IPv6: 40 + payload length), or the frame's from the network header on when the
    /// field was zero (<see cref="PacketFlags.IpLengthFromCapture"/>).
    /// </summary>
    public int IpTotalLength;
    public int PayloadOffset;
    /// <summary>
    /// The payload length the headers declare: TCP data, the ICMP body, a fragment's data, or UDP data (on a first
    /// fragment, the UDP data in this fragment, not the whole datagram's that <see cref="UdpLength"/> declares). It
    /// counts bytes the snaplen cut, but not bytes that the frame never held (<see cref="PacketFlags.IpLengthBeyondFrame"/>).
    /// </summary>
    public int PayloadLength;
    /// <summary>
    /// The type after any VLAN tags: the network layer's, or MPLS (0x8847, 0x8848), after which <see cref="IpVersion"/>
    /// says what the label stack carried.
    /// </summary>
    public EtherType EtherType;
    public PacketFlags Flags;
    public LayerSet Layers;
    public byte IpVersion;
    /// <summary>IPv4 TTL or IPv6 hop limit.</summary>
    public byte Ttl;
    /// <summary>The upper-layer protocol, after IPv6 extension headers.</summary>
    public IpProtocol Protocol;
    /// <summary>How much of the payload was captured: at most <see cref="PayloadLength"/>.</summary>
    public int CapturedPayloadLength;
    public byte TrafficClass;

    // Zeroed first (from ColdStart), then written when the shape has them.
    public uint TcpAcknowledgment;
    public uint TcpSequence;
    public uint TcpTsEcr;
    public uint TcpTsVal;
    public int LinkOffset;
    /// <summary>SLL2 only: the capturing interface's index; 0 otherwise.</summary>
    public int InterfaceIndex;
    public uint FlowLabel;
    /// <summary>Fragment offset in bytes.</summary>
    public int FragmentOffset;
    /// <summary>The label stack, top first; entries past <see cref="MplsCount"/> are zero. <see cref="MplsLabels"/> reads it.</summary>
    public MplsLabelStack MplsStack;
    public ushort DestinationPort;
    public ushort SourcePort;
    public ushort TcpWindow;
    public TcpFlags TcpFlags;
    public ushort TcpMss;
    /// <summary>The outer tag's TPID: 802.1Q (0x8100), 802.1ad (0x88a8) or the legacy 0x9100.</summary>
    public EtherType OuterVlanType;
    public ushort OuterVlanId;
    public ushort InnerVlanId;
    /// <summary>
    /// The UDP header's length field as sent: on a first fragment the whole datagram's (compare <see cref="PayloadLength"/>);
    /// 0 for an IPv6 jumbogram or a big-TCP GSO packet over a UDP tunnel, whose length is then the IP one.
    /// </summary>
    public ushort UdpLength;
    public ushort IcmpSequence;
    public ushort IcmpIdentifier;
    public byte TcpHeaderLength;
    public byte TcpOptionsLength;
    public byte VlanCount;
    /// <summary>SLL and SLL2 only: who the packet was for (PACKET_HOST, PACKET_OUTGOING, …).</summary>
    public LinuxPacketType PacketType;
    /// <summary>How many MPLS label stack entries were read (when <see cref="EtherType"/> is MPLS).</summary>
    public byte MplsCount;
    public byte ExtensionHeaderCount;
    public byte IcmpType;
    public byte IcmpCode;

    /// <summary>The byte offset of <see cref="TcpAcknowledgment"/>, the first field of the group the fast path zeroes.</summary>
    internal const int ColdStart = 80;

    /// <summary>The source address, of the family <see cref="IpVersion"/> says; none (<see cref="IpAddress.IsNone"/>) without a network layer.</summary>
    public readonly IpAddress Source
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => IpAddress.FromHalves(IpVersion, SourceHigh, SourceLow);
    }

    /// <summary>The destination address, of the family <see cref="IpVersion"/> says; none without a network layer.</summary>
    public readonly IpAddress Destination
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => IpAddress.FromHalves(IpVersion, DestinationHigh, DestinationLow);
    }

    /// <summary>Stores both addresses' halves; <see cref="IpVersion"/> (their family) is the caller's to set.</summary>
    internal void SetAddresses(IpAddress source, IpAddress destination)
    {
        Debug.Assert(source.Version == destination.Version);
        UInt128 s = source.Value, d = destination.Value;
        SourceLow = (ulong)s;
        SourceHigh = (ulong)(s >> 64);
        DestinationLow = (ulong)d;
        DestinationHigh = (ulong)(d >> 64);
    }

    /// <summary>
    /// Stores two IPv4 addresses (host order): each zero-extended to 128 bits is its 16-byte block, one store each.
    /// <see cref="IpVersion"/> is the caller's to set to 4.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetV4Addresses(uint source, uint destination)
    {
        ref byte block = ref Unsafe.As<ulong, byte>(ref SourceLow);
        Vector128.CreateScalar(source).AsByte().StoreUnsafe(ref block);
        Vector128.CreateScalar(destination).AsByte().StoreUnsafe(ref block, 16);
    }

    /// <summary>The MPLS label stack, top (outermost) entry first; empty without MPLS. Reads the inline stack, allocates nothing.</summary>
    [UnscopedRef]
    public readonly ReadOnlySpan<MplsLabel> MplsLabels => ((ReadOnlySpan<MplsLabel>)MplsStack)[..Math.Min((int)MplsCount, MplsLabelStack.Capacity)];

    public readonly bool Has(LayerSet layer) => (Layers & layer) == layer;

    // Compared by value and inlined: the record struct's == goes through the generated Equals, which the JIT did not
    // inline into large callers (the bench loop called get_IsTcp per packet).
    public readonly bool IsTcp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Protocol.Value == IpProtocol.Tcp.Value && (Layers & LayerSet.Transport) != 0;
    }

    public readonly bool IsUdp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Protocol.Value == IpProtocol.Udp.Value && (Layers & LayerSet.Transport) != 0;
    }

    public readonly bool IsIcmp => (Protocol == IpProtocol.Icmp || Protocol == IpProtocol.IcmpV6) && Has(LayerSet.Transport);

    public readonly bool IsIcmpError => IsIcmp && IcmpHeader.IsError(IpVersion == 6, IcmpType);
}

/// <summary>
/// The result of <see cref="PacketParser.Parse(ReadOnlySpan{byte}, LinkType, out ParsedPacket)"/>: the outer stack, the
/// innermost encapsulated stack when the frame carried VXLAN, and where and why parsing stopped.
/// Parsing is lax: a packet cut by the snaplen or malformed keeps every layer that parsed.
/// </summary>
public struct ParsedPacket
{
    /// <summary>The stack the capture saw on the wire.</summary>
    public PacketLayers Outer;

    /// <summary>
    /// The innermost stack inside VXLAN; only meaningful when <see cref="TunnelDepth"/> is above 0. When it is 0,
    /// <see cref="PacketParser.Parse(ReadOnlySpan{byte}, LinkType, out ParsedPacket)"/> does not write this field (it is not
    /// zeroed, to save the stores), so it holds whatever the variable held before: read it only through
    /// <see cref="Innermost"/> or after checking <see cref="TunnelDepth"/>.
    /// </summary>
    public PacketLayers Inner;

    // In this order on purpose: the fast path writes StoppedAt through Vni with one 8-byte store, and Required and
    // Available with another (PacketLayoutTests check the offsets).
    public ParseLayer StoppedAt;

    public ParseOutcome Outcome;

    /// <summary>How many VXLAN headers were decapsulated.</summary>
    public byte TunnelDepth;

    /// <summary>The VNI of the innermost VXLAN header.</summary>
    public uint Vni;

    /// <summary>On <see cref="ParseOutcome.Truncated"/>: bytes the header needed from its start, and bytes there were.</summary>
    public int Required;

    /// <inheritdoc cref="Required"/>
    public int Available;

    public int CapturedLength;

    /// <summary>
    /// The frame's length on the wire, from the capture record, when the caller passed it (it is then at least
    /// <see cref="CapturedLength"/>); 0 when it did not, and an IP length beyond the captured bytes is then taken
    /// to be the snaplen's doing.
    /// </summary>
    public int OriginalLength;

    /// <summary>The stack a tracer matches on: the inner one for VXLAN, else the outer one.</summary>
    [UnscopedRef]
    public readonly ref readonly PacketLayers Innermost => ref TunnelDepth > 0 ? ref Inner : ref Outer;

    public readonly bool IsComplete => Outcome == ParseOutcome.Complete;

    public override readonly string ToString() =>
        $"{Innermost.Source}:{Innermost.SourcePort} > {Innermost.Destination}:{Innermost.DestinationPort} {Innermost.Protocol} ({Outcome} at {StoppedAt})";
}
