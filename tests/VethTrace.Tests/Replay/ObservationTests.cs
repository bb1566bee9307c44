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
