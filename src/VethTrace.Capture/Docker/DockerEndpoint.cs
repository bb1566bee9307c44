namespace VethTrace.Capture.Docker;

/// <summary>Where the Docker Engine API listens: a unix socket, from DOCKER_HOST or the default path.</summary>
public sealed record DockerEndpoint(string SocketPath, bool FromEnvironment)
{
    public const string EnvironmentVariable = "DOCKER_HOST";
    public const string DefaultSocketPath = "/var/run/docker.sock";
    private const string UnixScheme = "unix://";

    /// <summary>The endpoint named by the DOCKER_HOST environment variable, or the default socket.</summary>
    public static DockerEndpoint FromEnvironmentVariable() => Parse(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>
    /// Parses a DOCKER_HOST value: unset or empty means <see cref="DefaultSocketPath"/>; <c>unix:///path</c> means
    /// that socket. Any other scheme (tcp://, ssh://, npipe://) is refused with a <see cref="DockerErrorKind.UnsupportedHost"/>.
    /// </summary>
    public static DockerEndpoint Parse(string? dockerHost)
    {
        if (string.IsNullOrWhiteSpace(dockerHost))
        {
            return new DockerEndpoint(DefaultSocketPath, FromEnvironment: false);
        }
        string value = dockerHost.Trim();
        if (!value.StartsWith(UnixScheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new DockerException(DockerErrorKind.UnsupportedHost,
                $"{EnvironmentVariable}={value} is not supported: only unix:///path sockets are (unset {EnvironmentVariable} to use {DefaultSocketPath})");
        }
        string path = value[UnixScheme.Length..];
        if (path.Length == 0 || path[0] != '/')
        {
            throw new DockerException(DockerErrorKind.UnsupportedHost,
                $"{EnvironmentVariable}={value} has no absolute socket path (expected unix:///path/to/docker.sock)");
        }
        return new DockerEndpoint(path, FromEnvironment: true);
    }

    /// <summary>How to name this endpoint in an error: the path, and where it came from.</summary>
    public string Describe() => FromEnvironment
        ? $"{SocketPath} (from {EnvironmentVariable}=unix://{SocketPath})"
        : $"{SocketPath} (set {EnvironmentVariable}=unix:///path)";
}
