using System.CommandLine;
using System.Globalization;
using VethTrace.Capture.Files;
using VethTrace.Cli.Bench;
using VethTrace.Packets;
using VethTrace.Text;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace bench [FILE|DIRECTORY]</c>: parses a capture's packets (the shipped bulk capture by default; a directory's
/// captures but the bulk one, the benchmarks' mixed set) in a loop for a few seconds with VethTrace's parser, with
/// PacketDotNet and with the floor (<see cref="ParserPasses.NaiveSpanRead"/>), side by side on the same packets in the same
/// run, and prints packets per second, time and bytes allocated per packet, and the ratios.
/// </summary>
public static class BenchCommand
{
    /// <summary>The <c>bench</c> command: its argument and options, parsed into <see cref="Settings"/>.</summary>
    public static Command Build(TextWriter output, TextWriter error)
    {
        var file = new Argument<string?>("file")
        {
            Description = "A pcap or pcapng file, or a directory: every capture in it but the bulk one, as the benchmarks' mixed set (default: the shipped bulk capture, captures/bulk-iperf3.pcap)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var format = CommonOptions.Format("table (for people) or json (JSON Lines: one bench record per parser)");
        var duration = CommonOptions.Duration("--duration", "-d",
            "How long to measure (the three share it, taking turns); a fifth of it again is spent warming up first: 3s, 500ms, or a bare number of seconds", "3s", "3s, 500ms or 3");
        var vxlanPort = CommonOptions.VxlanPort();
        var command = new Command("bench", "Parse a capture's packets in a loop with VethTrace's parser, with PacketDotNet and with the floor (the " +
            "same fields read at fixed offsets, no parser), side by side on the same packets in one run, and print Mpps, ns and bytes " +
            "allocated per packet, and the ratios.\n\nExamples:\n" +
            "  vethtrace bench\n" +
            "  vethtrace bench captures/          # the mixed set: every capture there but the bulk one\n" +
            "  vethtrace bench captures/masquerade-multi.pcapng --duration 5s --format json")
        {
            file, format, duration, vxlanPort,
        };
        command.SetAction(parseResult =>
        {
            Durations.TryParseNanoseconds(parseResult.GetValue(duration) ?? "3s", out long ns);
            var settings = new BenchCommand.Settings(
                parseResult.GetValue(file),
                parseResult.GetValue(format),
                TimeSpan.FromTicks(ns / 100),
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) });
            return (int)BenchCommand.Execute(settings, output, error);
        });
        return command;
    }

    /// <summary>
    /// Packets kept in memory: sampled evenly from a larger file (the first <see cref="MaxPacketsRead"/>), or a smaller one
    /// repeated, as the BenchmarkDotNet suite does, so both time the same packets in the same amount of memory.
    /// </summary>
    public const int PacketsInSet = 1 << 16;

    /// <summary>Packets read from the file before sampling, so a huge file does not fill memory.</summary>
    public const int MaxPacketsRead = 1 << 20;

    public sealed record Settings(string? File, ReplayCommand.Format OutputFormat, TimeSpan Duration, ParserOptions Parser);

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error)
    {
        string path;
        try
        {
            path = settings.File ?? PacketSetLoader.BulkCapturePath();
        }
        catch (DirectoryNotFoundException)
        {
            error.WriteLine($"vethtrace: bench without a FILE measures {PacketSetLoader.BulkFileName} from the repository's captures/, which was not found; give a pcap or pcapng file");
            return ExitCode.BadInput;
        }
        bool directory = settings.File is not null && Directory.Exists(path);
        if (settings.File is null && !File.Exists(path) && !File.Exists(path + ".xz"))
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {path}: not found; give a pcap or pcapng file, or expand the shipped one with captures/expand.sh"));
            return ExitCode.BadInput;
        }

        var problems = new List<CaptureFileError>();
        PacketSet loaded;
        try
        {
            if (settings.File is null)
            {
                loaded = PacketSetLoader.LoadBulk();
            }
            else if (directory)
            {
                string[] files = PacketSetLoader.MixedCapturePaths(path);
                if (files.Length == 0)
                {
                    error.WriteLine(TerminalText.Escape($"vethtrace: {path}: no pcap or pcapng file in this directory"));
                    return ExitCode.BadInput;
                }
                loaded = PacketSetLoader.LoadFiles("mixed", files, MaxPacketsRead, problems.Add);
            }
            else
            {
                loaded = PacketSetLoader.LoadFiles(Path.GetFileName(path), [path], MaxPacketsRead, problems.Add);
            }
        }
        catch (CaptureFileException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {e.Error}"));
            return ExitCode.BadInput;
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {path}: {(e is InvalidDataException ? "no packets to parse" : "not found")}"));
            return ExitCode.BadInput;
        }

        PacketSet parsable = ParserPasses.ParsableByBoth(loaded);
        if (parsable.Count == 0)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {path}: none of its {loaded.Count} packets can be parsed by PacketDotNet, so there is nothing to compare on"));
            return ExitCode.BadInput;
        }
        PacketSet set = parsable.Resample(PacketsInSet);
        var passes = new ParserPasses(set, settings.Parser);
        TimeSpan warmUp = settings.Duration / 5;
        var (ours, theirs, floor) = ParserRace.Run(passes, settings.Duration, warmUp);

        if (settings.OutputFormat == ReplayCommand.Format.Json)
        {
            WriteJson(output, ours);
            WriteJson(output, theirs);
            WriteJson(output, floor);
        }
        else
        {
            WriteTable(output, path, loaded.Count, parsable.Count, set.Count, settings.Duration, warmUp, ours, theirs, floor);
        }
        // Damage exits 2 (the set lacks what came after it); warnings are printed, and everything was read.
        return InputProblems.Report(problems, "bench", error);
    }

    private static void WriteJson(TextWriter output, ParserResult result) =>
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"type\":\"bench\",\"parser\":\"{result.Parser}\",\"packets\":{result.Packets},\"ns_per_packet\":{Math.Round(result.NanosecondsPerPacket, 2)},\"bytes_per_packet\":{Math.Round(result.BytesPerPacket, 2)},\"mpps\":{Math.Round(result.Mpps, 3)}}}"));

    private static void WriteTable(TextWriter output, string path, int read, int parsable, int inSet, TimeSpan duration, TimeSpan warmUp,
        ParserResult ours, ParserResult theirs, ParserResult floor)
    {
        string sampled = inSet < parsable ? "sampled evenly" : inSet > parsable ? "repeated" : "";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{TerminalText.Escape(path)}: {read:N0} packets read{(parsable < read ? $" ({read - parsable:N0} left out: PacketDotNet throws on them)" : "")}, " +
            $"{inSet:N0} parsed in a loop{(sampled.Length > 0 ? $" ({sampled})" : "")}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"all three read the same fields of the same packets, in passes that take turns: {warmUp.TotalSeconds:0.#} s warm-up, {duration.TotalSeconds:0.#} s measured, timed in CPU time"));
        output.WriteLine();
        output.WriteLine("parser             Mpps   ns/packet   bytes/packet     packets");
        foreach (ParserResult result in new[] { ours, theirs, floor })
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{result.Parser,-13} {result.Mpps,9:0.00} {result.NanosecondsPerPacket,11:0.0} {result.BytesPerPacket,14:0.0} {result.Packets,11:N0}"));
        }
        output.WriteLine();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"vethtrace parses {theirs.NanosecondsPerPacket / ours.NanosecondsPerPacket:0.0}× as many packets per second as PacketDotNet"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"vethtrace takes {ours.NanosecondsPerPacket / floor.NanosecondsPerPacket:0.00}× the time of the floor ({ParserRace.FloorName}: the same fields read at fixed offsets, no parser)"));
        if (floor.Checksum != ours.Checksum)
        {
            output.WriteLine("note: the floor reads fixed Ethernet/IPv4/TCP|UDP offsets, which do not fit every packet here: its time is the cost of the same reads, its values are not the packets'");
        }
        if (ours.Checksum != theirs.Checksum)
        {
            output.WriteLine("note: the two parsers read different values from some packets (run the benchmarks' `compare` to list them)");
        }
    }
}
