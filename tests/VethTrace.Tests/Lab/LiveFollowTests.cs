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

    [Fact]
    public async Task Record_ContainerByName_ReplayOfTheFileReproducesTheLiveReport()
    {
        var lab = LabEnvironment.Load();
        string file = Path.Combine(Path.GetTempPath(), $"vethtrace-record-{Environment.ProcessId}.pcapng");
        try
        {
            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            var record = Task.Run(() => VethTraceCommand.Run(
                ["record", lab["C1_NAME"], "-o", file, "--egress", lab["EGRESS_IF"], "--duration", "5s", "--format", "json", "--filter", "icmp or tcp port 80"], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"record did not start capturing: {error}");
            LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "2", "-W", "2", lab["UPSTREAM_IP"]);
            LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "wget", "-q", "-O", "/dev/null", $"http://{lab["C2_IP"]}/");
            ExitCode code = await record.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");

            var replayOutput = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file, "--format", "json"], replayOutput, new StringWriter()));

            // The final report of the live run and the replay of its file: the same hops, counts and latencies, the same NAT.
            static List<string> Report(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.Contains("\"type\":\"hop\"") || l.Contains("\"type\":\"nat\"") || l.Contains("\"type\":\"loss\"") || l.Contains("\"type\":\"path\""))
                .Order(StringComparer.Ordinal).ToList();
            List<string> live = Report(output.ToString());
            Assert.Contains(live, l => l.Contains($"\"from\":\"eth0({lab["C1_NAME"]})\",\"to\":\"{lab["C1_VETH"]}\""));
            Assert.Equal(live, Report(replayOutput.ToString()));

            // One Interface Description Block per hop, named as the report names them, with the role and the container.
            using var reader = Capture.Files.CaptureFileReader.Open(file);
            while (reader.TryReadNext(out _))
            {
            }
            Assert.Null(reader.Error);
            Assert.Equal([$"eth0({lab["C1_NAME"]})", lab["C1_VETH"], lab["BRIDGE"], lab["EGRESS_IF"]], reader.Interfaces.Select(i => i.Name));
            Assert.StartsWith("container interface of vt-c1", reader.Interfaces[0].Description);
            Assert.StartsWith("egress of vt-c1", reader.Interfaces[3].Description);
            Assert.All(reader.Interfaces, i => Assert.Equal(9, i.TimestampResolution));

            // Every packet keeps its direction in epb_flags, as tshark reads them: an echo request leaves the
            // container (out of its eth0, into its veth and the bridge) and leaves by the egress; the reply the reverse.
            var directions = LabEnvironment.Run("tshark", "-n", "-r", file, "-Y", "icmp.type==8 || icmp.type==0", "-T", "fields",
                    "-e", "frame.interface_name", "-e", "icmp.type", "-e", "frame.packet_flags_direction")
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')).ToList();
            Assert.Equal(16, directions.Count);
            string[] outward = [$"eth0({lab["C1_NAME"]})", lab["EGRESS_IF"]];
            foreach (string[] d in directions)
            {
                bool request = d[1] == "8";
                bool sent = outward.Contains(d[0]) == request;
                Assert.True(d[2] == (sent ? "0x00000002" : "0x00000001"), $"{d[0]} icmp type {d[1]}: direction flags {d[2]}");
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Follow_UnknownContainer_OneLineAndExitThree()
    {
        LabEnvironment.Load();
        var error = new StringWriter();

        ExitCode code = VethTraceCommand.Run(["follow", "vt-no-such-container", "--duration", "1s"], new StringWriter(), error);

        Assert.Equal(ExitCode.ContainerUnavailable, code);
        Assert.Equal("vethtrace: no such container: vt-no-such-container", error.ToString().Trim());
    }

    [Fact]
    public void Interfaces_Lab_NamesEachContainersVeth()
    {
        var lab = LabEnvironment.Load();
        var output = new StringWriter();

        ExitCode code = VethTraceCommand.Run(["interfaces"], output, new StringWriter());

        Assert.Equal(ExitCode.Success, code);
        string line = Assert.Single(output.ToString().Split('\n'), l => l.StartsWith(lab["C1_VETH"] + " ", StringComparison.Ordinal));
        Assert.Contains($"{lab["C1_NAME"]}:eth0 {lab["C1_IP"]}/16", line);
        Assert.Contains(lab["BRIDGE"], line);
    }

    [Fact]
    public async Task Follow_ContainerStopsMidway_SaysSoAndPrintsTheFinalReport()
    {
        var lab = LabEnvironment.Load();
        const string name = "vt-follow-stop";
        LabEnvironment.Run("bash", "-c", $"docker rm -f {name} >/dev/null 2>&1 || true");
        LabEnvironment.Run("docker", "run", "-d", "--name", name, "--pull", "never", lab["IMAGE"], "sleep", "120");
        try
        {
            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(["follow", name, "--egress", lab["EGRESS_IF"], "--duration", "60s", "--format", "json"], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            LabEnvironment.Run("docker", "stop", "-t", "0", name);

            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(ExitCode.Success, code);
            // It waits for a restart (FollowCommand.RestartWait, 15 s), then ends: well before its 60 s duration.
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(35), $"follow took {clock.Elapsed} to end, not its 60 s duration");
            Assert.Matches($@"^vethtrace: eth0\({name}\).* went away; waiting for the container to come back", error.ToString());
            Assert.Matches($@"\nvethtrace: eth0\({name}\).* went away \(the container stopped or restarted\); final report follows", error.ToString());
            Assert.Contains("\"type\":\"summary\",\"packets\":", output.ToString());
            Assert.Contains("\"type\":\"capture\"", output.ToString());
        }
        finally
        {
            LabEnvironment.Run("bash", "-c", $"docker rm -f {name} >/dev/null 2>&1 || true");
        }
    }

    [Fact]
    public async Task Follow_DockerDaemonStops_SaysSoAndPrintsTheFinalReport()
    {
        // It stops the lab's dockerd: on a lab shared by several people (or agents) that takes everybody's containers
        // down, so it runs only where the lab is the run's own. tests/run.sh, which brings the lab up and down itself
        // (and so CI), says so with VETHTRACE_LAB_OWNED=1.
        Assert.True(Environment.GetEnvironmentVariable("VETHTRACE_LAB_OWNED") == "1",
            "this test stops the lab's dockerd; run it only on a lab nobody else uses, with VETHTRACE_LAB_OWNED=1 (tests/run.sh sets it)");
        var lab = LabEnvironment.Load();
        // The lab's own dockerd (tests/lab/docker-up.sh started it and wrote its PID); stopping it stops its
        // containers too (no live-restore), so afterwards the lab is brought up again.
        string pidFile = "/run/vethtrace-lab/dockerd.pid";
        Assert.True(File.Exists(pidFile), $"{pidFile} is missing: this test stops only a dockerd the lab started (tests/lab/docker-up.sh)");
        int dockerd = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("dockerd", File.ReadAllText($"/proc/{dockerd}/comm").Trim());
        try
        {
            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(["follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--duration", "90s", "--format", "json"], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
            LabEnvironment.Run("kill", "-TERM", dockerd.ToString(System.Globalization.CultureInfo.InvariantCulture));

            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(75));

            Assert.Equal(ExitCode.Success, code);
            string said = error.ToString();
            Assert.Matches($@"(?m)^vethtrace: eth0\({lab["C1_NAME"]}\).* went away; waiting for the container to come back$", said);
            Assert.Matches(@"(?m)^vethtrace: the Docker daemon is not answering \(.*\); waiting for it and the container$", said);
            Assert.Matches($@"(?m)^vethtrace: eth0\({lab["C1_NAME"]}\).* went away and the Docker daemon stopped answering \(.*\); final report follows$", said);
            Assert.DoesNotContain("   at ", said);
            Assert.Contains("\"type\":\"summary\",\"packets\":", output.ToString());
        }
        finally
        {
            // Bring the daemon, the containers and the lab's state back for the tests after this one.
            var up = new System.Diagnostics.ProcessStartInfo("bash", [Path.Combine(Captures.CaptureCorpus.RepositoryRoot, "tests", "lab", "lab-up.sh"), "--skip-install"])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = System.Diagnostics.Process.Start(up)!;
            Task<string> log = process.StandardError.ReadToEndAsync();
            await process.StandardOutput.ReadToEndAsync();
            Assert.True(process.WaitForExit(180_000), "lab-up.sh did not finish in 180 s");
            Assert.True(process.ExitCode == 0, $"lab-up.sh failed: {await log}");
        }
    }

    [Fact]
    public async Task Follow_ContainerRestarts_ReattachesToItsNewVeth()
    {
        var lab = LabEnvironment.Load();
        const string name = "vt-follow-restart";
        LabEnvironment.Run("bash", "-c", $"docker rm -f {name} >/dev/null 2>&1 || true");
        LabEnvironment.Run("docker", "run", "-d", "--name", name, "--pull", "never", lab["IMAGE"], "sleep", "600");
        try
        {
            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(
                ["follow", name, "--egress", lab["EGRESS_IF"], "--duration", "25s", "--format", "json", "--filter", "icmp"], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
            LabEnvironment.Run("docker", "restart", "-t", "0", name);
            string newVeth = "";
            for (int i = 0; i < 40 && !error.ToString().Contains("the container is back", StringComparison.Ordinal); i++)
            {
                await Task.Delay(250);
            }
            Assert.Contains("the container is back; following", error.ToString());
            LabEnvironment.Run("docker", "exec", name, "ping", "-c", "3", "-W", "2", lab["UPSTREAM_IP"]);

            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(ExitCode.Success, code);
            // The pings after the restart are traced through the new veth: found from the report's own hop record,
            // and checked against the kernel's view of the restarted container's peer interface.
            var hop = output.ToString().Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith($"{{\"type\":\"hop\",\"from\":\"eth0({name})\"", StringComparison.Ordinal));
            using var json = JsonDocument.Parse(hop);
            newVeth = json.RootElement.GetProperty("to").GetString()!;
            string pid = LabEnvironment.Run("docker", "inspect", "-f", "{{.State.Pid}}", name).Trim();
            // /sys still shows the host's view after nsenter --net; iproute2 asks netlink inside: "4: eth0@if114: …".
            string link = LabEnvironment.Run("nsenter", $"--net=/proc/{pid}/ns/net", "ip", "-o", "link", "show", "eth0");
            string peerIndex = System.Text.RegularExpressions.Regex.Match(link, @"eth0@if(\d+)").Groups[1].Value;
            Assert.Equal(peerIndex, File.ReadAllText($"/sys/class/net/{newVeth}/ifindex").Trim());
            Assert.Equal(3, json.RootElement.GetProperty("packets").GetInt64());
        }
        finally
        {
            LabEnvironment.Run("bash", "-c", $"docker rm -f {name} >/dev/null 2>&1 || true");
        }
    }
}
