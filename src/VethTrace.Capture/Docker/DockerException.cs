namespace VethTrace.Capture.Docker;

public enum DockerErrorKind : byte
{
    /// <summary>No socket file at the path (the default, or DOCKER_HOST's).</summary>
    SocketMissing,
    /// <summary>The socket exists but connecting to it was refused by file permissions.</summary>
    PermissionDenied,
    /// <summary>DOCKER_HOST names something other than a <c>unix:///path</c> socket.</summary>
    UnsupportedHost,
    /// <summary>The socket exists but no daemon answers (connection refused, timeout, HTTP error).</summary>
    DaemonUnavailable,
    NotFound,
    NotRunning,
    /// <summary>An ID prefix matches more than one container.</summary>
    Ambiguous,
    /// <summary>The daemon answered with something this client cannot read.</summary>
    BadResponse,
}

/// <summary>A Docker failure; <see cref="Exception.Message"/> is one line meant for the user, naming DOCKER_HOST where it helps.</summary>
public sealed class DockerException : Exception
{
    public DockerException(DockerErrorKind kind, string message)
        : base(message) => Kind = kind;

    public DockerException(DockerErrorKind kind, string message, Exception inner)
        : base(message, inner) => Kind = kind;

    public DockerErrorKind Kind { get; }
}
