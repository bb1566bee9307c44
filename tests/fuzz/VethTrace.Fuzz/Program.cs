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
    private static readonly string[] TargetNames = ["parser", "pcap", "pcapng"];

    public static int Main(string[] args)
    {
        if (args is ["--seeds", var outDirectory, .. var captures])
        {
            return Seeds.WriteParserSeeds(outDirectory, captures);
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
}

/// <summary>Parser seeds from real captures: the first frames of each link type, as the parser target reads them.</summary>
internal static class Seeds
{
    private const int PerCapture = 4;
    private const int MaxFrame = 256;

    public static int WriteParserSeeds(string outDirectory, string[] captures)
    {
        Directory.CreateDirectory(outDirectory);
        int written = 0;
        foreach (string path in captures)
        {
            using CaptureFileReader reader = CaptureFileReader.Open(path);
            for (int n = 0; n < PerCapture && reader.TryReadNext(out CaptureRecord record); n++)
            {
                int linkType = Array.IndexOf(Targets.LinkTypes, record.LinkType);
                if (linkType < 0)
                {
                    continue;
                }
                ReadOnlySpan<byte> frame = record.Data[..Math.Min(record.Data.Length, MaxFrame)];
                File.WriteAllBytes(Path.Combine(outDirectory, $"{Path.GetFileName(path)}-{n}"), [(byte)linkType, 0, .. frame]);
                written++;
            }
        }
        Console.WriteLine($"{written} parser seeds in {outDirectory}");
        return written > 0 ? 0 : 1;
    }
}
