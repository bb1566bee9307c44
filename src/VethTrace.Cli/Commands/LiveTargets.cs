using VethTrace.Capture.Docker;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Tracing;
using VethTrace.Text;

namespace VethTrace.Cli.Commands;

/// <summary>
/// What follow and record capture on: the hops of a target (a container, netns:NAME, pid:N) from its resolved topology
/// (<see cref="ContainerTopology.Hops"/>), the <c>--hop</c> interfaces given on the command line, and the egress.
/// </summary>
public static class LiveTargets
{
    public sealed record Resolution(IReadOnlyList<HopTarget> Hops, string Description, ContainerTopology Topology)
    {
        /// <summary>
        /// The engine (docker, podman) whose default socket named the container, or null (a namespace target, or a
        /// socket DOCKER_HOST chose): asked again, and only it, when the container restarts, so a stopped dockerd is
        /// said as such instead of the next engine's "no such container".
        /// </summary>
        public string? Engine { get; init; }
    }

    /// <summary>The hops to capture, a description of the target, or the exit code after a failure was printed.</summary>
    public sealed record ResolvedHops(IReadOnlyList<HopTarget>? Hops, string? Description, ExitCode? Exit)
    {
        /// <summary>The target's name (<see cref="ContainerTopology.DisplayName"/>), or null for --hop alone: the metrics' container label.</summary>
        public string? Container { get; init; }

        /// <summary><see cref="Resolution.Engine"/>: the engine to ask again when the container restarts.</summary>
        public string? Engine { get; init; }
    }

    /// <summary>Resolves the target; throws <see cref="DockerException"/> or <see cref="TopologyException"/> with one line.</summary>
    public static async Task<Resolution> ResolveAsync(string target, string? egress, CancellationToken cancel, string? engine = null)
    {
        ContainerTopology topology;
        string? answeredBy = null;
        if (TopologyTarget.Parse(target).Kind != TopologyTargetKind.Container)
        {
            topology = await ContainerTopology.ResolveAsync(target, null, cancel);
        }
        else
        {
            // Docker's engine first, then Podman's (when both answer and neither --engine nor DOCKER_HOST chose):
            // a name that one does not know is looked up in the next.
            IReadOnlyList<DockerClient> engines = DockerClient.AllFromEnvironment(engine);
            try
            {
                (topology, DockerEndpoint endpoint) = await ResolveInFirstAsync(target, engines, cancel);
                answeredBy = endpoint.FromEnvironment || endpoint.Engine == ContainerEngine.Unknown ? null : DockerEndpoint.EngineName(endpoint.Engine);
            }
            finally
            {
                foreach (DockerClient client in engines)
                {
                    client.Dispose();
                }
            }
        }
        string description = topology.DisplayName
            + (topology.NetworkMode is { } mode && topology.SharesNamespaceWith is null ? $" (network mode {mode})" : "")
            + (topology.Description is { } more ? $": {more}" : "");
        return new Resolution(topology.Hops(egress), description, topology) { Engine = answeredBy };
    }

    private static async Task<(ContainerTopology, DockerEndpoint)> ResolveInFirstAsync(string target, IReadOnlyList<DockerClient> engines, CancellationToken cancel)
    {
        // The first engine's failure is the one reported (a stopped dockerd says so) unless a later engine knows the name.
        DockerException? first = null;
        for (int i = 0; i < engines.Count; i++)
        {
            try
            {
                return (await ContainerTopology.ResolveAsync(target, engines[i], cancel), engines[i].Endpoint);
            }
            catch (DockerException e) when (i + 1 < engines.Count)
            {
                first ??= e;
            }
            catch (DockerException e) when (first is not null)
            {
                throw first.Kind == DockerErrorKind.NotFound ? e : first;
            }
        }
        throw new InvalidOperationException("no engine to ask");
    }

    /// <summary>
    /// The hops of a target (through Docker or the namespace) with the <c>--hop</c>s added, or the <c>--hop</c> list
    /// alone; <paramref name="egress"/> is the egress either way (added as a hop if missing). Prints failures itself.
    /// </summary>
    public static async Task<ResolvedHops> ResolveHopsAsync(string? target, string[]? hops, string? egress, bool json, TextWriter output, TextWriter error, CancellationToken cancel, string? engine = null)
    {
        List<HopTarget> extra = ParseHops(hops, egress);
        if (target is null)
        {
            return new ResolvedHops(extra, "hops given on the command line", null);
        }
        try
        {
            Resolution resolution = await ResolveAsync(target, egress, cancel, engine);
            if (resolution.Topology.Shape == TopologyShape.NoNetwork || resolution.Hops.Count == 0)
            {
                // Nothing to capture (none mode): say why, in the stream's own form, and end successfully.
                output.WriteLine(json
                    ? FollowCommand.StartRecord(resolution.Description, [])
                    : TerminalText.Escape(resolution.Description));
                return new ResolvedHops(null, null, ExitCode.Success);
            }
            // --hop beside a target adds hops to its path: the other container's veth for east-west traffic, say.
            return new ResolvedHops(WithExtraHops(resolution.Hops, extra), resolution.Description, null)
            {
                Container = resolution.Topology.DisplayName,
                Engine = resolution.Engine,
            };
        }
        catch (DockerException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
            return new ResolvedHops(null, null, ExitCode.ContainerUnavailable);
        }
        catch (TopologyException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
            return new ResolvedHops(null, null, ExitCode.ContainerUnavailable);
        }
    }

    /// <summary>The hops again after the target restarted (a new namespace, a new veth), with the same <c>--hop</c>s.</summary>
    public static IReadOnlyList<HopTarget> Reresolve(string target, string[]? hops, string? egress, CancellationToken cancel, string? engine = null) =>
        WithExtraHops(ResolveAsync(target, egress, cancel, engine).GetAwaiter().GetResult().Hops, ParseHops(hops, egress));

    /// <summary>
    /// The <c>--hop</c> list, in the order given, with the interface <paramref name="egress"/> names (in the host's
    /// namespace) marked as the egress, and added at the end when no hop names it.
    /// </summary>
    public static List<HopTarget> ParseHops(string[]? hops, string? egress)
    {
        List<HopTarget> parsed = [.. (hops ?? []).Select(text => ParseHop(text, egress))];
        if (egress is not null && parsed.Count > 0 && !parsed.Exists(h => h.Interface == egress && h.NetworkNamespace is null))
        {
            parsed.Add(new HopTarget(egress, null, InterfaceRole.Egress, egress, RoleSource.Given));
        }
        return parsed;
    }

    private static List<HopTarget> WithExtraHops(IReadOnlyList<HopTarget> resolved, List<HopTarget> extra) =>
        [.. resolved, .. extra.Where(e => !resolved.Any(r => r.Interface == e.Interface && r.NetworkNamespace == e.NetworkNamespace))];

    /// <summary>IFACE or IFACE@/path/to/netns; its role from <paramref name="egress"/>, else from its name.</summary>
    public static HopTarget ParseHop(string text, string? egress = null)
    {
        int at = text.IndexOf('@');
        string name = at < 0 ? text : text[..at];
        string? netns = at < 0 ? null : text[(at + 1)..];
        string display = netns is null ? name : $"{name}@{NamespaceLabel(netns)}";
        if (netns is null && name == egress)
        {
            return new HopTarget(name, null, InterfaceRole.Egress, display, RoleSource.Given);
        }
        // A hop in the host's namespace is never the container's own side, whatever its name (eth0 is often the
        // uplink); inside a namespace the name says it (eth0 the container's side, vethX a veth, br-X a bridge: the
        // hosts of the overlay lab are namespaces too).
        InterfaceRole byName = InterfaceRoles.FromName(name);
        InterfaceRole role = netns is null && byName == InterfaceRole.Container ? InterfaceRole.Egress : byName;
        return new HopTarget(name, netns, role, display, RoleSource.Name);
    }

    /// <summary>How a hop's namespace is shown: the PID of /proc/PID/ns/net, else the file's name (ip netns names).</summary>
    internal static string NamespaceLabel(string netns)
    {
        string[] parts = netns.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts is ["proc", var pid, "ns", ..] ? pid : parts.Length > 0 ? parts[^1] : netns;
    }
}
