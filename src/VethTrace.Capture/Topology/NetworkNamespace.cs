using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Capture.Topology;

/// <summary>
/// A Linux network namespace, named by a file that setns(2) accepts: <c>/proc/PID/ns/net</c> or an
/// <c>ip netns</c> bind mount under <c>/run/netns</c>. <see cref="Current"/> is the process's own namespace.
/// </summary>
public sealed class NetworkNamespace
{
    /// <summary>Where <c>ip netns add</c> bind-mounts named namespaces (iproute2 NETNS_RUN_DIR).</summary>
    public const string NamedNamespaceDirectory = "/run/netns";

    private NetworkNamespace(string? path, string description)
    {
        Path = path;
        Description = description;
    }

    /// <summary>The namespace this process runs in (the host's, for a tool run on the host).</summary>
    public static NetworkNamespace Current { get; } = new(null, "host");

    /// <summary>The file handed to setns(2); null for <see cref="Current"/>.</summary>
    public string? Path { get; }

    /// <summary>How the namespace was named (<c>host</c>, <c>netns:NAME</c>, <c>pid:N</c>, or the path).</summary>
    public string Description { get; }

    public static NetworkNamespace FromPath(string path) => new(path, path);

    /// <summary>The namespace of process <paramref name="pid"/>: <c>/proc/PID/ns/net</c>.</summary>
    public static NetworkNamespace FromPid(int pid) => new($"/proc/{pid}/ns/net", $"pid:{pid}");

    /// <summary>An <c>ip netns</c> name: <c>/run/netns/NAME</c>.</summary>
    public static NetworkNamespace FromName(string name) => new($"{NamedNamespaceDirectory}/{name}", $"netns:{name}");

    /// <summary>
    /// Runs <paramref name="work"/> on a new, dedicated thread that has entered this namespace, and returns its result.
    /// setns(2) moves only the calling thread, so nothing else may run on it: the thread is never pooled and
    /// exits when <paramref name="work"/> returns. Sockets and capture handles opened inside stay bound to the
    /// namespace after the thread ends. Exceptions from <paramref name="work"/> are rethrown here.
    /// </summary>
    public T Run<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        SafeFileHandle? handle = Path is null ? null : Open(Path);
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                if (handle is not null)
                {
                    Enter(handle);
                }
                result = work();
            }
            catch (Exception exception)
            {
                failure = ExceptionDispatchInfo.Capture(exception);
            }
        })
        {
            IsBackground = true,
            Name = $"vethtrace netns {Description}",
        };
        try
        {
            thread.Start();
            thread.Join();
        }
        finally
        {
            handle?.Dispose();
        }
        failure?.Throw();
        return result;
    }

    /// <summary>Dumps the namespace's links, addresses and routes over rtnetlink, from inside it.</summary>
    public NamespaceSnapshot ReadSnapshot() => Run(() =>
    {
        string identity = ReadIdentity("/proc/thread-self/ns/net") ?? "net:[?]";
        using var socket = new RtnetlinkSocket();
        NetlinkDump dump = socket.DumpAll();
        return new NamespaceSnapshot(Description, Path, identity, dump.Links, dump.Addresses, dump.Routes, dump.Problems);
    });

    /// <summary>
    /// The kernel's name for a namespace file, <c>net:[INODE]</c>, read with readlink(2); null when it is not a
    /// symlink (an <c>ip netns</c> bind mount) or cannot be read. Two equal identities are one namespace.
    /// </summary>
    public static string? ReadIdentity(string procNamespaceLink)
    {
        try
        {
            return new FileInfo(procNamespaceLink).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private SafeFileHandle Open(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new TopologyException(TopologyErrorKind.NamespaceMissing, $"no network namespace {Description} ({path} does not exist)");
        }
        catch (UnauthorizedAccessException)
        {
            // /proc/PID/ns/* is opened under a ptrace access check (ptrace_may_access, PTRACE_MODE_READ_FSCREDS): the
            // same user as the process and every capability it has, or CAP_SYS_PTRACE. Root with its full set passes;
            // a user given capabilities by setcap, or a root with fewer (docker run --cap-drop ALL), needs CAP_SYS_PTRACE.
            throw new TopologyException(TopologyErrorKind.PermissionDenied,
                $"permission denied opening {path}: another process's network namespace needs root with all of that process's " +
                "capabilities, or CAP_SYS_PTRACE (setcap or docker --cap-add: SYS_PTRACE), then CAP_SYS_ADMIN to enter it");
        }
        catch (IOException exception)
        {
            throw new TopologyException(TopologyErrorKind.NamespaceMissing, $"cannot open {path}: {exception.Message}");
        }
    }

    private void Enter(SafeFileHandle handle)
    {
        if (NativeMethods.setns((int)handle.DangerousGetHandle(), NativeMethods.CloneNewNet) == 0)
        {
            return;
        }
        int errno = Marshal.GetLastPInvokeError();
        throw errno switch
        {
            NativeMethods.EPERM => new TopologyException(TopologyErrorKind.PermissionDenied,
                $"entering the network namespace {Description} needs CAP_SYS_ADMIN (run as root)"),
            NativeMethods.EINVAL => new TopologyException(TopologyErrorKind.NamespaceMissing,
                $"{Path} is not a network namespace"),
            _ => new TopologyException(TopologyErrorKind.NetlinkFailed,
                $"setns({Path}) failed: {NativeMethods.Describe(errno)}"),
        };
    }
}

/// <summary>What one rtnetlink dump of a namespace returned.</summary>
/// <param name="Identity">The namespace's <c>net:[INODE]</c>, read from inside it; equal identities are one namespace.</param>
/// <param name="Problems">Netlink messages that could not be parsed (normally empty).</param>
public sealed record NamespaceSnapshot(
    string Description,
    string? Path,
    string Identity,
    IReadOnlyList<NetlinkLink> Links,
    IReadOnlyList<NetlinkAddress> Addresses,
    IReadOnlyList<NetlinkRoute> Routes,
    IReadOnlyList<string> Problems)
{
    public NetlinkLink? FindLink(int index) => Links.FirstOrDefault(link => link.Index == index);

    public NetlinkLink? FindLink(string name) => Links.FirstOrDefault(link => link.Name == name);

    public IReadOnlyList<NetlinkAddress> AddressesOf(int index) => [.. Addresses.Where(address => address.Index == index)];

    /// <summary>
    /// The device of the default route in the main table: IPv4 first, then IPv6, lowest metric first;
    /// null when there is none (like <c>ip route show default</c>).
    /// </summary>
    public NetlinkLink? DefaultRouteDevice()
    {
        const byte inet = 2, inet6 = 10;
        foreach (byte family in new[] { inet, inet6 })
        {
            NetlinkRoute? best = Routes
                .Where(route => route.Family == family && route.IsDefault && route.Table == RouteMessage.MainTable
                    && route.Type == RouteMessage.UnicastType && route.OutputIndex is not null)
                .OrderBy(route => route.Priority)
                .FirstOrDefault();
            if (best?.OutputIndex is int index && FindLink(index) is NetlinkLink link)
            {
                return link;
            }
        }
        return null;
    }
}
