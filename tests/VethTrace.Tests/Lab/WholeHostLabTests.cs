using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using VethTrace.Cli;

namespace VethTrace.Tests.Lab;

/// <summary>
/// Whole-host <c>follow</c> and <c>record</c> (no target, several targets, <c>--network</c>) on the real lab, with
/// containers of this test's own (host15-*), created and removed here. Every ping carries a 321-byte payload and the
/// runs filter on that IP length (<c>ip[2:2] == 349</c>), so other traffic crossing the shared lab is left out and the
/// expected counts are the pings sent.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class WholeHostLabTests
{
    private const string Marked = "ip[2:2] == 349";

    [Fact]
    public async Task FollowNoTarget_TwoContainersPinging_EachContainersJourneysAttributed()
    {
        var lab = LabEnvironment.Load();
        var output = new TimedWriter();
        var error = new StringWriter();
        var follow = Task.Run(() => VethTraceCommand.Run(
            ["follow", "--egress", lab["EGRESS_IF"], "--duration", "7s", "--format", "json", "--filter", Marked], output, error));
        Assert.True(output.WaitFor("\"type\":\"start\"", TimeSpan.FromSeconds(20)), $"follow did not start: {error}");
        Ping(lab["C1_NAME"], lab["UPSTREAM_IP"], 3);
        Ping(lab["C2_NAME"], lab["UPSTREAM_IP"], 2);
        ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        var records = Records(output.ToString());

        var start = Assert.Single(records, r => Type(r) == "start");
        Assert.Equal("the whole host", start.GetProperty("target").GetString());
        var interfaces = start.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()).ToList();
        Assert.Contains($"{lab["C1_VETH"]}({lab["C1_NAME"]})", interfaces);
        Assert.Contains($"{lab["C2_VETH"]}({lab["C2_NAME"]})", interfaces);
        Assert.Contains(lab["BRIDGE"], interfaces);
        Assert.Contains(lab["EGRESS_IF"], interfaces);

        var containers = records.Where(r => Type(r) == "container").ToDictionary(r => r.GetProperty("name").GetString()!);
        Assert.Equal(3, containers[lab["C1_NAME"]].GetProperty("packets_out").GetInt64());
        Assert.Equal(3, containers[lab["C1_NAME"]].GetProperty("packets_in").GetInt64());
        Assert.Equal(2, containers[lab["C2_NAME"]].GetProperty("packets_out").GetInt64());
        Assert.Equal(2, containers[lab["C2_NAME"]].GetProperty("packets_in").GetInt64());
        Assert.Equal("bridge", containers[lab["C1_NAME"]].GetProperty("network").GetString());
        Assert.True(containers[lab["C1_NAME"]].GetProperty("out_p50_us").GetDouble() > 0);

        // The paths of each container carry its name, with the chain veth → bridge → egress and back.
        var paths = records.Where(r => Type(r) == "path").ToList();
        var c1Out = Assert.Single(paths, p => Chain(p) == $"{lab["C1_VETH"]}({lab["C1_NAME"]}) {lab["BRIDGE"]} {lab["EGRESS_IF"]}");
        Assert.Equal(lab["C1_NAME"], c1Out.GetProperty("container").GetString());
        Assert.Equal(3, c1Out.GetProperty("journeys").GetInt64());
        var c2In = Assert.Single(paths, p => Chain(p) == $"{lab["EGRESS_IF"]} {lab["BRIDGE"]} {lab["C2_VETH"]}({lab["C2_NAME"]})");
        Assert.Equal(lab["C2_NAME"], c2In.GetProperty("container").GetString());
        // A hop between the bridge and the egress is every container's: no single container.
        var shared = Assert.Single(records, r => Type(r) == "hop" && r.GetProperty("from").GetString() == lab["BRIDGE"] && r.GetProperty("to").GetString() == lab["EGRESS_IF"]);
        Assert.Equal(JsonValueKind.Null, shared.GetProperty("container").ValueKind);
        Assert.Equal(5, shared.GetProperty("packets").GetInt64());
        var nat = records.Where(r => Type(r) == "nat").ToDictionary(r => r.GetProperty("inside").GetString()!);
        Assert.Equal(lab["C1_NAME"], nat[lab["C1_IP"]].GetProperty("container").GetString());
        Assert.Equal(lab["C2_NAME"], nat[lab["C2_IP"]].GetProperty("container").GetString());
        var any = Assert.Single(records, r => Type(r) == "capture" && r.GetProperty("interface").GetString() == "any");
        Assert.Equal(0, any.GetProperty("kernel_dropped").GetInt64());
    }

    [Fact]
    public async Task FollowNoTarget_ContainerStartedThenRemoved_AttachedWithinASecondDetachedWithFiguresKept()
    {
        var lab = LabEnvironment.Load();
        const string name = "host15-late";
        LabEnvironment.TryRun("docker", "rm", "-f", name);
        try
        {
            var output = new TimedWriter();
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(
                ["follow", "--egress", lab["EGRESS_IF"], "--duration", "16s", "--format", "json", "--filter", Marked], output, error));
            Assert.True(output.WaitFor("\"type\":\"start\"", TimeSpan.FromSeconds(20)), $"follow did not start: {error}");

            // Its first action is a marked ping, sent as its process starts: before Docker's start event names its veth,
            // so the veth must be captured as it appears, not once named (that missed it).
            LabEnvironment.Run("docker", "run", "-d", "--name", name, lab["IMAGE"], "sh", "-c",
                $"ping -c 1 -s 321 -W 2 {lab["UPSTREAM_IP"]} >/dev/null; sleep 120");
            var started = Stopwatch.StartNew();
            DateTimeOffset returned = DateTimeOffset.UtcNow;
            // Attached with its name, or attached first and named when Docker's start event came (a slow daemon).
            Assert.True(output.WaitFor($"\"container\":\"{name}\"", TimeSpan.FromSeconds(5)), $"the new container was not attached: {output}");
            TimeSpan attachedAfter = started.Elapsed;
            Ping(name, lab["UPSTREAM_IP"], 4);
            // Its figures are counted once its journeys' window (1 s) and the orderer's slack (0.1 s) have passed; then it goes.
            Thread.Sleep(2000);
            LabEnvironment.Run("docker", "rm", "-f", name);
            Assert.True(output.WaitFor("\"event\":\"detached\"", TimeSpan.FromSeconds(5), name), $"the removed container was not detached: {output}");

            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
            var records = Records(output.ToString());
            // docker run returns once the container runs; the veth was attached by then or within the second after.
            Assert.True(attachedAfter < TimeSpan.FromSeconds(1.5), $"attached {attachedAfter.TotalMilliseconds:0} ms after docker run returned");
            var attached = records.First(r => Type(r) == "event" && r.GetProperty("event").GetString() is "attached" or "named" && Text(r, "container") == name);
            var detached = Assert.Single(records, r => Type(r) == "event" && r.GetProperty("event").GetString() == "detached" && Text(r, "container") == name);
            // The capture saw its first packet (its own ND, or the first ping) no later than its first journey was
            // matched; both said once, on its veth.
            var firstPacket = Assert.Single(records, r => Type(r) == "event" && r.GetProperty("event").GetString() == "first_packet" && Text(r, "container") == name);
            var firstJourney = Assert.Single(records, r => Type(r) == "event" && r.GetProperty("event").GetString() == "first_journey" && Text(r, "container") == name);
            Assert.Equal(attached.GetProperty("interface").GetString(), firstPacket.GetProperty("interface").GetString());
            Assert.True(firstPacket.GetProperty("elapsed_s").GetDouble() >= attached.GetProperty("elapsed_s").GetDouble());
            Assert.True(firstPacket.GetProperty("elapsed_s").GetDouble() <= firstJourney.GetProperty("elapsed_s").GetDouble(), $"{firstPacket} {firstJourney}");
            // Traced within a second (issue 15): its first journey (the ping, veth → bridge → egress) is said as it is
            // matched, not when its window closes: the one ring's order slack (0.1 s), the capture's gathering (0.05 s)
            // and follow's 0.2 s loop, about 0.35 s. Said when the window closed, it came 3.2-4.2 s after docker run.
            TimeSpan traced = DateTimeOffset.Parse(firstJourney.GetProperty("at").GetString()!, CultureInfo.InvariantCulture) - returned;
            Assert.True(traced < TimeSpan.FromSeconds(1), $"first journey {traced.TotalMilliseconds:0} ms after docker run returned: {firstJourney}");
            Assert.True(detached.GetProperty("elapsed_s").GetDouble() > attached.GetProperty("elapsed_s").GetDouble());
            string veth = attached.GetProperty("interface").GetString()!;
            Assert.StartsWith("veth", veth);
            Assert.EndsWith($"({name})", veth);
            Assert.Equal($"{veth} → {lab["EGRESS_IF"]}", Text(firstJourney, "detail"));

            // Detached, and what it measured is still in the report.
            var container = Assert.Single(records, r => Type(r) == "container" && r.GetProperty("name").GetString() == name);
            Assert.Equal(5, container.GetProperty("packets_out").GetInt64());
            Assert.Equal(5, container.GetProperty("packets_in").GetInt64());
            var capture = Assert.Single(records, r => Type(r) == "capture" && r.GetProperty("interface").GetString() == veth);
            Assert.False(capture.GetProperty("attached").GetBoolean());
            // Its veth was announced by netlink as it joined the bridge; whatever came before the attach was held and
            // traced (held_then_traced: 0 when the attach came first, as on an idle host), none let go.
            var any = Assert.Single(records, r => Type(r) == "capture" && r.GetProperty("interface").GetString() == "any");
            Assert.Equal(0, any.GetProperty("held_dropped").GetInt64());
            Assert.Equal(JsonValueKind.Number, any.GetProperty("held_then_traced").ValueKind);
            // Every frame the veth carried while attached: the ten marked pings, and the new container's own (ARP, ND).
            Assert.True(capture.GetProperty("packets").GetInt64() >= 10, capture.ToString());
            Assert.Contains(records, r => Type(r) == "path" && r.GetProperty("container").GetString() == name && r.GetProperty("journeys").GetInt64() == 5);
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", name);
        }
    }

    [Fact]
    public async Task FollowNetwork_ContainerStartedDuringTheRun_ItsFirstPingBeforeItWasNamedIsTraced()
    {
        // A selective run (--network, several targets) attaches a new veth only once its engine names the container (the
        // name decides whether it is selected), and the container's first ping, sent as its process starts, comes before
        // that: the veth (and its bridge) are left undecided for up to 0.8 s, their packets held, and traced once attached.
        var lab = LabEnvironment.Load();
        const string network = "host16-net", name = "host16-member";
        LabEnvironment.TryRun("docker", "rm", "-f", name);
        LabEnvironment.TryRun("docker", "network", "rm", network);
        try
        {
            LabEnvironment.Run("docker", "network", "create", "--subnet", "10.216.16.0/24", network);
            var output = new TimedWriter();
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(
                ["follow", "--network", network, "--egress", lab["EGRESS_IF"], "--duration", "9s", "--format", "json", "--filter", Marked], output, error));
            Assert.True(output.WaitFor("\"type\":\"start\"", TimeSpan.FromSeconds(20)), $"follow did not start: {error}");
            LabEnvironment.Run("docker", "run", "-d", "--name", name, "--network", network, lab["IMAGE"], "sh", "-c",
                $"ping -c 1 -s 321 -W 2 {lab["UPSTREAM_IP"]} >/dev/null; sleep 1; ping -c 4 -i 0.2 -s 321 -W 2 {lab["UPSTREAM_IP"]} >/dev/null; sleep 120");
            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
            var records = Records(output.ToString());

            Assert.Contains(records, r => Type(r) == "event" && r.GetProperty("event").GetString() == "attached" && Text(r, "container") == name);
            var container = Assert.Single(records, r => Type(r) == "container" && r.GetProperty("name").GetString() == name);
            Assert.Equal(5, container.GetProperty("packets_out").GetInt64());
            Assert.Equal(5, container.GetProperty("packets_in").GetInt64());
            var any = Assert.Single(records, r => Type(r) == "capture" && r.GetProperty("interface").GetString() == "any");
            Assert.True(any.GetProperty("held_then_traced").GetInt64() > 0, any.ToString());
            Assert.Equal(0, any.GetProperty("late_packets").GetInt64());
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", name);
            LabEnvironment.TryRun("docker", "network", "rm", network);
        }
    }

    [Fact]
    public async Task FollowSeveralTargetsAndNetwork_SelectOnlyThoseContainers()
    {
        var lab = LabEnvironment.Load();
        const string network = "host15-net", member = "host15-member";
        LabEnvironment.TryRun("docker", "rm", "-f", member);
        LabEnvironment.TryRun("docker", "network", "rm", network);
        try
        {
            LabEnvironment.Run("docker", "network", "create", "--subnet", "10.215.15.0/24", network);
            LabEnvironment.Run("docker", "run", "-d", "--name", member, "--network", network, lab["IMAGE"], "sleep", "120");

            // Two targets: vt-c1 and the member; vt-c2 pings too and must not appear.
            var records = await FollowWhilePinging(lab, [lab["C1_NAME"], member], [lab["C1_NAME"], lab["C2_NAME"], member]);
            Assert.Equal(new[] { lab["C1_NAME"], member }.Order(StringComparer.Ordinal), Names(records));
            Assert.DoesNotContain(records, r => Type(r) == "path" && Chain(r).Contains(lab["C2_VETH"], StringComparison.Ordinal));
            Assert.All(records.Where(r => Type(r) == "container"), r => Assert.Equal(2, r.GetProperty("packets_out").GetInt64()));
            var memberPath = Assert.Single(records, r => Type(r) == "path" && r.GetProperty("container").GetString() == member
                && Chain(r).EndsWith(lab["EGRESS_IF"], StringComparison.Ordinal));
            Assert.StartsWith("br-", memberPath.GetProperty("interfaces")[1].GetString());

            // --network: the member only, though vt-c1 and vt-c2 ping as well.
            records = await FollowWhilePinging(lab, ["--network", network], [lab["C1_NAME"], lab["C2_NAME"], member]);
            Assert.Equal([member], Names(records));
            var only = Assert.Single(records, r => Type(r) == "container");
            Assert.Equal(network, only.GetProperty("network").GetString());
            Assert.Equal(2, only.GetProperty("packets_in").GetInt64());
            Assert.DoesNotContain(records, r => Type(r) == "path" && Chain(r).Contains(lab["BRIDGE"], StringComparison.Ordinal));
        }
        finally
        {
            LabEnvironment.TryRun("docker", "rm", "-f", member);
            LabEnvironment.TryRun("docker", "network", "rm", network);
        }
    }

    [Fact]
    public async Task RecordNoTarget_ThenReplay_ReproducesThePerContainerReport()
    {
        var lab = LabEnvironment.Load();
        string file = Path.Combine(Path.GetTempPath(), $"host15-wholehost-{Environment.ProcessId}.pcapng");
        try
        {
            var output = new TimedWriter();
            var error = new StringWriter();
            var record = Task.Run(() => VethTraceCommand.Run(
                ["record", "-o", file, "--egress", lab["EGRESS_IF"], "--duration", "7s", "--format", "json", "--filter", Marked], output, error));
            Assert.True(output.WaitFor("\"type\":\"start\"", TimeSpan.FromSeconds(20)), $"record did not start: {error}");
            Ping(lab["C1_NAME"], lab["UPSTREAM_IP"], 3);
            Ping(lab["C2_NAME"], lab["UPSTREAM_IP"], 2);
            ExitCode code = await record.WaitAsync(TimeSpan.FromSeconds(40));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");

            var replay = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file, "--format", "json"], replay, new StringWriter()));

            // The same container, hop, path, NAT and loss records, but for kernel_dropped, which a file does not carry.
            static List<string> Report(string text) => [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.Contains("\"type\":\"container\"") || l.Contains("\"type\":\"hop\"") || l.Contains("\"type\":\"nat\"")
                    || l.Contains("\"type\":\"loss\"") || l.Contains("\"type\":\"path\""))
                .Select(l => System.Text.RegularExpressions.Regex.Replace(l, "\"kernel_dropped\":[^,}]+", "\"kernel_dropped\":_"))
                .Order(StringComparer.Ordinal)];
            List<string> live = Report(output.ToString());
            Assert.Contains(live, l => l.Contains($"\"type\":\"container\",\"name\":\"{lab["C1_NAME"]}\"", StringComparison.Ordinal) && l.Contains("\"packets_out\":3", StringComparison.Ordinal));
            Assert.Equal(live, Report(replay.ToString()));

            // One IDB per interface, named as follow names it, its role and container in if_description (as tshark reads them).
            var blocks = LabEnvironment.Run("tshark", "-n", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description")
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().ToList();
            Assert.Contains($"{lab["C1_VETH"]}({lab["C1_NAME"]})\thost veth of container {lab["C1_NAME"]} on network bridge at {lab["C1_IP"]}", blocks);
            Assert.Contains($"{lab["BRIDGE"]}\tbridge of the whole host", blocks);
            Assert.Contains($"{lab["EGRESS_IF"]}\tegress of the whole host", blocks);

            // The table too: the per-container section, with no --ifname.
            var table = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file], table, new StringWriter()));
            string row = Assert.Single(table.ToString().Split('\n'), l => l.StartsWith($"  {lab["C2_NAME"]} ", StringComparison.Ordinal));
            Assert.Matches(@"^\s+\S+\s+bridge\s+2\s+2\s", row);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<List<JsonElement>> FollowWhilePinging(LabEnvironment lab, string[] selection, string[] pingers)
    {
        var output = new TimedWriter();
        var error = new StringWriter();
        var follow = Task.Run(() => VethTraceCommand.Run(
            ["follow", .. selection, "--egress", lab["EGRESS_IF"], "--duration", "7s", "--format", "json", "--filter", Marked], output, error));
        Assert.True(output.WaitFor("\"type\":\"start\"", TimeSpan.FromSeconds(20)), $"follow did not start: {error}");
        foreach (string pinger in pingers)
        {
            Ping(pinger, lab["UPSTREAM_IP"], 2);
        }
        ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        return Records(output.ToString());
    }

    private static void Ping(string container, string address, int count) =>
        LabEnvironment.Run("docker", "exec", container, "ping", "-c", count.ToString(CultureInfo.InvariantCulture), "-i", "0.2", "-s", "321", "-W", "2", address);

    private static List<JsonElement> Records(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];

    private static string? Type(JsonElement record) => record.GetProperty("type").GetString();

    /// <summary>A string field that a record may not have (an event names a container only when one applies).</summary>
    private static string? Text(JsonElement record, string field) => record.TryGetProperty(field, out JsonElement value) ? value.GetString() : null;

    private static string Chain(JsonElement path) => string.Join(' ', path.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()));

    private static List<string> Names(List<JsonElement> records) =>
        [.. records.Where(r => Type(r) == "container").Select(r => r.GetProperty("name").GetString()!).Order(StringComparer.Ordinal)];

    /// <summary>Collects the lines a command writes and lets a test wait for one holding some texts.</summary>
    private sealed class TimedWriter : StringWriter
    {
        private readonly List<string> _lines = [];

        public override void WriteLine(string? value)
        {
            lock (_lines)
            {
                base.WriteLine(value);
                _lines.Add(value ?? "");
                Monitor.PulseAll(_lines);
            }
        }

        public bool WaitFor(string marker, TimeSpan timeout, string? also = null)
        {
            var deadline = DateTime.UtcNow + timeout;
            lock (_lines)
            {
                while (!_lines.Any(l => l.Contains(marker, StringComparison.Ordinal) && (also is null || l.Contains(also, StringComparison.Ordinal))))
                {
                    TimeSpan left = deadline - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero)
                    {
                        return false;
                    }
                    Monitor.Wait(_lines, left);
                }
                return true;
            }
        }

        public override string ToString()
        {
            lock (_lines)
            {
                return base.ToString();
            }
        }
    }
}
