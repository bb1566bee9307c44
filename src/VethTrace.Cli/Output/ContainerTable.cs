using System.Globalization;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Output;

/// <summary>
/// The per-container table of a whole-host trace, worst first, like <c>docker stats</c>: journeys out and in, the
/// time through the host each way (p50/p99, µs), losses with the interface where most were last seen, kernel drops.
/// Names come from Docker and the kernel: escaped before they are laid out.
/// </summary>
public static class ContainerTable
{
    public static void Write(TextWriter output, IReadOnlyList<ContainerFigures> figures, IReadOnlyList<string> names)
    {
        output.WriteLine(Invariant($"Containers ({figures.Count}, worst first; through the host: first hop to last, µs)"));
        if (figures.Count == 0)
        {
            output.WriteLine("  no container's interface was captured");
            return;
        }
        output.WriteLine(Invariant($"  {"CONTAINER",-18} {"NETWORK",-12} {"OUT",8} {"IN",8} {"OUT p50/p99",15} {"IN p50/p99",15} {"LOST",6}  {"MOST LOST AT",-16} {"DROPS",6}"));
        foreach (ContainerFigures row in figures)
        {
            output.WriteLine(Invariant($"  {Clip(TerminalText.Escape(row.Owner.Name), 18),-18} {Clip(TerminalText.Escape(row.Owner.Network ?? "-"), 12),-12} {row.PacketsOut,8} {row.PacketsIn,8} {Pair(row.ThroughOut),15} {Pair(row.ThroughIn),15} {row.Lost,6}  {Clip(row.WorstLossInterface is { } at ? TerminalText.Escape(names[at]) : "-", 16),-16} {(row.KernelDropped is { } dropped ? dropped.ToString(CultureInfo.InvariantCulture) : "-"),6}"));
        }
    }

    /// <summary>p50/p99 in µs, or a dash when nothing was measured that way.</summary>
    public static string Pair(LatencyHistogram histogram) => histogram.Count == 0
        ? "-"
        : ReplayTable.Microseconds(histogram.Percentile(50)) + "/" + ReplayTable.Microseconds(histogram.Percentile(99));

    internal static string Clip(string text, int width) => text.Length <= width ? text : text[..(width - 1)] + "…";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
