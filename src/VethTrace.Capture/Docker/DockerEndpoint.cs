using System.Net.Sockets;
using System.Text;

namespace VethTrace.Capture.Docker;

/// <summary>The engine behind a Docker-compatible API socket: dockerd, or Podman's <c>podman system service</c>.</summary>
public enum ContainerEngine
{
    /// <summary>Not known: the socket did not answer /_ping (yet).</summary>
    Unknown,
    Docker,
    Podman,
}

/// <summary>
/// Where the Docker Engine API listens: a unix socket, from DOCKER_HOST, <c>--engine</c>, or found by
/// <see cref="Discover"/> (Docker's default socket, then Podman's). Podman's service speaks the same API.
/// </summary>
public sealed record DockerEndpoint(string SocketPath, bool FromEnvironment)
{
    public const string EnvironmentVariable = "DOCKER_HOST";
    public const string DefaultSocketPath = "/var/run/docker.sock";
    /// <summary>Where rootful <c>podman system service</c> listens (podman.socket under systemd).</summary>
    public const string PodmanSocketPath = "/run/podman/podman.sock";
    private const string UnixScheme = "unix://";

    /// <summary>The engine answering on the socket, from its /_ping headers (Podman sends Libpod-Api-Version).</summary>
    public ContainerEngine Engine { get; init; } = ContainerEngine.Unknown;

    /// <summary>How the socket was chosen, for <c>interfaces</c> and errors: "DOCKER_HOST", "--engine podman", "found".</summary>
    public string ChosenBy { get; init; } = "default";

    /// <summary>The sockets tried, in order, when nothing answered (for the error that follows); empty otherwise.</summary>
    public IReadOnlyList<string> Tried { get; init; } = [];

    /// <summary>The default sockets in the order <see cref="Discover"/> tries them with DOCKER_HOST unset.</summary>
    public static readonly IReadOnlyList<(ContainerEngine Engine, string SocketPath)> DefaultCandidates =
        [(ContainerEngine.Docker, DefaultSocketPath), (ContainerEngine.Podman, PodmanSocketPath)];

    /// <summary>The engine's name as <c>--engine</c> takes it and <c>interfaces</c> prints it.</summary>
    public static string EngineName(ContainerEngine engine) => engine switch
    {
        ContainerEngine.Docker => "docker",
        ContainerEngine.Podman => "podman",
        _ => "unknown",
    };

    /// <summary>
    /// Chooses the socket, starting nothing: <paramref name="engine"/> (<c>--engine docker|podman</c>) takes that engine's
    /// socket from <paramref name="candidates"/>; else a set <paramref name="dockerHost"/> takes its socket; else the
    /// first candidate (Docker's socket, then Podman's) whose daemon answers GET /_ping. When none answers, Docker's
    /// socket is returned with <see cref="Tried"/> filled, and the request that follows fails naming both.
    /// Throws <see cref="DockerException"/> (UnsupportedHost) for a DOCKER_HOST that is not unix:// or an unknown engine.
    /// </summary>
    public static DockerEndpoint Discover(string? engine, string? dockerHost, IReadOnlyList<(ContainerEngine Engine, string SocketPath)>? candidates = null)
    {
        candidates ??= DefaultCandidates;
        if (!string.IsNullOrWhiteSpace(engine))
        {
            ContainerEngine wanted = engine.Trim().ToLowerInvariant() switch
            {
                "docker" => ContainerEngine.Docker,
                "podman" => ContainerEngine.Podman,
                _ => throw new DockerException(DockerErrorKind.UnsupportedHost, $"--engine {engine.Trim()} is not known: docker or podman"),
            };
            string path = candidates.FirstOrDefault(c => c.Engine == wanted).SocketPath
                ?? throw new DockerException(DockerErrorKind.UnsupportedHost, $"no socket is known for --engine {EngineName(wanted)}");
            ContainerEngine answered = Probe(path);
            return new DockerEndpoint(path, FromEnvironment: false)
            {
                Engine = answered == ContainerEngine.Unknown ? wanted : answered,
                ChosenBy = $"--engine {EngineName(wanted)}",
            };
        }
        if (!string.IsNullOrWhiteSpace(dockerHost))
        {
            DockerEndpoint given = Parse(dockerHost);
            return given with { Engine = Probe(given.SocketPath), ChosenBy = EnvironmentVariable };
        }
        foreach ((ContainerEngine expected, string path) in candidates)
        {
            ContainerEngine answered = Probe(path);
            if (answered != ContainerEngine.Unknown)
            {
                return new DockerEndpoint(path, FromEnvironment: false) { Engine = answered, ChosenBy = "found" };
            }
        }
        return new DockerEndpoint(candidates.Count > 0 ? candidates[0].SocketPath : DefaultSocketPath, FromEnvironment: false)
        {
            Tried = [.. candidates.Select(c => c.SocketPath)],
        };
    }

    /// <summary>
    /// Every engine to ask, in order: with <paramref name="engine"/> or <paramref name="dockerHost"/> given, that one
    /// endpoint (<see cref="Discover"/>); else every default socket whose daemon answers (Docker's, then Podman's: a host
    /// may run both), or the fallback endpoint when none does. A socket file whose daemon does not answer is kept in its
    /// place (Engine Unknown), so that a stopped dockerd still says so rather than vanishing behind Podman: a container
    /// name is looked up in each in turn, and the first engine's failure is the one reported.
    /// </summary>
    public static IReadOnlyList<DockerEndpoint> DiscoverAll(string? engine, string? dockerHost, IReadOnlyList<(ContainerEngine Engine, string SocketPath)>? candidates = null)
    {
        candidates ??= DefaultCandidates;
        if (!string.IsNullOrWhiteSpace(engine) || !string.IsNullOrWhiteSpace(dockerHost))
        {
            return [Discover(engine, dockerHost, candidates)];
        }
        var answering = new List<DockerEndpoint>();
        foreach ((ContainerEngine _, string path) in candidates)
        {
            ContainerEngine answered = Probe(path);
            if (answered != ContainerEngine.Unknown || File.Exists(path))
            {
                answering.Add(new DockerEndpoint(path, FromEnvironment: false) { Engine = answered, ChosenBy = "found" });
            }
        }
        return answering.Exists(e => e.Engine != ContainerEngine.Unknown) ? answering : [Discover(null, null, candidates)];
    }

    /// <summary>
    /// GET /_ping on a unix socket, with a short timeout: the engine whose daemon answers 200 (Podman from its
    /// Libpod-* headers or "Server: Libpod", else Docker), or <see cref="ContainerEngine.Unknown"/> when nothing
    /// listens, the socket is missing or the answer is not an HTTP 200.
    /// </summary>
    public static ContainerEngine Probe(string socketPath, int timeoutMs = 2000)
    {
        if (!File.Exists(socketPath))
        {
            return ContainerEngine.Unknown;
        }
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            {
                SendTimeout = timeoutMs,
                ReceiveTimeout = timeoutMs,
            };
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            socket.Send(Encoding.ASCII.GetBytes("GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"));
            // The headers are all we look at; 8 KiB is plenty, and a daemon that sends more is cut off there.
            byte[] buffer = new byte[8192];
            int length = 0;
            while (length < buffer.Length)
            {
                int read = socket.Receive(buffer, length, buffer.Length - length, SocketFlags.None);
                if (read == 0)
                {
                    break;
                }
                length += read;
                if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0)
                {
                    break;
                }
            }
            return Classify(Encoding.ASCII.GetString(buffer, 0, length));
        }
        catch (SocketException)
        {
            return ContainerEngine.Unknown;
        }
        catch (IOException)
        {
            return ContainerEngine.Unknown;
        }
    }

    /// <summary>The engine an HTTP response to /_ping names, or Unknown when it is not a 200.</summary>
    internal static ContainerEngine Classify(string response)
    {
        string[] lines = response.Split("\r\n");
        if (lines.Length == 0 || !lines[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !lines[0].Contains(" 200", StringComparison.Ordinal))
        {
            return ContainerEngine.Unknown;
        }
        foreach (string line in lines.Skip(1))
        {
            if (line.Length == 0)
            {
                break;
            }
            if (line.StartsWith("Libpod-", StringComparison.OrdinalIgnoreCase)
                || (line.StartsWith("Server:", StringComparison.OrdinalIgnoreCase) && line.Contains("libpod", StringComparison.OrdinalIgnoreCase)))
            {
                return ContainerEngine.Podman;
            }
        }
        return ContainerEngine.Docker;
    }

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
        : ChosenBy.StartsWith("--engine", StringComparison.Ordinal)
            ? $"{SocketPath} (from {ChosenBy})"
            : Tried.Count > 1
                ? $"{SocketPath} (nothing answered on {string.Join(" or ", Tried)}; set {EnvironmentVariable}=unix:///path or --engine docker|podman)"
                : $"{SocketPath} (set {EnvironmentVariable}=unix:///path)";
}
