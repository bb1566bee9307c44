using VethTrace.Capture.Files;
using Xunit.Abstractions;

namespace VethTrace.Tests.Files;

/// <summary>
/// Every capture committed under captures/ reads to its end without damage, and, where
/// captures/expected/&lt;file&gt;.tsv exists (tshark's fields export: a header line, then one line per frame),
/// yields as many packets as tshark saw. tshark itself is not run here: the TSV is its recorded answer.
/// </summary>
public sealed class RealCaptureTests(ITestOutputHelper output)
{
    // Wireshark's own file suffixes for pcap and pcapng; .gz is read transparently. .xz and .zst
    // (how large captures are stored) need a tool to unpack first, so they are not read here.
    private static readonly string[] CaptureSuffixes = [".pcap", ".pcapng", ".cap", ".ntar", ".pcap.gz", ".pcapng.gz", ".cap.gz"];
    private static readonly string[] PackedSuffixes = [".xz", ".zst"];

    [Fact]
    public void TryReadNext_EveryCaptureInRepository_ReadsToEndLikeTshark()
    {
        string captures = Path.Combine(FindRepositoryRoot(), "captures");
        string[] files = Directory.Exists(captures) ? Directory.GetFiles(captures) : [];
        Array.Sort(files, StringComparer.Ordinal);
        var readable = new List<string>();
        foreach (string file in files)
        {
            string name = Path.GetFileName(file);
            if (PackedSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase)))
            {
                output.WriteLine($"skipped (packed): {name}");
            }
            else if (CaptureSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase)))
            {
                readable.Add(file);
            }
            else
            {
                output.WriteLine($"skipped (not a capture suffix): {name}");
            }
        }
        if (readable.Count == 0)
        {
            // A pass only because there is nothing to read: captures/ holds no readable capture (yet).
            // A missing repository root fails instead (FindRepositoryRoot), so this cannot pass by looking in the wrong place.
            output.WriteLine($"no readable captures in {captures}");
            return;
        }

        foreach (string file in readable)
        {
            using CaptureFileReader reader = CaptureFileReader.Open(file);
            while (reader.TryReadNext(out _))
            {
            }
            Assert.True(reader.Error is null, $"{reader.Error}");

            string expected = Path.Combine(captures, "expected", Path.GetFileName(file) + ".tsv");
            if (!File.Exists(expected))
            {
                output.WriteLine($"{Path.GetFileName(file)}: {reader.PacketsRead} packets (no {Path.GetFileName(expected)} to compare)");
                continue;
            }
            int frames = File.ReadLines(expected).Count(line => line.Length > 0) - 1; // minus the header line
            Assert.True(frames == reader.PacketsRead, $"{file}: read {reader.PacketsRead} packets, tshark counted {frames} frames ({expected})");
            output.WriteLine($"{Path.GetFileName(file)}: {reader.PacketsRead} packets, as tshark");
        }
    }

    /// <summary>The directory holding VethTrace.sln, found by walking up from the test binaries.</summary>
    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "VethTrace.sln")))
            {
                return directory.FullName;
            }
        }
        Assert.Fail($"no VethTrace.sln above {AppContext.BaseDirectory}: cannot find captures/");
        return "";
    }
}
