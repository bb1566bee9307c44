using SharpFuzz;
using VethTrace.Capture.Files;
using VethTrace.Packets;

namespace VethTrace.Fuzz;

/// <summary>
/// SharpFuzz targets, run by tests/fuzz/run.sh under AFL++. Each reads one input from AFL and throws
/// <see cref="FuzzFinding"/> when a property fails; any exception that escapes is a crash to AFL. Without
/// afl-fuzz around it, SharpFuzz runs the target once on standard input: that is how a finding is replayed.
/// </summary>
public static class Program
{
    private static readonly string[] TargetNames = ["parser", "pcap", "pcapng", "replay"];

    public static int Main(string[] args)
    {
        if (args is ["--seeds", var outDirectory, .. var captures])
        {
            return Seeds.WriteParserSeeds(outDirectory, captures);
        }
        if (args is ["--check", var checkedTarget, .. var files] && Targets.Find(checkedTarget) is { } check)
        {
            return Check(check, files);
        }
        // Nothing from the instrumented assemblies may run before Fuzzer.Run has set up AFL's shared memory (their
        // probes write into it, static constructors included), so the target is looked up inside the first execution.
        if (args.Length != 1 || !TargetNames.Contains(args[0]))
        {
            Console.Error.WriteLine($"usage: VethTrace.Fuzz TARGET < input   (TARGET: {string.Join(", ", TargetNames)})");
            return 1;
        }
        string name = args[0];
        // The stream is read whole: the targets work on spans, as the capture callback does.
        Fuzzer.Run(stream =>
        {
            var input = new MemoryStream();
            stream.CopyTo(input);
            Targets.Find(name)!(input.GetBuffer().AsSpan(0, (int)input.Length));
        });
        return 0;
    }

    /// <summary>Runs a target, uninstrumented, on each file given; prints the ones whose properties fail.</summary>
    private static int Check(FuzzTarget target, string[] files)
    {
        int failed = 0;
        foreach (string file in files)
        {
            try
            {
                target(File.ReadAllBytes(file));
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine($"{file}: {e.GetType().Name}: {e.Message}");
            }
        }
        Console.WriteLine($"{files.Length - failed} of {files.Length} inputs passed");
        return failed == 0 ? 0 : 1;
    }
}

/// <summary>
/// Parser seeds from real captures: the first frames of each capture whose link type the parser target can pick, as
/// the target reads them (link type byte, options byte, frame cut to 256 bytes). A capture that cannot be opened is
/// skipped (the public test captures are malformed on purpose); frames already written are not written again.
/// </summary>
internal static class Seeds
{
    private const int MaxFrame = 256;

    public static int WriteParserSeeds(string outDirectory, string[] arguments)
    {
        int perCapture = 4;
        if (arguments is ["--per", var per, .. var rest])
        {
            perCapture = int.Parse(per, System.Globalization.CultureInfo.InvariantCulture);
            arguments = rest;
        }
        Directory.CreateDirectory(outDirectory);
        var seen = new HashSet<string>();
        int written = 0, skipped = 0;
        foreach (string path in arguments)
        {
            CaptureFileReader reader;
            try
            {
                reader = CaptureFileReader.Open(path);
            }
            catch (CaptureFileException)
            {
                skipped++;
                continue;
            }
            using (reader)
            {
                for (int n = 0; n < perCapture && reader.TryReadNext(out CaptureRecord record); n++)
                {
                    int linkType = Array.IndexOf(Targets.LinkTypes, record.LinkType);
                    if (linkType < 0)
                    {
                        continue;
                    }
                    byte[] seed = [(byte)linkType, 0, .. record.Data[..Math.Min(record.Data.Length, MaxFrame)]];
                    if (seen.Add(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(seed))))
                    {
                        File.WriteAllBytes(Path.Combine(outDirectory, $"{Path.GetFileName(path)}-{n}"), seed);
                        written++;
                    }
                }
            }
        }
        Console.WriteLine($"{written} parser seeds in {outDirectory} ({skipped} captures not opened)");
        return written > 0 ? 0 : 1;
    }
}
