using System.Runtime.CompilerServices;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Parser;
using VethTrace.Tracing;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <see cref="Observation.Write"/> fills a batch slot in place (session 9), and a slot is reused: it still holds an
/// earlier observation. Every field must be written, or a value of the earlier one would reach the matching thread.
/// </summary>
public sealed class ObservationTests
{
    /// <summary>An observation unlike any <see cref="Observation.Write"/> makes: every field set, none to its default.</summary>
    private static readonly Observation Stale = new(999, 77, 555, 0xDEAD_BEEF, new FlowKey(IpProtocol.Udp, IpAddress.Parse("192.0.2.9"), 9, IpAddress.Parse("192.0.2.10"), 10),
        4321, Selected: false, SegmentKey: 0xFEED, TcpSequence: 1234, TcpPayload: 99, Direction: PacketDirection.Outbound, TimestampInvalid: true, Ttl: 3,
        Tunnelled: true, TcpFlags: TcpFlags.Rst);

    [Theory]
    [MemberData(nameof(SamplePackets.Names), MemberType = typeof(SamplePackets))]
    public void Write_SlotHoldingAnotherObservation_EveryFieldWritten(string name)
    {
        SamplePacket sample = SamplePackets.Get(name);
        PacketParser.Parse(sample.Frame, sample.LinkType, out ParsedPacket packet);
        Observation[] slots = [default, Stale];
        foreach (bool selected in new[] { true, false })
        {
            for (int i = 0; i < slots.Length; i++)
            {
                Observation.Write(ref slots[i], in packet, sample.Frame, 1_000 + i, 4, 17, selected, PacketDirection.Inbound, timestampInvalid: false);
            }
            Assert.Equal(slots[0] with { TimestampNs = 1_001 }, slots[1]);
            Assert.Equal(Expected(in packet, sample.Frame, selected), slots[0]);
        }
    }

    [Fact]
    public void From_TcpSegmentWithData_FieldsOfThePacket()
    {
        byte[] frame = EthernetIpv4Tcp(PacketBuilder.Payload(32), sequence: 0x1a2b3c4d, ttl: 61);
        PacketParser.Parse(frame, LinkType.Ethernet, out ParsedPacket packet);

        Observation observation = Observation.From(in packet, frame, 5_000, 2, 9, direction: PacketDirection.Outbound, timestampInvalid: true);

        Assert.Equal(Expected(in packet, frame, true) with { TimestampNs = 5_000, Interface = 2, Order = 9, Direction = PacketDirection.Outbound, TimestampInvalid = true },
            observation);
        Assert.Equal(0x1a2b3c4du, observation.TcpSequence);
        Assert.Equal(32, observation.TcpPayload);
        Assert.Equal((byte)61, observation.Ttl);
        Assert.True(observation.IsTcpData);
    }

    /// <summary>
    /// The flow an observation carries is packed from the parsed layers (<c>Correlator.FlowBits.Set(in PacketLayers)</c>),
    /// not built as a key: it must hold exactly the words packing <see cref="FlowKey.From(in ParsedPacket)"/> gives, and
    /// read back as that key (IPv4, IPv6, ICMP echo identifiers on either side, ports-less protocols and ICMP errors).
    /// </summary>
    [Theory]
    [MemberData(nameof(SamplePackets.Names), MemberType = typeof(SamplePackets))]
    public void Write_EverySample_FlowPackedAsTheKeyIsAndReadBack(string name)
    {
        SamplePacket sample = SamplePackets.Get(name);
        PacketParser.Parse(sample.Frame, sample.LinkType, out ParsedPacket packet);
        FlowKey key = FlowKey.From(in packet);
        Observation observation = Stale;

        Observation.Write(ref observation, in packet, sample.Frame, 1, 2, 3);

        Assert.True(Packed(key).Equals(in observation.FlowFields), $"{Packed(key).Rest:x} {observation.FlowFields.Rest:x}");
        Assert.Equal(key, observation.Flow);
    }

    /// <summary>A frame without a network layer leaves the empty flow (all zero), whatever the slot held before.</summary>
    [Fact]
    public void Write_NotIp_EmptyFlowOverAnEarlierOne()
    {
        byte[] arp = PacketBuilder.Ethernet(0x0806, PacketBuilder.Payload(28));
        PacketParser.Parse(arp, LinkType.Ethernet, out ParsedPacket packet);
        Observation observation = Stale;

        Observation.Write(ref observation, in packet, arp, 1, 2, 3);

        Assert.True(observation.Flow.IsEmpty);
        Assert.Equal(default(FlowKey), observation.Flow);
        Assert.True(default(Correlator.FlowBits).Equals(in observation.FlowFields));
    }

    private static readonly string[] KeyTexts =
    [
        "tcp 192.0.2.9 43512 93.184.216.34 80",
        "udp fd00:dead:beef::2 40000 2001:db8::1 53",
        "icmp 172.17.0.2 2828 93.184.216.34 0",
        "icmp 93.184.216.34 0 172.17.0.2 2828",
        "icmpv6 2001:db8::1 0 fd00:dead:beef::2 0",
        "gre 192.168.1.10 0 192.168.1.11 0",
        "59 fe80::1 0 ff02::16 0",
        "tcp 0.0.0.0 0 255.255.255.255 65535",
        "udp :: 65535 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 1",
        "empty",
    ];

    public static TheoryData<string> Keys => new(KeyTexts);

    /// <summary>A key set on an observation (constructor, <c>with</c>) reads back unchanged through the packed form.</summary>
    [Theory]
    [MemberData(nameof(Keys))]
    public void Flow_SetAndReadBack_SameKey(string text)
    {
        FlowKey key = KeyOf(text);

        var built = new Observation(1, 2, 3, 4, key, 60);
        Observation changed = Stale with { Flow = key };

        Assert.Equal(key, built.Flow);
        Assert.Equal(key, changed.Flow);
        Assert.Equal(key.IsEmpty, built.Flow.IsEmpty);
        Assert.Equal(key.IsLinkScoped, built.Flow.IsLinkScoped);
        Assert.Equal(key.ToString(), built.Flow.ToString());
        Assert.True(Packed(key).Equals(in built.FlowFields));
    }

    /// <summary>
    /// SameSource/SameDestination on the packed flows answer as the keys' address and port comparisons do (role inference's
    /// NAT test uses them instead of building keys): every pair of the keys above, and rewrites of one side only.
    /// </summary>
    [Fact]
    public void SameSourceAndDestination_OnPackedFlows_AsTheKeysCompare()
    {
        var keys = KeyTexts.Select(KeyOf).ToList();
        FlowKey v4 = KeyOf("udp 192.0.2.9 1 192.0.2.10 2");
        keys.AddRange([
            v4,
            KeyOf("udp ::c000:209 1 ::c000:20a 2"), // the same numbers as IPv6
            KeyOf("udp 198.51.100.1 1 192.0.2.10 2"), // source address rewritten (MASQUERADE)
            KeyOf("udp 192.0.2.9 40001 192.0.2.10 2"), // source port rewritten
            KeyOf("udp 192.0.2.9 1 172.17.0.2 2"), // destination rewritten (DNAT)
            KeyOf("udp 192.0.2.9 1 192.0.2.10 8080"),
            KeyOf("tcp 192.0.2.9 1 192.0.2.10 2"), // another protocol: neither side differs
        ]);
        int pairs = 0;
        foreach (FlowKey a in keys)
        {
            foreach (FlowKey b in keys)
            {
                Correlator.FlowBits x = Packed(a), y = Packed(b);
                Assert.Equal(a.Source == b.Source && a.SourcePort == b.SourcePort, x.SameSource(in y));
                Assert.Equal(a.Destination == b.Destination && a.DestinationPort == b.DestinationPort, x.SameDestination(in y));
                pairs++;
            }
        }
        Assert.Equal(keys.Count * keys.Count, pairs);
        Assert.False(Packed(v4).SameSource(Packed(KeyOf("udp 198.51.100.1 1 192.0.2.10 2"))));
        Assert.True(Packed(v4).SameDestination(Packed(KeyOf("udp 198.51.100.1 1 192.0.2.10 2"))));
    }

    /// <summary>Observations are equal when their keys are: an IPv4 address and the IPv6 one with the same number differ, as do swapped ports.</summary>
    [Fact]
    public void Equality_ByTheKey()
    {
        FlowKey v4 = KeyOf("udp 192.0.2.9 1 192.0.2.10 2");
        FlowKey v6 = KeyOf("udp ::c000:209 1 ::c000:20a 2");
        var a = new Observation(1, 2, 3, 4, v4, 60);

        Assert.Equal(a, new Observation(1, 2, 3, 4, KeyOf("udp 192.0.2.9 1 192.0.2.10 2"), 60));
        Assert.Equal(a.GetHashCode(), new Observation(1, 2, 3, 4, KeyOf("udp 192.0.2.9 1 192.0.2.10 2"), 60).GetHashCode());
        Assert.NotEqual(a, a with { Flow = v6 });
        Assert.NotEqual(a, a with { Flow = new FlowKey(v4.Protocol, v4.Source, 2, v4.Destination, 1) });
        Assert.NotEqual(a, a with { Flow = default });
        Assert.Equal(v4.Source.V4, v6.Source.Value);
    }

    /// <summary>
    /// What crosses from replay's reading thread to the matching thread per packet: 96 bytes (112 with a <see cref="FlowKey"/>
    /// inside). A field added must not grow it unnoticed (docs/performance.md, "Replay hand-off: a smaller observation").
    /// </summary>
    [Fact]
    public void Size_96Bytes()
    {
        Assert.Equal(96, Unsafe.SizeOf<Observation>());
    }

    private static Correlator.FlowBits Packed(FlowKey key)
    {
        Correlator.FlowBits bits = default;
        bits.Set(in key);
        return bits;
    }

    private static FlowKey KeyOf(string text)
    {
        if (text == "empty")
        {
            return default;
        }
        string[] parts = text.Split(' ');
        IpProtocol protocol = parts[0] switch
        {
            "tcp" => IpProtocol.Tcp,
            "udp" => IpProtocol.Udp,
            "icmp" => IpProtocol.Icmp,
            "icmpv6" => IpProtocol.IcmpV6,
            "gre" => IpProtocol.Gre,
            _ => new IpProtocol(byte.Parse(parts[0])),
        };
        return new FlowKey(protocol, IpAddress.Parse(parts[1]), ushort.Parse(parts[2]), IpAddress.Parse(parts[3]), ushort.Parse(parts[4]));
    }

    /// <summary>The observation as the constructor builds it from the packet (the form <c>From</c> had before <c>Write</c>).</summary>
    private static Observation Expected(in ParsedPacket packet, byte[] frame, bool selected)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        bool tcpData = layers.IsTcp && layers.PayloadLength > 0;
        return new Observation(1_000, 4, 17, PacketFingerprint.Compute(in packet, frame), FlowKey.From(in packet), frame.Length, selected,
            tcpData ? Observation.SegmentKeyOf(in layers) : 0, layers.TcpSequence, tcpData ? layers.PayloadLength : 0, PacketDirection.Inbound, false,
            layers.Ttl, packet.TunnelDepth > 0, layers.IsTcp ? layers.TcpFlags : 0);
    }
}
