using System.Globalization;
using VethTrace.Cli;
using VethTrace.Tests.Cli;

namespace VethTrace.Tests.Lab;

/// <summary>
/// <c>follow … --html FILE</c> on the real lab: the page written at the end of a live run holds every hop and figure
/// of the JSON report that the same run printed, and the capture table of its hops.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class FollowHtmlLabTests
{
    [Fact]
    public async Task Follow_Html_PageHoldsTheFinalJsonReportOfTheSameRun()
    {
        var lab = LabEnvironment.Load();
        string page = Path.Combine(Path.GetTempPath(), $"vethtrace-follow-html18-{Environment.ProcessId}.html");
        try
        {
            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(
                ["follow", "--hop", $"eth0@/proc/{lab["C1_PID"]}/ns/net", "--hop", lab["C1_VETH"], "--hop", lab["BRIDGE"], "--hop", lab["EGRESS_IF"],
                 "--duration", "4s", "--format", "json", "--filter", "icmp", "--html", page], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
            LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "3", "-W", "2", lab["UPSTREAM_IP"]);

            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
            string html = File.ReadAllText(page);
            string json = output.ToString();

            HtmlReportAssert.MatchesJson(html, json);
            HtmlReportAssert.Inert(html);
            Assert.Contains("<span class=\"command\">vethtrace follow</span>", html);
            var captures = HtmlReportAssert.Records(json).Where(r => r.GetProperty("type").GetString() == "capture").ToList();
            var rows = HtmlReportAssert.Rows(html, "capture");
            Assert.Equal(captures.Count, rows.Count);
            foreach (var capture in captures)
            {
                Assert.Contains(rows, row => row[0].Text == capture.GetProperty("interface").GetString()
                    && row[1].Text == capture.GetProperty("packets").GetInt64().ToString(CultureInfo.InvariantCulture)
                    && row[2].Text == capture.GetProperty("kernel_dropped").GetInt64().ToString(CultureInfo.InvariantCulture));
            }
        }
        finally
        {
            File.Delete(page);
        }
    }
}
