using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using VethTrace.Capture.Live;
using VethTrace.Text;
using VethTrace.Tracing;
// Spectre.Console's Text (a renderable that is never parsed as markup), not the namespace VethTrace.Text.
using PlainText = Spectre.Console.Text;

namespace VethTrace.Cli.Output;

/// <summary>
/// The terminal view of <c>follow</c>, drawn with Spectre.Console and refreshed about once a second: the path
/// chains with per-hop medians, per-hop packets and p50/p99, the NAT mappings in use, losses with their last hop,
/// and per-interface kernel drops. Used only when stdout is a terminal; otherwise follow prints plain lines.
/// Names and the title come from the kernel and Docker, and could reach the terminal by two routes: as characters
/// (escaped by <see cref="TerminalText"/>), and as Spectre.Console markup: <c>[red]</c>, and emoji codes such as
/// <c>:rocket:</c>, which <see cref="Markup.Escape"/> leaves alone. So no string that holds a name is parsed as
/// markup at all: each is a plain <see cref="PlainText"/>.
/// </summary>
public static class LiveView
{
    public static IRenderable Render(string title, TimeSpan elapsed, CorrelationReport report, IReadOnlyList<string> names,
        Func<int, InterfaceRole> roleOf, IReadOnlyList<HopStatistics> statistics, InterfaceRegistry? interfaces = null)
    {
        // A handful of names, escaped once a redraw (once a second), never per packet.
        title = TerminalText.Escape(title);
        names = TerminalText.EscapeAll(names);
        string[] hopNames = TerminalText.EscapeAll(statistics.Select(s => s.DisplayName));
        var parts = new List<IRenderable>
        {
            new PlainText(string.Create(CultureInfo.InvariantCulture,
                $"{title} · {elapsed.TotalSeconds:0}s · {statistics.Sum(s => s.Packets)} packets · {report.Journeys} journeys · {report.Lost} lost")),
        };

        parts.AddRange(RolesAndCopies(report, names, interfaces));

        var latency = report.Hops.ToDictionary(h => (h.From, h.To), h => h.Histogram);
        foreach (PathStats path in report.Paths.Take(4))
        {
            int towardsEgress = ((int)roleOf(path.Interfaces[^1])).CompareTo((int)roleOf(path.Interfaces[0]));
            var chain = new System.Text.StringBuilder(towardsEgress > 0 ? "out  " : towardsEgress < 0 ? "in   " : "     ");
            chain.Append(ReplayTable.ChainName(report, names, path.Interfaces[0]));
            for (int i = 1; i < path.Interfaces.Count; i++)
            {
                var h = latency[(path.Interfaces[i - 1], path.Interfaces[i])];
                string median = h.Percentile(50) == 0 && h.Zeros > 0 ? "reused" : ReplayTable.Microseconds(h.Percentile(50)) + "µs";
                chain.Append(" ─").Append(median).Append("→ ").Append(ReplayTable.ChainName(report, names, path.Interfaces[i]));
            }
            if (path.SideCopies.Count > 0)
            {
                // As replay's table: a bridge's copy of a bridged frame beside the chain, not in it.
                chain.Append("   + ").Append(string.Join(", ", path.SideCopies.Keys.Select(id => names[id] + " (copy)")));
            }
            parts.Add(new PlainText(chain.ToString()));
        }

        var hops = new Table().Border(TableBorder.Simple).AddColumn("hop").AddColumn(new TableColumn("packets").RightAligned())
            .AddColumn(new TableColumn("p50 µs").RightAligned()).AddColumn(new TableColumn("p99 µs").RightAligned()).AddColumn(new TableColumn("max µs").RightAligned());
        foreach (HopReport hop in report.Hops)
        {
            var h = hop.Histogram;
            hops.AddRow(new PlainText($"{names[hop.From]} → {names[hop.To]}"), Count(h.Count),
                new PlainText(ReplayTable.Microseconds(h.Percentile(50))), new PlainText(ReplayTable.Microseconds(h.Percentile(99))), new PlainText(ReplayTable.Microseconds(h.Max)));
        }
        parts.Add(hops);

        if (report.NatAggregates.Count > 0)
        {
            var nat = new Table().Border(TableBorder.Simple).AddColumn("nat").AddColumn("proto").AddColumn("inside").AddColumn("outside").AddColumn("peer")
                .AddColumn(new TableColumn("flows").RightAligned()).AddColumn(new TableColumn("packets").RightAligned());
            foreach (NatAggregate row in report.NatAggregates.Take(8))
            {
                nat.AddRow(new PlainText(ReplayTable.Kind(row.Kind)), new PlainText(row.Protocol.Name), new PlainText(row.Inside), new PlainText(row.Outside),
                    new PlainText(row.Peer), Count(row.Flows), Count(row.Packets));
            }
            parts.Add(nat);
        }
        foreach (TunnelReport tunnel in report.Tunnels.Take(4))
        {
            parts.Add(new PlainText(string.Create(CultureInfo.InvariantCulture,
                $"tunnel: {names[tunnel.Interface]} {ReplayTable.Tunnel(tunnel)} {tunnel.OuterSource} → {tunnel.OuterDestination}:{tunnel.Port}, {tunnel.Packets} packets")));
        }
        foreach (LossReport loss in report.Losses.Take(5))
        {
            parts.Add(new PlainText(string.Create(CultureInfo.InvariantCulture,
                $"lost: {loss.Packets} × {loss.Flow.Protocol.Name} {loss.Flow.SourceEndpoint} > {loss.Flow.DestinationEndpoint}, last seen on {names[loss.LastSeen]}"), new Style(Color.Red)));
        }
        parts.Add(new PlainText("kernel drops: " + string.Join("  ", statistics.Select((s, i) => $"{hopNames[i]} {Math.Max(0, s.KernelDropped)}"))));
        return new Rows(parts);
    }

    /// <summary>
    /// The lines the live view adds to say how the path was read, as replay's table says it: each interface's role and
    /// how it was decided (name, given, topology, inferred, unknown), a warning when ties were ordered without a known
    /// role, and how many bridge copies of bridged frames were set aside. Names are escaped already.
    /// </summary>
    internal static IEnumerable<PlainText> RolesAndCopies(CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry? interfaces)
    {
        if (interfaces is not null)
        {
            int count = Math.Min(names.Count, interfaces.Count);
            yield return new PlainText("roles: " + string.Join("  ", Enumerable.Range(0, count).Select(id =>
                $"{names[id]} {InterfaceRoles.Name(interfaces.RoleOf(id))} ({InterfaceRoles.Name(interfaces.RoleSourceOf(id))})")));
        }
        if (report.TiesWithUnknownRole > 0)
        {
            yield return new PlainText(string.Create(CultureInfo.InvariantCulture,
                $"warning: {report.TiesWithUnknownRole} groups of equal timestamps ordered without a known role for {string.Join(", ", report.UnknownRoleTied.Select(id => names[id]))}; give it with --role NAME=ROLE"),
                new Style(Color.Yellow));
        }
        if (report.BridgeSideCopies > 0)
        {
            yield return new PlainText(string.Create(CultureInfo.InvariantCulture,
                $"{report.BridgeSideCopies} bridge copies of bridged frames set aside (copy): not hops, not in the hop figures"));
        }
    }

    private static PlainText Count(long value) => new(value.ToString(CultureInfo.InvariantCulture));
}
