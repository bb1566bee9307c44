using System.Diagnostics;

namespace VethTrace.Packets;

/// <summary>
/// A pcap/pcapng link-layer header type (the LINKTYPE_* registry, https://www.tcpdump.org/linktypes.html).
/// An open value type: any 32-bit number round-trips, and the known ones have names.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
public readonly record struct LinkType(uint Value)
{
    /// <summary>BSD loopback: a 4-byte address family in the capturing host's byte order.</summary>
    public static readonly LinkType Null = new(0);
    public static readonly LinkType Ethernet = new(1);
    /// <summary>PPP (RFC 1661), with or without the RFC 1662 address and control bytes.</summary>
    public static readonly LinkType Ppp = new(9);
    /// <summary>Raw IP; the version nibble tells IPv4 from IPv6.</summary>
    public static readonly LinkType Raw = new(101);
    /// <summary>OpenBSD loopback: like <see cref="Null"/>, but always big-endian.</summary>
    public static readonly LinkType Loop = new(108);
    /// <summary>Linux cooked capture v1 (SLL), 16-byte header.</summary>
    public static readonly LinkType LinuxSll = new(113);
    public static readonly LinkType Ipv4 = new(228);
    public static readonly LinkType Ipv6 = new(229);
    /// <summary>Linux cooked capture v2 (SLL2), 20-byte header with the interface index.</summary>
    public static readonly LinkType LinuxSll2 = new(276);

    public override string ToString() => Value switch
    {
        0 => "NULL",
        1 => "EN10MB",
        9 => "PPP",
        101 => "RAW",
        108 => "LOOP",
        113 => "LINUX_SLL",
        228 => "IPV4",
        229 => "IPV6",
        276 => "LINUX_SLL2",
        _ => $"LINKTYPE_{Value}",
    };
}

/// <summary>An Ethernet type / length field (IEEE 802.3 clause 3.2.6). Open: unknown values survive.</summary>
[DebuggerDisplay("{ToString(),nq}")]
public readonly record struct EtherType(ushort Value)
{
    public static readonly EtherType Ipv4 = new(0x0800);
    public static readonly EtherType Arp = new(0x0806);
    /// <summary>Transparent Ethernet Bridging (an Ethernet frame inside GRE/NVGRE).</summary>
    public static readonly EtherType TransparentEthernetBridging = new(0x6558);
    /// <summary>IEEE 802.1Q customer VLAN tag (C-tag).</summary>
    public static readonly EtherType Vlan = new(0x8100);
    public static readonly EtherType Ipv6 = new(0x86DD);
    /// <summary>MPLS unicast (RFC 3032 section 5): a label stack, then the labelled packet.</summary>
    public static readonly EtherType MplsUnicast = new(0x8847);
    /// <summary>MPLS multicast (RFC 5332 section 4): the same label stack encoding.</summary>
    public static readonly EtherType MplsMulticast = new(0x8848);
    /// <summary>IEEE 802.1ad service VLAN tag (S-tag, "QinQ").</summary>
    public static readonly EtherType QinQ = new(0x88A8);
    /// <summary>The pre-standard QinQ tag some switches still send.</summary>
    public static readonly EtherType QinQLegacy = new(0x9100);

    /// <summary>Values up to 1500 are an 802.3 length, not a type (IEEE 802.3 clause 3.2.6).</summary>
    public bool IsLength => Value <= 1500;

    public bool IsVlanTag => Value is 0x8100 or 0x88A8 or 0x9100;

    public bool IsMpls => Value is 0x8847 or 0x8848;

    public override string ToString() => Value switch
    {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x86DD => "IPv6",
        0x8100 => "802.1Q",
        0x88A8 => "802.1ad",
        0x8847 => "MPLS",
        0x8848 => "MPLS multicast",
        0x88E5 => "MACsec",
        0x894F => "NSH",
        _ => $"0x{Value:x4}",
    };
}

/// <summary>An IP protocol / IPv6 next-header number (IANA "Assigned Internet Protocol Numbers").</summary>
[DebuggerDisplay("{ToString(),nq}")]
public readonly record struct IpProtocol(byte Value)
{
    public static readonly IpProtocol HopByHop = new(0);
    public static readonly IpProtocol Icmp = new(1);
    public static readonly IpProtocol Igmp = new(2);
    public static readonly IpProtocol Tcp = new(6);
    public static readonly IpProtocol Udp = new(17);
    public static readonly IpProtocol Routing = new(43);
    public static readonly IpProtocol Fragment = new(44);
    public static readonly IpProtocol Gre = new(47);
    public static readonly IpProtocol Esp = new(50);
    public static readonly IpProtocol AuthenticationHeader = new(51);
    public static readonly IpProtocol IcmpV6 = new(58);
    public static readonly IpProtocol NoNextHeader = new(59);
    public static readonly IpProtocol DestinationOptions = new(60);
    public static readonly IpProtocol Mobility = new(135);
    public static readonly IpProtocol Hip = new(139);
    public static readonly IpProtocol Shim6 = new(140);

    /// <summary>The short lower-case name used in reports (<c>tcp</c>, <c>udp</c>, <c>icmp</c>, …).</summary>
    public string Name => Value switch
    {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        58 => "icmpv6",
        _ => Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public override string ToString() => Name;
}

/// <summary>The Linux <c>PACKET_*</c> packet type carried by SLL and SLL2 (linux/if_packet.h).</summary>
public enum LinuxPacketType : byte
{
    /// <summary>To us (PACKET_HOST).</summary>
    Host = 0,
    Broadcast = 1,
    Multicast = 2,
    /// <summary>To someone else, seen in promiscuous mode (PACKET_OTHERHOST).</summary>
    OtherHost = 3,
    /// <summary>Sent by us (PACKET_OUTGOING).</summary>
    Outgoing = 4,
}

/// <summary>TCP control bits (RFC 9293 section 3.1, RFC 3168 for ECE/CWR, RFC 3540 for NS).</summary>
[Flags]
public enum TcpFlags : ushort
{
    None = 0,
    Fin = 0x001,
    Syn = 0x002,
    Rst = 0x004,
    Psh = 0x008,
    Ack = 0x010,
    Urg = 0x020,
    Ece = 0x040,
    Cwr = 0x080,
    /// <summary>The historic ECN nonce sum bit (RFC 3540, now obsolete) – bit 8 of the 9-bit flags field.</summary>
    Ns = 0x100,
}
