using System.Globalization;
using System.Text;
using VethTrace.Capture.Live;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Output;

/// <summary>What the page says about where its report came from.</summary>
/// <param name="Source">What was traced: the files replayed, or follow's description of its target.</param>
/// <param name="Command">The command that traced it: replay or follow.</param>
public sealed record HtmlReportContext(string Source, string Command)
{
    public DateTimeOffset Generated { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>follow: what each hop's capture saw and the kernel dropped.</summary>
    public IReadOnlyList<HopStatistics> Capture { get; init; } = [];
}

/// <summary>
/// The HTML report (<c>--html FILE</c>, docs/html-report.md): one self-contained page, the same figures as the table and
/// the JSON report, with pictures drawn as inline SVG by <see cref="SvgCharts"/>. No script, no external resource: a
/// Content-Security-Policy forbids both, so the page works offline and nothing in it can run. Every name from a
/// capture, the kernel or Docker goes through <see cref="HtmlText"/> (escaped as on a terminal, then as HTML). The
/// markup is also well-formed XML (void elements closed, the five XML entities only), so tools can read it either way.
/// </summary>
public static class ReplayHtml
{
    /// <summary>Paths drawn as diagrams; the rest are listed as text chains.</summary>
    public const int DiagramPaths = 12;

    /// <summary>Hops given a distribution and a time chart (the busiest); every hop is in the table.</summary>
    public const int ChartedHops = 16;

    /// <summary>Container groups listed one by one.</summary>
    public const int ContainerRows = 20;

    public static void Write(TextWriter output, CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry interfaces, HtmlReportContext context)
    {
        var page = new StringBuilder(64 * 1024);
        Head(page, context);
        Summary(page, report, names, interfaces, context);
        var latency = report.Hops.ToDictionary(h => (h.From, h.To), h => h.Histogram);
        Paths(page, report, names, interfaces, latency);
        Containers(page, report, names, interfaces, latency);
        Hops(page, report, names);
        Charts(page, report, names);
        Segmentation(page, report, names);
        Nat(page, report);
        Tunnels(page, report, names);
        Losses(page, report, names);
        CaptureStatistics(page, context);
        page.Append("<footer>Written by ").Append(HtmlText.Escape(VersionText.Line)).Append(". Figures as in <code>vethtrace ")
            .Append(context.Command).Append(" --format json</code>; docs/html-report.md explains the page.</footer>\n</body>\n</html>\n");
        output.Write(page.ToString());
    }

    private static void Head(StringBuilder page, HtmlReportContext context)
    {
        string source = HtmlText.Escape(context.Source);
        page.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
            // No script may run and nothing may be fetched: the page is data, whatever a capture's names hold.
            .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\"/>\n")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n")
            .Append("<meta name=\"generator\" content=\"").Append(HtmlText.Escape(VersionText.Line)).Append("\"/>\n")
            .Append("<title>VethTrace report: ").Append(source).Append("</title>\n<style>\n").Append(Style).Append("</style>\n</head>\n<body>\n")
            .Append("<header><h1>VethTrace report</h1><p class=\"meta\"><span class=\"command\">vethtrace ").Append(context.Command)
            .Append("</span> of <span class=\"source\">").Append(source).Append("</span>, written ")
            .Append(context.Generated.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture)).Append("</p></header>\n");
    }

    private static void Summary(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry interfaces, HtmlReportContext context)
    {
        page.Append("<section id=\"summary\"><h2>Summary</h2><table class=\"figures\">");
        Figure(page, "packets", "packets read", report.Packets);
        Figure(page, "not_ip", "of them not IP (not traced)", report.NotIp);
        Figure(page, "journeys", "journeys", report.Journeys);
        Figure(page, "multi_hop_journeys", "seen on several hops", report.MultiHopJourneys);
        Figure(page, "complete", "complete", report.Complete);
        Figure(page, "lost", "lost", report.Lost);
        Figure(page, "filtered_out", "left out: --filter matched none of their copies", report.Unselected);
        Figure(page, "matched_by_sequence_range", "TCP journeys continued as coalesced or cut packets (GRO/GSO)", report.MatchedBySequenceRange);
        if (report.BridgeSideCopies > 0)
        {
            Figure(page, "bridge_side_copies", "bridge copies of bridged frames set aside", report.BridgeSideCopies);
        }
        if (report.TiesWithUnknownRole > 0)
        {
            Figure(page, "ties_without_known_role", "groups of equal timestamps ordered without a known role", report.TiesWithUnknownRole);
        }
        page.Append("</table>\n");
        if (report.TiesWithUnknownRole > 0)
        {
            page.Append(Invariant($"<p class=\"warning\">Warning: {report.TiesWithUnknownRole} groups of equal timestamps were ordered without a known role for "))
                .Append(string.Join(", ", report.UnknownRoleTied.Select(id => Name(names, id))))
                .Append(": their order is a guess; give the role with <code>--role NAME=ROLE</code> (or name it with <code>--ifname</code>).</p>\n");
        }
        if (context.Capture.Any(h => h.KernelDropped > 0))
        {
            page.Append(Invariant($"<p class=\"warning\">The kernel dropped {context.Capture.Sum(h => Math.Max(0, h.KernelDropped))} packets before VethTrace could read them (capture buffer full): journeys reported lost may have been lost by the capture, not the network.</p>\n"));
        }
        if (ReplayTable.RolesWorthShowing(report, interfaces))
        {
            page.Append("<h3>Roles</h3><p class=\"note\">Decided by: name, given (<code>--role</code>, <code>--egress</code>), topology, inferred from the traffic, unknown.</p>")
                .Append("<table id=\"roles\"><thead><tr><th>interface</th><th>role</th><th>decided by</th></tr></thead><tbody>");
            for (int id = 0; id < names.Count; id++)
            {
                page.Append("<tr class=\"role\"><td class=\"if\">").Append(Name(names, id)).Append("</td><td>")
                    .Append(InterfaceRoles.Name(interfaces.RoleOf(id))).Append("</td><td>").Append(InterfaceRoles.Name(interfaces.RoleSourceOf(id))).Append("</td></tr>");
            }
            page.Append("</tbody></table>\n");
        }
        page.Append("</section>\n");
    }

    private static void Figure(StringBuilder page, string key, string label, long value) =>
        page.Append(Invariant($"<tr data-figure=\"{key}\"><th>{label}</th><td class=\"num\">{value}</td></tr>"));

    private static void Paths(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry interfaces,
        Dictionary<(int, int), LatencyHistogram> latency)
    {
        page.Append("<section id=\"paths\"><h2>Paths <span class=\"sub\">(median per hop)</span></h2>\n");
        if (report.Paths.Count == 0)
        {
            page.Append("<p>No packet was seen on more than one interface.</p>\n");
        }
        for (int p = 0; p < report.Paths.Count; p++)
        {
            if (p == DiagramPaths)
            {
                page.Append(Invariant($"<details><summary>… and {report.Paths.Count - DiagramPaths} rarer paths</summary>\n"));
            }
            PathStats path = report.Paths[p];
            int towardsEgress = ((int)interfaces.RoleOf(path.Interfaces[^1])).CompareTo((int)interfaces.RoleOf(path.Interfaces[0]));
            string direction = towardsEgress > 0 ? "outbound" : towardsEgress < 0 ? "inbound" : "path";
            var medians = new List<string>();
            for (int i = 1; i < path.Interfaces.Count; i++)
            {
                medians.Add(Median(latency[(path.Interfaces[i - 1], path.Interfaces[i])]));
            }
            page.Append(Invariant($"<div class=\"path\" data-journeys=\"{path.Journeys}\"><h3>{direction}, {path.Journeys} journey{(path.Journeys == 1 ? "" : "s")}</h3>"));
            if (p < DiagramPaths)
            {
                var nodes = path.Interfaces.Select(id => new SvgCharts.Node(ReplayTable.ChainName(report, names, id), InterfaceRoles.Name(interfaces.RoleOf(id)))).ToList();
                SvgCharts.PathDiagram(page, nodes, medians, [.. path.SideCopies.Keys.Select(id => names[id])]);
            }
            // The chain as the table prints it, as text to read, search and copy.
            page.Append("<p class=\"chain\">");
            for (int i = 0; i < path.Interfaces.Count; i++)
            {
                if (i > 0)
                {
                    page.Append(" ─<span class=\"median\">").Append(medians[i - 1]).Append("</span>→ ");
                }
                page.Append("<span class=\"if\">").Append(Name(names, path.Interfaces[i])).Append("</span>");
                foreach (TunnelReport tunnel in report.Tunnels)
                {
                    if (tunnel.Interface == path.Interfaces[i])
                    {
                        page.Append(" [").Append(ReplayTable.Tunnel(tunnel)).Append(']');
                        break;
                    }
                }
            }
            foreach (var (id, journeys) in path.SideCopies)
            {
                page.Append(Invariant($"   + <span class=\"copy\" data-journeys=\"{journeys}\"><span class=\"if\">")).Append(Name(names, id)).Append("</span> (copy)</span>");
            }
            page.Append("</p></div>\n");
        }
        if (report.Paths.Count > DiagramPaths)
        {
            page.Append("</details>\n");
        }
        if (report.BridgeSideCopies > 0)
        {
            page.Append(Invariant($"<p class=\"note\">{report.BridgeSideCopies} bridge copies of bridged frames set aside (copy): a bridge hands its own copy up after forwarding port to port, so it is not a hop and not in the hop figures.</p>\n"));
        }
        page.Append("</section>\n");
    }

    /// <summary>
    /// Per container: the paths grouped by the container's host veth (the first veth on the path: a container has one
    /// per network, on nearly every path of its traffic, where its own interface may not be captured), shown when there
    /// are several, each with the container interface seen beside that veth. The report names interfaces, not
    /// containers; a whole-host follow that names each container can give the groups their container names.
    /// </summary>
    private static void Containers(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry interfaces,
        Dictionary<(int, int), LatencyHistogram> latency)
    {
        var groups = new Dictionary<int, List<PathStats>>();
        var containerOf = new Dictionary<int, int>();
        foreach (PathStats path in report.Paths)
        {
            int side = -1;
            for (int i = 0; i < path.Interfaces.Count && side < 0; i++)
            {
                if (interfaces.RoleOf(path.Interfaces[i]) == InterfaceRole.Veth)
                {
                    side = path.Interfaces[i];
                    foreach (int neighbour in (ReadOnlySpan<int>)[i > 0 ? path.Interfaces[i - 1] : -1, i + 1 < path.Interfaces.Count ? path.Interfaces[i + 1] : -1])
                    {
                        if (neighbour >= 0 && interfaces.RoleOf(neighbour) == InterfaceRole.Container)
                        {
                            containerOf.TryAdd(side, neighbour);
                        }
                    }
                }
            }
            for (int i = 0; i < path.Interfaces.Count && side < 0; i++)
            {
                if (interfaces.RoleOf(path.Interfaces[i]) == InterfaceRole.Container)
                {
                    side = path.Interfaces[i];
                }
            }
            if (side >= 0)
            {
                if (!groups.TryGetValue(side, out var list))
                {
                    groups[side] = list = [];
                }
                list.Add(path);
            }
        }
        if (groups.Count < 2)
        {
            return;
        }
        var ordered = groups.OrderByDescending(g => g.Value.Sum(p => p.Journeys)).ToList();
        page.Append("<section id=\"containers\"><h2>Per container</h2><p class=\"note\">Paths grouped by the container's host veth (the first veth on the path), with the container's own interface seen beside it.</p>")
            .Append("<table><thead><tr><th>container interface</th><th>veth</th><th class=\"num\">journeys</th><th class=\"num\">paths</th><th>busiest path (median per hop)</th></tr></thead><tbody>");
        foreach (var (side, paths) in ordered.Take(ContainerRows))
        {
            PathStats busiest = paths[0];
            var chain = new StringBuilder(Name(names, busiest.Interfaces[0]));
            for (int i = 1; i < busiest.Interfaces.Count; i++)
            {
                chain.Append(" ─").Append(Median(latency[(busiest.Interfaces[i - 1], busiest.Interfaces[i])])).Append("→ ").Append(Name(names, busiest.Interfaces[i]));
            }
            bool isVeth = interfaces.RoleOf(side) == InterfaceRole.Veth;
            string container = isVeth ? (containerOf.TryGetValue(side, out int c) ? Name(names, c) : "") : Name(names, side);
            page.Append("<tr class=\"container\"><td class=\"if\">").Append(container).Append("</td><td class=\"if\">").Append(isVeth ? Name(names, side) : "")
                .Append(Invariant($"</td><td class=\"num\">{paths.Sum(p => p.Journeys)}</td><td class=\"num\">{paths.Count}</td><td class=\"chain\">"))
                .Append(chain).Append("</td></tr>");
        }
        page.Append("</tbody></table>");
        if (ordered.Count > ContainerRows)
        {
            var rest = ordered.Skip(ContainerRows).ToList();
            page.Append(Invariant($"<p class=\"note\">… and {rest.Count} more ({rest.Sum(g => g.Value.Sum(p => p.Journeys))} journeys).</p>"));
        }
        page.Append("</section>\n");
    }

    private static void Hops(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names)
    {
        page.Append("<section id=\"hops\"><h2>Hops <span class=\"sub\">(µs)</span></h2><table><thead><tr><th>from</th><th></th><th>to</th>")
            .Append("<th class=\"num\">packets</th><th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">max</th><th class=\"num\">reused timestamps</th></tr></thead><tbody>");
        foreach (HopReport hop in report.Hops)
        {
            LatencyHistogram h = hop.Histogram;
            page.Append("<tr class=\"hop\"><td class=\"if from\">").Append(Name(names, hop.From)).Append("</td><td>→</td><td class=\"if to\">").Append(Name(names, hop.To))
                .Append(Invariant($"</td><td class=\"num\" data-figure=\"packets\">{h.Count}</td>"));
            Us(page, "p50_us", h.Percentile(50));
            Us(page, "p90_us", h.Percentile(90));
            Us(page, "p99_us", h.Percentile(99));
            Us(page, "max_us", h.Max);
            page.Append(Invariant($"<td class=\"num{(h.Zeros > 0 ? " reused" : "")}\" data-figure=\"reused_timestamps\">{h.Zeros}</td></tr>"));
        }
        page.Append("</tbody></table>\n");
        var reused = report.Hops.Where(h => h.Histogram.Zeros > 0).ToList();
        if (reused.Count > 0)
        {
            page.Append("<div id=\"reused\" class=\"warning\"><p><strong>Reused timestamps</strong> (the kernel stamps a packet once on receive; the time spent there is counted on the next hop with a fresh stamp, not as a fast hop):</p><ul>");
            foreach (HopReport hop in reused)
            {
                page.Append("<li><span class=\"if\">").Append(Name(names, hop.To)).Append("</span> reused the timestamp of <span class=\"if\">").Append(Name(names, hop.From))
                    .Append(Invariant($"</span> for {hop.Histogram.Zeros} of {hop.Histogram.Count} packets</li>"));
            }
            page.Append("</ul></div>\n");
        }
        page.Append("</section>\n");
    }

    private static void Us(StringBuilder page, string key, long ns) =>
        page.Append(Invariant($"<td class=\"num\" data-figure=\"{key}\" data-ns=\"{ns}\">{ReplayTable.Microseconds(ns)}</td>"));

    private static void Charts(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names)
    {
        if (report.Hops.Count == 0)
        {
            return;
        }
        var charted = report.Hops.Take(ChartedHops).ToList();
        page.Append("<section id=\"distributions\"><h2>Latency per hop</h2><p class=\"note\">Packets per latency range, ten ranges a decade on a log axis; p50, p90 and p99 marked. Reused timestamps (0 ns) have a bar of their own at the left.</p>\n<div class=\"charts\">");
        foreach (HopReport hop in charted)
        {
            page.Append("<figure class=\"distribution\"><figcaption><span class=\"if\">").Append(Name(names, hop.From)).Append("</span> → <span class=\"if\">")
                .Append(Name(names, hop.To)).Append(Invariant($"</span> <span class=\"sub\">{hop.Histogram.Count} packets</span></figcaption>"));
            SvgCharts.Distribution(page, hop.Histogram);
            page.Append("</figure>\n");
        }
        page.Append("</div>");
        Untold(page, report.Hops.Count - charted.Count);
        page.Append("</section>\n");

        var timed = charted.Where(h => h.Timeline is not null).ToList();
        var series = timed.Select(h => (Hop: h, Points: h.Timeline!.Points())).Where(s => s.Points.Count > 0).ToList();
        if (series.Count == 0)
        {
            return;
        }
        long start = series.Min(s => s.Points[0].StartNs);
        long end = series.Max(s => s.Points[^1].StartNs + s.Hop.Timeline!.BucketWidthNs);
        page.Append(Invariant($"<section id=\"timeline\"><h2>Latency over time</h2><p class=\"note\">Median and maximum per time bucket (at most {LatencyTimeline.MaxBuckets} a hop; the median to within 12.5 %, the maximum exact), on one time axis and one set of buckets for every hop; a bucket without packets leaves a gap.</p>\n<div class=\"charts\">"));
        foreach (var (hop, points) in series)
        {
            page.Append("<figure class=\"timeline\"><figcaption><span class=\"if\">").Append(Name(names, hop.From)).Append("</span> → <span class=\"if\">")
                .Append(Name(names, hop.To)).Append("</span></figcaption>");
            SvgCharts.Timeline(page, points, hop.Timeline!.BucketWidthNs, start, end);
            page.Append("</figure>\n");
        }
        page.Append("</div>");
        Untold(page, report.Hops.Count - charted.Count);
        page.Append("</section>\n");
    }

    private static void Untold(StringBuilder page, int more)
    {
        if (more > 0)
        {
            page.Append(Invariant($"<p class=\"note\">… and {more} quieter hops: their figures are in the Hops table.</p>\n"));
        }
    }

    private static void Segmentation(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names)
    {
        if (report.Segmentation.Count == 0)
        {
            return;
        }
        page.Append("<section id=\"segmentation\"><h2>Segmentation</h2><p class=\"note\">GRO/GSO: one hop's packet is several on the next; matched by TCP sequence range, never counted as lost.</p>")
            .Append("<table><thead><tr><th>from</th><th></th><th>to</th><th class=\"num\">journeys</th></tr></thead><tbody>");
        foreach (SegmentationReport segmentation in report.Segmentation)
        {
            page.Append("<tr class=\"segmentation\"><td class=\"if\">").Append(Name(names, segmentation.From)).Append("</td><td>→</td><td class=\"if\">")
                .Append(Name(names, segmentation.To)).Append(Invariant($"</td><td class=\"num\">{segmentation.Journeys}</td></tr>"));
        }
        page.Append("</tbody></table></section>\n");
    }

    private static void Nat(StringBuilder page, CorrelationReport report)
    {
        page.Append("<section id=\"nat\"><h2>NAT</h2>");
        bool detail = report.Nat.Count > 0;
        if (!detail && report.NatAggregates.Count == 0)
        {
            page.Append("<p>No translation seen.</p></section>\n");
            return;
        }
        page.Append(detail
            ? "<p class=\"note\">Every translation (<code>--nat-detail</code>).</p>"
            : "<p class=\"note\">One row per translation but for the client's ephemeral port; <code>--nat-detail</code> lists each.</p>");
        page.Append("<table><thead><tr><th>kind</th><th>proto</th><th>inside</th><th>outside</th><th>peer</th>")
            .Append(detail ? "" : "<th class=\"num\">flows</th>").Append("<th class=\"num\">packets</th></tr></thead><tbody>");
        if (detail)
        {
            foreach (NatMapping nat in report.Nat)
            {
                NatRow(page, nat.Kind, nat.Protocol.Name, nat.Inside, nat.Outside, nat.Peer, null, nat.Packets);
            }
        }
        else
        {
            foreach (NatAggregate nat in report.NatAggregates)
            {
                NatRow(page, nat.Kind, nat.Protocol.Name, nat.Inside, nat.Outside, nat.Peer, nat.Flows, nat.Packets);
            }
        }
        page.Append("</tbody></table></section>\n");
    }

    private static void NatRow(StringBuilder page, NatKind kind, string protocol, string inside, string outside, string peer, long? flows, long packets)
    {
        page.Append("<tr class=\"nat\"><td>").Append(ReplayTable.Kind(kind)).Append("</td><td>").Append(HtmlText.Escape(protocol)).Append("</td><td>")
            .Append(HtmlText.Escape(inside)).Append("</td><td>").Append(HtmlText.Escape(outside)).Append("</td><td>").Append(HtmlText.Escape(peer)).Append("</td>");
        if (flows is { } count)
        {
            page.Append(Invariant($"<td class=\"num\" data-figure=\"flows\">{count}</td>"));
        }
        page.Append(Invariant($"<td class=\"num\" data-figure=\"packets\">{packets}</td></tr>"));
    }

    private static void Tunnels(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names)
    {
        if (report.Tunnels.Count == 0)
        {
            return;
        }
        page.Append("<section id=\"tunnels\"><h2>Tunnels</h2><p class=\"note\">Packets matched by the packet they carry; outer headers per interface.</p>")
            .Append("<table><thead><tr><th>interface</th><th>tunnel</th><th>outer source</th><th>outer destination</th><th class=\"num\">packets</th></tr></thead><tbody>");
        foreach (TunnelReport tunnel in report.Tunnels)
        {
            page.Append("<tr class=\"tunnel\"><td class=\"if\">").Append(Name(names, tunnel.Interface)).Append("</td><td>").Append(ReplayTable.Tunnel(tunnel))
                .Append(Invariant($"</td><td>{tunnel.OuterSource}</td><td>{tunnel.OuterDestination}:{tunnel.Port}</td><td class=\"num\">{tunnel.Packets}</td></tr>"));
        }
        page.Append("</tbody></table></section>\n");
    }

    private static void Losses(StringBuilder page, CorrelationReport report, IReadOnlyList<string> names)
    {
        page.Append("<section id=\"losses\"><h2>Losses</h2><p class=\"note\">Journeys that stopped before the hop their flow's other packets reach, with the last hop they were seen on.</p>");
        if (report.Losses.Count == 0)
        {
            page.Append("<p>None.</p></section>\n");
            return;
        }
        page.Append("<table><thead><tr><th>proto</th><th>source</th><th>destination</th><th>last seen</th><th class=\"num\">packets</th></tr></thead><tbody>");
        foreach (LossReport loss in report.Losses)
        {
            page.Append("<tr class=\"loss\"><td>").Append(HtmlText.Escape(loss.Flow.Protocol.Name)).Append("</td><td>").Append(HtmlText.Escape(loss.Flow.SourceEndpoint))
                .Append("</td><td>").Append(HtmlText.Escape(loss.Flow.DestinationEndpoint)).Append("</td><td class=\"if\">").Append(Name(names, loss.LastSeen))
                .Append(Invariant($"</td><td class=\"num\">{loss.Packets}</td></tr>"));
        }
        page.Append("</tbody></table></section>\n");
    }

    private static void CaptureStatistics(StringBuilder page, HtmlReportContext context)
    {
        if (context.Capture.Count == 0)
        {
            return;
        }
        page.Append("<section id=\"capture\"><h2>Capture</h2><table><thead><tr><th>interface</th><th class=\"num\">packets seen</th><th class=\"num\">dropped by the kernel</th></tr></thead><tbody>");
        foreach (HopStatistics hop in context.Capture)
        {
            page.Append("<tr class=\"capture\"><td class=\"if\">").Append(HtmlText.Escape(hop.DisplayName))
                .Append(Invariant($"</td><td class=\"num\">{hop.Packets}</td><td class=\"num\">{hop.KernelDropped}</td></tr>"));
        }
        page.Append("</tbody></table></section>\n");
    }

    /// <summary>A hop's median as the path chain shows it: <c>reused</c> when the median is a reused timestamp (the hop took an unknown time, not zero).</summary>
    private static string Median(LatencyHistogram histogram) =>
        histogram.Percentile(50) == 0 && histogram.Zeros > 0 ? "reused" : ReplayTable.Microseconds(histogram.Percentile(50)) + "µs";

    private static string Name(IReadOnlyList<string> names, int id) => HtmlText.Escape(names[id]);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private const string Style = """
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430; background: #fff; margin: 0 auto; max-width: 1100px; padding: 0 20px 40px; }
        h1 { font-size: 24px; margin: 18px 0 2px; } h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde6; padding-bottom: 3px; }
        h3 { font-size: 14px; margin: 14px 0 2px; font-weight: 600; } .sub { color: #66707f; font-weight: normal; font-size: 0.85em; }
        .meta, .note, footer { color: #4d5766; } footer { margin-top: 36px; font-size: 12px; }
        code, .if, .chain, td, svg text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
        .if { overflow-wrap: anywhere; } td, th { font-size: 13px; padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
        th { font-family: system-ui, sans-serif; font-weight: 600; color: #3b4452; } .num { text-align: right; }
        table { border-collapse: collapse; } tbody tr:nth-child(odd) { background: #f5f7fa; }
        table.figures th { font-weight: normal; } table.figures td { padding-left: 14px; }
        .warning { background: #fff6e0; border-left: 4px solid #e0a100; padding: 6px 10px; margin: 10px 0; }
        .warning ul { margin: 4px 0; } td.reused { color: #a35f00; font-weight: 600; }
        .path { margin: 6px 0 12px; } .chain { margin: 2px 0; font-size: 13px; color: #2d3643; overflow-wrap: anywhere; } .chain .median { color: #1f5fbf; }
        svg { max-width: 100%; height: auto; display: block; } svg text { font-size: 12px; fill: #1d2430; }
        .diagram .node rect { fill: #eaf1fb; stroke: #4a78c2; stroke-width: 1.2; } .diagram .node.copy rect { fill: #fafafa; stroke: #8a93a0; stroke-dasharray: 4 3; }
        .diagram .node text { font-size: 13px; } .diagram text.role { font-size: 11px; fill: #66707f; }
        .diagram .arrow { stroke: #4d5766; stroke-width: 1.5; } .diagram .arrowhead { fill: #4d5766; }
        .diagram text.median { fill: #1f5fbf; font-weight: 600; } .diagram text.median.reused { fill: #a35f00; font-style: italic; }
        .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); column-gap: 24px; }
        .charts svg.chart { width: 100%; } figure { margin: 10px 0 14px; min-width: 0; } figcaption { font-size: 13px; margin-bottom: 2px; }
        .chart .plot { fill: #fbfcfe; stroke: #c9d0da; } .chart .grid { stroke: #e3e7ee; } .chart text.tick { font-size: 10.5px; fill: #4d5766; }
        .chart text.axis { font-size: 11px; fill: #66707f; font-family: system-ui, sans-serif; }
        .chart .bar { fill: #7ea6e0; } .chart .bar.zero { fill: #f0b44c; }
        .chart line.mark { stroke-width: 1.5; stroke-dasharray: 3 2; } .chart text.mark { font-size: 11px; font-weight: 600; }
        .p50 { stroke: #1f5fbf; fill: #1f5fbf; } .p90 { stroke: #d9822b; fill: #d9822b; } .p99 { stroke: #c0392b; fill: #c0392b; }
        .chart text.p50 { fill: #1f5fbf; stroke: none; } .chart text.p90 { fill: #d9822b; stroke: none; } .chart text.p99 { fill: #c0392b; stroke: none; }
        .series { fill: none; stroke-width: 1.6; } .series.p50 { stroke: #1f5fbf; } .series.max { stroke: #c0392b; stroke-width: 1; stroke-dasharray: 2 2; } .dot.max { fill: #c0392b; stroke: none; } .dot.p50 { stroke: none; }
        .legend { font-size: 11px; font-weight: 600; } .legend.p50 { fill: #1f5fbf; } .legend.max { fill: #c0392b; }
        details summary { cursor: pointer; color: #1f5fbf; margin: 6px 0; }

        """;
}
