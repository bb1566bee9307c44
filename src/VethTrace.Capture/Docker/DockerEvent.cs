using System.Globalization;
using System.Text.Json;

namespace VethTrace.Capture.Docker;

public enum DockerEventKind : byte
{
    /// <summary>An event this client does not name (the daemon was asked for the ones below only, but may add more).</summary>
    Other,
    ContainerStart,
    ContainerDie,
    ContainerDestroy,
    ContainerRename,
    NetworkConnect,
    NetworkDisconnect,
    /// <summary>Not from the daemon: the event stream broke (<see cref="DockerEvent.Detail"/> says why); reconnecting.</summary>
    StreamLost,
    /// <summary>
    /// Not from the daemon: the stream is open again. Events of the gap were asked for again with <c>since</c>, but a
    /// daemon that restarted has forgotten them: re-list the containers.
    /// </summary>
    StreamRestored,
}

/// <summary>
/// One Engine API event, reduced to what maps interfaces to containers. For container events <see cref="ContainerId"/>
/// is Actor.ID and <see cref="ContainerName"/> Actor.Attributes.name; for network events Actor.ID is the network
/// (<see cref="NetworkId"/>, name in <see cref="NetworkName"/>) and Attributes.container the container.
/// Every string is the daemon's: escape it before it reaches a terminal.
/// </summary>
/// <param name="Action">The daemon's Action word, as sent (start, die, destroy, rename, connect, disconnect, …).</param>
/// <param name="OldName">For rename: Attributes.oldName without its leading slash.</param>
/// <param name="TimeNano">timeNano: nanoseconds since the Unix epoch, the daemon's clock; 0 for the stream's own markers.</param>
/// <param name="Detail">For die: the exit code; for StreamLost: the error.</param>
public sealed record DockerEvent(
    DockerEventKind Kind,
    string Action,
    string? ContainerId,
    string? ContainerName,
    string? NetworkId,
    string? NetworkName,
    string? OldName,
    long TimeNano,
    string? Detail)
{
    /// <summary>The server-side filter: container start/die/destroy/rename and network connect/disconnect only.</summary>
    public const string Filters = """{"type":["container","network"],"event":["start","die","destroy","rename","connect","disconnect"]}""";

    /// <summary>
    /// Reads one event object. False for anything that is not an object with a Type and an Action (counted by the
    /// caller as malformed); never throws on the daemon's JSON.
    /// </summary>
    public static bool TryParse(JsonElement root, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DockerEvent? parsed)
    {
        parsed = null;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return false;
        }
        // API < 1.22 sent only "status"/"id"/"from"; every engine this tool supports (20.10+, API 1.41) sends Type and Action.
        string? type = Text(root, "Type");
        string? action = Text(root, "Action");
        if (type is null || action is null)
        {
            return false;
        }
        string? actorId = null;
        JsonElement attributes = default;
        if (root.TryGetProperty("Actor", out JsonElement actor) && actor.ValueKind == JsonValueKind.Object)
        {
            actorId = Text(actor, "ID");
            if (actor.TryGetProperty("Attributes", out JsonElement a) && a.ValueKind == JsonValueKind.Object)
            {
                attributes = a;
            }
        }
        long time = root.TryGetProperty("timeNano", out JsonElement nano) && nano.ValueKind == JsonValueKind.Number && nano.TryGetInt64(out long n)
            ? n
            : root.TryGetProperty("time", out JsonElement seconds) && seconds.ValueKind == JsonValueKind.Number && seconds.TryGetInt64(out long s) ? s * 1_000_000_000 : 0;
        string? name = Text(attributes, "name");
        parsed = type switch
        {
            "container" => new DockerEvent(action switch
            {
                "start" => DockerEventKind.ContainerStart,
                "die" => DockerEventKind.ContainerDie,
                "destroy" => DockerEventKind.ContainerDestroy,
                "rename" => DockerEventKind.ContainerRename,
                _ => DockerEventKind.Other,
            }, action, actorId, name, null, null, Text(attributes, "oldName")?.TrimStart('/'), time,
                action == "die" ? Text(attributes, "exitCode") : null),
            "network" => new DockerEvent(action switch
            {
                "connect" => DockerEventKind.NetworkConnect,
                "disconnect" => DockerEventKind.NetworkDisconnect,
                _ => DockerEventKind.Other,
            }, action, Text(attributes, "container"), null, actorId, name, null, time, null),
            _ => new DockerEvent(DockerEventKind.Other, action, actorId, name, null, null, null, time, null),
        };
        return true;
    }

    /// <summary>The <c>since</c> parameter for a reconnection: seconds.nanoseconds, the form the daemon parses without rounding.</summary>
    public static string Since(long timeNano) =>
        string.Create(CultureInfo.InvariantCulture, $"{timeNano / 1_000_000_000}.{timeNano % 1_000_000_000:D9}");

    private static string? Text(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out JsonElement value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;
}
