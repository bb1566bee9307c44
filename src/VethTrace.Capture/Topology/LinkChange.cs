using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Capture.Topology;

public enum LinkChangeKind : byte
{
    /// <summary>A link appeared in the namespace (created, or moved in from another namespace).</summary>
    Added,
    /// <summary>A link left the namespace (deleted, or moved out: Docker moves a veth's container end this way).</summary>
    Removed,
    /// <summary>Same ifindex, new name (Docker renames the container end to eth0 after moving it).</summary>
    Renamed,
    /// <summary>IFLA_MASTER changed: a veth joined or left a bridge.</summary>
    MasterChanged,
    /// <summary>IFLA_OPERSTATE changed (a veth goes up when its peer does).</summary>
    StateChanged,
}

/// <summary>
/// One change to a namespace's links, keyed by ifindex. A single RTM_NEWLINK can give several changes (a rename and a
/// new master at once): each is its own record, in the order Renamed, MasterChanged, StateChanged.
/// </summary>
/// <param name="Link">The link as it is after the change; for <see cref="LinkChangeKind.Removed"/>, as it last was.</param>
/// <param name="MasterName">The name of <see cref="NetlinkLink.MasterIndex"/> when the change was seen; null when there is none.</param>
/// <param name="PreviousName">For Renamed: the old name.</param>
/// <param name="PreviousMasterIndex">For MasterChanged: the old master's ifindex (null: it had none).</param>
/// <param name="PreviousMasterName">For MasterChanged: the old master's name, when it was known.</param>
/// <param name="PreviousState">For StateChanged: the old operational state.</param>
/// <param name="ReceivedAt">When the notification was read from the socket (or the resync dump ended).</param>
public sealed record LinkChange(
    LinkChangeKind Kind,
    NetlinkLink Link,
    string? MasterName,
    string? PreviousName,
    int? PreviousMasterIndex,
    string? PreviousMasterName,
    LinkOperationalState PreviousState,
    DateTimeOffset ReceivedAt)
{
    public int Index => Link.Index;
}

/// <summary>
/// The links of one namespace, by ifindex, and the changes a new RTM_NEWLINK / RTM_DELLINK or a fresh dump makes to
/// them. Its size is the namespace's link count, whatever the run length. Not thread-safe: the watcher serialises it.
/// </summary>
public sealed class LinkTable
{
    private readonly Dictionary<int, NetlinkLink> _links = [];

    public LinkTable(IEnumerable<NetlinkLink> initial)
    {
        ArgumentNullException.ThrowIfNull(initial);
        foreach (NetlinkLink link in initial)
        {
            _links[link.Index] = link;
        }
    }

    public int Count => _links.Count;

    public NetlinkLink? Find(int index) => _links.GetValueOrDefault(index);

    public IReadOnlyList<NetlinkLink> Links => [.. _links.Values.OrderBy(link => link.Index)];

    /// <summary>Applies one notification; adds the changes it makes (none when it repeats what is known) to <paramref name="into"/>.</summary>
    public void Apply(NetlinkLink link, bool deleted, DateTimeOffset at, List<LinkChange> into)
    {
        ArgumentNullException.ThrowIfNull(link);
        ArgumentNullException.ThrowIfNull(into);
        if (deleted)
        {
            if (_links.Remove(link.Index, out NetlinkLink? gone))
            {
                into.Add(new LinkChange(LinkChangeKind.Removed, gone, NameOf(gone.MasterIndex), null, null, null, gone.OperationalState, at));
            }
            return;
        }
        if (!_links.TryGetValue(link.Index, out NetlinkLink? old))
        {
            _links[link.Index] = link;
            into.Add(new LinkChange(LinkChangeKind.Added, link, NameOf(link.MasterIndex), null, null, null, link.OperationalState, at));
            return;
        }
        // IFLA_LINKINFO is in every RTM_NEWLINK of a device with link ops; keep the known kind if one ever lacks it.
        if (link.Kind is null && old.Kind is not null)
        {
            link = link with { Kind = old.Kind };
        }
        _links[link.Index] = link;
        if (!string.Equals(old.Name, link.Name, StringComparison.Ordinal))
        {
            into.Add(new LinkChange(LinkChangeKind.Renamed, link, NameOf(link.MasterIndex), old.Name, null, null, old.OperationalState, at));
        }
        if (old.MasterIndex != link.MasterIndex)
        {
            into.Add(new LinkChange(LinkChangeKind.MasterChanged, link, NameOf(link.MasterIndex), null, old.MasterIndex, NameOf(old.MasterIndex), old.OperationalState, at));
        }
        if (old.OperationalState != link.OperationalState)
        {
            into.Add(new LinkChange(LinkChangeKind.StateChanged, link, NameOf(link.MasterIndex), null, null, null, old.OperationalState, at));
        }
    }

    /// <summary>
    /// Brings the table to a full dump taken after notifications were lost (ENOBUFS): links missing from the dump
    /// are Removed, the others are applied as notifications.
    /// </summary>
    public void Resync(IReadOnlyList<NetlinkLink> dump, DateTimeOffset at, List<LinkChange> into)
    {
        ArgumentNullException.ThrowIfNull(dump);
        var present = dump.Select(link => link.Index).ToHashSet();
        foreach (NetlinkLink gone in _links.Values.Where(link => !present.Contains(link.Index)).ToList())
        {
            Apply(gone, deleted: true, at, into);
        }
        foreach (NetlinkLink link in dump)
        {
            Apply(link, deleted: false, at, into);
        }
    }

    private string? NameOf(int? index) => index is int i && _links.TryGetValue(i, out NetlinkLink? master) ? master.Name : null;
}
