using VethTrace.Capture.Files;

namespace VethTrace.Cli.Bench;

/// <summary>
/// Loads packet sets from capture files with <see cref="CaptureFileReader"/>, for <c>vethtrace bench</c> and the
/// BenchmarkDotNet suite (benchmarks/), which share it so both measure the same packets:
/// <list type="bullet">
/// <item><c>bulk</c>: the bulk capture (<c>captures/bulk-iperf3.pcap</c>, or the file named by
/// <see cref="CaptureVariable"/>): one long TCP stream, the common case a tracer sees.</item>
/// <item><c>mixed</c>: every other capture in <c>captures/</c> (or <see cref="CaptureDirectoryVariable"/>)
/// concatenated: several link types, UDP, ICMP, IPv6.</item>
/// </list>
/// Benchmarks run in a child process whose directory is deep inside <c>bin/</c>, so paths are found by
/// walking up to <c>VethTrace.sln</c>, never relative to the current directory.
/// </summary>
public static class PacketSetLoader
{
    /// <summary>Overrides the bulk capture's path (any pcap or pcapng file).</summary>
    public const string CaptureVariable = "VETHTRACE_BENCH_CAPTURE";

    /// <summary>Overrides the directory the mixed set is read from.</summary>
    public const string CaptureDirectoryVariable = "VETHTRACE_BENCH_CAPTURE_DIR";

    /// <summary>The bulk capture's name. It is kept compressed in the repository; captures/expand.sh expands it.</summary>
    public const string BulkFileName = "bulk-iperf3.pcap";

    private const string BulkStem = "bulk-iperf3";
    private const string SolutionFileName = "VethTrace.sln";

    /// <summary>The names <see cref="Load"/> accepts.</summary>
    public static IReadOnlyList<string> SetNames { get; } = ["bulk", "mixed"];

    public static PacketSet Load(string setName) => setName switch
    {
        "bulk" => LoadBulk(),
        "mixed" => LoadMixed(),
        _ => throw new ArgumentException($"unknown packet set '{setName}': expected {string.Join(" or ", SetNames)}", nameof(setName)),
    };

    public static PacketSet LoadBulk()
    {
        string path = BulkCapturePath();
        if (!File.Exists(path))
        {
            TryExpand(path);
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException(
                $"The bulk capture {path} does not exist. Expand it with captures/expand.sh (the repository keeps {BulkFileName}.xz), " +
                $"or set {CaptureVariable} to any pcap or pcapng file.", path);
        }
        return LoadFiles("bulk", [path]);
    }

    public static PacketSet LoadMixed()
    {
        string directory = CaptureDirectory();
        string[] files = MixedCapturePaths(directory);
        if (files.Length == 0)
        {
            throw new FileNotFoundException(
                $"The mixed set needs capture files (*.pcap, *.pcapng, optionally .gz) besides {BulkFileName} in {directory}; there are none. " +
                $"Set {CaptureDirectoryVariable} to a directory that has some.");
        }
        return LoadFiles("mixed", files);
    }

    /// <summary>The bulk capture: <see cref="CaptureVariable"/> when set, else <c>captures/bulk-iperf3.pcap</c>.</summary>
    public static string BulkCapturePath()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable(CaptureVariable);
        return !string.IsNullOrWhiteSpace(fromEnvironment)
            ? Path.GetFullPath(fromEnvironment)
            : Path.Combine(RequireRepositoryRoot(), "captures", BulkFileName);
    }

    /// <summary>
    /// A fresh clone has only <c>captures/bulk-iperf3.pcap.xz</c>: run <c>captures/expand.sh</c> (idempotent, and
    /// atomic through a temporary file) so a CI smoke run needs no extra step. Failure leaves the caller's
    /// "does not exist" message to explain.
    /// </summary>
    private static void TryExpand(string path)
    {
        string? directory = Path.GetDirectoryName(path);
        string script = Path.Combine(directory ?? ".", "expand.sh");
        if (directory is null || !File.Exists(script) || !File.Exists(path + ".xz"))
        {
            return;
        }
        Console.Error.WriteLine($"// {path} is missing: running {script}");
        try
        {
            using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("bash", [script]) { UseShellExecute = false });
            process?.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.Error.WriteLine($"// could not run {script}: {e.Message}");
        }
    }

    /// <summary>The directory of the mixed set: <see cref="CaptureDirectoryVariable"/> when set, else <c>captures/</c>.</summary>
    public static string CaptureDirectory()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable(CaptureDirectoryVariable);
        return !string.IsNullOrWhiteSpace(fromEnvironment)
            ? Path.GetFullPath(fromEnvironment)
            : Path.Combine(RequireRepositoryRoot(), "captures");
    }

    /// <summary>Every capture in <paramref name="directory"/> except the bulk one, sorted by name so the set is reproducible.</summary>
    public static string[] MixedCapturePaths(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        string bulk = Environment.GetEnvironmentVariable(CaptureVariable) is { Length: > 0 } ? BulkCapturePath() : "";
        return Directory.EnumerateFiles(directory)
            .Where(IsCaptureName)
            .Where(path => !Path.GetFileName(path).StartsWith(BulkStem, StringComparison.Ordinal))
            .Where(path => !string.Equals(Path.GetFullPath(path), bulk, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>
    /// Reads every packet of the files, in order (at most <paramref name="maxPackets"/>). A file that is damaged
    /// part-way (or still being written) contributes the packets before the damage, and the damage is reported on
    /// standard error, or to <paramref name="damaged"/> when given; so are the reader's warnings (every packet read).
    /// </summary>
    public static PacketSet LoadFiles(string name, IReadOnlyList<string> paths, int maxPackets = int.MaxValue, Action<CaptureFileError>? damaged = null)
    {
        var builder = new PacketSetBuilder(name);
        var sources = new List<string>();
        foreach (string path in paths)
        {
            int before = builder.Count;
            CaptureFileReader reader;
            try
            {
                reader = CaptureFileReader.Open(path);
            }
            catch (CaptureFileException e) when (paths.Count > 1)
            {
                // One unreadable file in captures/ (a deliberately damaged test file, say) must not sink the mixed set.
                Console.Error.WriteLine(VethTrace.Text.TerminalText.Escape($"packet set '{name}': skipped {e.Error}"));
                continue;
            }
            using (reader)
            {
                while (builder.Count < maxPackets && reader.TryReadNext(out CaptureRecord record))
                {
                    builder.Add(record.Data, record.OriginalLength, record.TimestampNs, record.LinkType);
                }
                foreach (CaptureFileError warning in reader.Warnings)
                {
                    if (damaged is not null)
                    {
                        damaged(warning);
                    }
                    else
                    {
                        Console.Error.WriteLine($"packet set '{name}': warning: {warning}");
                    }
                }
                if (reader.Error is not null && damaged is not null)
                {
                    damaged(reader.Error);
                }
                else if (reader.Error is not null)
                {
                    Console.Error.WriteLine(VethTrace.Text.TerminalText.Escape($"packet set '{name}': kept the {builder.Count - before} packets before {reader.Error}"));
                }
            }
            sources.Add(path);
        }
        PacketSet set = builder.Build(sources);
        if (set.Count == 0)
        {
            throw new InvalidDataException($"packet set '{name}' has no packets (read {string.Join(", ", paths)})");
        }
        return set;
    }

    /// <summary>The directory holding VethTrace.sln, searched upwards from the current directory, then from the executable's.</summary>
    public static string? FindRepositoryRoot()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, SolutionFileName)))
                {
                    return directory.FullName;
                }
            }
        }
        return null;
    }

    private static string RequireRepositoryRoot() =>
        FindRepositoryRoot() ?? throw new DirectoryNotFoundException(
            $"{SolutionFileName} was not found above {Directory.GetCurrentDirectory()} or {AppContext.BaseDirectory}; " +
            $"set {CaptureVariable} and {CaptureDirectoryVariable} instead.");

    private static bool IsCaptureName(string path)
    {
        string name = Path.GetFileName(path);
        if (name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            name = name[..^3]; // CaptureFileReader reads gzip transparently.
        }
        return name.EndsWith(".pcap", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".pcapng", StringComparison.OrdinalIgnoreCase);
    }
}
