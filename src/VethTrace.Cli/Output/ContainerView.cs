using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using VethTrace.Text;
using VethTrace.Tracing;
using PlainText = Spectre.Console.Text;

namespace VethTrace.Cli.Output;

/// <summary>
/// The terminal view of a whole-host <c>follow</c>: one row per container, worst first, like <c>docker stats</c>; the
/// last interface changes (attached, detached, with their times); and with <c>--container NAME</c> that container's path
/// view (<see cref="LiveView"/> over its share of the report). As in <see cref="LiveView"/>, no name is parsed as markup.
/// </summary>
public static class ContainerView
{
    private const int MaxRows = 30;
    private const int MaxEvents = 5;

    public static IRenderable Render(string title, TimeSpan elapsed, CorrelationReport report, InterfaceRegistry interfaces, ContainerOwners owners,
        IReadOnlyList<ContainerFigures> figures, IReadOnlyList<string> events, long kernelDropped, string? focus)
    {
        IReadOnlyList<string> names = TerminalText.EscapeAll(interfaces.Names);
        var parts = new List<IRenderable>
        {
            new PlainText(string.Create(CultureInfo.InvariantCulture,
                $"{TerminalText.Escape(title)} · {elapsed.TotalSeconds:0}s · {interfaces.Count} interfaces · {figures.Count} containers · {report.Journeys} journeys · {report.Lost} lost · kernel drops {Math.Max(0, kernelDropped)}")),
        };
        var table = new Table().Border(TableBorder.Simple).AddColumn("container").AddColumn("network")
            .AddColumn(new TableColumn("out").RightAligned()).AddColumn(new TableColumn("in").RightAligned())
            .AddColumn(new TableColumn("out p50/p99 µs").RightAligned()).AddColumn(new TableColumn("in p50/p99 µs").RightAligned())
            .AddColumn(new TableColumn("lost").RightAligned()).AddColumn("most lost at").AddColumn(new TableColumn("drops").RightAligned());
        foreach (ContainerFigures row in figures.Take(MaxRows))
        {
            table.AddRow(new PlainText(TerminalText.Escape(row.Owner.Name)), new PlainText(TerminalText.Escape(row.Owner.Network ?? "-")),
                Count(row.PacketsOut), Count(row.PacketsIn), new PlainText(ContainerTable.Pair(row.ThroughOut)), new PlainText(ContainerTable.Pair(row.ThroughIn)),
                row.Lost > 0 ? new PlainText(row.Lost.ToString(CultureInfo.InvariantCulture), new Style(Color.Red)) : Count(0),
                new PlainText(row.WorstLossInterface is { } at ? names[at] : "-"), row.KernelDropped is { } dropped ? Count(dropped) : new PlainText("-"));
        }
        parts.Add(table);
        if (figures.Count > MaxRows)
        {
            parts.Add(new PlainText(string.Create(CultureInfo.InvariantCulture, $"… and {figures.Count - MaxRows} more containers (the final report lists all)")));
        }
        foreach (string line in events.Skip(Math.Max(0, events.Count - MaxEvents)))
        {
            parts.Add(new PlainText(line)); // escaped when the event was made
        }
        if (focus is not null)
        {
            var ids = owners.InterfacesOf(focus).ToHashSet();
            if (ids.Count == 0)
            {
                parts.Add(new PlainText(TerminalText.Escape($"--container {focus}: no interface of that container was captured (yet)")));
            }
            else
            {
                CorrelationReport mine = report with
                {
                    Paths = [.. report.Paths.Where(p => p.Interfaces.Any(ids.Contains))],
                    Hops = [.. report.Hops.Where(h => ids.Contains(h.From) || ids.Contains(h.To) || report.Paths.Any(p => p.Interfaces.Any(ids.Contains) && Adjacent(p, h)))],
                    Losses = [.. report.Losses.Where(l => owners.OfLoss(l)?.Name == focus)],
                    NatAggregates = [.. report.NatAggregates.Where(n => owners.OfNatInside(n.Inside)?.Name == focus)],
                };
                parts.Add(new PlainText(""));
                parts.Add(LiveView.Render(focus, elapsed, mine, interfaces.Names, interfaces.RoleOf, []));
            }
        }
        return new Rows(parts);
    }

    private static bool Adjacent(PathStats path, HopReport hop)
    {
        for (int i = 1; i < path.Interfaces.Count; i++)
        {
            if (path.Interfaces[i - 1] == hop.From && path.Interfaces[i] == hop.To)
            {
                return true;
            }
        }
        return false;
    }

    private static PlainText Count(long value) => new(value.ToString(CultureInfo.InvariantCulture));
}
