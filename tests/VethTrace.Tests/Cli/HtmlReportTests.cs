using System.Text;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;
using VethTrace.Cli;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;
using VethTrace.Tests.Parser;

namespace VethTrace.Tests.Cli;

/// <summary>
/// <c>--html FILE</c> (issue 18, part 2), offline: the page written for each shipped replay capture holds every hop and
/// figure of the JSON report of the same replay (<see cref="HtmlReportAssert"/>), is well-formed, can run and fetch
/// nothing, and shows hostile interface names as text.
/// </summary>
public sealed class HtmlReportTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-html-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    public static TheoryData<string> ReplayCaptures()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.EnumerateFiles(Path.Combine(CaptureCorpus.CapturesDirectory, "replay"), "*.pcapng").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(CaptureCorpus.CapturesDirectory, file));
        }
        data.Add("masquerade-multi.pcapng");
        return data;
    }

    internal static (ExitCode Code, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>The page and the JSON report of one replay of <paramref name="capture"/> (with <paramref name="extra"/> options).</summary>
    internal static (string Html, string Json) Replay(string directory, string capture, params string[] extra)
    {
        string page = Path.Combine(directory, Path.GetFileNameWithoutExtension(capture) + ".html");
        var (code, output, error) = Run(["replay", capture, "--format", "json", "--html", page, .. extra]);
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        Assert.Equal("", error);
        return (File.ReadAllText(page, Encoding.UTF8), output);
    }

    [Theory]
    [MemberData(nameof(ReplayCaptures))]
    public void ReplayHtml_ShippedCapture_EveryHopAndFigureOfTheJsonReport(string capture)
    {
        var (html, json) = Replay(_directory, CaptureCorpus.PathOf(capture));

        HtmlReportAssert.MatchesJson(html, json);
        HtmlReportAssert.Inert(html);
        WellFormed(html);
    }

    [Fact]
    public void ReplayHtml_NatDetail_EveryMappingWithoutFlowColumn()
    {
        var (html, json) = Replay(_directory, CaptureCorpus.PathOf("masquerade-multi.pcapng"), "--nat-detail");

        HtmlReportAssert.MatchesJson(html, json);
        Assert.Contains("Every translation (<code>--nat-detail</code>)", html);
    }

    [Fact]
    public void ReplayHtml_TableFormat_SaysWhereThePageIsAndTheTableIsUnchanged()
    {
        string page = Path.Combine(_directory, "fd.html");
        string capture = CaptureCorpus.PathOf("replay/firewall-drop.pcapng");
        var (code, output, error) = Run("replay", capture, "--html", page);
        var (_, plain, _) = Run("replay", capture);

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        Assert.Equal(plain + Environment.NewLine + $"HTML report written to {page}" + Environment.NewLine, output);
        Assert.StartsWith("<!DOCTYPE html>", File.ReadAllText(page));
    }

    [Fact]
    public void ReplayHtml_TwoContainers_PerContainerRowsWithTheirJourneys()
    {
        // east-west: two containers (eth0 and eth0#2) talk over the bridge; each path starts at one of them, then its veth.
        var (html, json) = Replay(_directory, CaptureCorpus.PathOf("replay/east-west.pcapng"));

        var paths = HtmlReportAssert.Records(json).Where(r => r.GetProperty("type").GetString() == "path").ToList();
        var rows = HtmlReportAssert.Rows(html, "container");
        Assert.Equal(2, rows.Count);
        foreach (string side in new[] { "eth0", "eth0#2" })
        {
            var own = paths.Where(p => p.GetProperty("interfaces")[0].GetString() == side).ToList();
            string veth = Assert.Single(own.Select(p => p.GetProperty("interfaces")[1].GetString()).Distinct())!;
            long journeys = own.Sum(p => p.GetProperty("journeys").GetInt64());
            Assert.Contains(rows, row => row[0].Text == side && row[1].Text == veth && row[2].Text == journeys.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void ReplayHtml_ManyContainersWithoutTheirOwnInterface_OneRowPerVethTopTwenty()
    {
        // many-flows-1000: 250 containers seen on their veths only (no eth0 captured), four journeys each.
        var (html, json) = Replay(_directory, CaptureCorpus.PathOf("replay/many-flows-1000.pcapng"));

        var vethPaths = HtmlReportAssert.Records(json).Where(r => r.GetProperty("type").GetString() == "path"
            && r.GetProperty("interfaces")[0].GetString()!.StartsWith("veth", StringComparison.Ordinal)).ToList();
        var rows = HtmlReportAssert.Rows(html, "container");
        Assert.Equal(20, rows.Count);
        Assert.All(rows, row => Assert.Equal("", row[0].Text));
        Assert.All(rows, row => Assert.Equal(vethPaths.Where(p => p.GetProperty("interfaces")[0].GetString() == row[1].Text).Sum(p => p.GetProperty("journeys").GetInt64()).ToString(System.Globalization.CultureInfo.InvariantCulture), row[2].Text));
        int others = vethPaths.Select(p => p.GetProperty("interfaces")[0].GetString()).Distinct().Count() - 20;
        Assert.Contains($"… and {others} more (", html);
    }

    [Fact]
    public void ReplayHtml_OneContainer_NoPerContainerSection()
    {
        var (html, _) = Replay(_directory, CaptureCorpus.PathOf("replay/firewall-drop.pcapng"));

        Assert.DoesNotContain("id=\"containers\"", html);
    }

    [Fact]
    public void ReplayHtml_DelayedEgress_TimelineOfTheDelayedHopSitsAtTheDelay()
    {
        // delay-egress: NFQUEUE held every packet leaving through vt-up0 for 5001.4 to 5083.8 µs (delay-egress.holds.tsv,
        // captures/README.md), the return way not at all. So every time bucket of docker0 → vt-up0 has a maximum (exact) of
        // at least 5001.4 µs and a median (to 12.5 % below) of at least 0.875 of that; the return hop stays under 1 ms.
        var (html, _) = Replay(_directory, CaptureCorpus.PathOf("replay/delay-egress.pcapng"));

        static List<(double P50, double Max)> Points(string html, string caption)
        {
            Match figure = Regex.Match(html, $"<figure class=\"timeline\"><figcaption>{Regex.Escape(caption)}</figcaption>(.*?)</figure>", RegexOptions.Singleline);
            Assert.True(figure.Success, caption);
            return [.. Regex.Matches(figure.Groups[1].Value, "p50 ([0-9.]+) µs, max ([0-9.]+) µs").Select(m => (double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)))];
        }
        var outbound = Points(html, "<span class=\"if\">docker0</span> → <span class=\"if\">vt-up0</span>");
        var inbound = Points(html, "<span class=\"if\">vt-up0</span> → <span class=\"if\">docker0</span>");

        Assert.NotEmpty(outbound);
        Assert.All(outbound, p => Assert.InRange(p.P50, 5001.4 * 0.875, 6500));
        Assert.All(outbound, p => Assert.InRange(p.Max, 5001.4, 6500));
        Assert.All(inbound, p => Assert.InRange(p.Max, 0, 1000));
    }

    [Fact]
    public void ReplayHtml_UnwritablePath_OneLineAndExitFourBeforeReading()
    {
        var (code, output, error) = Run("replay", CaptureCorpus.PathOf("replay/firewall-drop.pcapng"), "--html", "/nonexistent-vethtrace-dir/r.html");

        Assert.Equal(ExitCode.CaptureFailed, code);
        Assert.Equal("", output);
        Assert.StartsWith("vethtrace: cannot write /nonexistent-vethtrace-dir/r.html: ", error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void ReplayHtml_MissingCapture_NoPageLeftBehind()
    {
        string page = Path.Combine(_directory, "none.html");
        var (code, _, _) = Run("replay", Path.Combine(_directory, "missing.pcapng"), "--html", page);

        Assert.Equal(ExitCode.BadInput, code);
        Assert.False(File.Exists(page));
    }

    /// <summary>Interface names that are markup, script, entities and a line separator; with the terminal-escape names of HostileNameTests.</summary>
    public static readonly HostileNameTests.HostileName[] MarkupNames =
    [
        new("<script>document.title='pwned'</script>"u8.ToArray(), "<script>document.title='pwned'</script>"),
        new("\"><img src=x onerror=\"document.title='img'\">"u8.ToArray(), "\"><img src=x onerror=\"document.title='img'\">"),
        new("</td></tr></table></section><h1>out</h1>"u8.ToArray(), "</td></tr></table></section><h1>out</h1>"),
        new("</text></svg><svg onload=\"document.title='svg'\">"u8.ToArray(), "</text></svg><svg onload=\"document.title='svg'\">"),
        new("&lt;b&gt;&amp;"u8.ToArray(), "&lt;b&gt;&amp;"),
        new("L\u2028S\u2029"u8.ToArray(), @"L\u2028S\u2029"),
        new("]]><!--"u8.ToArray(), "]]><!--"),
    ];

    public static HostileNameTests.HostileName[] AllHostileNames => [.. MarkupNames, .. HostileNameTests.Names];

    /// <summary>One TCP segment on each hostile interface in turn, 10 µs apart: one journey across all of them.</summary>
    internal static byte[] HostileCapture()
    {
        var capture = CaptureBuilder.Pcapng();
        foreach (var name in AllHostileNames)
        {
            capture.InterfaceDescriptionBytes(name.Raw, "<b>description</b>\u001b[2J"u8.ToArray());
        }
        byte[] packet = SamplePackets.EthernetIpv4Tcp();
        for (int i = 0; i < AllHostileNames.Length; i++)
        {
            capture.EnhancedPacket((uint)i, 1_700_000_000_000_000UL + (ulong)i * 10, packet);
        }
        return capture.ToArray();
    }

    internal static Dictionary<string, string> HostileShownNames() => AllHostileNames.ToDictionary(n => n.Json, n => n.Shown);

    [Fact]
    public void ReplayHtml_HostileInterfaceNames_ShownAsTextNothingBreaksOut()
    {
        string capture = Path.Combine(_directory, "<img src=x onerror=alert(1)>&amp;.pcapng");
        File.WriteAllBytes(capture, HostileCapture());

        var (html, json) = Replay(_directory, capture);

        HtmlReportAssert.MatchesJson(html, json, HostileShownNames());
        HtmlReportAssert.Inert(html);
        XDocument page = WellFormed(html);
        // Nothing broke out: exactly the elements the report writes, one hop row per pair of neighbours.
        Assert.Equal(AllHostileNames.Length - 1, page.Descendants("tr").Count(tr => (string?)tr.Attribute("class") == "hop"));
        Assert.Single(page.Descendants("h1"));
        Assert.DoesNotContain(page.Descendants(), e => e.Name.LocalName is "script" or "img" or "iframe");
        Assert.DoesNotContain(page.Descendants().Attributes(), a => a.Name.LocalName.StartsWith("on", StringComparison.Ordinal));
        // The path diagram draws every name as text too (SVG text and its title).
        var svgTexts = page.Descendants().Where(e => e.Name.LocalName == "title" && e.Parent?.Name.LocalName == "g").Select(e => e.Value).ToList();
        Assert.All(AllHostileNames, name => Assert.Contains(name.Shown, svgTexts));
        Assert.Equal("VethTrace report: <img src=x onerror=alert(1)>&amp;.pcapng", page.Descendants("title").First().Value);
        Assert.DoesNotContain('\u2028', html);
        Assert.DoesNotContain('\u001b', html);
    }

    /// <summary>The page parses as XML: every element closed, every attribute quoted, only XML's entities.</summary>
    internal static XDocument WellFormed(string html)
    {
        using var reader = XmlReader.Create(new StringReader(html), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        XDocument document = XDocument.Load(reader);
        Assert.Equal("html", document.Root!.Name.LocalName);
        return document;
    }
}
