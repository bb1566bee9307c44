using VethTrace.Capture.Files;
using VethTrace.Capture.Live;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Live;

/// <summary>
/// The direction a live capture writes into epb_flags, decided by a frame's Ethernet source address
/// (the lab's addresses: the container 02:42:ac:11:00:02, docker0 02:42:b1:b7:07:58).
/// </summary>
public sealed class DirectionTests
{
    private const ulong Container = 0x0242_ac11_0002;
    private const ulong Bridge = 0x0242_b1b7_0758;
    private const ulong Veth = 0x06f7_3eba_6289;

    private static byte[] Frame(ulong destination, ulong source)
    {
        var frame = new byte[60];
        for (int i = 0; i < 6; i++)
        {
            frame[i] = (byte)(destination >> (40 - 8 * i));
            frame[6 + i] = (byte)(source >> (40 - 8 * i));
        }
        frame[12] = 0x08;
        return frame;
    }

    [Theory]
    // The container's own eth0: what it sends is outbound, what the bridge delivers is inbound.
    [InlineData(InterfaceRole.Container, Container, Bridge, Container, PacketDirection.Outbound)]
    [InlineData(InterfaceRole.Container, Container, Container, Bridge, PacketDirection.Inbound)]
    // Its host veth (a bridge port): from the container is inbound; the bridge's, or another container's, goes out to it.
    [InlineData(InterfaceRole.Veth, Veth, Bridge, Container, PacketDirection.Inbound)]
    [InlineData(InterfaceRole.Veth, Veth, Container, Bridge, PacketDirection.Outbound)]
    [InlineData(InterfaceRole.Veth, Veth, Container, 0x0242_ac11_0003, PacketDirection.Outbound)]
    // The bridge device: the host routing out through it is outbound; what the ports hand it is inbound.
    [InlineData(InterfaceRole.Bridge, Bridge, Container, Bridge, PacketDirection.Outbound)]
    [InlineData(InterfaceRole.Bridge, Bridge, Bridge, Container, PacketDirection.Inbound)]
    // A macvlan parent (an egress hop): the container's own frames leave through it with the container's address.
    [InlineData(InterfaceRole.Egress, Veth, 0x0242_c000_0202, Container, PacketDirection.Outbound)]
    [InlineData(InterfaceRole.Egress, Veth, Container, 0x0242_c000_0202, PacketDirection.Inbound)]
    public void DirectionOf_EthernetSource_SenderDecides(InterfaceRole role, ulong own, ulong destination, ulong source, PacketDirection expected)
    {
        Assert.Equal(expected, LiveCapture.DirectionOf(Frame(destination, source), LinkType.Ethernet, role, own, [Container]));
    }

    [Fact]
    public void DirectionOf_VethWithoutAFollowedContainer_FallsBackToItsOwnAddress()
    {
        Assert.Equal(PacketDirection.Outbound, LiveCapture.DirectionOf(Frame(Bridge, Veth), LinkType.Ethernet, InterfaceRole.Veth, Veth, []));
        Assert.Equal(PacketDirection.Inbound, LiveCapture.DirectionOf(Frame(Veth, Container), LinkType.Ethernet, InterfaceRole.Veth, Veth, []));
    }

    [Fact]
    public void DirectionOf_NotEthernetOrNoAddressOrShortFrame_Unknown()
    {
        Assert.Equal(PacketDirection.Unknown, LiveCapture.DirectionOf(Frame(Bridge, Container), LinkType.Raw, InterfaceRole.Egress, Bridge, []));
        Assert.Equal(PacketDirection.Unknown, LiveCapture.DirectionOf(Frame(Bridge, Container), LinkType.Ethernet, InterfaceRole.Egress, 0, []));
        Assert.Equal(PacketDirection.Unknown, LiveCapture.DirectionOf(new byte[13], LinkType.Ethernet, InterfaceRole.Container, Container, []));
    }
}
