using System.Diagnostics;

namespace VethTrace.Tests.Lab;

/// <summary>
/// The live Docker lab built by tests/lab/lab-up.sh (tests/run.sh brings it up and exports VETHTRACE_LAB_ENV).
/// Its state file names the containers, their veths, the bridge and the stand-in egress. Every expected value
/// a lab test asserts comes from here or from the lab's fixed topology, never from VethTrace.
/// </summary>
public sealed class LabEnvironment
{
    public const string EnvironmentVariable = "VETHTRACE_LAB_ENV";

    private readonly Dictionary<string, string> _values;

    private LabEnvironment(Dictionary<string, string> values) => _values = values;

    public string this[string key] => _values.TryGetValue(key, out string? value)
        ? value
        : throw new KeyNotFoundException($"{key} is not in the lab state file");

    /// <summary>Loads the lab state, or fails the test with the way to bring the lab up.</summary>
    public static LabEnvironment Load()
    {
        string path = Environment.GetEnvironmentVariable(EnvironmentVariable) ?? "/run/vethtrace-lab/env";
        Assert.True(File.Exists(path),
            $"the Docker lab is not up ({path} missing): run the tests with tests/run.sh, or bring the lab up with tests/lab/lab-up.sh; " +
            "to run only the offline tests: dotnet test --filter Category!=Lab");
        var values = new Dictionary<string, string>();
        foreach (string line in File.ReadLines(path))
        {
            int equals = line.IndexOf('=');
            if (line.StartsWith('#') || equals <= 0)
            {
                continue;
            }
            values[line[..equals]] = line[(equals + 1)..].Trim('"', '\'');
        }
        return new LabEnvironment(values);
    }

    /// <summary>
    /// Runs a cleanup command to completion and ignores how it ends (the thing to remove may already be gone), so a
    /// cleanup never hides the test's own failure.
    /// </summary>
    public static void TryRun(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using Process? process = Process.Start(start);
        process?.StandardOutput.ReadToEnd();
        process?.StandardError.ReadToEnd();
        process?.WaitForExit(30_000);
    }

    /// <summary>Runs a command to completion; fails the test with its output when it fails.</summary>
    public static string Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(30_000), $"{file} {string.Join(' ', arguments)} did not finish in 30 s");
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', arguments)} exited {process.ExitCode}: {error.Result}");
        return output.Result;
    }
}

/// <summary>
/// dumpcap running on a set of interfaces, writing one pcapng; stopped with SIGINT so it flushes and closes the file.
/// <c>nsenter --net</c> execs dumpcap in place, so the PID is dumpcap's own.
/// </summary>
public sealed class DumpcapSession : IDisposable
{
    private readonly Process _process;

    public string File { get; }

    public DumpcapSession(string file, string? networkNamespace, params string[] interfaces)
    {
        File = file;
        var arguments = new List<string>();
        string program = "dumpcap";
        if (networkNamespace is not null)
        {
            program = "nsenter";
            arguments.AddRange(["--net=" + networkNamespace, "dumpcap"]);
        }
        foreach (string name in interfaces)
        {
            arguments.AddRange(["-i", name]);
        }
        arguments.AddRange(["-q", "-w", file]);
        var start = new ProcessStartInfo(program, arguments) { RedirectStandardError = true, RedirectStandardOutput = true };
        _process = Process.Start(start) ?? throw new InvalidOperationException("dumpcap did not start");
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        // dumpcap writes the section and interface blocks once every handle is open.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (DateTime.UtcNow < deadline && !_process.HasExited && !(System.IO.File.Exists(file) && new FileInfo(file).Length > 0))
        {
            Thread.Sleep(50);
        }
        if (_process.HasExited)
        {
            Assert.Fail($"dumpcap on {string.Join(", ", interfaces)} exited early with code {_process.ExitCode}");
        }
        Thread.Sleep(300);
    }

    /// <summary>Stops the capture and waits for the file to be complete.</summary>
    public void Stop()
    {
        if (_process.HasExited)
        {
            return;
        }
        LabEnvironment.Run("kill", "-INT", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(_process.WaitForExit(15_000), "dumpcap did not stop within 15 s of SIGINT");
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(5_000);
        }
        _process.Dispose();
    }
}
