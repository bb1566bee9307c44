using System.Net;
using VethTrace.Capture.Topology;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Tests.Parser;
using static VethTrace.Tests.Topology.NetlinkBuilder;

namespace VethTrace.Tests.Topology;

public sealed class RtnetlinkParserTests
{
    private const uint Sequence = 7;

    /// <summary>
    /// One RTM_NEWLINK for a host veth and the NLMSG_DONE that ends the dump, as x86-64 (little-endian) bytes,
    /// laid out by field: nlmsghdr, ifinfomsg, then IFLA_IFNAME, IFLA_LINK, IFLA_MASTER, IFLA_OPERSTATE,
    /// IFLA_LINKINFO (NLA_F_NESTED) { IFLA_INFO_KIND "veth" }, IFLA_LINK_NETNSID.
    /// </summary>
    private const string VethDumpHex = """
        5c000000 1000 0200 01000000 00000000
        00 00 0100 32000000 43100100 00000000
        0a00 0300 76657468 3000 0000
        0800 0500 31000000
        0800 0a00 2f000000
        0500 1000 06 000000
        1000 1280 0900 0100 76657468 00 000000
        0800 2500 00000000
        14000000 0300 0200 01000000 00000000 00000000
        """;

    [Fact]
    public void ParseDatagram_HexVethDump_ReadsEveryFieldAndDone()
    {
        Assert.True(BitConverter.IsLittleEndian, "the hex vector is little-endian");
        var dump = new NetlinkDump();

        NetlinkDatagramResult result = RtnetlinkParser.ParseDatagram(Hex.Parse(VethDumpHex), 1, dump);

        Assert.Equal(NetlinkDumpStatus.Done, result.Status);
        Assert.Equal(2, result.Messages);
        NetlinkLink link = Assert.Single(dump.Links);
        Assert.Equal(new NetlinkLink(50, "veth0", "veth", 49, 0, 47, LinkOperationalState.Up, 0x11043, 0, null), link);
        Assert.True(link.IsUp);
        Assert.False(link.IsLoopback);
        Assert.Empty(dump.Problems);
    }

    [Fact]
    public void ParseDatagram_BuiltVethMessage_SameBytesAsHexVector()
    {
        byte[] built = Concat(
            Message(NetlinkMessageType.NewLink, 1, Link(50, 0x11043,
                String(InterfaceInfoMessage.Attribute.IfName, "veth0"),
                Int32(InterfaceInfoMessage.Attribute.Link, 49),
                Int32(InterfaceInfoMessage.Attribute.Master, 47),
                Attribute(InterfaceInfoMessage.Attribute.OperState, [6]),
                LinkInfo("veth"),
                Int32(InterfaceInfoMessage.Attribute.LinkNetnsId, 0))),
            Done(1));
        // The builder zeroes the port id; the vector has 0 there too except for the builder's 4242.
        byte[] expected = Hex.Parse(VethDumpHex);
        expected[12] = built[12];
        expected[13] = built[13];
        expected[92 + 12] = built[92 + 12];
        expected[92 + 13] = built[92 + 13];
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(built));
    }

    [Fact]
    public void ParseDatagram_LinksAddressesAndRoutes_AllParsed()
    {
        byte[] datagram = Concat(
            VethLink(Sequence, 5, "eth0", 50, null),
            Message(NetlinkMessageType.NewLink, Sequence, Link(1, 0x49, String(InterfaceInfoMessage.Attribute.IfName, "lo"),
                Attribute(InterfaceInfoMessage.Attribute.Address, [0, 0, 0, 0, 0, 0]))),
            Message(NetlinkMessageType.NewAddress, Sequence, Address(2, 16, 5,
                Ip(AddressMessage.Attribute.Address, "172.17.0.2"), Ip(AddressMessage.Attribute.Local, "172.17.0.2"),
                String(AddressMessage.Attribute.Label, "eth0"))),
            Message(NetlinkMessageType.NewAddress, Sequence, Address(10, 64, 5, Ip(AddressMessage.Attribute.Address, "fe80::42:acff:fe11:2"))),
            Message(NetlinkMessageType.NewRoute, Sequence, Route(2, 0, 254, 1,
                Ip(RouteMessage.Attribute.Gateway, "172.17.0.1"), Int32(RouteMessage.Attribute.OutputInterface, 5),
                Int32(RouteMessage.Attribute.Table, 254))));
        var dump = new NetlinkDump();

        NetlinkDatagramResult result = RtnetlinkParser.ParseDatagram(datagram, Sequence, dump);

        Assert.Equal(NetlinkDumpStatus.More, result.Status);
        Assert.Equal(5, result.Messages);
        Assert.Equal(["eth0", "lo"], dump.Links.Select(l => l.Name));
        Assert.True(dump.Links[1].IsLoopback);
        Assert.Equal("00:00:00:00:00:00", dump.Links[1].HardwareAddress);
        Assert.Equal(["172.17.0.2/16", "fe80::42:acff:fe11:2/64"], dump.Addresses.Select(a => a.ToString()));
        Assert.Equal("eth0", dump.Addresses[0].Label);
        NetlinkRoute route = Assert.Single(dump.Routes);
        Assert.Equal(new NetlinkRoute(2, 0, null, IPAddress.Parse("172.17.0.1"), 5, 254, 1, 0), route);
        Assert.True(route.IsDefault);
        Assert.Empty(dump.Problems);
    }

    [Fact]
    public void TryParseAddress_LocalAndPeerDiffer_LocalWins()
    {
        // if_addr.h: on a point-to-point link IFA_ADDRESS is the peer; IFA_LOCAL is the interface's own address.
        byte[] payload = Address(2, 32, 9, Ip(AddressMessage.Attribute.Address, "10.0.0.2"), Ip(AddressMessage.Attribute.Local, "10.0.0.1"));

        Assert.True(RtnetlinkParser.TryParseAddress(payload, out NetlinkAddress? address, out string? problem));

        Assert.Equal("10.0.0.1/32", address.ToString());
        Assert.Null(problem);
    }

    [Fact]
    public void TryParseAddress_NoAddressAttribute_FalseWithProblem()
    {
        Assert.False(RtnetlinkParser.TryParseAddress(Address(2, 24, 3), out _, out string? problem));
        Assert.Contains("no address", problem);
    }

    [Theory]
    [InlineData(1)] // EPERM: a failure, reported with its errno
    [InlineData(0)] // error code 0 is an ACK: the request is complete
    public void ParseDatagram_ErrorMessage_ErrorOrAck(int errno)
    {
        var dump = new NetlinkDump();

        NetlinkDatagramResult result = RtnetlinkParser.ParseDatagram(Error(Sequence, errno), Sequence, dump);

        Assert.Equal(errno == 0 ? NetlinkDumpStatus.Done : NetlinkDumpStatus.Error, result.Status);
        Assert.Equal(errno, result.Errno);
    }

    [Fact]
    public void ParseDatagram_OtherSequence_Ignored()
    {
        byte[] datagram = Concat(VethLink(99, 5, "stale", 7, null), Done(99), VethLink(Sequence, 6, "eth0", 8, null), Done(Sequence));
        var dump = new NetlinkDump();

        NetlinkDatagramResult result = RtnetlinkParser.ParseDatagram(datagram, Sequence, dump);

        Assert.Equal(NetlinkDumpStatus.Done, result.Status);
        Assert.Equal("eth0", Assert.Single(dump.Links).Name);
    }

    [Fact]
    public void ParseDatagram_NestedFlagOnKind_KindStillRead()
    {
        byte[] datagram = Message(NetlinkMessageType.NewLink, Sequence, Link(3, 0,
            String(InterfaceInfoMessage.Attribute.IfName, "docker0"), LinkInfo("bridge")));
        var dump = new NetlinkDump();

        RtnetlinkParser.ParseDatagram(datagram, Sequence, dump);

        Assert.Equal("bridge", Assert.Single(dump.Links).Kind);
    }

    [Fact]
    public void ParseDatagram_ZeroLengthHeader_MalformedAndStops()
    {
        // nlmsg_len 0 would make a naive walker spin on the same offset forever.
        byte[] datagram = Concat(VethLink(Sequence, 5, "eth0", 50, null), new byte[16]);
        var dump = new NetlinkDump();

        NetlinkDatagramResult result = RtnetlinkParser.ParseDatagram(datagram, Sequence, dump);

        Assert.Equal(NetlinkDumpStatus.Malformed, result.Status);
        Assert.Single(dump.Links);
        Assert.Contains("malformed", Assert.Single(dump.Problems));
    }

    [Fact]
    public void TryParseLink_ZeroLengthAttribute_KeepsEarlierAttributesAndFlagsProblem()
    {
        byte[] payload = Concat(Link(4, 0, String(InterfaceInfoMessage.Attribute.IfName, "eth1")), [0, 0, 3, 0, 0xAA, 0xBB, 0xCC, 0xDD]);

        Assert.True(RtnetlinkParser.TryParseLink(payload, out NetlinkLink? link, out string? problem));

        Assert.Equal("eth1", link.Name);
        Assert.Contains("malformed", problem);
    }

    [Fact]
    public void MessageReader_FailedRead_LeavesCursorUnchanged()
    {
        byte[] datagram = Concat(Done(1), [0x40, 0, 0, 0, 3, 0]); // a second header claiming 64 bytes, cut at 6
        var reader = new NetlinkMessageReader(datagram);

        Assert.Equal(NetlinkCheck.Ok, reader.TryRead(out _));
        int remaining = reader.BytesRemaining;
        Assert.Equal(NetlinkCheck.Truncated, reader.TryRead(out _));
        Assert.Equal(remaining, reader.BytesRemaining);
    }

    [Fact]
    public void AttributeReader_FailedRead_LeavesCursorUnchanged()
    {
        byte[] attributes = Concat(Int32(5, 9), [0x20, 0, 3, 0]); // second attribute claims 32 bytes, has 4
        var reader = new RouteAttributeReader(attributes);

        Assert.Equal(NetlinkCheck.Ok, reader.TryRead(out ushort type, out ReadOnlySpan<byte> value));
        Assert.Equal(5, type);
        Assert.Equal(4, value.Length);
        Assert.Equal(NetlinkCheck.Truncated, reader.TryRead(out _, out _));
        Assert.Equal(4, reader.BytesRemaining);
    }

    [Fact]
    public void ParseDatagram_EveryTruncationOfADump_NoExceptionAndGoodPrefixKept()
    {
        byte[] full = Concat(
            VethLink(Sequence, 5, "eth0", 50, null),
            Message(NetlinkMessageType.NewAddress, Sequence, Address(2, 16, 5, Ip(AddressMessage.Attribute.Local, "172.17.0.2"))),
            Message(NetlinkMessageType.NewRoute, Sequence, Route(2, 0, 254, 1, Int32(RouteMessage.Attribute.OutputInterface, 5))),
            Done(Sequence));
        for (int length = 0; length <= full.Length; length++)
        {
            var dump = new NetlinkDump();
            NetlinkDatagramResult result = RtnetlinkParser.ParseDatagram(full.AsSpan(0, length), Sequence, dump);
            // A cut datagram ends in a truncated header (Malformed) or exactly on a message boundary (More).
            Assert.True(length == full.Length ? result.Status == NetlinkDumpStatus.Done : result.Status is NetlinkDumpStatus.More or NetlinkDumpStatus.Malformed,
                $"length {length}: {result.Status}");
            Assert.True(dump.Links.Count + dump.Addresses.Count + dump.Routes.Count <= 3);
        }
    }

    [Fact]
    public void TryParse_EveryTruncationOfEachPayload_NoExceptionAndNeverReadsPastTheEnd()
    {
        byte[][] linkAttributes =
        [
            String(InterfaceInfoMessage.Attribute.IfName, "eth0"), Int32(InterfaceInfoMessage.Attribute.Link, 50),
            Int32(InterfaceInfoMessage.Attribute.Master, 3), Attribute(InterfaceInfoMessage.Attribute.OperState, [6]), LinkInfo("veth"),
            Int32(InterfaceInfoMessage.Attribute.LinkNetnsId, 0), Int32(InterfaceInfoMessage.Attribute.Mtu, 1500),
        ];
        byte[] link = Link(5, 0x11043, linkAttributes);
        var boundaries = new HashSet<int> { InterfaceInfoMessage.Field.HeaderLength };
        int boundary = InterfaceInfoMessage.Field.HeaderLength;
        foreach (byte[] attribute in linkAttributes)
        {
            // The last attribute may omit (some of) its padding: a cut anywhere after its declared length leaves it whole.
            for (int end = boundary + BitConverter.ToUInt16(attribute, 0); end <= boundary + attribute.Length; end++)
            {
                boundaries.Add(end);
            }
            boundary += attribute.Length;
        }
        byte[] address = Address(10, 64, 5, Ip(AddressMessage.Attribute.Address, "2001:db8::1"), String(AddressMessage.Attribute.Label, "eth0"));
        byte[] route = Route(2, 0, 254, 1, Ip(RouteMessage.Attribute.Gateway, "192.0.2.1"), Int32(RouteMessage.Attribute.OutputInterface, 2),
            Int32(RouteMessage.Attribute.Priority, 100));
        for (int length = 0; length <= link.Length; length++)
        {
            bool ok = RtnetlinkParser.TryParseLink(link.AsSpan(0, length), out NetlinkLink? parsed, out string? problem);
            Assert.Equal(length >= InterfaceInfoMessage.Field.HeaderLength, ok);
            Assert.Equal(ok, parsed is not null);
            // Lax: a cut inside an attribute keeps the link but says so; a cut between attributes is indistinguishable from a shorter message.
            Assert.True(!ok || boundaries.Contains(length) == (problem is null), $"length {length}: problem '{problem}'");
        }
        for (int length = 0; length <= address.Length; length++)
        {
            bool ok = RtnetlinkParser.TryParseAddress(address.AsSpan(0, length), out NetlinkAddress? parsed, out _);
            Assert.Equal(ok, parsed is not null);
        }
        for (int length = 0; length <= route.Length; length++)
        {
            bool ok = RtnetlinkParser.TryParseRoute(route.AsSpan(0, length), out NetlinkRoute? parsed, out _);
            Assert.Equal(length >= RouteMessage.Field.HeaderLength, ok);
            Assert.Equal(ok, parsed is not null);
        }
        Assert.True(RtnetlinkParser.TryParseLink(link, out NetlinkLink? whole, out string? none));
        Assert.Null(none);
        Assert.Equal(new NetlinkLink(5, "eth0", "veth", 50, 0, 3, LinkOperationalState.Up, 0x11043, 1500, null), whole);
    }

    [Fact]
    public void ParseDatagram_RandomBytes_NothingEscapes()
    {
        var random = new Random(20261127);
        var buffer = new byte[512];
        for (int round = 0; round < 20_000; round++)
        {
            int length = random.Next(buffer.Length + 1);
            random.NextBytes(buffer.AsSpan(0, length));
            // Keep some lengths and types plausible so the walk reaches the attribute parsers.
            if (length >= 16 && round % 2 == 0)
            {
                BitConverter.TryWriteBytes(buffer.AsSpan(0, 4), (uint)random.Next(16, length + 1));
                BitConverter.TryWriteBytes(buffer.AsSpan(4, 2), (ushort)(16 + 4 * random.Next(3)));
                BitConverter.TryWriteBytes(buffer.AsSpan(8, 4), Sequence);
            }
            var dump = new NetlinkDump();
            RtnetlinkParser.ParseDatagram(buffer.AsSpan(0, length), round % 3 == 0 ? null : Sequence, dump);
        }
    }

    [Fact]
    public void BuildDumpRequest_GetLink_HeaderAndZeroedIfinfomsg()
    {
        byte[] request = RtnetlinkSocket.BuildDumpRequest(NetlinkMessageType.GetLink, InterfaceInfoMessage.Field.HeaderLength, 3);

        Assert.True(BitConverter.IsLittleEndian);
        // nlmsg_len 32, RTM_GETLINK, NLM_F_REQUEST|NLM_F_DUMP, seq 3, pid 0; then 16 zero bytes of ifinfomsg.
        Assert.Equal("20000000 1200 0103 03000000 00000000".Replace(" ", "") + new string('0', 32), Convert.ToHexString(request));
    }

    [Fact]
    public void DefaultRouteDevice_SeveralDefaults_LowestMetricIpv4InMainTable()
    {
        NetlinkLink eth0 = LinkRecord("eth0", 2), eth1 = LinkRecord("eth1", 3), wg = LinkRecord("wg0", 4);
        NetlinkRoute[] routes =
        [
            new(2, 0, null, null, 4, 100, 1, 0),          // default in another table (policy routing): ignored
            new(2, 0, null, IPAddress.Parse("192.0.2.1"), 3, 254, 1, 600),
            new(2, 0, null, IPAddress.Parse("192.0.2.1"), 2, 254, 1, 100),
            new(2, 24, IPAddress.Parse("192.0.2.0"), null, 4, 254, 1, 0),
            new(10, 0, null, null, 4, 254, 1, 0),
        ];
        var snapshot = new NamespaceSnapshot("host", null, "net:[1]", [eth0, eth1, wg], [], routes, []);

        Assert.Equal("eth0", snapshot.DefaultRouteDevice()?.Name);
        Assert.Equal("wg0", (snapshot with { Routes = routes[3..] }).DefaultRouteDevice()?.Name);
        Assert.Null((snapshot with { Routes = routes[..1] }).DefaultRouteDevice());
    }

    internal static NetlinkLink LinkRecord(string name, int index, string? kind = null, int? link = null, int? netnsId = null, int? master = null, uint flags = 0x11043) =>
        new(index, name, kind, link, netnsId, master, LinkOperationalState.Up, flags, 1500, null);
}
