using VethTrace.Capture.Docker;

namespace VethTrace.Tests.Topology;

public sealed class DockerResolutionTests
{
    private static readonly DockerContainerSummary Web = Summary("ebaa56d23c673eea3ab88dc01227220c13d93c9a0c56ed4a9fee8f90ead0014e", "web");
    private static readonly DockerContainerSummary Db = Summary("eb12aa0000000000000000000000000000000000000000000000000000000000", "db");
    private static readonly DockerContainerSummary Cache = Summary("b2f24c78d70498a829309f46330a1e527f2ce354b8f0024f1c49613d94692aa0", "cache", "app/redis");
    // A container whose name looks like a prefix of another's ID: the exact name wins, as in the daemon.
    private static readonly DockerContainerSummary Tricky = Summary("0000000000000000000000000000000000000000000000000000000000000001", "b2f2");
    private static readonly IReadOnlyList<DockerContainerSummary> All = [Web, Db, Cache, Tricky];

    [Theory]
    [InlineData("web", "web")]
    [InlineData("/web", "web")]
    [InlineData("ebaa", "web")]
    [InlineData("EBAA56", "web")]
    [InlineData("eb1", "db")]
    [InlineData("b2f24", "cache")]
    [InlineData("b2f2", "b2f2")]
    [InlineData("app/redis", "cache")]
    [InlineData("b2f24c78d70498a829309f46330a1e527f2ce354b8f0024f1c49613d94692aa0", "cache")]
    public void Match_NameOrPrefix_Found(string typed, string expected)
    {
        ContainerMatch match = ContainerNameResolver.Match(All, typed);

        Assert.Equal(ContainerMatchStatus.Found, match.Status);
        Assert.Equal(expected, match.Container!.Name);
    }

    [Fact]
    public void Match_SharedPrefix_AmbiguousWithBothCandidates()
    {
        ContainerMatch match = ContainerNameResolver.Match(All, "eb");

        Assert.Equal(ContainerMatchStatus.Ambiguous, match.Status);
        Assert.Null(match.Container);
        Assert.Equal(["web", "db"], match.Candidates.Select(c => c.Name));
    }

    [Theory]
    [InlineData("nosuch")]
    [InlineData("ebz")]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("ff")]
    public void Match_Unknown_NotFound(string typed)
    {
        Assert.Equal(ContainerMatchStatus.NotFound, ContainerNameResolver.Match(All, typed).Status);
    }

    [Fact]
    public void Resolve_Ambiguous_OneLineNamingTheCandidates()
    {
        var exception = Assert.Throws<DockerException>(() => ContainerNameResolver.Resolve(All, "eb"));

        Assert.Equal(DockerErrorKind.Ambiguous, exception.Kind);
        Assert.Equal("container ID prefix eb is ambiguous: it matches web (ebaa56d23c67), db (eb12aa000000)", exception.Message);
    }

    [Fact]
    public void Resolve_Unknown_NoSuchContainer()
    {
        var exception = Assert.Throws<DockerException>(() => ContainerNameResolver.Resolve(All, "nosuch"));

        Assert.Equal(DockerErrorKind.NotFound, exception.Kind);
        Assert.Equal("no such container: nosuch", exception.Message);
    }

    [Fact]
    public void Name_LinkAliasesListedFirst_PrimaryNameChosen()
    {
        Assert.Equal("cache", Cache.Name);
        Assert.Equal("0000000000000000000000000000000000000000000000000000000000000001"[..12], Summary(Tricky.Id).Name);
    }

    [Theory]
    [InlineData(null, "/var/run/docker.sock", false)]
    [InlineData("", "/var/run/docker.sock", false)]
    [InlineData("unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock", true)]
    [InlineData("UNIX:///tmp/d.sock", "/tmp/d.sock", true)]
    [InlineData(" unix:///tmp/d.sock ", "/tmp/d.sock", true)]
    public void Parse_DockerHost_SocketPath(string? dockerHost, string path, bool fromEnvironment)
    {
        DockerEndpoint endpoint = DockerEndpoint.Parse(dockerHost);

        Assert.Equal(path, endpoint.SocketPath);
        Assert.Equal(fromEnvironment, endpoint.FromEnvironment);
    }

    [Theory]
    [InlineData("tcp://127.0.0.1:2375")]
    [InlineData("ssh://user@host")]
    [InlineData("npipe:////./pipe/docker_engine")]
    [InlineData("unix://")]
    [InlineData("unix://relative.sock")]
    [InlineData("/var/run/docker.sock")]
    public void Parse_DockerHostNotAUnixPath_UnsupportedHostNamingDockerHost(string dockerHost)
    {
        var exception = Assert.Throws<DockerException>(() => DockerEndpoint.Parse(dockerHost));

        Assert.Equal(DockerErrorKind.UnsupportedHost, exception.Kind);
        Assert.StartsWith("DOCKER_HOST=", exception.Message);
        Assert.DoesNotContain('\n', exception.Message);
    }

    [Fact]
    public async Task ListSummariesAsync_DockerHostToMissingSocket_SocketMissingNamingDockerHost()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-no-docker-{Environment.ProcessId}", "docker.sock");
        using var client = new DockerClient(DockerEndpoint.Parse("unix://" + path));

        var exception = await Assert.ThrowsAsync<DockerException>(() => client.ListSummariesAsync(all: true));

        Assert.Equal(DockerErrorKind.SocketMissing, exception.Kind);
        Assert.Equal($"no Docker socket at {path} (from DOCKER_HOST=unix://{path})", exception.Message);
    }

    [Fact]
    public async Task ListSummariesAsync_SocketFileWithNoListener_DaemonUnavailable()
    {
        string directory = Directory.CreateTempSubdirectory("vethtrace-docker-").FullName;
        string path = Path.Combine(directory, "docker.sock");
        try
        {
            // Bind without listen: the socket file exists, but connect(2) is refused.
            using (var bound = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
            {
                bound.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
                using var client = new DockerClient(DockerEndpoint.Parse("unix://" + path));

                var exception = await Assert.ThrowsAsync<DockerException>(() => client.ListSummariesAsync(all: true));

                Assert.Equal(DockerErrorKind.DaemonUnavailable, exception.Kind);
                Assert.Contains("DOCKER_HOST", exception.Message);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void DefaultEndpoint_Describe_SuggestsDockerHost()
    {
        Assert.Equal("/var/run/docker.sock (set DOCKER_HOST=unix:///path)", DockerEndpoint.Parse(null).Describe());
    }

    private static DockerContainerSummary Summary(string id, params string[] names) => new(id, names, "running", "bridge", []);
}
