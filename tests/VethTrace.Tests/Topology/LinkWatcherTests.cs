using VethTrace.Capture.Topology;
using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Tests.Topology;

/// <summary>
/// The link watcher's pure parts: parsing RTNLGRP_LINK notification datagrams (built byte by byte as the kernel sends
/// them) and the link table's diff. The live parts are in <see cref="LinkWatcherLabTests"/>.
/// </summary>
public sealed class LinkWatcherTests
{
    private const byte AfBridge = 7;
    private static readonly DateTimeOffset At = new(2026, 12, 4, 21, 0, 0, TimeSpan.Zero);

    private static byte[] BridgeLink(int index, string name) => NetlinkBuilder.Message(NetlinkMessageType.NewLink, 0,
        NetlinkBuilder.Link(index, 0x1043,
            NetlinkBuilder.String(InterfaceInfoMessage.Attribute.IfName, name),
            NetlinkBuilder.Attribute(InterfaceInfoMessage.Attribute.OperState, [6]),
            NetlinkBuilder.LinkInfo("bridge")), flags: 0);

    private static byte[] WithType(byte[] message, ushort type)
    {
        byte[] copy = [.. message];
        BitConverter.TryWriteBytes(copy.AsSpan(4), type);
        return copy;
    }

    private static byte[] WithFamily(byte[] message, byte family)
    {
        byte[] copy = [.. message];
        copy[16] = family;
        return copy;
    }

    private static NetlinkLink Veth(int index, string name, int? master, LinkOperationalState state = LinkOperationalState.Up) =>
        new(index, name, "veth", 4, 0, master, state, 0x11043, 1500, null);

    [Fact]
    public void ParseNotifications_NewAndDeleteLinkInOneDatagram_BothInOrder()
    {
        byte[] datagram = NetlinkBuilder.Concat(
            NetlinkBuilder.VethLink(0, 40, "vethab12", peer: 39, master: 5),
            WithType(NetlinkBuilder.VethLink(0, 41, "vethcd34", peer: 38, master: null), NetlinkMessageType.DeleteLink));
        var parsed = new List<(NetlinkLink Link, bool Deleted)>();

        int malformed = LinkWatcher.ParseNotifications(datagram, parsed);

        Assert.Equal(0, malformed);
        Assert.Equal(2, parsed.Count);
        Assert.Equal((40, "vethab12", "veth", (int?)5, false), (parsed[0].Link.Index, parsed[0].Link.Name, parsed[0].Link.Kind, parsed[0].Link.MasterIndex, parsed[0].Deleted));
        Assert.Equal((41, "vethcd34", true), (parsed[1].Link.Index, parsed[1].Link.Name, parsed[1].Deleted));
    }

    [Fact]
    public void ParseNotifications_BridgeFamilyPortEvents_Skipped()
    {
        // The bridge driver's AF_BRIDGE RTM_DELLINK when a port leaves: the link itself still exists.
        byte[] datagram = NetlinkBuilder.Concat(
            WithFamily(WithType(NetlinkBuilder.VethLink(0, 40, "vethab12", peer: 39, master: 5), NetlinkMessageType.DeleteLink), AfBridge),
            WithFamily(NetlinkBuilder.VethLink(0, 40, "vethab12", peer: 39, master: 5), AfBridge),
            BridgeLink(5, "docker0"));
        var parsed = new List<(NetlinkLink Link, bool Deleted)>();

        int malformed = LinkWatcher.ParseNotifications(datagram, parsed);

        Assert.Equal(0, malformed);
        (NetlinkLink link, bool deleted) = Assert.Single(parsed);
        Assert.Equal((5, "docker0", "bridge", false), (link.Index, link.Name, link.Kind, deleted));
    }

    [Fact]
    public void ParseNotifications_OtherMessageTypes_Ignored()
    {
        byte[] datagram = NetlinkBuilder.Concat(
            NetlinkBuilder.Message(NetlinkMessageType.NewAddress, 0, NetlinkBuilder.Address(2, 24, 5, NetlinkBuilder.Ip(2, "172.17.0.1"))),
            NetlinkBuilder.Done(0));
        var parsed = new List<(NetlinkLink Link, bool Deleted)>();

        Assert.Equal(0, LinkWatcher.ParseNotifications(datagram, parsed));
        Assert.Empty(parsed);
    }

    [Fact]
    public void ParseNotifications_EveryTruncation_NoThrowAndNothingInvented()
    {
        byte[] first = NetlinkBuilder.VethLink(0, 40, "vethab12", peer: 39, master: 5);
        byte[] second = BridgeLink(5, "docker0");
        byte[] whole = NetlinkBuilder.Concat(first, second);
        // nlmsg_len of each (the buffers are padded to 4 bytes; the last message may lack its padding).
        int firstLength = (int)BitConverter.ToUInt32(first, 0), secondEnd = first.Length + (int)BitConverter.ToUInt32(second, 0);
        for (int length = 0; length <= whole.Length; length++)
        {
            var parsed = new List<(NetlinkLink Link, bool Deleted)>();
            int malformed = LinkWatcher.ParseNotifications(whole.AsSpan(0, length), parsed);

            // A cut message is one malformed message; the whole messages before it are kept.
            int expectedWhole = (length >= firstLength ? 1 : 0) + (length >= secondEnd ? 1 : 0);
            bool cut = length != 0 && length < firstLength || length > first.Length && length < secondEnd;
            Assert.Equal(expectedWhole, parsed.Count);
            Assert.Equal(cut ? 1 : 0, malformed);
        }
    }

    [Fact]
    public void ParseNotifications_RandomBytesAndMutatedMessages_NeverThrow()
    {
        var random = new Random(15);
        byte[] valid = NetlinkBuilder.Concat(NetlinkBuilder.VethLink(0, 40, "vethab12", peer: 39, master: 5), BridgeLink(5, "docker0"));
        var parsed = new List<(NetlinkLink Link, bool Deleted)>();
        for (int i = 0; i < 20_000; i++)
        {
            byte[] datagram;
            if (i % 2 == 0)
            {
                datagram = new byte[random.Next(0, 200)];
                random.NextBytes(datagram);
            }
            else
            {
                datagram = [.. valid];
                for (int flips = random.Next(1, 6); flips > 0; flips--)
                {
                    datagram[random.Next(datagram.Length)] = (byte)random.Next(256);
                }
            }
            parsed.Clear();

            int malformed = LinkWatcher.ParseNotifications(datagram, parsed);

            Assert.InRange(malformed, 0, datagram.Length);
            Assert.InRange(parsed.Count, 0, datagram.Length / 16);
        }
    }

    [Fact]
    public void ParseNotifications_ShortIfinfomsg_CountedMalformed()
    {
        byte[] datagram = NetlinkBuilder.Message(NetlinkMessageType.NewLink, 0, new byte[8]);
        var parsed = new List<(NetlinkLink Link, bool Deleted)>();

        Assert.Equal(1, LinkWatcher.ParseNotifications(datagram, parsed));
        Assert.Empty(parsed);
    }

    [Fact]
    public void Apply_UnknownLink_AddedWithMasterName()
    {
        var table = new LinkTable([new NetlinkLink(5, "docker0", "bridge", null, null, null, LinkOperationalState.Up, 0x1043, 1500, null)]);
        var changes = new List<LinkChange>();

        table.Apply(Veth(40, "vethab12", master: 5), deleted: false, At, changes);

        LinkChange change = Assert.Single(changes);
        Assert.Equal((LinkChangeKind.Added, 40, "vethab12", "docker0", At), (change.Kind, change.Index, change.Link.Name, change.MasterName, change.ReceivedAt));
        Assert.Equal(2, table.Count);
    }

    [Fact]
    public void Apply_SameStateAgain_NoChange()
    {
        var table = new LinkTable([Veth(40, "vethab12", master: 5)]);
        var changes = new List<LinkChange>();

        table.Apply(Veth(40, "vethab12", master: 5), deleted: false, At, changes);

        Assert.Empty(changes);
    }

    [Fact]
    public void Apply_RenameAndNewMasterInOneMessage_RenamedThenMasterChanged()
    {
        var table = new LinkTable([
            new NetlinkLink(5, "docker0", "bridge", null, null, null, LinkOperationalState.Up, 0x1043, 1500, null),
            new NetlinkLink(7, "br-1234", "bridge", null, null, null, LinkOperationalState.Up, 0x1043, 1500, null),
            Veth(40, "vethab12", master: 5)]);
        var changes = new List<LinkChange>();

        table.Apply(Veth(40, "vt-renamed", master: 7, LinkOperationalState.Down), deleted: false, At, changes);

        Assert.Equal([LinkChangeKind.Renamed, LinkChangeKind.MasterChanged, LinkChangeKind.StateChanged], changes.Select(c => c.Kind));
        Assert.Equal("vethab12", changes[0].PreviousName);
        Assert.Equal(("br-1234", (int?)5, "docker0"), (changes[1].MasterName, changes[1].PreviousMasterIndex, changes[1].PreviousMasterName));
        Assert.Equal(LinkOperationalState.Up, changes[2].PreviousState);
        Assert.Equal("vt-renamed", table.Find(40)!.Name);
    }

    [Fact]
    public void Apply_LeavesBridge_MasterChangedToNone()
    {
        var table = new LinkTable([new NetlinkLink(5, "docker0", "bridge", null, null, null, LinkOperationalState.Up, 0x1043, 1500, null), Veth(40, "vethab12", master: 5)]);
        var changes = new List<LinkChange>();

        table.Apply(Veth(40, "vethab12", master: null), deleted: false, At, changes);

        LinkChange change = Assert.Single(changes);
        Assert.Equal((LinkChangeKind.MasterChanged, (string?)null, (int?)5, "docker0"), (change.Kind, change.MasterName, change.PreviousMasterIndex, change.PreviousMasterName));
    }

    [Fact]
    public void Apply_NotificationWithoutKind_KeepsTheKnownKind()
    {
        var table = new LinkTable([Veth(40, "vethab12", master: 5)]);
        var changes = new List<LinkChange>();

        table.Apply(Veth(40, "vethab12", master: 5) with { Kind = null }, deleted: false, At, changes);

        Assert.Empty(changes);
        Assert.Equal("veth", table.Find(40)!.Kind);
    }

    [Fact]
    public void Apply_Delete_RemovedOnceThenNothing()
    {
        var table = new LinkTable([Veth(40, "vethab12", master: 5)]);
        var changes = new List<LinkChange>();

        table.Apply(Veth(40, "vethab12", master: 5), deleted: true, At, changes);
        table.Apply(Veth(40, "vethab12", master: 5), deleted: true, At, changes);

        LinkChange change = Assert.Single(changes);
        Assert.Equal((LinkChangeKind.Removed, 40, "vethab12"), (change.Kind, change.Index, change.Link.Name));
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void Resync_AfterLostNotifications_RemovedAddedAndRenamed()
    {
        var table = new LinkTable([Veth(40, "veth-a", master: null), Veth(41, "veth-b", master: null)]);
        var changes = new List<LinkChange>();

        table.Resync([Veth(41, "veth-b2", master: null), Veth(42, "veth-c", master: null)], At, changes);

        Assert.Equal(
            [(LinkChangeKind.Removed, 40), (LinkChangeKind.Renamed, 41), (LinkChangeKind.Added, 42)],
            changes.Select(c => (c.Kind, c.Index)));
        Assert.Equal([41, 42], table.Links.Select(l => l.Index));
    }

    [Fact]
    public void Apply_ManyAddAndDeleteCycles_TableDoesNotGrow()
    {
        var table = new LinkTable([]);
        var changes = new List<LinkChange>();
        for (int i = 0; i < 10_000; i++)
        {
            table.Apply(Veth(100 + i, $"veth{i}", master: null), deleted: false, At, changes);
            table.Apply(Veth(100 + i, $"veth{i}", master: null), deleted: true, At, changes);
            changes.Clear();
        }

        Assert.Equal(0, table.Count);
    }
}
