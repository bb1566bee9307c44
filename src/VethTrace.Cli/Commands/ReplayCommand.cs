using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Cli.Output;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace replay FILE…</c>: reads captures (merged by time), matches every packet's copies across the hops
/// into journeys, and reports the paths, per-hop latency, the NAT mappings and the losses.
/// </summary>
public static class ReplayCommand
{
    public enum Format
    {
        Table,
        Json,
    }

    public sealed record Settings(
        IReadOnlyList<string> Files,
        Format OutputFormat,
        long WindowNs,
        string? Egress,
        string? Filter,
        ParserOptions Parser,
        Dictionary<int, string> InterfaceMap);

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error)
    {
        using PacketFilter? filter = settings.Filter is null ? null : PacketFilter.TryCreate(settings.Filter, out _);
        var options = new TraceSessionOptions { WindowNs = settings.WindowNs, Egress = settings.Egress, Parser = settings.Parser, Filter = filter };
        FileTraceResult result = FileTrace.Run(settings.Files, options, settings.InterfaceMap);
        if (result is { Report: { } report, Interfaces: { } interfaces })
        {
            if (settings.OutputFormat == Format.Json)
            {
                ReplayJson.Write(output, report, interfaces.Names);
            }
            else
            {
                ReplayTable.Write(output, report, interfaces.Names, interfaces.RoleOf);
            }
        }
        return InputProblems.Report(result.Problems, "replay", error);
    }
}
