using System.Diagnostics;
using VethTrace.Cli;

namespace VethTrace.Tests.Live;

/// <summary>
/// Stopping follow from outside: SIGTERM (and Ctrl-C's SIGINT, which takes the same path) ends the capture cleanly
/// with the final report and exit 0. A real process capturing on loopback (root, as the test suite runs).
/// </summary>
public sealed class SignalTests
{
    [Theory]
    [InlineData("TERM", 4.0)]
    [InlineData("TERM", 0.0)] // during start-up: before the handles are open
    [InlineData("INT", 4.0)] // Ctrl-C
    [InlineData("INT", 0.0)] // Ctrl-C during start-up
    public void Follow_Signal_FinalReportAndExitZero(string signal, double afterSeconds)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
        var start = new ProcessStartInfo("dotnet", [dll, "follow", "--hop", "lo", "--format", "json"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var lines = new List<string>();
        var started = new ManualResetEventSlim();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (lines)
            {
                lines.Add(e.Data);
            }
            if (e.Data.Contains("\"type\":\"start\"", StringComparison.Ordinal))
            {
                started.Set();
            }
        };
        process.BeginOutputReadLine();
        if (afterSeconds > 0)
        {
            Assert.True(started.Wait(TimeSpan.FromSeconds(30)), "follow did not start capturing");
            Thread.Sleep(TimeSpan.FromSeconds(afterSeconds));
        }
        else
        {
            // Start-up: the signal handlers are registered before the command runs, and libpcap is loaded when the
            // first handle opens, so once it is mapped the signal lands while the handles are being opened. A fixed
            // sleep raced the runtime's own start-up under load (SIGTERM before Main: exit 143).
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!File.ReadAllText($"/proc/{process.Id}/maps").Contains("libpcap", StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline && !process.HasExited, "follow never loaded libpcap");
                Thread.Sleep(2);
            }
        }

        using (var kill = Process.Start("kill", ["-s", signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }
        Assert.True(process.WaitForExit(20_000), "follow did not end after the signal");
        process.WaitForExit(); // drains the redirected output

        Assert.Equal((int)ExitCode.Success, process.ExitCode);
        lock (lines)
        {
            Assert.Contains(lines, l => l.StartsWith("{\"type\":\"summary\",\"packets\":", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("{\"type\":\"capture\",\"interface\":\"lo\"", StringComparison.Ordinal));
        }
    }
}
