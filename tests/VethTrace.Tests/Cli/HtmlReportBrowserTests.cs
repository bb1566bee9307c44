using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// The HTML report in a real browser (issue 18, part 2): headless Chromium from Debian's packages (tests/lab/install.sh
/// installs it) loads the page from a file, and the DOM it dumps after loading must hold every hop and figure of the
/// JSON report of the same replay; hostile interface names must come out as text, with nothing run. A control page
/// shows that a script which does run is seen in the dumped DOM, so "nothing ran" is a finding, not a blind spot.
/// </summary>
[Trait("Category", "Browser")]
public sealed class HtmlReportBrowserTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-browser-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [MemberData(nameof(HtmlReportTests.ReplayCaptures), MemberType = typeof(HtmlReportTests))]
    public void Chromium_ShippedCapture_DomHoldsEveryHopAndFigureOfTheJsonReport(string capture)
    {
        var (_, json) = HtmlReportTests.Replay(_directory, CaptureCorpus.PathOf(capture));
        string page = Path.Combine(_directory, Path.GetFileNameWithoutExtension(capture) + ".html");

        string dom = Chromium.DumpDom(page, _directory);

        HtmlReportAssert.MatchesJson(dom, json);
        HtmlReportAssert.Inert(dom);
        Assert.Contains("<title>VethTrace report: " + Path.GetFileName(capture) + "</title>", dom);
    }

    [Fact]
    public void Chromium_HostileInterfaceNames_RenderedAsTextNothingRuns()
    {
        string capture = Path.Combine(_directory, "<img src=x onerror=\"document.title='file'\">.pcapng");
        File.WriteAllBytes(capture, HtmlReportTests.HostileCapture());
        var (_, json) = HtmlReportTests.Replay(_directory, capture);
        string page = Path.Combine(_directory, Path.GetFileNameWithoutExtension(capture) + ".html");

        string dom = Chromium.DumpDom(page, _directory);

        HtmlReportAssert.MatchesJson(dom, json, HtmlReportTests.HostileShownNames());
        HtmlReportAssert.Inert(dom);
        // No script set the title, no element was made: the names are in the DOM as text only.
        Assert.Contains("<title>VethTrace report: &lt;img src=x onerror=\"document.title='file'\"&gt;.pcapng</title>", dom);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(dom, "<h1>"));
        Assert.DoesNotContain("<svg onload", dom);
        Assert.All(HtmlReportTests.AllHostileNames, name =>
            Assert.Contains(HtmlReportAssert.Rows(dom, "hop"), row => row[0].Text == name.Shown || row[2].Text == name.Shown));
    }

    [Fact]
    public void Chromium_ControlPages_ARunningScriptIsSeenAndTheReportPolicyStopsIt()
    {
        const string script = "<script>document.title='ran';document.body.appendChild(document.createElement('mark'));</script>";
        string open = Path.Combine(_directory, "control-open.html");
        File.WriteAllText(open, $"<!DOCTYPE html><html><head><title>before</title></head><body>{script}</body></html>");
        string guarded = Path.Combine(_directory, "control-guarded.html");
        string policy = File.ReadAllLines(WritePage()).First(line => line.Contains("Content-Security-Policy", StringComparison.Ordinal));
        File.WriteAllText(guarded, $"<!DOCTYPE html><html><head>{policy}<title>before</title></head><body>{script}</body></html>");

        string ran = Chromium.DumpDom(open, _directory);
        string stopped = Chromium.DumpDom(guarded, _directory);

        Assert.Contains("<title>ran</title>", ran);
        Assert.Contains("<mark></mark>", ran);
        Assert.Contains("<title>before</title>", stopped);
        Assert.DoesNotContain("<mark>", stopped);
    }

    [Fact]
    public void Chromium_Screenshot_MultiHopCaptureIsDrawn()
    {
        string page = WritePage();
        string png = Path.Combine(_directory, "report.png");

        Chromium.Screenshot(page, png, 1200, 2400, _directory);

        byte[] bytes = File.ReadAllBytes(png);
        Assert.True(bytes.AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a }), "not a PNG");
        Assert.Equal(1200u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16))); // IHDR width
        Assert.Equal(2400u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20))); // IHDR height
        // A blank page of that size compresses to a few kB; the drawn report is far more.
        Assert.True(bytes.Length > 60_000, $"{bytes.Length} bytes: the page looks empty");
    }

    private string WritePage()
    {
        HtmlReportTests.Replay(_directory, CaptureCorpus.PathOf("replay/firewall-drop.pcapng"));
        return Path.Combine(_directory, "firewall-drop.html");
    }
}

/// <summary>Headless Chromium, run as a process: the DOM after loading a page, or a screenshot of it.</summary>
internal static class Chromium
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    public static string Executable { get; } = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("Chromium is not installed: tests/lab/install.sh installs it (apt-get install chromium)");

    public static string DumpDom(string page, string scratch) => Run(scratch, "--dump-dom", new Uri(page).AbsoluteUri);

    public static void Screenshot(string page, string png, int width, int height, string scratch)
    {
        Run(scratch, $"--screenshot={png}", $"--window-size={width},{height}", "--hide-scrollbars", new Uri(page).AbsoluteUri);
        Assert.True(File.Exists(png), "Chromium wrote no screenshot");
    }

    private static string Run(string scratch, params string[] args)
    {
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
        };
        // --no-sandbox: the tests run as root, where Chromium refuses its sandbox. A profile of its own per run.
        foreach (string arg in (string[])["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            $"--user-data-dir={Path.Combine(scratch, "profile-" + Guid.NewGuid().ToString("N"))}", .. args])
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"Chromium did not finish within {Timeout.TotalSeconds} s");
        }
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"Chromium exited {process.ExitCode}: {error.Result}");
        return output.Result;
    }
}
