using System.Diagnostics;
using System.Text.Json;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Lab;

/// <summary>
/// The container image (issue 18 §1): built without a registry by build/container-image.sh (a debootstrap minimal
/// Debian root with libpcap, docker import, the Native AOT executable), then run as pwru and ptcpdump are run, against
/// the host's Docker: --pid=host --net=host, the socket mounted, and only the capabilities Docker does not give by
/// default that follow needs (NET_ADMIN for promiscuous mode, SYS_ADMIN to enter the container's namespace; NET_RAW is
/// in Docker's default set). The expected journeys are counted by tshark on a dumpcap capture of the egress, and the
/// hops come from the lab's state file, never from VethTrace.
/// VETHTRACE_CONTAINER_IMAGE names an image already built; otherwise the test builds one (the base image is kept
/// between runs as vethtrace/debian-minbase:bookworm, so only the first run downloads Debian's packages) and removes it.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class ContainerImageLabTests
{
    [Fact]
    public void Image_FollowsALabContainerFromInsideAContainer_JourneysOnEveryHop()
    {
        var lab = LabEnvironment.Load();
        string? given = Environment.GetEnvironmentVariable("VETHTRACE_CONTAINER_IMAGE");
        string image = given ?? $"vethtrace-labtest:{Environment.ProcessId}";
        string egressFile = Path.Combine(Path.GetTempPath(), $"vethtrace-image-egress-{Environment.ProcessId}.pcapng");
        try
        {
            if (given is null)
            {
                string built = RunScript(Path.Combine(CaptureCorpus.RepositoryRoot, "build", "container-image.sh"), "--tag", image);
                Assert.Equal(image, built.Trim().Split('\n')[^1]);
            }

            // 1. The minimal set: Docker's defaults (NET_RAW among them) plus NET_ADMIN and SYS_ADMIN.
            const string Filter = "icmp and ip[2:2] > 1000";
            var (exit, lines, error) = FollowInContainer(lab, image, ["--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN"], Filter, () =>
            {
                using var dumpcap = new DumpcapSession(egressFile, null, lab["EGRESS_IF"]);
                LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "3", "-i", "0.5", "-s", "1200", "-W", "2", lab["UPSTREAM_IP"]);
                Thread.Sleep(300);
                dumpcap.Stop();
            });
            Assert.True(exit == 0, $"the container exited {exit}: {error}");

            string eth0 = $"eth0({lab["C1_NAME"]})";
            string[] outbound = [eth0, lab["C1_VETH"], lab["BRIDGE"], lab["EGRESS_IF"]];
            JsonElement start = Assert.Single(lines, l => l.GetProperty("type").GetString() == "start");
            Assert.Equal(outbound, start.GetProperty("interfaces").EnumerateArray().Select(e => e.GetString()!));

            int requests = LiveScenarioTests.TsharkCount(egressFile, $"icmp.type==8 && ip.src=={lab["EGRESS_IP"]} && ip.len > 1000");
            int replies = LiveScenarioTests.TsharkCount(egressFile, $"icmp.type==0 && ip.dst=={lab["EGRESS_IP"]} && ip.len > 1000");
            Assert.True(requests >= 3 && replies >= 3, $"the pings did not cross the egress ({requests} requests, {replies} replies)");
            Assert.Equal(requests, PathJourneys(lines, outbound));
            Assert.Equal(replies, PathJourneys(lines, [.. outbound.Reverse()]));
            JsonElement nat = Assert.Single(lines, l => l.GetProperty("type").GetString() == "nat");
            Assert.Equal(("snat", "icmp", lab["C1_IP"], lab["EGRESS_IP"]),
                (nat.GetProperty("kind").GetString(), nat.GetProperty("proto").GetString(), nat.GetProperty("inside").GetString(), nat.GetProperty("outside").GetString()));
            Assert.All(lines.Where(l => l.GetProperty("type").GetString() == "capture"),
                c => Assert.Equal(0, c.GetProperty("kernel_dropped").GetInt64()));

            // 2. Without SYS_ADMIN the container's namespace cannot be entered: one line, exit 3, no stack trace.
            var (refusedExit, _, refusedError) = FollowInContainer(lab, image, ["--cap-add", "NET_ADMIN"], Filter, () => { });
            Assert.Equal(3, refusedExit);
            Assert.Equal($"vethtrace: entering the network namespace pid:{lab["C1_PID"]} needs CAP_SYS_ADMIN (run as root)", refusedError.Trim());

            // 3. With every default capability dropped, NET_RAW must be named too, and SYS_PTRACE opens the other process's
            //    namespace file (a ptrace access check: this process no longer holds every capability the container's has).
            var (dropped, _, droppedError) = FollowInContainer(lab, image,
                ["--cap-drop", "ALL", "--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN"], Filter, () => { });
            Assert.Equal(3, dropped);
            Assert.Contains("CAP_SYS_PTRACE", droppedError, StringComparison.Ordinal);
            var (allFour, _, allFourError) = FollowInContainer(lab, image,
                ["--cap-drop", "ALL", "--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE"], Filter, () => { });
            Assert.True(allFour == 0, $"--cap-drop ALL plus NET_RAW, NET_ADMIN, SYS_ADMIN, SYS_PTRACE: exit {allFour}: {allFourError}");
        }
        finally
        {
            File.Delete(egressFile);
            if (given is null)
            {
                LabEnvironment.TryRun("docker", "rmi", "-f", image);
            }
        }
    }

    /// <summary>
    /// Runs follow in the image against the lab's first container for 6 s; <paramref name="traffic"/> runs once the
    /// capture has started (its "start" record), or at once when the container exits first.
    /// </summary>
    private static (int Exit, List<JsonElement> Lines, string Error) FollowInContainer(
        LabEnvironment lab, string image, string[] capabilities, string filter, Action traffic)
    {
        string name = $"vt-image-test-{Environment.ProcessId}";
        LabEnvironment.TryRun("docker", "rm", "-f", name);
        string[] arguments =
        [
            "run", "--rm", "--name", name, "--pid=host", "--net=host", "-v", "/var/run/docker.sock:/var/run/docker.sock",
            .. capabilities, image,
            "follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--duration", "6", "--format", "json", "--filter", filter,
        ];
        var start = new ProcessStartInfo("docker", arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("docker did not start");
        Task<string> error = process.StandardError.ReadToEndAsync();
        var lines = new List<JsonElement>();
        bool started = false;
        try
        {
            while (process.StandardOutput.ReadLine() is { } line)
            {
                JsonElement record = JsonDocument.Parse(line).RootElement.Clone();
                lines.Add(record);
                if (!started && record.GetProperty("type").GetString() == "start")
                {
                    started = true;
                    traffic();
                }
            }
            Assert.True(process.WaitForExit(60_000), "the container did not finish within 60 s");
        }
        finally
        {
            if (!process.HasExited)
            {
                LabEnvironment.TryRun("docker", "rm", "-f", name);
            }
        }
        return (process.ExitCode, lines, error.Result);
    }

    private static long PathJourneys(List<JsonElement> lines, string[] interfaces) =>
        lines.Where(l => l.GetProperty("type").GetString() == "path"
                && l.GetProperty("interfaces").EnumerateArray().Select(e => e.GetString()!).SequenceEqual(interfaces))
            .Sum(l => l.GetProperty("journeys").GetInt64());

    /// <summary>Runs a build script to completion (it may take minutes: debootstrap, a Native AOT publish); fails the test with its output when it fails.</summary>
    private static string RunScript(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash", [script, .. arguments]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{script} did not start");
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(30 * 60_000), $"{script} did not finish in 30 minutes");
        Assert.True(process.ExitCode == 0, $"{script} exited {process.ExitCode}: {error.Result}");
        return output.Result;
    }
}
