using System.Net.Sockets;
using System.Text;
using VethTrace.Capture.Docker;

namespace VethTrace.Tests.Topology;

/// <summary>
/// Issue 19: which socket names the containers. Real unix sockets in a temp directory, each answered by a tiny HTTP
/// server with the headers dockerd or Podman's service really send on /_ping (Podman adds Libpod-Api-Version and
/// "Server: Libpod/…"); a socket file bound but not listening stands for a stopped daemon.
/// </summary>
public sealed class EngineDiscoveryTests : IDisposable
{
    private const string DockerPing = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: 2\r\n\r\nOK";
    private const string PodmanPing = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\nContent-Length: 2\r\n\r\nOK";

    private readonly string _directory = Directory.CreateTempSubdirectory("vt-engine-").FullName;
    private readonly List<Socket> _listeners = [];

    [Fact]
    public void Discover_BothAnswer_DockerFirst()
    {
        var candidates = Candidates(Serve("docker.sock", DockerPing), Serve("podman.sock", PodmanPing));
        DockerEndpoint chosen = DockerEndpoint.Discover(null, null, candidates);
        Assert.Equal((candidates[0].SocketPath, ContainerEngine.Docker, "found"), (chosen.SocketPath, chosen.Engine, chosen.ChosenBy));
        Assert.Equal([ContainerEngine.Docker, ContainerEngine.Podman], DockerEndpoint.DiscoverAll(null, null, candidates).Select(e => e.Engine));
    }

    [Fact]
    public void Discover_DockerSocketDeadOrMissing_FallsToPodman()
    {
        foreach (string? dockerPath in new[] { Dead("docker.sock"), Path.Combine(_directory, "missing.sock") })
        {
            var candidates = Candidates(dockerPath!, Serve($"podman-{Guid.NewGuid():N}.sock", PodmanPing));
            DockerEndpoint chosen = DockerEndpoint.Discover(null, null, candidates);
            Assert.Equal((candidates[1].SocketPath, ContainerEngine.Podman), (chosen.SocketPath, chosen.Engine));
        }
        // For a lookup, a socket file that does not answer stays first (Engine Unknown): a stopped dockerd's containers
        // then get "not answering", not "no such container" from Podman. A missing file is left out.
        var dead = Candidates(Dead("docker2.sock"), Serve("podman2.sock", PodmanPing));
        Assert.Equal([(dead[0].SocketPath, ContainerEngine.Unknown), (dead[1].SocketPath, ContainerEngine.Podman)],
            DockerEndpoint.DiscoverAll(null, null, dead).Select(e => (e.SocketPath, e.Engine)));
        var missing = Candidates(Path.Combine(_directory, "missing2.sock"), dead[1].SocketPath);
        Assert.Equal([dead[1].SocketPath], DockerEndpoint.DiscoverAll(null, null, missing).Select(e => e.SocketPath));
    }

    [Fact]
    public void Discover_NothingAnswers_DockersSocketNamingBothTried()
    {
        var candidates = Candidates(Dead("docker.sock"), Path.Combine(_directory, "podman.sock"));
        DockerEndpoint chosen = DockerEndpoint.Discover(null, null, candidates);
        Assert.Equal((candidates[0].SocketPath, ContainerEngine.Unknown), (chosen.SocketPath, chosen.Engine));
        Assert.Equal($"{candidates[0].SocketPath} (nothing answered on {candidates[0].SocketPath} or {candidates[1].SocketPath}; " +
            "set DOCKER_HOST=unix:///path or --engine docker|podman)", chosen.Describe());
        // And the request that follows fails with that line, not a stack trace.
        using var client = new DockerClient(chosen);
        var exception = Assert.Throws<DockerException>(() => client.ListSummariesAsync(all: false).GetAwaiter().GetResult());
        Assert.Contains("nothing answered on", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Discover_EngineOption_TakesThatEnginesSocketOverDockerHostAndOrder()
    {
        var candidates = Candidates(Serve("docker.sock", DockerPing), Serve("podman.sock", PodmanPing));
        DockerEndpoint podman = DockerEndpoint.Discover("podman", "unix://" + candidates[0].SocketPath, candidates);
        Assert.Equal((candidates[1].SocketPath, ContainerEngine.Podman, "--engine podman"), (podman.SocketPath, podman.Engine, podman.ChosenBy));
        Assert.Single(DockerEndpoint.DiscoverAll("podman", null, candidates));
        Assert.Equal(ContainerEngine.Docker, DockerEndpoint.Discover("docker", null, candidates).Engine);
        Assert.Throws<DockerException>(() => DockerEndpoint.Discover("containerd", null, candidates));
    }

    [Fact]
    public void Discover_DockerHost_WinsOverTheDefaults_AndTheEngineIsTheOneThatAnswers()
    {
        var candidates = Candidates(Serve("docker.sock", DockerPing), Dead("podman.sock"));
        string elsewhere = Serve("user-podman.sock", PodmanPing);
        DockerEndpoint chosen = DockerEndpoint.Discover(null, "unix://" + elsewhere, candidates);
        Assert.Equal((elsewhere, ContainerEngine.Podman, "DOCKER_HOST", true), (chosen.SocketPath, chosen.Engine, chosen.ChosenBy, chosen.FromEnvironment));
        Assert.Equal([elsewhere], DockerEndpoint.DiscoverAll(null, "unix://" + elsewhere, candidates).Select(e => e.SocketPath));
    }

    [Fact]
    public void Probe_NotAnHttp200_IsUnknown()
    {
        Assert.Equal(ContainerEngine.Unknown, DockerEndpoint.Probe(Serve("teapot.sock", "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")));
        Assert.Equal(ContainerEngine.Unknown, DockerEndpoint.Probe(Serve("garbage.sock", "\u001b[31mnot http")));
    }

    private static List<(ContainerEngine Engine, string SocketPath)> Candidates(string docker, string podman) =>
        [(ContainerEngine.Docker, docker), (ContainerEngine.Podman, podman)];

    /// <summary>A listening socket that answers every connection with <paramref name="response"/> once the request is in.</summary>
    private string Serve(string name, string response)
    {
        string path = Path.Combine(_directory, name);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(8);
        _listeners.Add(listener);
        _ = Task.Run(async () =>
        {
            while (true)
            {
                Socket connection;
                try
                {
                    connection = await listener.AcceptAsync();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }
                using (connection)
                {
                    var request = new StringBuilder();
                    byte[] buffer = new byte[1024];
                    while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                    {
                        int read = await connection.ReceiveAsync(buffer);
                        if (read == 0)
                        {
                            break;
                        }
                        request.Append(Encoding.ASCII.GetString(buffer, 0, read));
                    }
                    await connection.SendAsync(Encoding.ASCII.GetBytes(response));
                    connection.Shutdown(SocketShutdown.Both);
                }
            }
        });
        return path;
    }

    /// <summary>A socket file bound but not listening: connect is refused, as when no daemon serves it.</summary>
    private string Dead(string name)
    {
        string path = Path.Combine(_directory, name);
        var bound = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        bound.Bind(new UnixDomainSocketEndPoint(path));
        _listeners.Add(bound);
        Assert.True(File.Exists(path));
        return path;
    }

    public void Dispose()
    {
        foreach (Socket listener in _listeners)
        {
            listener.Dispose();
        }
        Directory.Delete(_directory, recursive: true);
    }
}
