using System.Runtime.InteropServices;
using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Capture.Live;

/// <summary>
/// Puts bridges in promiscuous mode for as long as it lives, the way a libpcap handle opened on the bridge would: a
/// packet socket bound to no protocol (it receives nothing) holding a PACKET_MR_PROMISC membership per bridge
/// (packet(7)). The kernel counts memberships, so another capture's promiscuity is left alone, and closing the socket
/// (also when the process dies) undoes them. The <c>any</c> device does not do this, and without it a bridge's own
/// copy of a bridged frame is never seen (benchmarks/README.md, "Capture design for the whole host").
/// </summary>
public sealed class PromiscuousBridges : IDisposable
{
    private readonly int _fd;
    private readonly HashSet<int> _members = [];

    public PromiscuousBridges()
    {
        _fd = NativeMethods.socket(NativeMethods.AddressFamilyPacket, NativeMethods.SocketTypeRaw | NativeMethods.SocketCloseOnExec, 0);
        if (_fd < 0)
        {
            throw new LiveCaptureException($"cannot open a packet socket to make the bridges promiscuous: {NativeMethods.Describe(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>Makes the interface promiscuous; an error message, or null.</summary>
    public string? Add(int ifindex)
    {
        if (!_members.Add(ifindex))
        {
            return null;
        }
        if (NativeMethods.setsockopt(_fd, NativeMethods.SolPacket, NativeMethods.PacketAddMembership, Request(ifindex), 16) != 0)
        {
            _members.Remove(ifindex);
            return NativeMethods.Describe(Marshal.GetLastPInvokeError());
        }
        return null;
    }

    /// <summary>Gives the membership back (the bridge went away or is no longer followed).</summary>
    public void Remove(int ifindex)
    {
        if (_members.Remove(ifindex))
        {
            _ = NativeMethods.setsockopt(_fd, NativeMethods.SolPacket, NativeMethods.PacketDropMembership, Request(ifindex), 16);
        }
    }

    // struct packet_mreq { int mr_ifindex; unsigned short mr_type, mr_alen; unsigned char mr_address[8]; }, little-endian hosts.
    private static int[] Request(int ifindex) => [ifindex, NativeMethods.PacketMembershipPromiscuous, 0, 0];

    public void Dispose() => _ = NativeMethods.close(_fd);
}
