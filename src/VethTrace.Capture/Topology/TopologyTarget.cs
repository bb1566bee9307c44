using System.Globalization;

namespace VethTrace.Capture.Topology;

public enum TopologyTargetKind : byte
{
    /// <summary>A Docker container name or ID prefix.</summary>
    Container,
    /// <summary><c>netns:NAME</c>: an <c>ip netns</c> namespace (/run/netns/NAME), or <c>netns:/path</c> to a namespace file.</summary>
    NamedNamespace,
    /// <summary><c>pid:N</c>: the namespace of process N.</summary>
    Process,
}

/// <summary>What the user asked to trace, parsed from one command-line word.</summary>
public sealed record TopologyTarget(TopologyTargetKind Kind, string Value, int Pid)
{
    public const string NamespacePrefix = "netns:";
    public const string PidPrefix = "pid:";

    /// <summary>Parses <c>netns:NAME</c>, <c>pid:N</c>, or anything else as a container name or ID prefix.</summary>
    public static TopologyTarget Parse(string text)
    {
        string value = (text ?? string.Empty).Trim();
        if (value.StartsWith(NamespacePrefix, StringComparison.Ordinal))
        {
            string name = value[NamespacePrefix.Length..];
            bool isPath = name.StartsWith('/');
            if (name.Length == 0 || (!isPath && (name.Contains('/') || name is "." or "..")))
            {
                throw new TopologyException(TopologyErrorKind.InvalidTarget, $"'{value}' is not a namespace name: use netns:NAME (as in ip netns list) or netns:/path");
            }
            return new TopologyTarget(TopologyTargetKind.NamedNamespace, name, 0);
        }
        if (value.StartsWith(PidPrefix, StringComparison.Ordinal))
        {
            string number = value[PidPrefix.Length..];
            if (!int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid <= 0)
            {
                throw new TopologyException(TopologyErrorKind.InvalidTarget, $"'{value}' is not a process: use pid:N with N a positive number");
            }
            return new TopologyTarget(TopologyTargetKind.Process, number, pid);
        }
        if (value.Length == 0)
        {
            throw new TopologyException(TopologyErrorKind.InvalidTarget, "no target: give a container name or ID prefix, netns:NAME or pid:N");
        }
        return new TopologyTarget(TopologyTargetKind.Container, value, 0);
    }

    /// <summary>The namespace this target names; a container's comes from its PID once resolved.</summary>
    public NetworkNamespace ToNamespace() => Kind switch
    {
        TopologyTargetKind.NamedNamespace when Value.StartsWith('/') => NetworkNamespace.FromPath(Value),
        TopologyTargetKind.NamedNamespace => NetworkNamespace.FromName(Value),
        TopologyTargetKind.Process => NetworkNamespace.FromPid(Pid),
        _ => throw new InvalidOperationException("a container target is resolved through Docker first"),
    };

    public override string ToString() => Kind switch
    {
        TopologyTargetKind.NamedNamespace => NamespacePrefix + Value,
        TopologyTargetKind.Process => PidPrefix + Value,
        _ => Value,
    };
}
