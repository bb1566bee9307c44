using System.Runtime.InteropServices;

namespace VethTrace.Capture.Topology.Netlink;

/// <summary>
/// The few libc calls the topology code needs. .NET's <c>Socket</c> refuses AF_NETLINK (EAFNOSUPPORT from its PAL),
/// so the netlink socket is a raw descriptor. Arrays are pinned by the marshaller; no unsafe code.
/// </summary>
internal static class NativeMethods
{
    public const int AddressFamilyNetlink = 16;
    public const int SocketTypeRaw = 3;
    public const int SocketCloseOnExec = 0x80000;
    public const int NetlinkRoute = 0;
    public const int SolSocket = 1;
    /// <summary>SO_RCVBUF and SO_RCVBUFFORCE (root may exceed net.core.rmem_max).</summary>
    public const int SoReceiveBuffer = 8;
    public const int SoReceiveBufferForce = 33;
    /// <summary>SOL_NETLINK and NETLINK_ADD_MEMBERSHIP (netlink(7)): join a multicast group by number.</summary>
    public const int SolNetlink = 270;
    public const int NetlinkAddMembership = 1;
    /// <summary>RTNLGRP_LINK (include/uapi/linux/rtnetlink.h): RTM_NEWLINK/RTM_DELLINK notifications.</summary>
    public const int RtnetlinkGroupLink = 1;
    /// <summary>SO_RCVTIMEO on the asm-generic ABI (x86-64, arm64).</summary>
    public const int SoReceiveTimeout = 20;
    /// <summary>MSG_TRUNC: recv returns the datagram's real length even when it exceeds the buffer.</summary>
    public const int MessageTruncate = 0x20;
    /// <summary>CLONE_NEWNET for setns(2): the descriptor must refer to a network namespace.</summary>
    public const int CloneNewNet = 0x40000000;

    /// <summary>AF_PACKET, and SOL_PACKET with PACKET_ADD_MEMBERSHIP / PACKET_MR_PROMISC (packet(7)).</summary>
    public const int AddressFamilyPacket = 17;
    public const int SolPacket = 263;
    public const int PacketAddMembership = 1;
    public const int PacketDropMembership = 2;
    public const int PacketMembershipPromiscuous = 1;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int EPERM = 1;
    public const int EINVAL = 22;
    /// <summary>A netlink socket's receive queue overflowed: notifications were lost (netlink(7)).</summary>
    public const int ENOBUFS = 105;

    [DllImport("libc", SetLastError = true)]
    public static extern int socket(int domain, int type, int protocol);

    [DllImport("libc", SetLastError = true)]
    public static extern nint send(int fd, byte[] buffer, nint length, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern nint recv(int fd, byte[] buffer, nint length, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern int setsockopt(int fd, int level, int name, long[] value, int length);

    [DllImport("libc", SetLastError = true)]
    public static extern int setsockopt(int fd, int level, int name, int[] value, int length);

    [DllImport("libc", SetLastError = true)]
    public static extern int close(int fd);

    /// <summary>bind(2) with a <c>struct sockaddr_nl</c> laid out in <paramref name="address"/>.</summary>
    [DllImport("libc", SetLastError = true)]
    public static extern int bind(int fd, byte[] address, int length);

    [DllImport("libc", SetLastError = true)]
    public static extern int setns(int fd, int nstype);

    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
