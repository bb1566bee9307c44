using System.Text.Json;
using VethTrace.Cli;

namespace VethTrace.Tests.Lab;

/// <summary>
/// <c>vethtrace follow</c> on the real lab: libpcap handles on the container's eth0 (opened inside its namespace),
/// its veth, docker0 and the stand-in egress, while the container pings the upstream namespace.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class LiveFollowTests
{
    [Fact]
    public async Task Follow_ExplicitHops_LivePingMatchedOnEveryHopWithMasquerade()
    {
        var lab = LabEnvironment.Load();
        string containerHop = $"eth0@/proc/{lab["C1_PID"]}/ns/net";
        var output = new SignallingWriter("\"type\":\"start\"");
        var error = new StringWriter();
        var follow = Task.Run(() => VethTraceCommand.Run(
            ["follow", "--hop", containerHop, "--hop", lab["C1_VETH"], "--hop", lab["BRIDGE"], "--hop", lab["EGRESS_IF"],
             "--duration", "5s", "--format", "json", "--filter", $"icmp"], output, error));
        Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
        LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "3", "-W", "2", lab["UPSTREAM_IP"]);

        ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();

        Assert.Contains(records, r => r.GetProperty("type").GetString() == "summary" && r.TryGetProperty("live", out _));
        var hops = records.Where(r => r.GetProperty("type").GetString() == "hop")
            .ToDictionary(h => (h.GetProperty("from").GetString(), h.GetProperty("to").GetString()), h => h.GetProperty("packets").GetInt64());
        string eth0 = $"eth0@{lab["C1_PID"]}";
        Assert.Equal(3, hops[(eth0, lab["C1_VETH"])]);
        Assert.Equal(3, hops[(lab["C1_VETH"], lab["BRIDGE"])]);
        Assert.Equal(3, hops[(lab["BRIDGE"], lab["EGRESS_IF"])]);
        Assert.Equal(3, hops[(lab["EGRESS_IF"], lab["BRIDGE"])]);
        var nat = Assert.Single(records, r => r.GetProperty("type").GetString() == "nat");
        Assert.Equal("snat", nat.GetProperty("kind").GetString());
        Assert.Equal(lab["C1_IP"], nat.GetProperty("inside").GetString());
        Assert.Equal(lab["EGRESS_IP"], nat.GetProperty("outside").GetString());
        Assert.Equal(6, nat.GetProperty("packets").GetInt64());
        var captures = records.Where(r => r.GetProperty("type").GetString() == "capture").ToList();
        Assert.Equal(4, captures.Count);
        Assert.All(captures, c => Assert.Equal(0, c.GetProperty("kernel_dropped").GetInt64()));
    }

    [Fact]
    public void Follow_InterfaceThatDoesNotExist_OneLineAndCaptureFailedExitCode()
    {
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["follow", "--hop", "vt-nonexistent0", "--duration", "1s"], new StringWriter(), error);

        Assert.Equal(ExitCode.CaptureFailed, code);
        Assert.Equal("vethtrace: no interface named vt-nonexistent0", error.ToString().Trim());
    }

    /// <summary>A StringWriter that lets the test wait for a line, written by the command on another thread.</summary>
    private sealed class SignallingWriter(string marker) : StringWriter
    {
        public ManualResetEventSlim Seen { get; } = new();

        public override void WriteLine(string? value)
        {
            lock (this)
            {
                base.WriteLine(value);
            }
            if (value?.Contains(marker, StringComparison.Ordinal) == true)
            {
                Seen.Set();
            }
        }

        public override string ToString()
        {
            lock (this)
            {
                return base.ToString();
            }
        }
    }
}
