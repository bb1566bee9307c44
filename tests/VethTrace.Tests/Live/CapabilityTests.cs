using System.Diagnostics;
using VethTrace.Capture.Live;
using VethTrace.Cli;

namespace VethTrace.Tests.Live;

/// <summary>The up-front capability check of follow/record: one line naming what is missing, exit 4, no libpcap noise.</summary>
public sealed class CapabilityTests
{
    [Fact]
    public void Missing_StatusWithoutNetRaw_NamesIt()
    {
        string status = Path.Combine(Path.GetTempPath(), $"vethtrace-status-{Environment.ProcessId}");
        // CapEff with every bit but 13 (CAP_NET_RAW) and 21 (CAP_SYS_ADMIN).
        File.WriteAllText(status, "Name:\tx\nCapEff:\t000001fffedfdfff\n");
        try
        {
            string? missing = Capabilities.Missing(entersNamespaces: true, status);

            Assert.Equal("missing CAP_NET_RAW (to open packet sockets), CAP_SYS_ADMIN (to enter the container's network namespace); " +
                "run as root or grant them (setcap, or docker's --cap-add)", missing);
            Assert.Null(Capabilities.Missing(entersNamespaces: true, "/nonexistent/status"));
        }
        finally
        {
            File.Delete(status);
        }
    }

    [Fact]
    public void Follow_WithoutNetRaw_OneLineAndExitFour()
    {
        // A real process with CAP_NET_RAW dropped from its bounding and inheritable sets (util-linux setpriv).
        string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
        var start = new ProcessStartInfo("setpriv", ["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--", "dotnet", dll, "follow", "--hop", "lo", "--duration", "1s"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using var process = Process.Start(start)!;
        string error = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000));

        Assert.Equal((int)ExitCode.CaptureFailed, process.ExitCode);
        Assert.Equal("vethtrace: missing CAP_NET_RAW (to open packet sockets); run as root or grant them (setcap, or docker's --cap-add)", error.Trim());
    }
}
