using System.Diagnostics;
using System.Globalization;

namespace VethTrace.Tests.Captures;

/// <summary>
/// The independent expected answers in captures/expected/&lt;capture&gt;.tsv, written by tshark
/// (tests/lab/expected.sh): one line per frame, tab-separated, with a header naming the fields. A field that
/// occurs several times in a frame (an IP header inside VXLAN, or quoted by ICMP) is a comma-separated list.
/// </summary>
public sealed class ExpectedFields
{
    private readonly Dictionary<string, int> _columns;
    private readonly List<string[]> _rows;

    private ExpectedFields(Dictionary<string, int> columns, List<string[]> rows)
    {
        _columns = columns;
        _rows = rows;
    }

    public int FrameCount => _rows.Count;

    public static string? PathFor(string capture)
    {
        // tests/lab/expected.sh writes one TSV per capture, named after the capture's file name; a per-hop file
        // (replay/per-hop/docker0.pcap) has its TSV in a directory of the same name (expected/per-hop/docker0.pcap.tsv).
        string expected = Path.Combine(CaptureCorpus.CapturesDirectory, "expected");
        string nested = Path.Combine(expected, Path.GetFileName(Path.GetDirectoryName(capture) ?? ""), Path.GetFileName(capture) + ".tsv");
        if (Path.GetFileName(Path.GetDirectoryName(capture)) is "per-hop" or "free-names" or "free-names-tied" && File.Exists(nested))
        {
            return nested;
        }
        string plain = Path.Combine(expected, Path.GetFileName(capture) + ".tsv");
        if (File.Exists(plain))
        {
            return plain;
        }
        string compressed = plain + ".xz";
        return File.Exists(compressed) ? compressed : null;
    }

    public static ExpectedFields Load(string path)
    {
        IEnumerable<string> lines = path.EndsWith(".xz", StringComparison.Ordinal) ? Decompress(path) : File.ReadLines(path);
        Dictionary<string, int>? columns = null;
        var rows = new List<string[]>();
        foreach (string line in lines)
        {
            if (columns is null)
            {
                columns = line.Split('\t').Select((name, index) => (name, index)).ToDictionary(c => c.name, c => c.index);
                continue;
            }
            if (line.Length > 0)
            {
                rows.Add(line.Split('\t'));
            }
        }
        return new ExpectedFields(columns ?? [], rows);
    }

    public bool Has(string field) => _columns.ContainsKey(field);

    /// <summary>The values of a field in a frame (1-based), in protocol order; empty when absent.</summary>
    public string[] Values(int frame, string field)
    {
        if (!_columns.TryGetValue(field, out int column))
        {
            return [];
        }
        string[] row = _rows[frame - 1];
        string cell = column < row.Length ? row[column] : "";
        return cell.Length == 0 ? [] : cell.Split(',');
    }

    /// <summary>The n-th occurrence of a numeric field (decimal, or 0x-prefixed hex), or null.</summary>
    public long? Number(int frame, string field, int occurrence = 0)
    {
        string[] values = Values(frame, field);
        if (occurrence >= values.Length)
        {
            return null;
        }
        string value = values[occurrence];
        if (value is "True" or "False")
        {
            return value == "True" ? 1 : 0;
        }
        return value.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.Parse(value.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : long.Parse(value, CultureInfo.InvariantCulture);
    }

    public string? Text(int frame, string field, int occurrence = 0)
    {
        string[] values = Values(frame, field);
        return occurrence < values.Length ? values[occurrence] : null;
    }

    private static IEnumerable<string> Decompress(string path)
    {
        var start = new ProcessStartInfo("xz", ["-dc", path]) { RedirectStandardOutput = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("xz did not start");
        string? line;
        while ((line = process.StandardOutput.ReadLine()) is not null)
        {
            yield return line;
        }
        process.WaitForExit();
    }
}
