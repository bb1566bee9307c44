using System.Buffers.Binary;
using System.Net;
using VethTrace.Capture.Topology;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Packets;

namespace VethTrace.Tests.Topology;

/// <summary>
/// follow's route lookup (issue 14 §1): the RTM_GETROUTE request laid out as include/uapi/linux/rtnetlink.h says, and
/// the lookup against this machine's own kernel for addresses whose answer does not depend on its routes.
/// </summary>
public sealed class RouteRequestTests
{
    [Fact]
    public void BuildRouteRequest_Ipv4_HeaderRtmsgAndRtaDst()
    {
        byte[] request = RtnetlinkSocket.BuildRouteRequest(IPAddress.Parse("198.51.100.114"), 9);

        // nlmsghdr (16) + rtmsg (12) + RTA_DST (4 + 4) = 36, little-endian (x86-64, arm64).
        Assert.Equal(36, request.Length);
        Assert.Equal(36u, BinaryPrimitives.ReadUInt32LittleEndian(request));
        Assert.Equal(26, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(4)));   // RTM_GETROUTE
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(6)));    // NLM_F_REQUEST only: no dump
        Assert.Equal(9u, BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(8)));
        Assert.Equal(2, request[16]);   // rtm_family AF_INET
        Assert.Equal(32, request[17]);  // rtm_dst_len
        Assert.Equal(8, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(28)));   // rta_len
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(30)));   // RTA_DST
        Assert.Equal(new byte[] { 198, 51, 100, 114 }, request[32..36]);
    }

    [Fact]
    public void BuildRouteRequest_Ipv6_FullLengthPrefix()
    {
        byte[] request = RtnetlinkSocket.BuildRouteRequest(IPAddress.Parse("2001:db8::14"), 1);
        Assert.Equal(16 + 12 + 4 + 16, request.Length);
        Assert.Equal(10, request[16]);   // AF_INET6
        Assert.Equal(128, request[17]);
        Assert.Equal(IPAddress.Parse("2001:db8::14").GetAddressBytes(), request[32..48]);
    }

    [Fact]
    public void HostEgressRoutes_LoopbackAsEgress_LocalAndLinkScopedAddressesNeverLeave()
    {
        // 'lo' exists in every namespace; 127.0.0.1 is a local route (RTN_LOCAL), never unicast out of it.
        using HostEgressRoutes? routes = HostEgressRoutes.TryCreate(["lo"]);
        Assert.NotNull(routes);
        Assert.False(routes.LeavesByEgress(IpAddress.Parse("127.0.0.1")));
        Assert.False(routes.LeavesByEgress(IpAddress.Parse("169.254.1.1")));
        Assert.False(routes.LeavesByEgress(IpAddress.Parse("224.0.0.22")));
        Assert.Null(HostEgressRoutes.TryCreate(["vt-no-such-if"]));
    }
}
