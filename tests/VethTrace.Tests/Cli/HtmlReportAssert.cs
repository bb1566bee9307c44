using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using VethTrace.Text;

namespace VethTrace.Tests.Cli;

/// <summary>
/// Checks an HTML report against the JSON report of the same run: every record of the JSON (summary figures, hops with
/// their percentiles, NAT, losses, paths, segmentation, tunnels, roles) must be in the page, as its visible text, and
/// the page must hold no row the JSON lacks. Works on the page as written and on the DOM a browser dumps (Chromium's
/// serialisation), so it reads rows with a pattern over the known markup, not with an XML parser.
/// </summary>
internal static partial class HtmlReportAssert
{
    public static List<JsonElement> Records(string jsonLines) =>
        [.. jsonLines.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement)];

    /// <summary>The rows <c>&lt;tr class="<paramref name="css"/>"…&gt;</c>: each a list of cells (text, decoded) and their attributes.</summary>
    public static List<List<Cell>> Rows(string html, string css) =>
        [.. Regex.Matches(html, $"<tr class=\"{Regex.Escape(css)}\"[^>]*>(.*?)</tr>", RegexOptions.Singleline)
            .Select(row => CellPattern().Matches(row.Groups[1].Value).Select(c => new Cell(c.Groups[1].Value, Text(c.Groups[2].Value))).ToList())];

    public sealed record Cell(string Attributes, string Text)
    {
        public string? Data(string name) => Regex.Match(Attributes, $"{name}=\"([^\"]*)\"") is { Success: true } m ? WebUtility.HtmlDecode(m.Groups[1].Value) : null;
    }

    /// <summary>An element's text: tags dropped, entities decoded.</summary>
    public static string Text(string inner) => WebUtility.HtmlDecode(Regex.Replace(inner, "<[^>]*>", ""));

    /// <summary>
    /// A name as the page must show it: as a terminal shows it (escapes visible), by TerminalText's rule from the JSON's
    /// Unicode name; but a byte that was not UTF-8 is U+FFFD in JSON and <c>\xff</c> on the page, so a test with such
    /// names gives their shown forms, written by hand, in <c>shownNames</c>.
    /// </summary>
    public static string Shown(string name, IReadOnlyDictionary<string, string>? shownNames = null) =>
        shownNames?.GetValueOrDefault(name) ?? TerminalText.Escape(name);

    /// <summary>The table's microsecond rule, written out here: three decimals below 10 µs, one below 1000, none above.</summary>
    public static string Microseconds(double us) => us switch
    {
        < 10 => us.ToString("0.000", CultureInfo.InvariantCulture),
        < 1000 => us.ToString("0.0", CultureInfo.InvariantCulture),
        _ => us.ToString("0", CultureInfo.InvariantCulture),
    };

    public static void MatchesJson(string html, string jsonLines, IReadOnlyDictionary<string, string>? shownNames = null, int chartedHops = 16)
    {
        List<JsonElement> records = Records(jsonLines);
        string Type(JsonElement r) => r.GetProperty("type").GetString()!;
        string ShownName(string name) => Shown(name, shownNames);

        // Summary: every numeric figure of the summary record, in the row of the same key.
        JsonElement summary = Assert.Single(records, r => Type(r) == "summary" && !r.TryGetProperty("live", out _));
        foreach (JsonProperty figure in summary.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Number))
        {
            Match row = Regex.Match(html, $"<tr data-figure=\"{figure.Name}\"><th>[^<]*</th><td class=\"num\">([0-9]+)</td></tr>");
            Assert.True(row.Success, $"summary figure {figure.Name} missing");
            Assert.Equal(figure.Value.GetInt64().ToString(CultureInfo.InvariantCulture), row.Groups[1].Value);
        }

        // Hops: one row each, names as shown, counts and percentiles (exact ns in data-ns, shown by the table's rule).
        var hops = records.Where(r => Type(r) == "hop").ToList();
        var hopRows = Rows(html, "hop");
        Assert.Equal(hops.Count, hopRows.Count);
        foreach (JsonElement hop in hops)
        {
            string from = ShownName(hop.GetProperty("from").GetString()!), to = ShownName(hop.GetProperty("to").GetString()!);
            var row = Assert.Single(hopRows, r => r[0].Text == from && r[2].Text == to);
            Assert.Equal(hop.GetProperty("packets").GetInt64().ToString(CultureInfo.InvariantCulture), row[3].Text);
            int column = 4;
            foreach (string key in new[] { "p50_us", "p90_us", "p99_us", "max_us" })
            {
                double us = hop.GetProperty(key).GetDouble();
                Cell cell = row[column++];
                Assert.Equal(key, cell.Data("data-figure"));
                Assert.Equal(us, long.Parse(cell.Data("data-ns")!, CultureInfo.InvariantCulture) / 1000.0);
                Assert.Equal(Microseconds(us), cell.Text);
            }
            Assert.Equal(hop.GetProperty("reused_timestamps").GetInt64().ToString(CultureInfo.InvariantCulture), row[8].Text);
            long reused = hop.GetProperty("reused_timestamps").GetInt64();
            if (reused > 0)
            {
                // Said in words, as the text report says it.
                Assert.Contains($"{to} reused the timestamp of {from} for {reused} of {hop.GetProperty("packets").GetInt64()} packets", Text(html));
            }
        }

        // The distribution and time charts of the busiest hops, each with p50, p90 and p99 marked as the table gives them.
        int charted = Math.Min(hops.Count, chartedHops);
        var distributions = Regex.Matches(html, "<figure class=\"distribution\"><figcaption>(.*?)</figcaption>(.*?)</figure>", RegexOptions.Singleline);
        Assert.Equal(charted, distributions.Count);
        foreach (Match figure in distributions)
        {
            string caption = Text(figure.Groups[1].Value);
            JsonElement hop = Assert.Single(hops, h => caption == $"{ShownName(h.GetProperty("from").GetString()!)} → {ShownName(h.GetProperty("to").GetString()!)} {h.GetProperty("packets").GetInt64()} packets");
            string svg = figure.Groups[2].Value;
            foreach (string p in new[] { "p50", "p90", "p99" })
            {
                double us = hop.GetProperty(p + "_us").GetDouble();
                string value = us == 0 && hop.GetProperty("reused_timestamps").GetInt64() > 0 ? "reused" : Microseconds(us) + "µs";
                Assert.Matches($"<text class=\"mark {p}\"[^>]*>{p} {Regex.Escape(value)}</text>", svg);
            }
        }
        Assert.Equal(charted, Regex.Matches(html, "<figure class=\"timeline\">").Count);

        // NAT: the aggregate rows (or every mapping with --nat-detail), each once.
        var nats = records.Where(r => Type(r) == "nat").ToList();
        var natRows = Rows(html, "nat");
        Assert.Equal(nats.Count, natRows.Count);
        foreach (JsonElement nat in nats)
        {
            var cells = new List<string> { nat.GetProperty("kind").GetString()!, nat.GetProperty("proto").GetString()!, nat.GetProperty("inside").GetString()!,
                nat.GetProperty("outside").GetString()!, nat.GetProperty("peer").GetString()! };
            if (nat.TryGetProperty("flows", out JsonElement flows))
            {
                cells.Add(flows.GetInt64().ToString(CultureInfo.InvariantCulture));
            }
            cells.Add(nat.GetProperty("packets").GetInt64().ToString(CultureInfo.InvariantCulture));
            Assert.Contains(natRows, row => row.Select(c => c.Text).SequenceEqual(cells));
        }

        // Losses, with the last hop each was seen on.
        var losses = records.Where(r => Type(r) == "loss").ToList();
        var lossRows = Rows(html, "loss");
        Assert.Equal(losses.Count, lossRows.Count);
        foreach (JsonElement loss in losses)
        {
            string[] cells = [loss.GetProperty("proto").GetString()!, loss.GetProperty("src").GetString()!, loss.GetProperty("dst").GetString()!,
                ShownName(loss.GetProperty("last_seen").GetString()!), loss.GetProperty("packets").GetInt64().ToString(CultureInfo.InvariantCulture)];
            Assert.Contains(lossRows, row => row.Select(c => c.Text).SequenceEqual(cells));
        }
        if (losses.Count == 0)
        {
            Assert.Matches("<section id=\"losses\">.*<p>None.</p></section>", html);
        }

        // Paths: the chain of names in order, the journeys, the bridge copies set aside.
        var paths = records.Where(r => Type(r) == "path").ToList();
        var pathBlocks = Regex.Matches(html, "<div class=\"path\" data-journeys=\"([0-9]+)\">(.*?)</div>", RegexOptions.Singleline)
            .Select(m => (Journeys: long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Chain: Regex.Match(m.Groups[2].Value, "<p class=\"chain\">(.*?)</p>", RegexOptions.Singleline).Groups[1].Value))
            .ToList();
        Assert.Equal(paths.Count, pathBlocks.Count);
        foreach (JsonElement path in paths)
        {
            string[] names = [.. path.GetProperty("interfaces").EnumerateArray().Select(n => ShownName(n.GetString()!))];
            long journeys = path.GetProperty("journeys").GetInt64();
            string[] copies = path.TryGetProperty("side_copies", out JsonElement side)
                ? [.. side.EnumerateArray().Select(c => $"{ShownName(c.GetProperty("interface").GetString()!)}:{c.GetProperty("journeys").GetInt64()}")]
                : [];
            Assert.Contains(pathBlocks, block => block.Journeys == journeys
                && Regex.Matches(Regex.Replace(block.Chain, "<span class=\"copy\".*", "", RegexOptions.Singleline), "<span class=\"if\">(.*?)</span>").Select(m => Text(m.Groups[1].Value)).SequenceEqual(names)
                && Regex.Matches(block.Chain, "<span class=\"copy\" data-journeys=\"([0-9]+)\"><span class=\"if\">(.*?)</span>").Select(m => $"{Text(m.Groups[2].Value)}:{m.Groups[1].Value}").SequenceEqual(copies));
        }

        var segmentations = records.Where(r => Type(r) == "segmentation").ToList();
        var segmentationRows = Rows(html, "segmentation");
        Assert.Equal(segmentations.Count, segmentationRows.Count);
        foreach (JsonElement segmentation in segmentations)
        {
            string[] cells = [ShownName(segmentation.GetProperty("from").GetString()!), "→", ShownName(segmentation.GetProperty("to").GetString()!),
                segmentation.GetProperty("journeys").GetInt64().ToString(CultureInfo.InvariantCulture)];
            Assert.Contains(segmentationRows, row => row.Select(c => c.Text).SequenceEqual(cells));
        }

        var tunnels = records.Where(r => Type(r) == "tunnel").ToList();
        var tunnelRows = Rows(html, "tunnel");
        Assert.Equal(tunnels.Count, tunnelRows.Count);
        foreach (JsonElement tunnel in tunnels)
        {
            string[] cells = [ShownName(tunnel.GetProperty("interface").GetString()!), $"{tunnel.GetProperty("encapsulation").GetString()} {tunnel.GetProperty("vni").GetInt64()}",
                tunnel.GetProperty("outer_src").GetString()!, $"{tunnel.GetProperty("outer_dst").GetString()}:{tunnel.GetProperty("port").GetInt64()}",
                tunnel.GetProperty("packets").GetInt64().ToString(CultureInfo.InvariantCulture)];
            Assert.Contains(tunnelRows, row => row.Select(c => c.Text).SequenceEqual(cells));
        }

        var roles = records.Where(r => Type(r) == "role").ToList();
        var roleRows = Rows(html, "role");
        Assert.Equal(roles.Count, roleRows.Count);
        foreach (JsonElement role in roles)
        {
            string[] cells = [ShownName(role.GetProperty("interface").GetString()!), role.GetProperty("role").GetString()!, role.GetProperty("decided_by").GetString()!];
            Assert.Contains(roleRows, row => row.Select(c => c.Text).SequenceEqual(cells));
        }
    }

    /// <summary>
    /// The page can run nothing and fetch nothing: a CSP that forbids both, and among its tags (text holds no raw '&lt;',
    /// so every '&lt;' opens a real tag) no script, nothing that loads or embeds, no event handler, no URL attribute.
    /// </summary>
    public static void Inert(string html)
    {
        Assert.Contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\"", html);
        foreach (Match tag in Regex.Matches(html, "<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>"))
        {
            string name = tag.Groups[1].Value.ToLowerInvariant();
            Assert.False(name is "script" or "img" or "iframe" or "object" or "embed" or "link" or "base" or "form" or "a" or "image" or "use" or "foreignobject" or "audio" or "video",
                $"element <{name}> in the page");
            Assert.DoesNotMatch("(?i)(\\son[a-z]+|\\s(src|href|xlink:href|action|srcset))\\s*=", tag.Groups[2].Value);
        }
    }

    [GeneratedRegex("<td([^>]*)>(.*?)</td>", RegexOptions.Singleline)]
    private static partial Regex CellPattern();
}
