namespace VethTrace.Capture.Topology;

public enum TopologyErrorKind : byte
{
    /// <summary>The target string is not a container, <c>netns:NAME</c> or <c>pid:N</c>.</summary>
    InvalidTarget,
    /// <summary>No such <c>ip netns</c> name, or no such process.</summary>
    NamespaceMissing,
    /// <summary>setns(2) or opening the namespace was refused (needs CAP_SYS_ADMIN, i.e. root).</summary>
    PermissionDenied,
    /// <summary>The netlink conversation with the kernel failed.</summary>
    NetlinkFailed,
}

/// <summary>A failure while reading a namespace's links. <see cref="Exception.Message"/> is one line meant for the user.</summary>
public sealed class TopologyException(TopologyErrorKind kind, string message) : Exception(message)
{
    public TopologyErrorKind Kind { get; } = kind;
}
