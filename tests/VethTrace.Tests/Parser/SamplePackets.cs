using VethTrace.Packets;
using static VethTrace.Tests.Parser.PacketBuilder;

namespace VethTrace.Tests.Parser;

/// <summary>A named frame and the link type it was captured with.</summary>
internal sealed record SamplePacket(string Name, LinkType LinkType, byte[] Frame)
{
    public override string ToString() => Name;
}

/// <summary>
/// One complete packet per stack kind the parser dissects: every link layer, VLAN tags, IPv4 with
/// options, MPLS label stacks, IPv6 with each extension header, TCP, UDP, ICMP and ICMPv6 echo and errors, fragments and VXLAN.
/// The truncation, random-mutation, allocation and fingerprint tests all run over this set.
/// </summary>
internal static class SamplePackets
{
    public const string Container = "172.17.0.2";
    public const string Gateway = "172.17.0.1";
    public const string HostEgress = "192.168.1.10";
    public const string Remote = "93.184.216.34";
    public const string Container6 = "fd00:dead:beef::2";
    public const string Remote6 = "2001:db8::1";

    public const ushort EtherIpv4 = 0x0800;
    public const ushort EtherIpv6 = 0x86DD;
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Icmpv6 = 58;

    private static readonly Lazy<IReadOnlyList<SamplePacket>> s_all = new(Build);

    public static IReadOnlyList<SamplePacket> All => s_all.Value;

    public static SamplePacket Get(string name) => All.Single(p => p.Name == name);

    /// <summary>The names, for <c>[MemberData]</c>: strings serialise, so each sample is its own test case.</summary>
    public static TheoryData<string> Names
    {
        get
        {
            var names = new TheoryData<string>();
            foreach (var packet in All)
            {
                names.Add(packet.Name);
            }
            return names;
        }
    }

    /// <summary>An established-connection TCP segment carrying <paramref name="payload"/> with Linux's timestamp option.</summary>
    public static byte[] TcpData(byte[] payload, uint sequence = 0x1a2b3c4d, uint ack = 0x5e6f7081, ushort sourcePort = 43512, ushort destinationPort = 80,
        uint tsValue = 0x00a1b2c3, uint tsEcho = 0x00d4e5f6) =>
        PacketBuilder.Tcp(sourcePort, destinationPort, sequence, ack, TcpFlags.Ack | TcpFlags.Psh, 502,
            TcpOption.LinuxData(tsValue, tsEcho), payload);

    /// <summary>Ethernet, IPv4 and the TCP segment above: the container's view of an HTTP request.</summary>
    public static byte[] EthernetIpv4Tcp(byte[]? payload = null, string source = Container, string destination = Remote, ushort sourcePort = 43512,
        ushort destinationPort = 80, ushort ipId = 0x4d2e, byte ttl = 64, uint sequence = 0x1a2b3c4d, uint tsValue = 0x00a1b2c3) =>
        Ethernet(EtherIpv4, Ipv4(source, destination, Tcp,
            TcpData(payload ?? Payload(32), sequence, sourcePort: sourcePort, destinationPort: destinationPort, tsValue: tsValue),
            identification: ipId, ttl: ttl));

    private static IReadOnlyList<SamplePacket> Build()
    {
        byte[] http = Payload(32);
        byte[] dns = Payload(29, 0x10);
        byte[] ping = Payload(56, 0x10);

        byte[] innerTcp = Ethernet(EtherIpv4, Ipv4("10.0.0.2", "10.0.1.3", Tcp, TcpData(http)),
            source: "02:42:0a:00:00:02", destination: "02:42:0a:00:01:03");
        byte[] innerUdp6 = Ethernet(EtherIpv6, Ipv6("fd00:1::2", "fd00:1::3", Udp, PacketBuilder.Udp(40000, 53, dns)), [Tag.Q(42)]);
        byte[] innerIcmp = Ethernet(EtherIpv4, Ipv4("10.0.0.2", "10.0.1.3", Icmp, IcmpEcho(true, 0x0b0c, 7, ping)));
        byte[] quotedUdp = Ipv4(HostEgress, Remote, Udp, PacketBuilder.Udp(40000, 33434, dns))[..28];
        byte[] quotedTcp6 = Ipv6(Container6, Remote6, Tcp, TcpData(Payload(1400)))[..(40 + 32 + 8)];

        return
        [
            new("eth-ipv4-tcp-syn", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(Container, Remote, Tcp,
                PacketBuilder.Tcp(43512, 80, 0x1a2b3c4c, 0, TcpFlags.Syn, 64240, TcpOption.LinuxSyn(0x00a1b2c0))))),
            new("eth-ipv4-tcp-data", LinkType.Ethernet, EthernetIpv4Tcp(http)),
            new("eth-ipv4-tcp-ack-padded", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(Container, Remote, Tcp,
                PacketBuilder.Tcp(43512, 80, 0x1a2b3c6d, 0x5e6f7081, TcpFlags.Ack, 502)), padTo60: true)),
            new("eth-ipv4options-tcp", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(Container, Remote, Tcp, TcpData(http),
                options: [.. Enumerable.Repeat((byte)1, 36), 0x94, 0x04, 0x00, 0x00]))), // NOPs, then Router Alert (RFC 2113)
            new("eth-vlan-ipv4-udp", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(Container, "8.8.8.8", Udp, PacketBuilder.Udp(40000, 53, dns)),
                [Tag.Q(100)])),
            new("eth-qinq-ipv6-tcp", LinkType.Ethernet, Ethernet(EtherIpv6, Ipv6(Container6, Remote6, Tcp, TcpData(http)),
                [Tag.Ad(300), Tag.Q(100)])),
            new("eth-ipv4-fragment-first", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(Container, Remote, Udp,
                PacketBuilder.Udp(40000, 5000, Payload(40), length: 8 + 3000), dontFragment: false, moreFragments: true))),
            new("eth-ipv4-fragment-second", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(Container, Remote, Udp,
                Payload(48), dontFragment: false, moreFragments: true, fragmentOffset: 48))),
            new("sll-ipv4-icmp-echo", LinkType.LinuxSll, Sll(EtherIpv4, Ipv4(Container, Remote, Icmp, IcmpEcho(true, 0x0b0c, 1, ping)),
                LinuxPacketType.Outgoing)),
            new("sll2-ipv6-icmpv6-echo", LinkType.LinuxSll2, Sll2(EtherIpv6, Ipv6(Container6, Remote6, Icmpv6, Icmpv6Echo(true, 0x0b0c, 1, ping)),
                interfaceIndex: 7, LinuxPacketType.Host)),
            new("sll2-ipv6-icmpv6-too-big", LinkType.LinuxSll2, Sll2(EtherIpv6, Ipv6("2001:db8:ffff::1", Container6, Icmpv6,
                PacketBuilder.Icmp(2, 0, 1280, quotedTcp6)), interfaceIndex: 3)),
            new("raw-ipv4-udp", LinkType.Raw, Ipv4(Container, "8.8.8.8", Udp, PacketBuilder.Udp(40000, 53, dns))),
            new("raw-ipv6-udp", LinkType.Raw, Ipv6(Container6, Remote6, Udp, PacketBuilder.Udp(40000, 53, dns))),
            new("ipv4-icmp-port-unreachable", LinkType.Ipv4, Ipv4(Remote, HostEgress, Icmp, PacketBuilder.Icmp(3, 3, 0, quotedUdp))),
            new("ipv6-extension-headers-tcp", LinkType.Ipv6, Ipv6(Container6, Remote6, Tcp, TcpData(http),
            [
                Extension.HopByHop(),
                Extension.DestinationOptions(16),
                Extension.Routing(),
                Extension.Fragment(0, more: true, identification: 0xfeedf00d),
                Extension.AuthenticationHeader(),
            ])),
            new("ipv6-fragment-second", LinkType.Ipv6, Ipv6(Container6, Remote6, Udp, Payload(64),
                [Extension.Fragment(1232, more: false, identification: 0xfeedf00d)])),
            new("ipv6-no-next-header", LinkType.Ipv6, Ipv6(Container6, Remote6, 59, [], [Extension.DestinationOptions()])),
            new("null-ipv4-tcp", LinkType.Null, Null(2, Ipv4("127.0.0.1", "127.0.0.1", Tcp, TcpData(http)))),
            new("null-ipv6-udp", LinkType.Null, Null(30, Ipv6("::1", "::1", Udp, PacketBuilder.Udp(40000, 53, dns)))),
            new("loop-ipv4-icmp", LinkType.Loop, Null(2, Ipv4("127.0.0.1", "127.0.0.1", Icmp, IcmpEcho(false, 0x0b0c, 1, ping)), bigEndian: true)),
            // MPLS: one label over IPv4 (an LDP LSP), and an L3VPN's two labels over IPv6 behind a VLAN tag, multicast type.
            new("eth-mpls-ipv4-udp", LinkType.Ethernet, Ethernet(0x8847, Mpls([new(16006, 0, 255)],
                Ipv4(HostEgress, "192.168.1.11", Udp, PacketBuilder.Udp(40001, 53, dns))))),
            new("eth-vlan-mpls2-ipv6-tcp", LinkType.Ethernet, Ethernet(0x8848, Mpls([new(299_792, 5, 63), new(17, 0, 64)],
                Ipv6("2001:db8:2::10", Remote6, Tcp, TcpData(http))), [Tag.Q(200)])),
            // PPP in HDLC-like framing (address 0xff, control 0x03), protocol 0x0281: a BGP segment under one label, as a router sends it.
            new("ppp-mpls-ipv4-tcp", LinkType.Ppp, [0xFF, 0x03, 0x02, 0x81, .. Mpls([new(100_656, 6, 64)],
                Ipv4("12.4.4.4", "12.8.8.8", Tcp, TcpData(Payload(19), sourcePort: 4100, destinationPort: 179)))]),
            new("vxlan-ipv4-tcp", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(HostEgress, "192.168.1.11", Udp,
                PacketBuilder.Udp(51234, 4789, Vxlan(4096, innerTcp)), dontFragment: false))),
            new("vxlan-ipv6-vlan-udp", LinkType.Ethernet, Ethernet(EtherIpv6, Ipv6("2001:db8:1::10", "2001:db8:1::11", Udp,
                PacketBuilder.Udp(51234, 4789, Vxlan(77, innerUdp6))))),
            new("vxlan-in-vxlan-icmp", LinkType.Ethernet, Ethernet(EtherIpv4, Ipv4(HostEgress, "192.168.1.11", Udp,
                PacketBuilder.Udp(51234, 4789, Vxlan(1, Ethernet(EtherIpv4, Ipv4("10.9.0.1", "10.9.0.2", Udp,
                    PacketBuilder.Udp(51235, 4789, Vxlan(2, innerIcmp))))))))),
        ];
    }
}
