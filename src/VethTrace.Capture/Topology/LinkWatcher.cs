using System.Runtime.InteropServices;
using System.Threading.Channels;
using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Capture.Topology;

/// <summary>
/// Watches one network namespace's links over rtnetlink: joins RTNLGRP_LINK on a NETLINK_ROUTE socket opened inside
/// the namespace, takes the initial dump after joining (so no change falls between the two), and turns each
/// RTM_NEWLINK / RTM_DELLINK into <see cref="LinkChange"/>s keyed by ifindex. One dedicated thread reads the socket
/// and stops within <see cref="ReceiveTimeout"/> of <see cref="Dispose"/>; nothing else runs on it.
/// Memory is bounded: the link table holds the namespace's links, the change queue at most its capacity. When the
/// consumer falls behind, the reader waits, the kernel queue overflows (ENOBUFS), and the watcher re-dumps the links
/// and reports the difference: changes are coalesced, never silently lost.
/// </summary>
public sealed class LinkWatcher : IDisposable
{
    /// <summary>How often the reader thread checks for a stop; also the bound on how late <see cref="Dispose"/> returns.</summary>
    public static readonly TimeSpan ReceiveTimeout = TimeSpan.FromMilliseconds(100);

    private const int AddressFamilyUnspecified = 0;
    private const int ReceiveBufferLength = 64 * 1024;
    /// <summary>The kernel-side queue: a burst of 200 containers starting is about 2,000 notifications of ~1.5 KB.</summary>
    private const int SocketReceiveBufferBytes = 4 * 1024 * 1024;

    private readonly NetworkNamespace _space;
    private readonly int _fd;
    private readonly LinkTable _table;
    private readonly Lock _tableLock = new();
    private readonly Channel<LinkChange> _changes;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _reader;
    private readonly byte[] _buffer = new byte[ReceiveBufferLength];
    private long _overruns;
    private long _malformed;
    private bool _disposed;

    private LinkWatcher(NetworkNamespace space, int fd, NamespaceSnapshot initial, int capacity)
    {
        _space = space;
        _fd = fd;
        Initial = initial;
        InitialInterfaces = HostInterfaces.Build(initial, [], []);
        _table = new LinkTable(initial.Links);
        _changes = Channel.CreateBounded<LinkChange>(new BoundedChannelOptions(capacity)
        {
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = $"vethtrace link watcher {space.Description}" };
        _reader.Start();
    }

    /// <summary>
    /// Joins RTNLGRP_LINK in <paramref name="space"/>, dumps its links, and starts reading. Throws
    /// <see cref="TopologyException"/> (one line) when the socket or the dump fails.
    /// </summary>
    /// <param name="capacity">Changes held for a slow consumer before the reader waits.</param>
    public static LinkWatcher Start(NetworkNamespace space, int capacity = 4096)
    {
        ArgumentNullException.ThrowIfNull(space);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        int fd = space.Run(OpenSubscribed);
        try
        {
            return new LinkWatcher(space, fd, space.ReadSnapshot(), capacity);
        }
        catch
        {
            _ = NativeMethods.close(fd);
            throw;
        }
    }

    /// <summary>The dump taken right after joining the group: links, addresses, routes.</summary>
    public NamespaceSnapshot Initial { get; }

    /// <summary>The bridges and veths of <see cref="Initial"/>, as <c>vethtrace interfaces</c> lists them (without owners).</summary>
    public HostInterfaceListing InitialInterfaces { get; }

    /// <summary>The changes since <see cref="Initial"/>, in the order the kernel sent them. Completes after <see cref="Dispose"/>, or with the error that stopped the reader.</summary>
    public ChannelReader<LinkChange> Changes => _changes.Reader;

    /// <summary>Times the kernel queue overflowed and the links were re-dumped.</summary>
    public long Overruns => Interlocked.Read(ref _overruns);

    /// <summary>Notifications that could not be parsed (counted and skipped).</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>The links as the watcher knows them now.</summary>
    public IReadOnlyList<NetlinkLink> CurrentLinks
    {
        get
        {
            lock (_tableLock)
            {
                return _table.Links;
            }
        }
    }

    public bool IsReading => _reader.IsAlive;

    /// <summary>
    /// Called on the reader thread with each change, as soon as it is read (the table already holds it), before it is
    /// queued for <see cref="Changes"/>: for a consumer that must act before the thread reading the queue comes round
    /// (whole-host capture holds a new veth's packets from here). It must be quick and must not throw.
    /// </summary>
    public Action<LinkChange>? Seen { get; set; }

    /// <summary>The kind (IFLA_INFO_KIND) of link <paramref name="index"/> as the table holds it now; null when unknown.</summary>
    public string? KindOf(int index)
    {
        lock (_tableLock)
        {
            return _table.Find(index)?.Kind;
        }
    }

    /// <summary>
    /// Parses one notification datagram: RTM_NEWLINK and RTM_DELLINK of family AF_UNSPEC. The bridge driver also
    /// sends RTM_NEWLINK/RTM_DELLINK of family AF_BRIDGE to this group for port events (a port leaving a bridge is an
    /// AF_BRIDGE RTM_DELLINK of a link that still exists): those are skipped. Returns the messages that were malformed.
    /// </summary>
    public static int ParseNotifications(ReadOnlySpan<byte> datagram, List<(NetlinkLink Link, bool Deleted)> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        int malformed = 0;
        var reader = new NetlinkMessageReader(datagram);
        while (reader.BytesRemaining > 0)
        {
            if (reader.TryRead(out NetlinkMessageHeader message) != NetlinkCheck.Ok)
            {
                return malformed + 1;
            }
            if (message.Type is not (NetlinkMessageType.NewLink or NetlinkMessageType.DeleteLink))
            {
                continue;
            }
            if (InterfaceInfoMessage.TryCreate(message.Payload, out InterfaceInfoMessage info) != NetlinkCheck.Ok)
            {
                malformed++;
                continue;
            }
            if (info.Family != AddressFamilyUnspecified)
            {
                continue;
            }
            if (RtnetlinkParser.TryParseLink(message.Payload, out NetlinkLink? link, out string? problem))
            {
                into.Add((link, message.Type == NetlinkMessageType.DeleteLink));
            }
            if (problem is not null)
            {
                malformed++;
            }
        }
        return malformed;
    }

    private static int OpenSubscribed()
    {
        int fd = NativeMethods.socket(NativeMethods.AddressFamilyNetlink, NativeMethods.SocketTypeRaw | NativeMethods.SocketCloseOnExec, NativeMethods.NetlinkRoute);
        if (fd < 0)
        {
            throw Failure("cannot open a netlink socket", Marshal.GetLastPInvokeError());
        }
        // Bind first: the kernel skips a broadcast to a socket whose port id equals the sender's, and both the kernel
        // and an unbound socket have port id 0 (do_one_broadcast). sockaddr_nl: family, pad, pid 0 (kernel assigns), groups 0.
        var address = new byte[12];
        HostOrder.Write(address, (ushort)NativeMethods.AddressFamilyNetlink);
        if (NativeMethods.bind(fd, address, address.Length) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = NativeMethods.close(fd);
            throw Failure("cannot bind the netlink socket", errno);
        }
        int[] group = [NativeMethods.RtnetlinkGroupLink];
        if (NativeMethods.setsockopt(fd, NativeMethods.SolNetlink, NativeMethods.NetlinkAddMembership, group, sizeof(int)) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = NativeMethods.close(fd);
            throw Failure("cannot join RTNLGRP_LINK", errno);
        }
        int[] size = [SocketReceiveBufferBytes];
        // FORCE needs CAP_NET_ADMIN; without it the plain option is capped at net.core.rmem_max, which still works.
        if (NativeMethods.setsockopt(fd, NativeMethods.SolSocket, NativeMethods.SoReceiveBufferForce, size, sizeof(int)) != 0)
        {
            _ = NativeMethods.setsockopt(fd, NativeMethods.SolSocket, NativeMethods.SoReceiveBuffer, size, sizeof(int));
        }
        // struct timeval { tv_sec; tv_usec } as two longs (LP64).
        long[] timeout = [0, (long)ReceiveTimeout.TotalMicroseconds];
        _ = NativeMethods.setsockopt(fd, NativeMethods.SolSocket, NativeMethods.SoReceiveTimeout, timeout, sizeof(long) * 2);
        return fd;
    }

    private void ReadLoop()
    {
        var parsed = new List<(NetlinkLink Link, bool Deleted)>();
        var changes = new List<LinkChange>();
        Exception? failure = null;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                nint received = NativeMethods.recv(_fd, _buffer, _buffer.Length, NativeMethods.MessageTruncate);
                if (received < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno is NativeMethods.EINTR or NativeMethods.EAGAIN)
                    {
                        continue;
                    }
                    if (errno == NativeMethods.ENOBUFS)
                    {
                        Interlocked.Increment(ref _overruns);
                        Resync(changes);
                        Deliver(changes);
                        continue;
                    }
                    throw Failure("netlink receive", errno);
                }
                if (received > _buffer.Length)
                {
                    // A notification larger than the buffer was cut: what it said is unknown, so ask again.
                    Interlocked.Increment(ref _malformed);
                    Resync(changes);
                    Deliver(changes);
                    continue;
                }
                parsed.Clear();
                int bad = ParseNotifications(_buffer.AsSpan(0, (int)received), parsed);
                if (bad > 0)
                {
                    Interlocked.Add(ref _malformed, bad);
                }
                DateTimeOffset at = DateTimeOffset.UtcNow;
                lock (_tableLock)
                {
                    foreach ((NetlinkLink link, bool deleted) in parsed)
                    {
                        _table.Apply(link, deleted, at, changes);
                    }
                }
                Deliver(changes);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            failure = exception;
        }
        _changes.Writer.TryComplete(failure);
    }

    private void Resync(List<LinkChange> changes)
    {
        var dump = new NetlinkDump();
        _space.Run(() =>
        {
            using var socket = new RtnetlinkSocket();
            socket.Dump(NetlinkMessageType.GetLink, InterfaceInfoMessage.Field.HeaderLength, dump);
            return 0;
        });
        lock (_tableLock)
        {
            _table.Resync(dump.Links, DateTimeOffset.UtcNow, changes);
        }
    }

    /// <summary>Hands the changes to the queue, waiting while it is full (the kernel queue then takes the slack).</summary>
    private void Deliver(List<LinkChange> changes)
    {
        if (Seen is { } seen)
        {
            foreach (LinkChange change in changes)
            {
                seen(change);
            }
        }
        foreach (LinkChange change in changes)
        {
            while (!_changes.Writer.TryWrite(change))
            {
                if (!_changes.Writer.WaitToWriteAsync(_stop.Token).AsTask().GetAwaiter().GetResult())
                {
                    changes.Clear();
                    return;
                }
            }
        }
        changes.Clear();
    }

    private static TopologyException Failure(string what, int errno) =>
        new(TopologyErrorKind.NetlinkFailed, $"{what} failed: {NativeMethods.Describe(errno)}");

    /// <summary>Stops the reader thread (within <see cref="ReceiveTimeout"/>), closes the socket and completes <see cref="Changes"/>.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _stop.Cancel();
        _reader.Join();
        _ = NativeMethods.close(_fd);
        _changes.Writer.TryComplete();
        _stop.Dispose();
    }
}
