using System.Text.Json.Serialization;

namespace VethTrace.Cli.Output;

/// <summary>
/// Source-generated JSON metadata for the values the CLI serializes with <see cref="System.Text.Json.JsonSerializer"/>
/// (JSON string literals), so no reflection is needed and the executable can be published with Native AOT.
/// </summary>
[JsonSerializable(typeof(string))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
