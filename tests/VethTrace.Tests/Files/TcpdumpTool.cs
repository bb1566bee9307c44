using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace VethTrace.Tests.Files;

/// <summary>
/// tcpdump (4.99, libpcap 1.10) as the independent reader of the tests that say "read what tcpdump reads": its
/// <c>--count</c> is how many packets libpcap hands over, damaged files included (it prints the count before its error).
/// Installed here and in CI (tests/lab/install.sh); a missing tool fails the test, it never passes it.
/// </summary>
internal static partial class TcpdumpTool
{
    /// <summary>Writes <paramref name="capture"/> to a temporary file and returns <c>tcpdump --count -r</c>'s count (0 when it printed none).</summary>
    public static long Count(byte[] capture, string name = "capture.pcap")
    {
        string directory = Directory.CreateTempSubdirectory("vethtrace-tcpdump-").FullName;
        try
        {
            string path = Path.Combine(directory, name);
            File.WriteAllBytes(path, capture);
            return CountFile(path);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    public static long CountFile(string path)
    {
        var start = new ProcessStartInfo("tcpdump", ["--count", "-r", path]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("tcpdump did not start");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"tcpdump is the independent reader here and was not found ({e.Message}); install it with tests/lab/install.sh");
            throw;
        }
        using (process)
        {
            Task<string> error = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            error.GetAwaiter().GetResult();
            Match match = CountLine().Match(output);
            return match.Success ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        }
    }

    [GeneratedRegex(@"^(\d+) packets?$", RegexOptions.Multiline)]
    private static partial Regex CountLine();
}
