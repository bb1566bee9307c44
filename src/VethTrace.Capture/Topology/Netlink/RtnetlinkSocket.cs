namespace VethTrace.Capture.Topology.Netlink;

/// <summary>
/// A NETLINK_ROUTE socket that runs dumps (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE) in the network namespace of the
/// thread that creates it: a socket belongs to the namespace it was created in, whatever thread uses it later.
/// No bind: the kernel autobinds on the first send, and a dump is a plain request/response.
/// </summary>
public sealed class RtnetlinkSocket : IDisposable
{
    /// <summary>Kernel dump datagrams are at most 32 KiB (netlink_dump, NLMSG_GOODSIZE up to 32 KiB); room to spare.</summary>
    private const int ReceiveBufferLength = 64 * 1024;

    /// <summary>A dump of a busy host is a few hundred datagrams; this bounds a kernel that never says DONE.</summary>
    private const int MaxDatagramsPerDump = 100_000;

    private const int ReceiveTimeoutSeconds = 5;

    private readonly int _fd;
    private readonly byte[] _buffer = new byte[ReceiveBufferLength];
    private uint _sequence;
    private bool _disposed;

    public RtnetlinkSocket()
    {
        _fd = NativeMethods.socket(NativeMethods.AddressFamilyNetlink, NativeMethods.SocketTypeRaw | NativeMethods.SocketCloseOnExec, NativeMethods.NetlinkRoute);
        if (_fd < 0)
        {
            throw new TopologyException(TopologyErrorKind.NetlinkFailed, $"cannot open a netlink socket: {NativeMethods.Describe(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}");
        }
        // struct timeval { tv_sec; tv_usec } as two longs (LP64).
        long[] timeout = [ReceiveTimeoutSeconds, 0];
        _ = NativeMethods.setsockopt(_fd, NativeMethods.SolSocket, NativeMethods.SoReceiveTimeout, timeout, sizeof(long) * 2);
    }

    /// <summary>Dumps links, addresses and routes (all families, all tables) into one <see cref="NetlinkDump"/>.</summary>
    public NetlinkDump DumpAll()
    {
        var dump = new NetlinkDump();
        Dump(NetlinkMessageType.GetLink, InterfaceInfoMessage.Field.HeaderLength, dump);
        Dump(NetlinkMessageType.GetAddress, AddressMessage.Field.HeaderLength, dump);
        Dump(NetlinkMessageType.GetRoute, RouteMessage.Field.HeaderLength, dump);
        return dump;
    }

    /// <summary>Sends one dump request (family AF_UNSPEC: a zeroed fixed header) and reads replies until NLMSG_DONE.</summary>
    public void Dump(ushort requestType, int fixedHeaderLength, NetlinkDump into)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint sequence = ++_sequence;
        Send(BuildDumpRequest(requestType, fixedHeaderLength, sequence), $"netlink request {requestType}");
        for (int datagrams = 0; datagrams < MaxDatagramsPerDump; datagrams++)
        {
            if (!TryReceive(sequence, into, out NetlinkDatagramResult result))
            {
                continue;
            }
            switch (result.Status)
            {
                case NetlinkDumpStatus.Done:
                    return;
                case NetlinkDumpStatus.Error:
                    throw Failure($"netlink dump {requestType}", result.Errno);
                case NetlinkDumpStatus.Malformed:
                    throw new TopologyException(TopologyErrorKind.NetlinkFailed, $"malformed netlink reply: {into.Problems[^1]}");
            }
        }
        throw new TopologyException(TopologyErrorKind.NetlinkFailed, $"netlink dump {requestType} did not end after {MaxDatagramsPerDump} datagrams");
    }

    /// <summary>
    /// Asks the kernel which route a packet to <paramref name="destination"/> takes from this namespace (RTM_GETROUTE
    /// without NLM_F_DUMP, as <c>ip route get</c>: the policy rules, the local table and the main table as the kernel
    /// applies them). Null when the kernel has no route (ENETUNREACH, EHOSTUNREACH and the like: an unreachable or
    /// prohibit route answers with an error, not a route).
    /// </summary>
    public NetlinkRoute? GetRoute(System.Net.IPAddress destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint sequence = ++_sequence;
        Send(BuildRouteRequest(destination, sequence), "netlink route request");
        var into = new NetlinkDump();
        for (int datagrams = 0; datagrams < MaxDatagramsPerDump; datagrams++)
        {
            if (!TryReceive(sequence, into, out NetlinkDatagramResult result))
            {
                continue;
            }
            if (into.Routes.Count > 0)
            {
                return into.Routes[0];
            }
            switch (result.Status)
            {
                case NetlinkDumpStatus.Error:
                    return null;
                case NetlinkDumpStatus.Malformed:
                    throw new TopologyException(TopologyErrorKind.NetlinkFailed, $"malformed netlink reply: {into.Problems[^1]}");
                case NetlinkDumpStatus.Done:
                    return null;
            }
            // Another sequence's leftovers (a dump cut short earlier): read on.
        }
        throw new TopologyException(TopologyErrorKind.NetlinkFailed, $"no netlink route reply after {MaxDatagramsPerDump} datagrams");
    }

    private void Send(byte[] request, string what)
    {
        if (NativeMethods.send(_fd, request, request.Length, 0) != request.Length)
        {
            throw Failure(what, System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>
    /// Reads one datagram and parses the messages of <paramref name="sequence"/> in it into <paramref name="into"/>;
    /// false when the read was interrupted (EINTR: the caller reads again). Throws on a timeout, a failed read or a
    /// reply larger than the buffer.
    /// </summary>
    private bool TryReceive(uint sequence, NetlinkDump into, out NetlinkDatagramResult result)
    {
        nint received = NativeMethods.recv(_fd, _buffer, _buffer.Length, NativeMethods.MessageTruncate);
        if (received < 0)
        {
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == NativeMethods.EINTR)
            {
                result = default;
                return false;
            }
            throw Failure(errno == NativeMethods.EAGAIN ? $"no netlink reply within {ReceiveTimeoutSeconds} s" : "netlink receive", errno);
        }
        if (received > _buffer.Length)
        {
            throw new TopologyException(TopologyErrorKind.NetlinkFailed, $"netlink reply of {received} bytes exceeds the {_buffer.Length}-byte buffer");
        }
        result = RtnetlinkParser.ParseDatagram(_buffer.AsSpan(0, (int)received), sequence, into);
        return true;
    }

    /// <summary>
    /// An RTM_GETROUTE request for one destination: nlmsghdr (NLM_F_REQUEST), an rtmsg with the family and a full-length
    /// destination prefix, and RTA_DST.
    /// </summary>
    public static byte[] BuildRouteRequest(System.Net.IPAddress destination, uint sequence)
    {
        byte[] address = destination.GetAddressBytes();
        int attributeLength = RouteAttributeReader.Field.HeaderLength + address.Length;
        int length = NetlinkMessageHeader.Field.HeaderLength + HostOrder.Align4(RouteMessage.Field.HeaderLength) + HostOrder.Align4(attributeLength);
        var request = new byte[length];
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Length), (uint)length);
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Type), NetlinkMessageType.GetRoute);
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Flags), NetlinkFlags.Request);
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Sequence), sequence);
        int rtmsg = NetlinkMessageHeader.Field.HeaderLength;
        request[rtmsg + RouteMessage.Field.Family] = address.Length == 4 ? RouteMessage.FamilyInet : RouteMessage.FamilyInet6;
        request[rtmsg + RouteMessage.Field.DestinationLength] = (byte)(address.Length * 8);
        int attribute = rtmsg + HostOrder.Align4(RouteMessage.Field.HeaderLength);
        HostOrder.Write(request.AsSpan(attribute + RouteAttributeReader.Field.Length), (ushort)attributeLength);
        HostOrder.Write(request.AsSpan(attribute + RouteAttributeReader.Field.Type), RouteMessage.Attribute.Destination);
        address.CopyTo(request.AsSpan(attribute + RouteAttributeReader.Field.HeaderLength));
        return request;
    }

    /// <summary>An nlmsghdr with NLM_F_REQUEST | NLM_F_DUMP, followed by a zeroed family header.</summary>
    public static byte[] BuildDumpRequest(ushort requestType, int fixedHeaderLength, uint sequence)
    {
        int length = NetlinkMessageHeader.Field.HeaderLength + HostOrder.Align4(fixedHeaderLength);
        var request = new byte[length];
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Length), (uint)length);
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Type), requestType);
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Flags), (ushort)(NetlinkFlags.Request | NetlinkFlags.Dump));
        HostOrder.Write(request.AsSpan(NetlinkMessageHeader.Field.Sequence), sequence);
        return request;
    }

    private static TopologyException Failure(string what, int errno) =>
        new(TopologyErrorKind.NetlinkFailed, $"{what} failed: {NativeMethods.Describe(errno)}");

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _ = NativeMethods.close(_fd);
        }
    }
}
