using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using VethTrace.Capture.Docker;

namespace VethTrace.Tests.Topology;

/// <summary>
/// Docker events without a daemon: the parser on lines recorded from the lab's dockerd 20.10.24 (API 1.41) with
/// <c>curl --unix-socket /var/run/docker.sock 'http://d/events?since=…&amp;until=…'</c>, and reconnection against a
/// small HTTP server on a unix socket of the test's own that plays a daemon going away and coming back (the lab's
/// dockerd must not be restarted). The real daemon's events are in <see cref="DockerEventLabTests"/>.
/// </summary>
public sealed class DockerEventTests
{
    private const string Id = "5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755";
    private const string BridgeNetwork = "a8f2db02d8ef62a7c7934ce7a519c5152697bddbb7261f2dc8ef064d5f4d09a5";

    private const string Connect = """{"Type":"network","Action":"connect","Actor":{"ID":"a8f2db02d8ef62a7c7934ce7a519c5152697bddbb7261f2dc8ef064d5f4d09a5","Attributes":{"container":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","name":"bridge","type":"bridge"}},"scope":"local","time":1796420554,"timeNano":1796420554651333177}""";
    private const string Start = """{"status":"start","id":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","from":"vethtrace/busybox:lab","Type":"container","Action":"start","Actor":{"ID":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","Attributes":{"image":"vethtrace/busybox:lab","name":"vt-host-probe"}},"scope":"local","time":1796420555,"timeNano":1796420555157207693}""";
    private const string Rename = """{"status":"rename","id":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","from":"vethtrace/busybox:lab","Type":"container","Action":"rename","Actor":{"ID":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","Attributes":{"image":"vethtrace/busybox:lab","name":"vt-host-probe2","oldName":"/vt-host-probe"}},"scope":"local","time":1796420555,"timeNano":1796420555194919574}""";
    private const string Die = """{"status":"die","id":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","from":"vethtrace/busybox:lab","Type":"container","Action":"die","Actor":{"ID":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","Attributes":{"exitCode":"137","image":"vethtrace/busybox:lab","name":"vt-host-probe2"}},"scope":"local","time":1796420555,"timeNano":1796420555291476687}""";
    private const string Destroy = """{"status":"destroy","id":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","from":"vethtrace/busybox:lab","Type":"container","Action":"destroy","Actor":{"ID":"5f8c766ca0cdc5fc3ff752e6178ded9ca2de39e90ef84d2ff0336e990891e755","Attributes":{"image":"vethtrace/busybox:lab","name":"vt-host-probe2"}},"scope":"local","time":1796420555,"timeNano":1796420555387240252}""";

    /// <summary>Earlier than every recorded line: the streams replay from here, as a caller that listed containers first does.</summary>
    private const long Before = 1796420554_000000000;

    private static DockerEvent Parse(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        Assert.True(DockerEvent.TryParse(document.RootElement, out DockerEvent? parsed));
        return parsed;
    }

    [Fact]
    public void TryParse_NetworkConnect_ContainerAndNetworkFromActor()
    {
        DockerEvent parsed = Parse(Connect);

        Assert.Equal((DockerEventKind.NetworkConnect, Id, BridgeNetwork, "bridge", 1796420554651333177L),
            (parsed.Kind, parsed.ContainerId, parsed.NetworkId, parsed.NetworkName, parsed.TimeNano));
    }

    [Fact]
    public void TryParse_StartRenameDieDestroy_KindNameOldNameExitCode()
    {
        DockerEvent start = Parse(Start), rename = Parse(Rename), die = Parse(Die), destroy = Parse(Destroy);

        Assert.Equal((DockerEventKind.ContainerStart, Id, "vt-host-probe"), (start.Kind, start.ContainerId, start.ContainerName));
        Assert.Equal((DockerEventKind.ContainerRename, "vt-host-probe2", "vt-host-probe"), (rename.Kind, rename.ContainerName, rename.OldName));
        Assert.Equal((DockerEventKind.ContainerDie, "137"), (die.Kind, die.Detail));
        Assert.Equal((DockerEventKind.ContainerDestroy, 1796420555387240252L), (destroy.Kind, destroy.TimeNano));
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("42")]
    [InlineData("""{"status":"start","id":"abc"}""")]
    [InlineData("""{"Type":"container"}""")]
    [InlineData("""{"Type":7,"Action":"start"}""")]
    public void TryParse_NotAnEvent_False(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);

        Assert.False(DockerEvent.TryParse(document.RootElement, out _));
    }

    [Fact]
    public void TryParse_WrongTypesInsideActor_FieldsNullNoThrow()
    {
        DockerEvent parsed = Parse("""{"Type":"container","Action":"start","Actor":{"ID":5,"Attributes":[1]},"timeNano":"x","time":12}""");

        Assert.Equal((DockerEventKind.ContainerStart, (string?)null, (string?)null, 12_000_000_000L), (parsed.Kind, parsed.ContainerId, parsed.ContainerName, parsed.TimeNano));
    }

    [Theory]
    [InlineData(1796420555157207693L, "1796420555.157207693")]
    [InlineData(1796420555000000001L, "1796420555.000000001")]
    public void Since_TimeNano_SecondsDotNineDigits(long nano, string expected) => Assert.Equal(expected, DockerEvent.Since(nano));

    /// <summary>
    /// Connection 1 carries start, a line that is not JSON, and rename, then the daemon closes it. Connection 2 must ask
    /// with since=rename's time; the daemon repeats rename (same nanosecond) and adds die, which must come out once each.
    /// </summary>
    [Fact]
    public async Task ReadAsync_DaemonClosesAndAnswersAgain_LostRestoredResumesFromLastEventWithoutRepeats()
    {
        using var daemon = new FakeDaemon([[Start, "{not json", Rename], [Rename, Die]], keepLastOpen: true);
        using var client = new DockerClient(new DockerEndpoint(daemon.SocketPath, FromEnvironment: false));
        var stream = new DockerEventStream(client, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(100));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var seen = new List<DockerEvent>();
        await foreach (DockerEvent item in stream.ReadAsync(Before, timeout.Token))
        {
            seen.Add(item);
            if (item.Kind == DockerEventKind.ContainerDie)
            {
                break;
            }
        }

        Assert.Equal(
            [DockerEventKind.ContainerStart, DockerEventKind.ContainerRename, DockerEventKind.StreamLost, DockerEventKind.StreamRestored, DockerEventKind.ContainerDie],
            seen.Select(e => e.Kind));
        Assert.Equal("the Docker daemon closed the event stream", seen[2].Detail);
        Assert.Equal((1L, 1L), (stream.Malformed, stream.Reconnections));
        Assert.Equal(2, daemon.Requests.Count);
        Assert.Contains("since=1796420554.000000000", daemon.Requests[0], StringComparison.Ordinal);
        Assert.Contains("since=1796420555.194919574", daemon.Requests[1], StringComparison.Ordinal);
        // The server-side filter, URL-encoded, on every request.
        Assert.All(daemon.Requests, r => Assert.Contains("filters=%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D", r, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReadAsync_NoDaemonAtFirstThenOneAppears_LostOnceThenRestoredAndEvents()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vt-host-late-{Guid.NewGuid():N}.sock");
        using var client = new DockerClient(new DockerEndpoint(path, FromEnvironment: false));
        var stream = new DockerEventStream(client, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(50));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        FakeDaemon? daemon = null;
        var seen = new List<DockerEvent>();
        try
        {
            await foreach (DockerEvent item in stream.ReadAsync(Before, timeout.Token))
            {
                seen.Add(item);
                if (item.Kind == DockerEventKind.StreamLost)
                {
                    // Several retries fail before the daemon is up: still one StreamLost.
                    await Task.Delay(300, timeout.Token);
                    daemon = new FakeDaemon([[Connect, Start]], keepLastOpen: true, path);
                }
                if (item.Kind == DockerEventKind.ContainerStart)
                {
                    break;
                }
            }
        }
        finally
        {
            daemon?.Dispose();
        }

        Assert.Equal([DockerEventKind.StreamLost, DockerEventKind.StreamRestored, DockerEventKind.NetworkConnect, DockerEventKind.ContainerStart], seen.Select(e => e.Kind));
        Assert.Equal($"no Docker socket at {path} (set DOCKER_HOST=unix:///path)", seen[0].Detail);
    }

    [Fact]
    public async Task ReadAsync_LineLongerThanTheLimit_StreamDroppedAndReopened()
    {
        string huge = new('x', DockerEventStream.MaxEventBytes + 10);
        using var daemon = new FakeDaemon([[huge], [Start]], keepLastOpen: true);
        using var client = new DockerClient(new DockerEndpoint(daemon.SocketPath, FromEnvironment: false));
        var stream = new DockerEventStream(client, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(50));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var seen = new List<DockerEvent>();

        await foreach (DockerEvent item in stream.ReadAsync(Before, timeout.Token))
        {
            seen.Add(item);
            if (item.Kind == DockerEventKind.ContainerStart)
            {
                break;
            }
        }

        Assert.Equal([DockerEventKind.StreamLost, DockerEventKind.StreamRestored, DockerEventKind.ContainerStart], seen.Select(e => e.Kind));
        Assert.Equal(1, stream.Malformed);
    }

    [Fact]
    public async Task ReadAsync_CancelledWhileIdle_EndsWithoutException()
    {
        using var daemon = new FakeDaemon([[]], keepLastOpen: true);
        using var client = new DockerClient(new DockerEndpoint(daemon.SocketPath, FromEnvironment: false));
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        int count = 0;

        await foreach (DockerEvent _ in new DockerEventStream(client).ReadAsync(cancellationToken: stop.Token))
        {
            count++;
        }

        Assert.Equal(0, count);
    }

    /// <summary>
    /// An HTTP/1.1 server on a unix socket that answers connection k with the lines of <c>sessions[k]</c> (each ended
    /// by '\n', as the daemon's JSON encoder does), then closes it, except the last when <c>keepLastOpen</c>.
    /// </summary>
    private sealed class FakeDaemon : IDisposable
    {
        private readonly Socket _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Socket> _open = [];
        private readonly Task _loop;

        public FakeDaemon(string[][] sessions, bool keepLastOpen, string? path = null)
        {
            SocketPath = path ?? Path.Combine(Path.GetTempPath(), $"vt-host-fake-{Guid.NewGuid():N}.sock");
            _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
            _listener.Listen(8);
            _loop = Task.Run(async () =>
            {
                for (int k = 0; !_stop.IsCancellationRequested; k++)
                {
                    Socket connection;
                    try
                    {
                        connection = await _listener.AcceptAsync(_stop.Token);
                    }
                    catch (Exception exception) when (exception is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                        return;
                    }
                    string request = await ReadRequestLineAsync(connection);
                    lock (Requests)
                    {
                        Requests.Add(request);
                    }
                    string[] lines = k < sessions.Length ? sessions[k] : [];
                    var body = new StringBuilder("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
                    foreach (string line in lines)
                    {
                        body.Append(line).Append('\n');
                    }
                    try
                    {
                        await connection.SendAsync(Encoding.UTF8.GetBytes(body.ToString()), SocketFlags.None);
                    }
                    catch (SocketException)
                    {
                        // The client dropped a line it found too long and closed.
                    }
                    if (keepLastOpen && k >= sessions.Length - 1)
                    {
                        _open.Add(connection);
                    }
                    else
                    {
                        connection.Shutdown(SocketShutdown.Both);
                        connection.Dispose();
                    }
                }
            });
        }

        public string SocketPath { get; }

        public List<string> Requests { get; } = [];

        private static async Task<string> ReadRequestLineAsync(Socket connection)
        {
            var received = new StringBuilder();
            var buffer = new byte[4096];
            while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                int read = await connection.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    break;
                }
                received.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            return received.ToString().Split("\r\n")[0];
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Dispose();
            _loop.Wait(TimeSpan.FromSeconds(5));
            foreach (Socket socket in _open)
            {
                socket.Dispose();
            }
            File.Delete(SocketPath);
            _stop.Dispose();
        }
    }
}
