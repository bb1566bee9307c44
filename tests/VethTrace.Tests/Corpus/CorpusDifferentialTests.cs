using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using VethTrace.Capture.Files;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;
using Xunit.Abstractions;

namespace VethTrace.Tests.Corpus;

/// <summary>
/// The differential test of issue 12 over tcpdump's and libpcap's own test captures (../shared/corpus): for every file,
/// the packets VethTrace's reader yields against the count <c>tcpdump --count -r FILE</c> prints (tcpdump 4.99 prints
/// it on a damaged file too, before its error). VethTrace must read at least as many, or the file must be in the
/// reviewed exception list <c>corpus-exceptions.tsv</c> beside this file, with the reason. An entry that is no longer
/// needed fails the test too, so the list stays short and true.
/// </summary>
public sealed partial class CorpusDifferentialTests(ITestOutputHelper output)
{
    private static readonly string ExceptionsFile = Path.Combine(CaptureCorpus.RepositoryRoot, "tests", "VethTrace.Tests", "Corpus", "corpus-exceptions.tsv");

    private sealed record Outcome(string File, long Tcpdump, int TcpdumpExit, string TcpdumpError, long VethTrace, string? VethTraceError, IReadOnlyList<string> Warnings);

    [CorpusFact]
    public void EveryFile_VethTraceReadsAtLeastAsManyPacketsAsTcpdump()
    {
        Assert.True(PublicCorpus.IsPresent, $"CI=true and the public capture corpus is missing: expected {PublicCorpus.SourcesFile} (CI checks out ../shared beside the clone)");
        IReadOnlyList<string> files = PublicCorpus.Files();
        Assert.True(files.Count > 800, $"SOURCES.tsv lists {files.Count} files; the corpus has 873");
        Dictionary<string, string> exceptions = LoadExceptions();

        var outcomes = new Outcome[files.Count];
        var stopwatch = Stopwatch.StartNew();
        Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(2, Environment.ProcessorCount) },
            i => outcomes[i] = Compare(files[i]));
        stopwatch.Stop();

        var failures = new List<string>();
        foreach (Outcome outcome in outcomes)
        {
            bool short_ = outcome.VethTrace < outcome.Tcpdump;
            bool excepted = exceptions.ContainsKey(outcome.File);
            if (short_ && !excepted)
            {
                failures.Add($"{outcome.File}: VethTrace read {outcome.VethTrace} packets, tcpdump {outcome.Tcpdump}; VethTrace: {outcome.VethTraceError ?? "no error"}; tcpdump: {outcome.TcpdumpError}");
            }
            else if (!short_ && excepted)
            {
                failures.Add($"{outcome.File}: listed in corpus-exceptions.tsv, but VethTrace now reads {outcome.VethTrace} of tcpdump's {outcome.Tcpdump}: remove the entry");
            }
        }
        foreach (string listed in exceptions.Keys.Where(file => !files.Contains(file)))
        {
            failures.Add($"{listed}: listed in corpus-exceptions.tsv but not in the corpus");
        }

        string summary = Summarise(outcomes, stopwatch.Elapsed);
        output.WriteLine(summary);
        WriteReportIfAsked(outcomes);
        Assert.True(failures.Count == 0, $"{failures.Count} files break the rule (never fewer packets than tcpdump):\n{string.Join('\n', failures)}\n\n{summary}");
    }

    /// <summary>
    /// Per packet, for a sample of the corpus (every other file with an oddity VethTrace warned about or stopped at, and
    /// every 24th of the rest: tshark costs about half a second a file), in the link types VethTrace decodes: the timestamp, the captured length and the original
    /// length agree with tshark's frame.time_epoch, frame.cap_len and frame.len. (Wireshark strips some link types'
    /// pseudo-headers, SunATM's for one, so its lengths differ there by design.) Records VethTrace flags as having an
    /// invalid timestamp are compared on the lengths only; tshark prints its own reading of those.
    /// </summary>
    [CorpusFact]
    public void SampledFiles_TimestampsAndLengthsAgreeWithTshark()
    {
        Assert.True(PublicCorpus.IsPresent, $"CI=true and the public capture corpus is missing: expected {PublicCorpus.SourcesFile}");
        IReadOnlyList<string> files = PublicCorpus.Files();
        var sample = files.Where((file, i) => Sampled(file, picked: i % 24 == 0, oddTaken: i % 2 == 0)).ToList();
        var mismatches = new ConcurrentBag<string>();
        long compared = 0;
        Parallel.ForEach(sample, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(2, Environment.ProcessorCount) }, file =>
        {
            string path = Path.Combine(PublicCorpus.Directory, file);
            List<(string Time, int CapLen, int Len)> expected = TsharkFrames(path);
            List<(long TimestampNs, bool Invalid, int CapLen, int Len, bool Decoded)> actual = ReadRecords(path);
            int n = Math.Min(expected.Count, actual.Count);
            Interlocked.Add(ref compared, n);
            for (int i = 0; i < n; i++)
            {
                var (time, capLen, len) = expected[i];
                var record = actual[i];
                string shown = WiresharkTool.EpochSeconds(record.TimestampNs);
                if (!record.Decoded)
                {
                    continue;
                }
                if (capLen != record.CapLen || len != record.Len || (!record.Invalid && time != shown))
                {
                    mismatches.Add($"{file} frame {i + 1}: tshark {time} caplen {capLen} len {len}; VethTrace {shown}{(record.Invalid ? " (invalid)" : "")} caplen {record.CapLen} len {record.Len}");
                    break;
                }
            }
        });
        output.WriteLine($"{sample.Count} files sampled, {compared} packets compared with tshark");
        Assert.True(compared > 200, $"only {compared} packets compared");
        Assert.True(mismatches.IsEmpty, string.Join('\n', mismatches.Order(StringComparer.Ordinal)));
    }

    private static Outcome Compare(string file)
    {
        string path = Path.Combine(PublicCorpus.Directory, file);
        var (count, exit, error) = TcpdumpCount(path);
        long read = 0;
        string? damage = null;
        IReadOnlyList<string> warnings = [];
        try
        {
            using CaptureFileReader reader = CaptureFileReader.Open(path);
            while (reader.TryReadNext(out _))
            {
                read++;
            }
            damage = reader.Error?.ToString();
            warnings = [.. reader.Warnings.Select(w => w.ToString())];
        }
        catch (CaptureFileException e)
        {
            damage = e.Error.ToString();
        }
        return new Outcome(file, count, exit, error, read, damage, warnings);
    }

    /// <summary>In the sample: a file with an interface VethTrace decodes, and either picked or odd (a warning other than an undecoded link type, or damage).</summary>
    private static bool Sampled(string file, bool picked, bool oddTaken)
    {
        try
        {
            using CaptureFileReader reader = CaptureFileReader.Open(Path.Combine(PublicCorpus.Directory, file));
            while (reader.TryReadNext(out _))
            {
            }
            bool odd = reader.Error is not null || reader.Warnings.Any(w => w.Kind != CaptureProblem.Unsupported);
            return reader.Interfaces.Any(i => PacketParser.Decodes(i.LinkType)) && (picked || odd && oddTaken);
        }
        catch (CaptureFileException)
        {
            return false;
        }
    }

    private static List<(long TimestampNs, bool Invalid, int CapLen, int Len, bool Decoded)> ReadRecords(string path)
    {
        var records = new List<(long, bool, int, int, bool)>();
        try
        {
            using CaptureFileReader reader = CaptureFileReader.Open(path);
            while (reader.TryReadNext(out CaptureRecord record))
            {
                records.Add((record.TimestampNs, record.TimestampInvalid, record.Data.Length, record.OriginalLength, PacketParser.Decodes(record.LinkType)));
            }
        }
        catch (CaptureFileException)
        {
        }
        return records;
    }

    /// <summary>tcpdump's count (0 when it printed none: a file libpcap cannot open), its exit status and its error line.</summary>
    private static (long Count, int Exit, string Error) TcpdumpCount(string path)
    {
        var (exit, stdout, stderr) = RunTool("tcpdump", ["--count", "-r", path]);
        Match match = CountLine().Match(stdout);
        string error = string.Join(" | ", stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("reading from file", StringComparison.Ordinal)));
        return (match.Success ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0, exit, error.Length == 0 ? "ok" : error);
    }

    private static List<(string Time, int CapLen, int Len)> TsharkFrames(string path)
    {
        // tshark exits non-zero on a damaged file but prints the frames before the damage: those are compared.
        var (_, stdout, _) = RunTool("tshark", ["-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.len"]);
        var frames = new List<(string, int, int)>();
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] fields = line.Split('\t');
            frames.Add((fields[0], int.Parse(fields[1], CultureInfo.InvariantCulture), int.Parse(fields[2], CultureInfo.InvariantCulture)));
        }
        return frames;
    }

    private static (int Exit, string Stdout, string Stderr) RunTool(string tool, string[] arguments)
    {
        var start = new ProcessStartInfo(tool, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"{tool} is the independent reader of this test and was not found ({e.Message}); install it with tests/lab/install.sh");
            throw;
        }
        using (process)
        {
            Task<string> error = process.StandardError.ReadToEndAsync();
            string text = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, text, error.GetAwaiter().GetResult());
        }
    }

    private static Dictionary<string, string> LoadExceptions()
    {
        var exceptions = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in File.ReadLines(ExceptionsFile))
        {
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            string[] fields = line.Split('\t');
            Assert.True(fields.Length == 2 && fields[1].Trim().Length > 0, $"corpus-exceptions.tsv: '{line}' needs a file and a reason, tab-separated");
            exceptions.Add(fields[0], fields[1]);
        }
        return exceptions;
    }

    private static string Summarise(Outcome[] outcomes, TimeSpan elapsed)
    {
        long tcpdumpPackets = outcomes.Sum(o => o.Tcpdump);
        long vethTracePackets = outcomes.Sum(o => o.VethTrace);
        int full = outcomes.Count(o => o.VethTrace >= o.Tcpdump);
        int more = outcomes.Count(o => o.VethTrace > o.Tcpdump);
        int tcpdumpFailed = outcomes.Count(o => o.TcpdumpExit != 0);
        int damaged = outcomes.Count(o => o.VethTraceError is not null);
        int warned = outcomes.Count(o => o.Warnings.Count > 0);
        return string.Create(CultureInfo.InvariantCulture,
            $"{outcomes.Length} files: tcpdump {tcpdumpPackets} packets (exit non-zero on {tcpdumpFailed} files), VethTrace {vethTracePackets} packets; " +
            $"{full} files read at least as far as tcpdump ({more} further), {outcomes.Length - full} short; " +
            $"VethTrace stopped at damage in {damaged}, warned on {warned}; {elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>With VETHTRACE_CORPUS_REPORT=FILE, one TSV line per file, for before/after comparisons.</summary>
    private static void WriteReportIfAsked(Outcome[] outcomes)
    {
        string? path = Environment.GetEnvironmentVariable("VETHTRACE_CORPUS_REPORT");
        if (string.IsNullOrEmpty(path))
        {
            return;
        }
        var text = new StringBuilder("file\ttcpdump\ttcpdump_exit\tvethtrace\tvethtrace_error\twarnings\ttcpdump_error\n");
        foreach (Outcome o in outcomes)
        {
            text.Append(CultureInfo.InvariantCulture, $"{o.File}\t{o.Tcpdump}\t{o.TcpdumpExit}\t{o.VethTrace}\t{o.VethTraceError}\t{string.Join(" | ", o.Warnings)}\t{o.TcpdumpError}\n");
        }
        File.WriteAllText(path, text.ToString());
    }

    [GeneratedRegex(@"^(\d+) packets?$", RegexOptions.Multiline)]
    private static partial Regex CountLine();
}
