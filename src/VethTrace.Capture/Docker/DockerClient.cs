using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace VethTrace.Capture.Docker;

/// <summary>
/// A minimal Docker Engine API client over the daemon's unix socket. It calls unversioned paths
/// (<c>/containers/json</c>), which the daemon serves at its own API version, so an older engine (20.10, API 1.41)
/// works without negotiation. Every failure is a <see cref="DockerException"/> with a one-line message.
/// </summary>
public sealed class DockerClient : IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    private readonly HttpClient _http;

    public DockerClient(DockerEndpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        Endpoint = endpoint;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = ConnectAsync,
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        };
        // The host part is only a placeholder for the Host header; the connection goes to the socket.
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://docker/"), Timeout = RequestTimeout };
    }

    /// <summary>
    /// A client for <c>--engine</c> (<paramref name="engine"/>), else DOCKER_HOST, else the first default socket whose
    /// daemon answers (Docker's, then Podman's): <see cref="DockerEndpoint.Discover"/>. Throws for a DOCKER_HOST that is
    /// not unix:// or an unknown engine.
    /// </summary>
    public static DockerClient FromEnvironment(string? engine = null) =>
        new(DockerEndpoint.Discover(engine, Environment.GetEnvironmentVariable(DockerEndpoint.EnvironmentVariable)));

    /// <summary>A client for each engine <see cref="DockerEndpoint.DiscoverAll"/> finds (the caller disposes them).</summary>
    public static IReadOnlyList<DockerClient> AllFromEnvironment(string? engine = null) =>
        [.. DockerEndpoint.DiscoverAll(engine, Environment.GetEnvironmentVariable(DockerEndpoint.EnvironmentVariable)).Select(e => new DockerClient(e))];

    public DockerEndpoint Endpoint { get; }

    /// <summary>GET /containers/json (with <c>all=1</c> when <paramref name="all"/>): names, state, network mode, networks.</summary>
    public async Task<IReadOnlyList<DockerContainerSummary>> ListSummariesAsync(bool all, CancellationToken cancellationToken = default)
    {
        using JsonDocument document = await GetJsonAsync(all ? "containers/json?all=1" : "containers/json", null, cancellationToken).ConfigureAwait(false);
        if (document.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw BadResponse("/containers/json did not return an array");
        }
        var containers = new List<DockerContainerSummary>();
        foreach (JsonElement item in document.RootElement.EnumerateArray())
        {
            string id = GetString(item, "Id") ?? throw BadResponse("a container without an Id");
            var names = new List<string>();
            if (item.TryGetProperty("Names", out JsonElement nameArray) && nameArray.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement name in nameArray.EnumerateArray())
                {
                    if (name.GetString() is string text)
                    {
                        names.Add(text.TrimStart('/'));
                    }
                }
            }
            string mode = item.TryGetProperty("HostConfig", out JsonElement hostConfig) ? GetString(hostConfig, "NetworkMode") ?? "default" : "default";
            containers.Add(new DockerContainerSummary(id, names, GetString(item, "State") ?? "unknown", mode, ReadNetworks(item)));
        }
        return containers;
    }

    /// <summary>The running containers, each inspected for its PID.</summary>
    public async Task<IReadOnlyList<DockerContainer>> ListContainersAsync(CancellationToken cancellationToken = default)
    {
        IReadOnlyList<DockerContainerSummary> running = await ListSummariesAsync(all: false, cancellationToken).ConfigureAwait(false);
        var containers = new List<DockerContainer>(running.Count);
        foreach (DockerContainerSummary summary in running)
        {
            try
            {
                containers.Add(await InspectIdAsync(summary.Id, summary.Name, cancellationToken).ConfigureAwait(false));
            }
            catch (DockerException exception) when (exception.Kind == DockerErrorKind.NotFound)
            {
                // Removed between the list and the inspect: it is no longer running.
            }
        }
        return containers;
    }

    /// <summary>
    /// Resolves a name or ID prefix (<see cref="ContainerNameResolver"/>) among all containers and inspects it.
    /// Throws NotFound, Ambiguous, or NotRunning when <paramref name="requireRunning"/> and it is not running.
    /// </summary>
    public async Task<DockerContainer> InspectAsync(string nameOrIdPrefix, bool requireRunning = true, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<DockerContainerSummary> all = await ListSummariesAsync(all: true, cancellationToken).ConfigureAwait(false);
        DockerContainerSummary summary = ContainerNameResolver.Resolve(all, nameOrIdPrefix);
        DockerContainer container = await InspectIdAsync(summary.Id, nameOrIdPrefix, cancellationToken).ConfigureAwait(false);
        if (requireRunning && (!container.Running || container.Pid <= 0))
        {
            throw new DockerException(DockerErrorKind.NotRunning, $"container {container.Name} is not running (state: {container.State})");
        }
        return container;
    }

    /// <summary>GET /containers/{id}/json for a full ID (no resolution).</summary>
    public async Task<DockerContainer> InspectIdAsync(string id, string shownAs, CancellationToken cancellationToken = default)
    {
        using JsonDocument document = await GetJsonAsync($"containers/{Uri.EscapeDataString(id)}/json", shownAs, cancellationToken).ConfigureAwait(false);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw BadResponse($"/containers/{id}/json did not return an object");
        }
        string fullId = GetString(root, "Id") ?? id;
        string name = (GetString(root, "Name") ?? fullId).TrimStart('/');
        bool running = false;
        int pid = 0;
        string state = "unknown";
        if (root.TryGetProperty("State", out JsonElement stateElement) && stateElement.ValueKind == JsonValueKind.Object)
        {
            running = stateElement.TryGetProperty("Running", out JsonElement r) && r.ValueKind == JsonValueKind.True;
            pid = stateElement.TryGetProperty("Pid", out JsonElement p) && p.TryGetInt32(out int value) ? value : 0;
            state = GetString(stateElement, "Status") ?? (running ? "running" : "unknown");
        }
        string mode = root.TryGetProperty("HostConfig", out JsonElement hostConfig) ? GetString(hostConfig, "NetworkMode") ?? "default" : "default";
        return new DockerContainer(fullId, name, state, running, pid, mode, ReadNetworks(root));
    }

    /// <summary>
    /// GET a streaming endpoint (<c>/events</c>): returns the response body once the headers are in. The request timeout
    /// covers only the headers (HttpCompletionOption.ResponseHeadersRead); the body is read until the daemon closes it
    /// or <paramref name="cancellationToken"/> is cancelled. The caller disposes the stream.
    /// </summary>
    public async Task<Stream> OpenStreamAsync(string path, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException exception)
        {
            throw Translate(exception);
        }
        catch (TaskCanceledException exception) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DockerException(DockerErrorKind.DaemonUnavailable,
                $"the Docker daemon did not answer within {RequestTimeout.TotalSeconds:0} s on {Endpoint.Describe()}", exception);
        }
        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                throw new DockerException(DockerErrorKind.DaemonUnavailable,
                    $"Docker API GET /{OneLine(path)} failed: {(int)response.StatusCode} {OneLine(body)}");
            }
        }
        return await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<JsonDocument> GetJsonAsync(string path, string? containerShownAs, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException exception)
        {
            throw Translate(exception);
        }
        catch (TaskCanceledException exception) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DockerException(DockerErrorKind.DaemonUnavailable,
                $"the Docker daemon did not answer within {RequestTimeout.TotalSeconds:0} s on {Endpoint.Describe()}", exception);
        }
        using (response)
        {
            if (response.StatusCode == HttpStatusCode.NotFound && containerShownAs is not null)
            {
                throw new DockerException(DockerErrorKind.NotFound, $"no such container: {containerShownAs}");
            }
            if (!response.IsSuccessStatusCode)
            {
                string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                throw new DockerException(DockerErrorKind.DaemonUnavailable,
                    $"Docker API GET /{path} failed: {(int)response.StatusCode} {OneLine(body)}");
            }
            try
            {
                using Stream stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                return await JsonDocument.ParseAsync(stream, default, cancellationToken).ConfigureAwait(false);
            }
            catch (JsonException exception)
            {
                throw new DockerException(DockerErrorKind.BadResponse, $"Docker API GET /{path} returned invalid JSON: {exception.Message}", exception);
            }
        }
    }

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(Endpoint.SocketPath), cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Turns a connection failure into the one line the user needs, naming the socket and DOCKER_HOST.</summary>
    private DockerException Translate(HttpRequestException exception)
    {
        SocketException? socketError = null;
        for (Exception? inner = exception; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException found)
            {
                socketError = found;
                break;
            }
        }
        // Check the file itself: ENOENT surfaces as several SocketError values depending on the runtime.
        if (!File.Exists(Endpoint.SocketPath))
        {
            return new DockerException(DockerErrorKind.SocketMissing, $"no Docker socket at {Endpoint.Describe()}", exception);
        }
        return socketError?.SocketErrorCode switch
        {
            SocketError.AccessDenied => new DockerException(DockerErrorKind.PermissionDenied,
                $"permission denied on the Docker socket {Endpoint.Describe()}: run as root or as a member of the docker group", exception),
            SocketError.ConnectionRefused => new DockerException(DockerErrorKind.DaemonUnavailable,
                $"no Docker daemon is listening on {Endpoint.Describe()} (is dockerd running?)", exception),
            _ => new DockerException(DockerErrorKind.DaemonUnavailable,
                $"cannot talk to Docker on {Endpoint.Describe()}: {OneLine(exception.Message)}", exception),
        };
    }

    private static IReadOnlyList<DockerNetworkAttachment> ReadNetworks(JsonElement container)
    {
        var attachments = new List<DockerNetworkAttachment>();
        if (!container.TryGetProperty("NetworkSettings", out JsonElement settings) || settings.ValueKind != JsonValueKind.Object
            || !settings.TryGetProperty("Networks", out JsonElement networks) || networks.ValueKind != JsonValueKind.Object)
        {
            return attachments;
        }
        foreach (JsonProperty network in networks.EnumerateObject())
        {
            JsonElement value = network.Value;
            if (value.ValueKind != JsonValueKind.Object)
            {
                continue;
            }
            int prefix = value.TryGetProperty("IPPrefixLen", out JsonElement p) && p.TryGetInt32(out int length) ? length : 0;
            attachments.Add(new DockerNetworkAttachment(
                network.Name,
                GetString(value, "NetworkID") ?? string.Empty,
                NullIfEmpty(GetString(value, "IPAddress")),
                prefix,
                NullIfEmpty(GetString(value, "Gateway")),
                NullIfEmpty(GetString(value, "MacAddress")),
                NullIfEmpty(GetString(value, "GlobalIPv6Address"))));
        }
        return attachments;
    }

    private static string? GetString(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out JsonElement value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    private static string? NullIfEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;

    private static string OneLine(string text)
    {
        string line = text.ReplaceLineEndings(" ").Trim();
        return line.Length > 200 ? line[..200] + "…" : line;
    }

    private static DockerException BadResponse(string message) => new(DockerErrorKind.BadResponse, $"unexpected Docker API response: {message}");

    public void Dispose() => _http.Dispose();
}
