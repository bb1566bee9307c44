using System.Globalization;
using System.Text;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Output;

/// <summary>
/// The pictures of the HTML report, written as inline SVG: a path diagram, a latency histogram on a log time axis with
/// p50/p90/p99 marked, and latency over time. Plain markup, no script, so the page works offline under a CSP that
/// forbids scripts and the Native AOT build needs nothing more. Every name is passed through <see cref="HtmlText"/>.
/// </summary>
internal static class SvgCharts
{
    private const double CharWidth = 7.8; // 13 px monospace
    private const int Width = 560;

    /// <summary>One interface of a path diagram: its shown name (already with its tunnel), its role.</summary>
    public readonly record struct Node(string Name, string Role);

    /// <summary>
    /// A path as boxes joined by arrows, each arrow labelled with the hop's median (<c>reused</c> when the median is a
    /// reused timestamp); the bridges whose own copy was set aside drawn dashed after it.
    /// </summary>
    public static void PathDiagram(StringBuilder page, IReadOnlyList<Node> nodes, IReadOnlyList<string> medians, IReadOnlyList<string> sideCopies)
    {
        const int boxHeight = 30, top = 22;
        // Boxes are sized to the names as shown (escapes visible), not as captured.
        nodes = [.. nodes.Select(n => n with { Name = TerminalText.Escape(n.Name) })];
        sideCopies = [.. sideCopies.Select(TerminalText.Escape)];
        var boxes = new List<(double X, double W)>();
        var gaps = new List<double>();
        double x = 2;
        for (int i = 0; i < nodes.Count; i++)
        {
            if (i > 0)
            {
                double gap = Math.Max(90, medians[i - 1].Length * CharWidth + 26);
                gaps.Add(gap);
                x += gap;
            }
            double w = Math.Max(70, Shorten(nodes[i].Name).Length * CharWidth + 20);
            boxes.Add((x, w));
            x += w;
        }
        double copiesX = x + 24;
        foreach (string copy in sideCopies)
        {
            x += 24 + Math.Max(70, Shorten(copy + " (copy)").Length * CharWidth + 20);
        }
        double width = x + 4;
        int height = top + boxHeight + 22;
        page.Append(Invariant($"<svg class=\"diagram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:0}\" height=\"{height}\" viewBox=\"0 0 {width:0} {height}\" role=\"img\">"));
        for (int i = 0; i < nodes.Count; i++)
        {
            var (bx, bw) = boxes[i];
            if (i > 0)
            {
                double from = boxes[i - 1].X + boxes[i - 1].W, to = bx;
                bool reused = medians[i - 1] == "reused";
                page.Append(Invariant($"<line class=\"arrow\" x1=\"{from + 3:0.#}\" y1=\"{top + boxHeight / 2}\" x2=\"{to - 9:0.#}\" y2=\"{top + boxHeight / 2}\"/>"));
                page.Append(Invariant($"<polygon class=\"arrowhead\" points=\"{to - 10:0.#},{top + boxHeight / 2 - 5} {to - 2:0.#},{top + boxHeight / 2} {to - 10:0.#},{top + boxHeight / 2 + 5}\"/>"));
                page.Append(Invariant($"<text class=\"{(reused ? "median reused" : "median")}\" x=\"{(from + to) / 2:0.#}\" y=\"{top + boxHeight / 2 - 7}\" text-anchor=\"middle\">{HtmlText.Escape(medians[i - 1])}</text>"));
            }
            Box(page, bx, top, bw, boxHeight, nodes[i].Name, nodes[i].Role, dashed: false);
        }
        foreach (string copy in sideCopies)
        {
            double w = Math.Max(70, Shorten(copy + " (copy)").Length * CharWidth + 20);
            Box(page, copiesX, top, w, boxHeight, copy + " (copy)", "bridge copy", dashed: true);
            copiesX += w + 24;
        }
        page.Append("</svg>");
    }

    private static void Box(StringBuilder page, double x, int y, double w, int h, string name, string role, bool dashed)
    {
        // name is already in its shown form (PathDiagram): only markup is left to escape.
        page.Append(Invariant($"<g class=\"{(dashed ? "node copy" : "node")}\"><title>{HtmlText.EscapeMarkup(name)}</title>"));
        page.Append(Invariant($"<rect x=\"{x:0.#}\" y=\"{y}\" width=\"{w:0.#}\" height=\"{h}\" rx=\"5\"/>"));
        page.Append(Invariant($"<text x=\"{x + w / 2:0.#}\" y=\"{y + h / 2 + 4}\" text-anchor=\"middle\">{HtmlText.EscapeMarkup(Shorten(name))}</text>"));
        page.Append(Invariant($"<text class=\"role\" x=\"{x + w / 2:0.#}\" y=\"{y + h + 14}\" text-anchor=\"middle\">{HtmlText.Escape(role)}</text></g>"));
    }

    /// <summary>
    /// A histogram of one hop's latencies on a log time axis, ten bins a decade, with p50, p90 and p99 marked; the
    /// reused timestamps (0 ns, which a log axis cannot place) as a bar of their own at the left.
    /// </summary>
    public static void Distribution(StringBuilder page, LatencyHistogram histogram)
    {
        const int height = 200, left = 52, right = 14, top = 46, bottom = 34;
        long lowest = histogram.LowestAboveZero();
        bool anyPositive = lowest > 0;
        int lo = anyPositive ? (int)Math.Floor(Math.Log10(lowest)) : 0;
        int hi = anyPositive ? (int)Math.Floor(Math.Log10(Math.Max(1, histogram.Max))) + 1 : 1;
        if (hi - lo < 2)
        {
            hi = lo + 2;
        }
        const int binsPerDecade = 10;
        int bins = (hi - lo) * binsPerDecade;
        var edges = new long[bins];
        for (int i = 0; i < bins; i++)
        {
            edges[i] = (long)Math.Round(Math.Pow(10, lo + (i + 1) / (double)binsPerDecade));
        }
        long[] counts = histogram.CountBelow(edges);
        counts[0] -= histogram.Zeros; // 0 ns is below every edge: drawn apart
        long most = Math.Max(1, Math.Max(histogram.Zeros, counts.Max()));

        double zeroWidth = histogram.Zeros > 0 ? 30 : 0;
        double plotLeft = left + zeroWidth + (zeroWidth > 0 ? 20 : 0);
        double plotWidth = Width - right - plotLeft;
        double plotBottom = height - bottom;
        double plotHeight = plotBottom - top;
        double X(double ns) => plotLeft + (Math.Log10(Math.Max(ns, Math.Pow(10, lo))) - lo) / (hi - lo) * plotWidth;
        double Y(long count) => plotBottom - count / (double)most * plotHeight;

        page.Append(Invariant($"<svg class=\"chart distribution\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" role=\"img\">"));
        page.Append(Invariant($"<rect class=\"plot\" x=\"{plotLeft:0.#}\" y=\"{top}\" width=\"{plotWidth:0.#}\" height=\"{plotHeight:0.#}\"/>"));
        // y axis: packets per bin
        page.Append(Invariant($"<text class=\"tick\" x=\"{left - 6}\" y=\"{top + 4}\" text-anchor=\"end\">{most}</text>"));
        page.Append(Invariant($"<text class=\"tick\" x=\"{left - 6}\" y=\"{plotBottom}\" text-anchor=\"end\">0</text>"));
        page.Append(Invariant($"<text class=\"axis\" x=\"12\" y=\"{top + plotHeight / 2:0}\" transform=\"rotate(-90 12 {top + plotHeight / 2:0})\" text-anchor=\"middle\">packets</text>"));
        for (int decade = lo; decade <= hi; decade++)
        {
            double tx = X(Math.Pow(10, decade));
            page.Append(Invariant($"<line class=\"grid\" x1=\"{tx:0.#}\" y1=\"{top}\" x2=\"{tx:0.#}\" y2=\"{plotBottom}\"/>"));
            page.Append(Invariant($"<text class=\"tick\" x=\"{tx:0.#}\" y=\"{plotBottom + 14}\" text-anchor=\"{(decade == hi ? "end" : "middle")}\">{DecadeLabel(decade)}</text>"));
        }
        page.Append(Invariant($"<text class=\"axis\" x=\"{plotLeft + plotWidth / 2:0}\" y=\"{height - 4}\" text-anchor=\"middle\">latency (log scale)</text>"));
        if (histogram.Zeros > 0)
        {
            double zx = left + 2;
            page.Append(Invariant($"<rect class=\"bar zero\" x=\"{zx:0.#}\" y=\"{Y(histogram.Zeros):0.#}\" width=\"{zeroWidth - 4:0.#}\" height=\"{plotBottom - Y(histogram.Zeros):0.#}\"><title>{histogram.Zeros} reused timestamps (0 ns)</title></rect>"));
            page.Append(Invariant($"<text class=\"tick\" x=\"{zx + (zeroWidth - 4) / 2:0.#}\" y=\"{plotBottom + 14}\" text-anchor=\"middle\">0</text>"));
        }
        for (int i = 0; i < counts.Length - 1; i++)
        {
            if (counts[i] <= 0)
            {
                continue;
            }
            double x0 = X(Math.Pow(10, lo + i / (double)binsPerDecade)), x1 = X(Math.Pow(10, lo + (i + 1) / (double)binsPerDecade));
            page.Append(Invariant($"<rect class=\"bar\" x=\"{x0 + 0.5:0.##}\" y=\"{Y(counts[i]):0.#}\" width=\"{Math.Max(1, x1 - x0 - 1):0.##}\" height=\"{plotBottom - Y(counts[i]):0.#}\"><title>{counts[i]} packets from {ReplayTable.Microseconds(i == 0 ? (long)Math.Pow(10, lo) : edges[i - 1])} to {ReplayTable.Microseconds(edges[i])} µs</title></rect>"));
        }
        // The percentiles, labels staggered so that close ones stay readable.
        (string Name, double Percent, string Css)[] marks = [("p50", 50, "p50"), ("p90", 90, "p90"), ("p99", 99, "p99")];
        for (int m = 0; m < marks.Length; m++)
        {
            long value = histogram.Percentile(marks[m].Percent);
            double mx = value == 0 && histogram.Zeros > 0 ? left + zeroWidth / 2 : X(value);
            string label = value == 0 && histogram.Zeros > 0 ? "reused" : ReplayTable.Microseconds(value) + "µs";
            int ly = 12 + m * 12;
            string anchor = mx > Width - 120 ? "end" : "start";
            page.Append(Invariant($"<line class=\"mark {marks[m].Css}\" x1=\"{mx:0.#}\" y1=\"{ly + 2}\" x2=\"{mx:0.#}\" y2=\"{plotBottom}\"/>"));
            page.Append(Invariant($"<text class=\"mark {marks[m].Css}\" x=\"{mx + (anchor == "end" ? -4 : 4):0.#}\" y=\"{ly + 4}\" text-anchor=\"{anchor}\">{marks[m].Name} {label}</text>"));
        }
        page.Append("</svg>");
    }

    /// <summary>
    /// One hop's latency over time: the median and the maximum of each time bucket on a log latency axis, over the
    /// shared time axis [<paramref name="startNs"/>, <paramref name="endNs"/>) of the report, so the hops line up.
    /// </summary>
    public static void Timeline(StringBuilder page, IReadOnlyList<TimelinePoint> points, long widthNs, long startNs, long endNs)
    {
        const int height = 180, left = 58, right = 14, top = 16, bottom = 34, zeroBand = 16;
        long lowestPositive = long.MaxValue, highest = 1;
        foreach (TimelinePoint point in points)
        {
            if (point.P50Ns > 0)
            {
                lowestPositive = Math.Min(lowestPositive, point.P50Ns);
            }
            highest = Math.Max(highest, point.MaxNs);
        }
        int lo = lowestPositive == long.MaxValue ? 0 : (int)Math.Floor(Math.Log10(lowestPositive));
        int hi = (int)Math.Floor(Math.Log10(highest)) + 1;
        if (hi - lo < 2)
        {
            hi = lo + 2;
        }
        bool anyZero = points.Any(p => p.P50Ns == 0 || p.MaxNs == 0);
        double plotWidth = Width - left - right;
        double plotBottom = height - bottom - (anyZero ? zeroBand : 0);
        double plotHeight = plotBottom - top;
        double span = Math.Max(1, endNs - startNs);
        double X(long ns) => left + (ns - startNs) / span * plotWidth;
        double Y(long ns) => ns <= 0 ? height - bottom - 4 : plotBottom - (Math.Log10(ns) - lo) / (hi - lo) * plotHeight;

        page.Append(Invariant($"<svg class=\"chart timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" role=\"img\">"));
        page.Append(Invariant($"<rect class=\"plot\" x=\"{left}\" y=\"{top}\" width=\"{plotWidth:0.#}\" height=\"{height - bottom - top}\"/>"));
        for (int decade = lo; decade <= hi; decade++)
        {
            double ty = plotBottom - (decade - lo) / (double)(hi - lo) * plotHeight;
            page.Append(Invariant($"<line class=\"grid\" x1=\"{left}\" y1=\"{ty:0.#}\" x2=\"{left + plotWidth:0.#}\" y2=\"{ty:0.#}\"/>"));
            page.Append(Invariant($"<text class=\"tick\" x=\"{left - 6}\" y=\"{ty + 4:0.#}\" text-anchor=\"end\">{DecadeLabel(decade)}</text>"));
        }
        if (anyZero)
        {
            page.Append(Invariant($"<text class=\"tick\" x=\"{left - 6}\" y=\"{height - bottom - 1}\" text-anchor=\"end\">reused</text>"));
        }
        const int ticks = 5;
        for (int t = 0; t <= ticks; t++)
        {
            long at = startNs + (long)(span * t / ticks);
            double tx = X(at);
            page.Append(Invariant($"<text class=\"tick\" x=\"{tx:0.#}\" y=\"{height - bottom + 14}\" text-anchor=\"{(t == 0 ? "start" : t == ticks ? "end" : "middle")}\">{Elapsed(at - startNs, span)}</text>"));
        }
        page.Append(Invariant($"<text class=\"axis\" x=\"{left + plotWidth / 2:0}\" y=\"{height - 4}\" text-anchor=\"middle\">time since the first packet (bucket {Elapsed(widthNs, widthNs)})</text>"));
        // Lines join neighbouring buckets only: a bucket without packets is a gap, not a slope.
        var max = new StringBuilder();
        var median = new StringBuilder();
        for (int i = 0; i < points.Count; i++)
        {
            bool joined = i > 0 && points[i].StartNs - points[i - 1].StartNs == widthNs;
            double px = X(points[i].StartNs + widthNs / 2);
            max.Append(Invariant($"{(joined ? " L" : " M")}{px:0.#},{Y(points[i].MaxNs):0.#}"));
            median.Append(Invariant($"{(joined ? " L" : " M")}{px:0.#},{Y(points[i].P50Ns):0.#}"));
        }
        page.Append(Invariant($"<path class=\"series max\" d=\"{max.ToString().Trim()}\"/>"));
        page.Append(Invariant($"<path class=\"series p50\" d=\"{median.ToString().Trim()}\"/>"));
        double radius = points.Count > 60 ? 1.6 : 2.5;
        foreach (TimelinePoint point in points)
        {
            double px = X(point.StartNs + widthNs / 2);
            page.Append(Invariant($"<circle class=\"dot max\" cx=\"{px:0.#}\" cy=\"{Y(point.MaxNs):0.#}\" r=\"{radius * 0.8:0.##}\"/>"));
            page.Append(Invariant($"<circle class=\"dot p50\" cx=\"{px:0.#}\" cy=\"{Y(point.P50Ns):0.#}\" r=\"{radius:0.##}\"><title>{point.Count} packets, p50 {ReplayTable.Microseconds(point.P50Ns)} µs, max {ReplayTable.Microseconds(point.MaxNs)} µs</title></circle>"));
        }
        page.Append(Invariant($"<text class=\"legend p50\" x=\"{left + 8}\" y=\"{top + 13}\">p50</text><text class=\"legend max\" x=\"{left + 40}\" y=\"{top + 13}\">max</text>"));
        page.Append("</svg>");
    }

    private static string DecadeLabel(int decade) => decade switch
    {
        <= 0 => "1 ns",
        1 => "10 ns",
        2 => "100 ns",
        3 => "1 µs",
        4 => "10 µs",
        5 => "100 µs",
        6 => "1 ms",
        7 => "10 ms",
        8 => "100 ms",
        9 => "1 s",
        10 => "10 s",
        11 => "100 s",
        _ => Invariant($"1e{decade - 9} s"),
    };

    /// <summary>A time offset in the unit that suits the whole axis (<paramref name="span"/>): µs, ms or s.</summary>
    private static string Elapsed(long ns, double span) => span switch
    {
        < 2_000_000 => Invariant($"{ns / 1e3:0.#} µs"),
        < 2_000_000_000 => Invariant($"{ns / 1e6:0.#} ms"),
        _ => Invariant($"{ns / 1e9:0.#} s"),
    };

    /// <summary>A shown name that fits its box; the whole name is the box's title (a tooltip) and in the tables.</summary>
    private static string Shorten(string shown) => shown.Length <= 32 ? shown : shown[..31] + "…";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
