using System.Diagnostics;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// What each command may ask of the system. replay and packets read files: they work as an unprivileged user with no
/// capability at all (nobody, through util-linux setpriv) and give the same report as root. follow checks its
/// capabilities before it asks Docker anything, so a missing one is named even when Docker is not there.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PrivilegeTests : IDisposable
{
    private const int Nobody = 65534;

    private const UnixFileMode OthersMayEnter = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-nobody-").FullName;

    public PrivilegeTests()
    {
        // nobody must be able to enter the directory and read the copies in it, and no more. The CLI is copied
        // there too: the build output may sit where nobody cannot look (a clone under /root).
        File.SetUnixFileMode(_directory, OthersMayEnter);
        string cli = Path.Combine(_directory, "cli");
        Directory.CreateDirectory(cli);
        File.SetUnixFileMode(cli, OthersMayEnter);
        foreach (string file in Directory.EnumerateFiles(AppContext.BaseDirectory).Where(f => f.EndsWith(".dll", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("vethtrace.", StringComparison.Ordinal)))
        {
            string copy = Path.Combine(cli, Path.GetFileName(file));
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        CliPath = Path.Combine(cli, "vethtrace.dll");
    }

    private string CliPath { get; }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [RootFact]
    public void Replay_AsNobodyWithoutCapabilities_SameReportAsInProcess()
    {
        string capture = Copy("masquerade-multi.pcapng", readableByAll: true);
        var inProcess = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", capture, "--format", "json", "--filter", "icmp or tcp"], inProcess, new StringWriter()));

        var (exit, output, error) = RunAsNobody("replay", capture, "--format", "json", "--filter", "icmp or tcp");

        Assert.Equal("", error);
        Assert.Equal((int)ExitCode.Success, exit);
        Assert.Equal(inProcess.ToString(), output);
    }

    [RootFact]
    public void Packets_AsNobodyWithoutCapabilities_ReadsEveryPacket()
    {
        string capture = Copy("any-sll2.pcap", readableByAll: true);
        var expected = ExpectedFields.Load(ExpectedFields.PathFor("any-sll2.pcap")!);

        var (exit, output, error) = RunAsNobody("packets", capture, "--by-fingerprint");

        Assert.Equal("", error);
        Assert.Equal((int)ExitCode.Success, exit);
        Assert.Contains($"{expected.FrameCount} packets", output);
    }

    [RootFact]
    public void Replay_FileNobodyMayNotRead_OneLineWithHintExitTwo()
    {
        string capture = Copy("vxlan.pcap", readableByAll: false);

        var (exit, output, error) = RunAsNobody("replay", capture);

        Assert.Equal((int)ExitCode.BadInput, exit);
        Assert.Equal("", output);
        Assert.Equal([$"vethtrace: {capture}: permission denied", "Try 'vethtrace replay --help'."], error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [RootFact]
    public void Follow_WithoutNetRaw_NamesTheCapabilityBeforeAskingDocker()
    {
        // No Docker socket there: had follow asked Docker first, it would say so and exit 3.
        var (exit, _, error) = RunProcess("setpriv", ["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--", "dotnet", CliPath, "follow", "web"],
            ("DOCKER_HOST", "unix://" + Path.Combine(_directory, "no-docker.sock")));

        Assert.Equal((int)ExitCode.CaptureFailed, exit);
        Assert.Equal("vethtrace: missing CAP_NET_RAW (to open packet sockets); run as root or grant them (setcap, or docker's --cap-add)", error.Trim());
    }

    private string Copy(string capture, bool readableByAll)
    {
        string path = Path.Combine(_directory, capture);
        File.Copy(CaptureCorpus.PathOf(capture), path);
        File.SetUnixFileMode(path, readableByAll ? UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead : UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    /// <summary>The built CLI as uid/gid 65534, no supplementary groups, every capability set emptied.</summary>
    private (int Exit, string Output, string Error) RunAsNobody(params string[] args) =>
        RunProcess("setpriv", [$"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", "dotnet", CliPath, .. args],
            ("HOME", "/nonexistent"));

    private static (int Exit, string Output, string Error) RunProcess(string file, string[] args, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = "/", // somewhere nobody may look
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        Task<string> error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), $"{file} {string.Join(' ', args)} did not end");
        return (process.ExitCode, output, error.GetAwaiter().GetResult());
    }
}

/// <summary>
/// A fact that needs root (to switch to nobody with setpriv, or to drop capabilities it has) and util-linux setpriv.
/// The suite runs as root in CI (tests/run.sh); elsewhere these tests are skipped with the reason, not passed.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!IsRoot())
        {
            Skip = "needs root: it runs the CLI under setpriv as uid 65534 or with capabilities dropped";
        }
        else if (!File.Exists("/usr/bin/setpriv") && !File.Exists("/bin/setpriv"))
        {
            Skip = "needs util-linux setpriv";
        }
    }

    private static bool IsRoot()
    {
        try
        {
            return File.ReadLines("/proc/self/status").Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0");
        }
        catch (IOException)
        {
            return false;
        }
    }
}
