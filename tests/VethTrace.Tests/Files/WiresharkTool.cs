using System.ComponentModel;
using System.Diagnostics;

namespace VethTrace.Tests.Files;

/// <summary>
/// Runs tshark or capinfos on a file the writers wrote, as an independent reader. They are installed here
/// and in CI (tests/lab/install.sh); a missing tool fails the test with that advice, it never passes it.
/// </summary>
internal static class WiresharkTool
{
    /// <summary>Runs <paramref name="tool"/> and returns its standard output's non-empty lines; a non-zero exit fails the test.</summary>
    public static string[] Run(string tool, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(tool, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"{tool} is needed to check the capture writers independently and was not found ({e.Message}); " +
                "install it with tests/lab/install.sh (Debian packages tshark, wireshark-common)");
            throw;
        }
        using (process)
        {
            // Standard error is read concurrently, so neither pipe fills and blocks the tool.
            Task<string> error = process.StandardError.ReadToEndAsync();
            string text = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            string errorText = error.GetAwaiter().GetResult();
            Assert.True(process.ExitCode == 0, $"{tool} exited with {process.ExitCode}: {errorText}");
            return text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
    }

    /// <summary>capinfos's packet count for <paramref name="capture"/>, written to a temporary file named <paramref name="name"/>.</summary>
    public static long CountPackets(byte[] capture, string name)
    {
        string directory = Directory.CreateTempSubdirectory("vethtrace-capinfos-").FullName;
        try
        {
            string path = Path.Combine(directory, name);
            File.WriteAllBytes(path, capture);
            string line = Run("capinfos", ["-c", "-M", path]).Single(l => l.StartsWith("Number of packets:", StringComparison.Ordinal));
            return long.Parse(line["Number of packets:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>tshark's frame.time_epoch for a nanosecond timestamp: seconds, a point, nine digits.</summary>
    public static string EpochSeconds(long timestampNs) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{timestampNs / 1_000_000_000L}.{timestampNs % 1_000_000_000L:D9}");
}
