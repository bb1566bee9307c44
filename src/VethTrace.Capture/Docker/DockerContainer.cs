namespace VethTrace.Capture.Docker;

/// <summary>One entry of <c>NetworkSettings.Networks</c>: the container's attachment to a Docker network.</summary>
public sealed record DockerNetworkAttachment(
    string Name,
    string NetworkId,
    string? IPAddress,
    int PrefixLength,
    string? Gateway,
    string? MacAddress,
    string? GlobalIPv6Address);

/// <summary>A row of <c>GET /containers/json</c>: enough to resolve a name or an ID prefix.</summary>
/// <param name="Names">As Docker lists them, with the leading slash removed (<c>vt-c1</c>).</param>
/// <param name="State">Docker's state word: running, exited, paused, restarting, created, dead.</param>
public sealed record DockerContainerSummary(
    string Id,
    IReadOnlyList<string> Names,
    string State,
    string NetworkMode,
    IReadOnlyList<DockerNetworkAttachment> Networks)
{
    /// <summary>The primary name (the one without a link path), or the short ID when there is none.</summary>
    public string Name => Names.FirstOrDefault(name => !name.Contains('/')) ?? (Id.Length > 12 ? Id[..12] : Id);

    public bool IsRunning => State == "running";
}

/// <summary>The fields of <c>GET /containers/{id}/json</c> that VethTrace uses.</summary>
/// <param name="Name">Without the leading slash.</param>
/// <param name="Pid">State.Pid: the container's init process on the host (0 when not running).</param>
/// <param name="NetworkMode">HostConfig.NetworkMode: bridge, host, none, container:ID, or a network name.</param>
public sealed record DockerContainer(
    string Id,
    string Name,
    string State,
    bool Running,
    int Pid,
    string NetworkMode,
    IReadOnlyList<DockerNetworkAttachment> Networks)
{
    public string ShortId => Id.Length > 12 ? Id[..12] : Id;
}
