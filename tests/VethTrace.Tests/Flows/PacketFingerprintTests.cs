using System.Buffers.Binary;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Parser;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Flows;

/// <summary>
/// The fingerprint must survive exactly what a Docker host's path rewrites (docs/DESIGN.md, "What stays the
/// same across hops") and change with what tells two packets of one flow apart.
/// </summary>
public class PacketFingerprintTests
{
    private static ulong Fingerprint(byte[] frame, LinkType linkType)
    {
        ParseOutcome outcome = PacketParser.Parse(frame, linkType, out var packet);
        Assert.True(outcome == ParseOutcome.Complete, $"{packet}\n{Hex.Dump(frame)}");
        return PacketFingerprint.Compute(in packet, frame);
    }

    private static ulong Ethernet(byte[] frame) => Fingerprint(frame, LinkType.Ethernet);

    // ---------------------------------------------------------------- unchanged along the path

    [Fact]
    public void Compute_Masquerade_Unchanged()
    {
        // Container eth0 → veth → docker0 → MASQUERADE → eth0: source address and port rewritten, TTL 64 → 63,
        // checksums recomputed, new MACs.
        byte[] inContainer = EthernetIpv4Tcp(source: Container, sourcePort: 43512, ttl: 64);
        byte[] onEgress = PacketBuilder.Ethernet(EtherIpv4, Ipv4(HostEgress, Remote, SamplePackets.Tcp,
            TcpData(Payload(32), sourcePort: 61000), identification: 0x4d2e, ttl: 63), source: "52:54:00:12:34:56", destination: "52:54:00:ab:cd:ef");

        Assert.Equal(Ethernet(inContainer), Ethernet(onEgress));
    }

    [Fact]
    public void Compute_Dnat_Unchanged()
    {
        // A published port (-p 8080:80): the host sees the client talk to its own address on 8080,
        // the container sees the same segment addressed to 172.17.0.2:80.
        byte[] onEgress = EthernetIpv4Tcp(source: Remote, sourcePort: 55555, destination: HostEgress, destinationPort: 8080, ttl: 52);
        byte[] inContainer = EthernetIpv4Tcp(source: Remote, sourcePort: 55555, destination: Container, destinationPort: 80, ttl: 51);

        Assert.Equal(Ethernet(onEgress), Ethernet(inContainer));
    }

    [Fact]
    public void Compute_Ipv6Masquerade_Unchanged()
    {
        byte[] inContainer = PacketBuilder.Ethernet(EtherIpv6, Ipv6(Container6, Remote6, SamplePackets.Tcp, TcpData(Payload(32)), hopLimit: 64));
        byte[] onEgress = PacketBuilder.Ethernet(EtherIpv6, Ipv6("2001:db8:feed::10", Remote6, SamplePackets.Tcp, TcpData(Payload(32), sourcePort: 61000), hopLimit: 63));

        Assert.Equal(Ethernet(inContainer), Ethernet(onEgress));
    }

    [Fact]
    public void Compute_UdpSnat_Unchanged()
    {
        byte[] inContainer = Ipv4(Container, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(29)));
        byte[] onEgress = Ipv4(HostEgress, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(1025, 53, Payload(29)), ttl: 63);

        Assert.Equal(Fingerprint(inContainer, LinkType.Raw), Fingerprint(onEgress, LinkType.Raw));
    }

    [Theory]
    [InlineData(64, 63)]
    [InlineData(64, 1)]
    [InlineData(255, 0)]
    public void Compute_TtlDecrement_Unchanged(byte before, byte after)
    {
        Assert.Equal(Ethernet(EthernetIpv4Tcp(ttl: before)), Ethernet(EthernetIpv4Tcp(ttl: after)));
    }

    [Fact]
    public void Compute_ChecksumsRewritten_Unchanged()
    {
        byte[] original = EthernetIpv4Tcp();
        byte[] rewritten = [.. original];
        rewritten[14 + 10] ^= 0x5a; // IPv4 header checksum
        rewritten[34 + 16] ^= 0xa5; // TCP checksum (checksum offload may leave a partial one in the capture)
        rewritten[34 + 17] ^= 0x01;

        Assert.Equal(Ethernet(original), Ethernet(rewritten));
    }

    [Fact]
    public void Compute_TosAndEcnRewritten_Unchanged()
    {
        byte[] original = EthernetIpv4Tcp();
        byte[] marked = [.. original];
        marked[14 + 1] = 0x03; // a router sets ECN CE

        Assert.Equal(Ethernet(original), Ethernet(marked));
    }

    [Fact]
    public void Compute_MssClamped_Unchanged()
    {
        // iptables TCPMSS --clamp-mss-to-pmtu rewrites the SYN's MSS option on the way out.
        byte[] inContainer = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(43512, 80, 7, 0, TcpFlags.Syn, options: TcpOption.LinuxSyn(99, mss: 1460)));
        byte[] onEgress = Ipv4(HostEgress, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(61000, 80, 7, 0, TcpFlags.Syn, options: TcpOption.LinuxSyn(99, mss: 1410)), ttl: 63);

        Assert.Equal(Fingerprint(inContainer, LinkType.Raw), Fingerprint(onEgress, LinkType.Raw));
    }

    [Fact]
    public void Compute_IcmpEchoIdentifierRewritten_Unchanged()
    {
        // NAT rewrites the echo identifier like a port (RFC 5508 section 3.1).
        byte[] inContainer = Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 3, Payload(56)));
        byte[] onEgress = Ipv4(HostEgress, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x7f01, 3, Payload(56)), ttl: 63);

        Assert.Equal(Fingerprint(inContainer, LinkType.Raw), Fingerprint(onEgress, LinkType.Raw));
    }

    [Fact]
    public void Compute_Icmpv6EchoIdentifierRewritten_Unchanged()
    {
        byte[] inContainer = Ipv6(Container6, Remote6, SamplePackets.Icmpv6, Icmpv6Echo(true, 0x0b0c, 3, Payload(56)));
        byte[] onEgress = Ipv6("2001:db8:feed::10", Remote6, SamplePackets.Icmpv6, Icmpv6Echo(true, 0x7f01, 3, Payload(56)), hopLimit: 63);

        Assert.Equal(Fingerprint(inContainer, LinkType.Raw), Fingerprint(onEgress, LinkType.Raw));
    }

    [Fact]
    public void Compute_VlanTagAddedOrRemoved_Unchanged()
    {
        byte[] ip = Ipv4(Container, Remote, SamplePackets.Tcp, TcpData(Payload(32)));

        ulong untagged = Ethernet(PacketBuilder.Ethernet(EtherIpv4, ip));
        ulong tagged = Ethernet(PacketBuilder.Ethernet(EtherIpv4, ip, [Tag.Q(100)]));
        ulong doubleTagged = Ethernet(PacketBuilder.Ethernet(EtherIpv4, ip, [Tag.Ad(300), Tag.Q(100)]));

        Assert.Equal(untagged, tagged);
        Assert.Equal(untagged, doubleTagged);
    }

    [Fact]
    public void Compute_EthernetVersusCookedAndRaw_Unchanged()
    {
        // One packet seen by tcpdump -i vethA (Ethernet), tcpdump -i any (SLL2, SLL), and a raw-IP tunnel device.
        byte[] ip = Ipv4(Container, Remote, SamplePackets.Tcp, TcpData(Payload(32)));

        ulong ethernet = Fingerprint(PacketBuilder.Ethernet(EtherIpv4, ip), LinkType.Ethernet);

        Assert.Equal(ethernet, Fingerprint(Sll2(EtherIpv4, ip, interfaceIndex: 12, LinuxPacketType.Outgoing), LinkType.LinuxSll2));
        Assert.Equal(ethernet, Fingerprint(Sll(EtherIpv4, ip), LinkType.LinuxSll));
        Assert.Equal(ethernet, Fingerprint(ip, LinkType.Raw));
        Assert.Equal(ethernet, Fingerprint(ip, LinkType.Ipv4));
        Assert.Equal(ethernet, Fingerprint(Null(2, ip), LinkType.Null));
    }

    [Fact]
    public void Compute_EthernetPaddingPresentOrAbsent_Unchanged()
    {
        byte[] ack = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(43512, 80, 5, 6, TcpFlags.Ack));

        Assert.Equal(Ethernet(PacketBuilder.Ethernet(EtherIpv4, ack)), Ethernet(PacketBuilder.Ethernet(EtherIpv4, ack, padTo60: true)));
    }

    [Fact]
    public void Compute_VxlanEncapsulated_SameAsInnerPacket()
    {
        // The overlay: the container's frame on its veth, and the same frame inside VXLAN on the host's egress.
        byte[] containerFrame = PacketBuilder.Ethernet(EtherIpv4, Ipv4("10.0.0.2", "10.0.1.3", SamplePackets.Tcp, TcpData(Payload(32))));
        byte[] egressFrame = PacketBuilder.Ethernet(EtherIpv4, Ipv4(HostEgress, "192.168.1.11", SamplePackets.Udp,
            PacketBuilder.Udp(51234, 4789, Vxlan(4096, containerFrame))));

        Assert.Equal(Ethernet(containerFrame), Ethernet(egressFrame));
    }

    [Fact]
    public void Compute_VxlanOverIpv6WithInnerVlan_SameAsInnerPacket()
    {
        byte[] inner = PacketBuilder.Ethernet(EtherIpv6, Ipv6("fd00:1::2", "fd00:1::3", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, Payload(29))), [Tag.Q(42)]);
        byte[] outer = PacketBuilder.Ethernet(EtherIpv6, Ipv6("2001:db8:1::10", "2001:db8:1::11", SamplePackets.Udp, PacketBuilder.Udp(51234, 4789, Vxlan(77, inner))));

        Assert.Equal(Ethernet(inner), Ethernet(outer));
    }

    [Fact]
    public void Compute_IcmpErrorQuotingNatedPacket_Unchanged()
    {
        // A router answers the egress copy of a UDP probe with port unreachable; conntrack rewrites the outer
        // destination and the quoted source address and port back to the container's (RFC 5508 section 7).
        byte[] probeOnEgress = Ipv4(HostEgress, Remote, SamplePackets.Udp, PacketBuilder.Udp(61000, 33434, Payload(32)), ttl: 63, identification: 0x2222);
        byte[] probeInContainer = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 33434, Payload(32)), ttl: 64, identification: 0x2222);
        byte[] errorOnEgress = Ipv4(Remote, HostEgress, SamplePackets.Icmp, PacketBuilder.Icmp(3, 3, 0, probeOnEgress[..28]), ttl: 55, identification: 0x9999);
        byte[] errorInContainer = Ipv4(Remote, Container, SamplePackets.Icmp, PacketBuilder.Icmp(3, 3, 0, probeInContainer[..28]), ttl: 54, identification: 0x9999);

        Assert.Equal(Fingerprint(errorOnEgress, LinkType.Raw), Fingerprint(errorInContainer, LinkType.Raw));
    }

    [Fact]
    public void Compute_IcmpErrorQuotingNatedTcp_Unchanged()
    {
        byte[] segmentOnEgress = Ipv4(HostEgress, Remote, SamplePackets.Tcp, TcpData(Payload(1400), sourcePort: 61000), identification: 0x3333);
        byte[] segmentInContainer = Ipv4(Container, Remote, SamplePackets.Tcp, TcpData(Payload(1400)), identification: 0x3333);
        byte[] errorOnEgress = Ipv4(Gateway, HostEgress, SamplePackets.Icmp, PacketBuilder.Icmp(3, 4, 1400, segmentOnEgress[..28]));
        byte[] errorInContainer = Ipv4(Gateway, Container, SamplePackets.Icmp, PacketBuilder.Icmp(3, 4, 1400, segmentInContainer[..28]));

        Assert.Equal(Fingerprint(errorOnEgress, LinkType.Raw), Fingerprint(errorInContainer, LinkType.Raw));
    }

    [Fact]
    public void Compute_Icmpv6ErrorQuotingNatedPacket_Unchanged()
    {
        byte[] onEgress = Ipv6("2001:db8:feed::10", Remote6, SamplePackets.Tcp, TcpData(Payload(1400), sourcePort: 61000));
        byte[] inContainer = Ipv6(Container6, Remote6, SamplePackets.Tcp, TcpData(Payload(1400)));
        byte[] errorOnEgress = Ipv6("2001:db8:ffff::1", "2001:db8:feed::10", SamplePackets.Icmpv6, PacketBuilder.Icmp(2, 0, 1280, onEgress[..1232]));
        byte[] errorInContainer = Ipv6("2001:db8:ffff::1", Container6, SamplePackets.Icmpv6, PacketBuilder.Icmp(2, 0, 1280, inContainer[..1232]), hopLimit: 63);

        Assert.Equal(Fingerprint(errorOnEgress, LinkType.Raw), Fingerprint(errorInContainer, LinkType.Raw));
    }

    [Fact]
    public void Compute_PayloadBeyondHashedBytes_Ignored()
    {
        byte[] payload = Payload(32);
        byte[] changedLate = [.. payload];
        changedLate[PacketFingerprint.PayloadHashBytes] ^= 0xFF;

        Assert.Equal(Ethernet(EthernetIpv4Tcp(payload)), Ethernet(EthernetIpv4Tcp(changedLate)));
    }

    // ---------------------------------------------------------------- different packets

    [Fact]
    public void Compute_DifferentIpId_Differs()
    {
        Assert.NotEqual(Ethernet(EthernetIpv4Tcp(ipId: 0x4d2e)), Ethernet(EthernetIpv4Tcp(ipId: 0x4d2f)));
    }

    [Fact]
    public void Compute_TcpRetransmissionWithNewTsVal_Differs()
    {
        // Same sequence number and payload; the retransmission carries a later TSval (RFC 7323 section 3.2).
        byte[] original = EthernetIpv4Tcp(ipId: 0, tsValue: 1000);
        byte[] retransmission = EthernetIpv4Tcp(ipId: 0, tsValue: 1205);

        Assert.NotEqual(Ethernet(original), Ethernet(retransmission));
    }

    [Fact]
    public void Compute_TcpRetransmissionWithNewIpId_Differs()
    {
        byte[] original = EthernetIpv4Tcp(ipId: 0x1000, tsValue: 1000);
        byte[] retransmission = EthernetIpv4Tcp(ipId: 0x1001, tsValue: 1000);

        Assert.NotEqual(Ethernet(original), Ethernet(retransmission));
    }

    [Fact]
    public void Compute_Ipv6TcpRetransmission_DiffersByTsVal()
    {
        // IPv6 has no IP ID: only the timestamps tell a retransmission from the original.
        byte[] original = Ipv6(Container6, Remote6, SamplePackets.Tcp, TcpData(Payload(32), tsValue: 1000));
        byte[] retransmission = Ipv6(Container6, Remote6, SamplePackets.Tcp, TcpData(Payload(32), tsValue: 1205));

        Assert.NotEqual(Fingerprint(original, LinkType.Raw), Fingerprint(retransmission, LinkType.Raw));
    }

    [Fact]
    public void Compute_DifferentTcpSequence_Differs()
    {
        Assert.NotEqual(Ethernet(EthernetIpv4Tcp(sequence: 1000)), Ethernet(EthernetIpv4Tcp(sequence: 1032)));
    }

    [Fact]
    public void Compute_DifferentTcpFlags_Differs()
    {
        byte[] ack = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack));
        byte[] fin = Ipv4(Container, Remote, SamplePackets.Tcp, PacketBuilder.Tcp(1, 2, 3, 4, TcpFlags.Ack | TcpFlags.Fin));

        Assert.NotEqual(Fingerprint(ack, LinkType.Raw), Fingerprint(fin, LinkType.Raw));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void Compute_DifferentUdpPayloadFirstBytes_Differs(int index)
    {
        // Two DNS queries from one socket differ in their transaction id, the first two bytes.
        byte[] query = Payload(29);
        byte[] other = [.. query];
        other[index] ^= 0x01;

        ulong first = Fingerprint(Ipv4(Container, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, query)), LinkType.Raw);
        ulong second = Fingerprint(Ipv4(Container, "8.8.8.8", SamplePackets.Udp, PacketBuilder.Udp(40000, 53, other)), LinkType.Raw);

        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Compute_DifferentIcmpSequence_Differs()
    {
        ulong first = Fingerprint(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 1, Payload(56))), LinkType.Raw);
        ulong second = Fingerprint(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 2, Payload(56))), LinkType.Raw);

        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Compute_EchoRequestVersusReply_Differs()
    {
        ulong request = Fingerprint(Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 1, Payload(56))), LinkType.Raw);
        ulong reply = Fingerprint(Ipv4(Remote, Container, SamplePackets.Icmp, IcmpEcho(false, 0x0b0c, 1, Payload(56))), LinkType.Raw);

        Assert.NotEqual(request, reply);
    }

    [Fact]
    public void Compute_IcmpErrorsQuotingDifferentProbes_Differ()
    {
        byte[] firstProbe = Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 1, Payload(56)), identification: 5);
        byte[] secondProbe = Ipv4(Container, Remote, SamplePackets.Icmp, IcmpEcho(true, 0x0b0c, 2, Payload(56)), identification: 5);

        ulong first = Fingerprint(Ipv4(Gateway, Container, SamplePackets.Icmp, PacketBuilder.Icmp(11, 0, 0, firstProbe[..28])), LinkType.Raw);
        ulong second = Fingerprint(Ipv4(Gateway, Container, SamplePackets.Icmp, PacketBuilder.Icmp(11, 0, 0, secondProbe[..28])), LinkType.Raw);

        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Compute_DifferentIpv6FlowLabel_Differs()
    {
        ulong first = Fingerprint(Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(8)), flowLabel: 1), LinkType.Raw);
        ulong second = Fingerprint(Ipv6(Container6, Remote6, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(8)), flowLabel: 2), LinkType.Raw);

        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Compute_FragmentsOfOneDatagram_Differ()
    {
        byte[] first = Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(1, 2, Payload(40), length: 3008), dontFragment: false, moreFragments: true);
        byte[] second = Ipv4(Container, Remote, SamplePackets.Udp, Payload(48), dontFragment: false, moreFragments: true, fragmentOffset: 48);
        byte[] third = Ipv4(Container, Remote, SamplePackets.Udp, Payload(48), dontFragment: false, moreFragments: false, fragmentOffset: 96);

        // The non-first fragments have no transport header: the IP ID, offset, MF flag and data tell them apart.
        Assert.Equal(ParseOutcome.NonFirstFragment, PacketParser.Parse(second, LinkType.Raw, out var secondPacket));
        Assert.Equal(ParseOutcome.NonFirstFragment, PacketParser.Parse(third, LinkType.Raw, out var thirdPacket));
        ulong a = Fingerprint(first, LinkType.Raw);
        ulong b = PacketFingerprint.Compute(in secondPacket, second);
        ulong c = PacketFingerprint.Compute(in thirdPacket, third);

        Assert.Equal(3, new[] { a, b, c }.Distinct().Count());
    }

    // ---------------------------------------------------------------- stability

    // Changing one of these values changes every fingerprint ever stored or compared across runs
    // (and the StableHash seed): do it only on purpose, and say so in the change.

    // The container's SYN (see LinkLayerTests): Ethernet, IPv4 id 0x1c46, TCP SYN seq 0x1a2b3c4c with Linux options.
    // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 0800 4500  .B.\...B......E.
    // 0x0010:  003c 1c46 4000 4006 3c88 ac11 0002 5db8  .<.F@.@.<.....].
    // 0x0020:  d822 a9f8 0050 1a2b 3c4c 0000 0000 a002  ."...P.+<L......
    // 0x0030:  faf0 b6ff 0000 0204 05b4 0402 080a 00a1  ................
    // 0x0040:  b2c0 0000 0000 0103 0307                 ..........
    private const string SynVector =
        "02429e5c1a01 0242ac110002 0800 4500003c1c46400040063c88ac1100025db8d822" +
        "a9f800501a2b3c4c00000000a002faf0b6ff0000 020405b40402080a00a1b2c00000000001030307";

    // A DNS query over IPv6 (see Ipv6Tests): flow label 0xabcde, UDP 40000 > 53, 8 bytes "abcdefgh".
    // 0x0000:  6e0a bcde 0010 1140 fd00 dead beef 0000
    // 0x0010:  0000 0000 0000 0002 2001 0db8 0000 0000
    // 0x0020:  0000 0000 0000 0001 9c40 0035 0010 0000
    // 0x0030:  6162 6364 6566 6768
    private const string Ipv6UdpVector =
        "6e0abcde00101140 fd00deadbeef00000000000000000002 20010db8000000000000000000000001 9c40003500100000 6162636465666768";

    // A ping inside VXLAN (see VxlanTests): fingerprinted by the inner ICMP echo, seq 1.
    // 0x0000:  0242 9e5c 1a01 0242 ac11 0002 0800 4500
    // 0x0010:  0056 1c46 0000 4011 daeb c0a8 010a c0a8
    // 0x0020:  010b c822 12b5 0042 7793 0800 0000 0010
    // 0x0030:  0000 0242 0a00 0103 0242 0a00 0002 0800
    // 0x0040:  4500 0024 1c46 4000 4001 098f 0a00 0002
    // 0x0050:  0a00 0103 0800 5b5d 0b0c 0001 6162 6364
    // 0x0060:  6566 6768
    private const string VxlanPingVector =
        "02429e5c1a010242ac1100020800 450000561c4600004011daebc0a8010ac0a8010b c82212b500427793 0800000000100000" +
        "02420a00010302420a0000020800 450000241c4640004001098f0a0000020a000103 08005b5d0b0c0001 6162636465666768";

    [Theory]
    [InlineData(SynVector, 1u, 0x08fea4420f28427dUL)]
    [InlineData(Ipv6UdpVector, 229u, 0xef956eb89568c406UL)]
    [InlineData(VxlanPingVector, 1u, 0xa9599de3b090103dUL)]
    public void Compute_FixedPackets_StableAcrossRuns(string vector, uint linkType, ulong expected)
    {
        byte[] frame = Hex.Parse(vector);

        ulong fingerprint = Fingerprint(frame, new LinkType(linkType));

        Assert.True(expected == fingerprint, $"expected 0x{expected:x16}, computed 0x{fingerprint:x16}");
    }

    [Fact]
    public void StableHash_KnownValues_Fixed()
    {
        // The hash itself, below the fingerprint: a change here also changes every stored fingerprint.
        Assert.Equal(0x1d646e2af14e5180UL, StableHash.Finish(StableHash.Seed));
        Assert.Equal(0xb6fc0901835660d2UL, StableHash.Finish(StableHash.AddBytes(StableHash.Seed, "VethTrace"u8)));
    }

    [Fact]
    public void StableHash_AddBytes_CountsLength()
    {
        // Zero padding must not make "" and "\0" (or "a" and "a\0") collide.
        Assert.NotEqual(StableHash.AddBytes(StableHash.Seed, []), StableHash.AddBytes(StableHash.Seed, [0]));
        Assert.NotEqual(StableHash.AddBytes(StableHash.Seed, [0x61]), StableHash.AddBytes(StableHash.Seed, [0x61, 0]));
        // Only the first 8 bytes count.
        Assert.Equal(StableHash.AddBytes(StableHash.Seed, "12345678"u8), StableHash.AddBytes(StableHash.Seed, "123456789"u8));
    }

    // ---------------------------------------------------------------- edge inputs

    [Fact]
    public void Compute_NonIpFrames_DependOnTypeAndFirstBytes()
    {
        // Without IP, the EtherType and the first 32 bytes after the link header are hashed: a whole ARP message (28).
        // A request and its reply differ in the opcode; two requests from one sender differ in the target address.
        byte[] request = PacketBuilder.Ethernet(0x0806, Hex.Parse("0001 0800 06 04 0001 0242ac110002 ac110002 000000000000 ac110001"));
        byte[] reply = PacketBuilder.Ethernet(0x0806, Hex.Parse("0001 0800 06 04 0002 0242ac110002 ac110002 000000000000 ac110001"));
        byte[] otherTarget = PacketBuilder.Ethernet(0x0806, Hex.Parse("0001 0800 06 04 0001 0242ac110002 ac110002 000000000000 ac110003"));
        PacketParser.Parse(request, LinkType.Ethernet, out var first);
        PacketParser.Parse(reply, LinkType.Ethernet, out var second);
        PacketParser.Parse(otherTarget, LinkType.Ethernet, out var third);

        Assert.NotEqual(PacketFingerprint.Compute(in first, request), PacketFingerprint.Compute(in second, reply));
        Assert.NotEqual(PacketFingerprint.Compute(in first, request), PacketFingerprint.Compute(in third, otherTarget));
    }

    [Fact]
    public void Compute_OtherFrameThanParsed_DoesNotThrow()
    {
        // A caller may pass a shorter span than the one parsed: the payload bounds are re-checked.
        var sample = Get("eth-ipv4-tcp-data");
        PacketParser.Parse(sample.Frame, sample.LinkType, out var packet);

        for (int length = 0; length < sample.Frame.Length; length++)
        {
            PacketFingerprint.Compute(in packet, sample.Frame.AsSpan(0, length));
        }
    }

    [Fact]
    public void CoversPayload_SnaplenBelowHashedBytes_False()
    {
        byte[] frame = EthernetIpv4Tcp(Payload(32));
        PacketParser.Parse(frame.AsSpan(0, 66 + 5), LinkType.Ethernet, out var cut);
        PacketParser.Parse(frame.AsSpan(0, 66 + 8), LinkType.Ethernet, out var enough);

        Assert.False(PacketFingerprint.CoversPayload(in cut));
        Assert.True(PacketFingerprint.CoversPayload(in enough));
        Assert.Equal(66, enough.Outer.PayloadOffset);
        Assert.Equal(BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14 + 2)), (ushort)enough.Outer.IpTotalLength);
    }
}
