using System.Text.Json;
using VethTrace.Capture.Topology;
using VethTrace.Cli;
using VethTrace.Tests.Text;

namespace VethTrace.Tests.Lab;

/// <summary>
/// Issue 12, section 1, on real interfaces: the kernel takes any bytes in an interface name but '/', ':', whitespace and
/// NUL, so a name can hold ESC, BEL, a bidi override, Spectre.Console markup or bytes that are not UTF-8. Two namespaces
/// of this test's own (vt-escape-a/b-PID, removed at the end) hold such interfaces, a veth pair between them carries a
/// ping, and <c>interfaces</c>, <c>follow</c> (plain lines), <c>record</c> and a replay of the recording must show every
/// name escaped and send nothing raw. The expected forms follow from the escaping rules, written out by hand.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class HostileInterfaceNameTests : IDisposable
{
    // printf(1) octal escapes: the names are made by the shell, byte for byte.
    private const string BridgeBytes = @"\033[2Jbr";          // ESC [2J: clear the screen
    private const string BridgeShown = @"\x1b[2Jbr";
    private const string LooseBytes = @"v\377\376";           // not UTF-8
    private const string LooseShown = @"v\xff\xfe";
    private const string LoosePeerBytes = @"w\302\2331m";     // U+009B, C1 CSI
    private const string LoosePeerShown = @"w\u009b1m";
    private const string HopABytes = @"\033]0;t\007y1";       // OSC 0: set the window title
    private const string HopA = "\u001b]0;t\u0007y1";
    private const string HopAShown = @"\x1b]0;t\x07y1";
    private const string HopBBytes = @"[red]x\342\200\256";   // markup, then U+202E RIGHT-TO-LEFT OVERRIDE
    private const string HopB = "[red]x\u202e";
    private const string HopBShown = @"[red]x\u202e";

    private readonly string _a = $"vt-escape-a-{Environment.ProcessId}";
    private readonly string _b = $"vt-escape-b-{Environment.ProcessId}";
    private readonly List<string> _files = [];

    public HostileInterfaceNameTests()
    {
        Cleanup();
        string script = $"""
            set -e
            A={_a}; B={_b}
            ip netns add $A; ip netns add $B
            ip -n $A link set lo up; ip -n $B link set lo up
            ip -n $A link add "$(printf '{BridgeBytes}')" type bridge
            ip -n $A link add "$(printf '{LooseBytes}')" type veth peer name "$(printf '{LoosePeerBytes}')"
            ip -n $A link set "$(printf '{LooseBytes}')" master "$(printf '{BridgeBytes}')"
            ip -n $A link add "$(printf '{HopABytes}')" type veth peer name "$(printf '{HopBBytes}')" netns $B
            ip -n $A addr add 192.0.2.1/30 dev "$(printf '{HopABytes}')"
            ip -n $B addr add 192.0.2.2/30 dev "$(printf '{HopBBytes}')"
            for name in '{BridgeBytes}' '{LooseBytes}' '{LoosePeerBytes}' '{HopABytes}'; do ip -n $A link set "$(printf "$name")" up; done
            ip -n $B link set "$(printf '{HopBBytes}')" up
            """;
        LabEnvironment.Run("bash", "-c", script);
    }

    public void Dispose()
    {
        Cleanup();
        foreach (string file in _files)
        {
            File.Delete(file);
        }
    }

    private void Cleanup()
    {
        // Deleting a namespace deletes its interfaces, and a veth pair goes with either end.
        LabEnvironment.TryRun("ip", "netns", "del", _a);
        LabEnvironment.TryRun("ip", "netns", "del", _b);
    }

    [Fact]
    public void Interfaces_HostileKernelNames_EachRowEscaped()
    {
        // The command run in namespace A, where the hostile bridge and veths are the host's own.
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = NetworkNamespace.FromName(_a).Run(() => VethTraceCommand.Run(["interfaces"], output, error));

        Assert.Equal(ExitCode.Success, code);
        TerminalAssert.Safe(output.ToString() + error);
        string[] lines = output.ToString().Split('\n');
        Assert.Contains(lines, line => line.StartsWith($"{BridgeShown,-16} bridge -", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith($"{LooseShown,-16} veth   {BridgeShown,-16} up", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith($"{LoosePeerShown,-16} veth   -", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith($"{HopAShown,-16} veth   -", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Follow_HostileHopsInNamespaces_PlainLinesAndReportEscaped()
    {
        string hopA = $"{HopA}@/run/netns/{_a}", hopB = $"{HopB}@/run/netns/{_b}";
        string shownA = $"{HopAShown}@{_a}", shownB = $"{HopBShown}@{_b}";
        var output = new SignallingWriter("capturing.");
        var error = new StringWriter();
        var follow = Task.Run(() => VethTraceCommand.Run(["follow", "--hop", hopA, "--hop", hopB, "--duration", "4s"], output, error));
        Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
        LabEnvironment.Run("ip", "netns", "exec", _a, "busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.2");

        ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        string text = output.ToString();
        TerminalAssert.Safe(text + error);
        string[] lines = text.Split('\n');
        Assert.Contains($"opening {shownA}, {shownB} for 4 s", lines);
        Assert.Contains(lines, line => line.StartsWith('[') && line.Contains($"s] {shownA} ", StringComparison.Ordinal) && line.Contains($"  {shownB} ", StringComparison.Ordinal));
        // The final report: both directions of the ping, and the capture table.
        Assert.Contains($"  {shownA} → {shownB}", lines);
        Assert.Contains($"  {shownB} → {shownA}", lines);
        Assert.Contains(lines, line => line.StartsWith($"  {shownA} ", StringComparison.Ordinal) && line.EndsWith(" dropped", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Record_HostileHopsAndFileName_StatusLinesEscapedAndReplayShowsTheNamesEscaped()
    {
        string file = Path.Combine(Path.GetTempPath(), $"vt-escape-\u001b[31m-{Environment.ProcessId}.pcapng");
        _files.Add(file);
        string shownA = $"{HopAShown}@{_a}", shownB = $"{HopBShown}@{_b}";
        var output = new SignallingWriter("capturing.");
        var error = new StringWriter();
        var record = Task.Run(() => VethTraceCommand.Run(
            ["record", "--hop", $"{HopA}@/run/netns/{_a}", "--hop", $"{HopB}@/run/netns/{_b}", "-o", file, "--duration", "3s"], output, error));
        Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"record did not start capturing: {error}");
        LabEnvironment.Run("ip", "netns", "exec", _a, "busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.2");

        ExitCode code = await record.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        TerminalAssert.Safe(output.ToString() + error);
        Assert.Matches(@$"wrote \d+ packets on 2 interfaces to .*vt-escape-\\x1b\[31m-{Environment.ProcessId}\.pcapng", output.ToString());

        // The names as recorded into the pcapng's if_name, read back: escaped in the table, exact in JSON.
        var table = new StringWriter();
        var tableError = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file], table, tableError));
        TerminalAssert.Safe(table.ToString() + tableError);
        Assert.Contains($"  {shownA} → {shownB}", table.ToString().Split('\n'));
        var json = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file, "--format", "json"], json, new StringWriter()));
        TerminalAssert.Safe(json.ToString());
        var hops = json.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "hop").Select(r => (r.GetProperty("from").GetString()!, r.GetProperty("to").GetString()!));
        Assert.Contains(($"{HopA}@{_a}", $"{HopB}@{_b}"), hops);
    }

    [Fact]
    public void Follow_HostileNameThatDoesNotExist_OneEscapedLine()
    {
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["follow", "--hop", "\u001b[31mvt-nope", "--duration", "1s"], new StringWriter(), error);

        Assert.Equal(ExitCode.CaptureFailed, code);
        Assert.Equal(@"vethtrace: no interface named \x1b[31mvt-nope", error.ToString().Trim());
    }
}
