using System.CommandLine;
using System.Globalization;
using VethTrace.Capture.Files;
using VethTrace.Cli.Output;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace packets FILE…</c>: every packet of the captures, parsed, with its NAT-invariant fingerprint;
/// with <c>--by-fingerprint</c>, grouped so that one packet's copies on several interfaces stand together.
/// </summary>
public static class PacketsCommand
{
    /// <summary>The <c>packets</c> command: its arguments and options, parsed into <see cref="Settings"/>.</summary>
    public static Command Build(TextWriter output, TextWriter error)
    {
        var files = CommonOptions.Files();
        var byFingerprint = new Option<bool>("--by-fingerprint", "-g")
        {
            Description = "Group packets by their NAT-invariant fingerprint: one packet's copies on several interfaces stand together, with the time since the first copy",
        };
        var count = new Option<long?>("--count", "-c")
        {
            Description = "Stop after this many packets (default: all)",
        };
        count.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long?>() is <= 0)
            {
                result.AddError("--count must be a positive number");
            }
        });
        var vxlanPort = CommonOptions.VxlanPort();
        var ifname = CommonOptions.Ifname();

        var command = new Command("packets", "Print every packet of the captures, parsed, with its NAT-invariant fingerprint.\n\nExamples:\n" +
            "  vethtrace packets captures/masquerade-multi.pcapng --by-fingerprint\n" +
            "  vethtrace packets captures/any-sll2.pcap --ifname 5=docker0 -c 20")
        {
            files, byFingerprint, count, vxlanPort, ifname,
        };
        command.SetAction(parseResult =>
        {
            var settings = new PacketsCommand.Settings(
                parseResult.GetValue(files) ?? [],
                parseResult.GetValue(byFingerprint),
                parseResult.GetValue(count) ?? long.MaxValue,
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                CommonOptions.InterfaceMap(parseResult, ifname));
            return (int)PacketsCommand.Execute(settings, output, error);
        });
        return command;
    }

    /// <summary>Grouping keeps every packet's line in memory; beyond this many it stops and says so.</summary>
    public const int MaxGroupedPackets = 1_000_000;

    public sealed record Settings(IReadOnlyList<string> Files, bool ByFingerprint, long Count, ParserOptions Parser, Dictionary<int, string> InterfaceMap);

    private readonly record struct Sighting(long TimestampNs, string Interface, string Direction, string Text, long Order);

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error)
    {
        var names = new InterfaceNames(settings.InterfaceMap);
        var shownNames = new EscapedNames();
        var groups = new Dictionary<ulong, List<Sighting>>();
        var groupOrder = new List<ulong>();
        var outcomes = new long[Enum.GetValues<ParseOutcome>().Length];
        long packets = 0;
        long shortFrames = 0;
        var exit = ExitCode.Success;
        bool full = false;
        var notOpened = new List<CaptureFileError>();

        foreach (string path in settings.Files)
        {
            CaptureFileReader reader;
            try
            {
                reader = CaptureFileReader.Open(path);
            }
            catch (CaptureFileException e)
            {
                // A file that is not there is reported with the usage hint, after the others; a damaged one now.
                notOpened.AddRange(e.Errors.Where(problem => problem.Kind == CaptureProblem.NotOpened));
                InputProblems.Report(e.Errors.Where(problem => problem.Kind != CaptureProblem.NotOpened), "packets", error);
                exit = ExitCode.BadInput;
                continue;
            }
            using (reader)
            {
                while (packets < settings.Count && !full && reader.TryReadNext(out CaptureRecord record))
                {
                    packets++;
                    PacketParser.Parse(record.Data, record.LinkType, settings.Parser, record.OriginalLength, out ParsedPacket packet);
                    outcomes[(int)packet.Outcome]++;
                    if (((packet.Outer.Flags | (packet.TunnelDepth > 0 ? packet.Inner.Flags : 0)) & PacketFlags.IpLengthBeyondFrame) != 0)
                    {
                        shortFrames++;
                    }
                    ulong fingerprint = PacketFingerprint.Compute(in packet, record.Data);
                    string interfaceName = shownNames.Of(names.Name(reader.Interfaces[record.InterfaceId], in packet));
                    string direction = Direction(record.Direction, in packet);
                    string text = PacketText.Describe(in packet);
                    // As tcpdump marks a sub-second field out of range; the time shown is the reader's stand-in (the previous packet's).
                    string invalid = record.TimestampInvalid
                        ? reader.Interfaces[record.InterfaceId].TimestampResolution == 9 ? " (invalid ns)" : " (invalid us)"
                        : "";
                    if (!settings.ByFingerprint)
                    {
                        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"{packets,6} {FormatTime(record.TimestampNs)}{invalid} {interfaceName,-12} {direction,-3} {text}  fp {fingerprint:x16}"));
                        continue;
                    }
                    text += invalid;
                    if (!groups.TryGetValue(fingerprint, out var sightings))
                    {
                        sightings = [];
                        groups[fingerprint] = sightings;
                        groupOrder.Add(fingerprint);
                    }
                    sightings.Add(new Sighting(record.TimestampNs, interfaceName, direction, text, packets));
                    full = packets >= MaxGroupedPackets;
                }
                if (InputProblems.Report([.. reader.Warnings, .. reader.Error is { } damage ? [damage] : Array.Empty<CaptureFileError>()], "packets", error) != ExitCode.Success)
                {
                    exit = ExitCode.BadInput;
                }
            }
        }

        if (settings.ByFingerprint)
        {
            WriteGroups(output, groups, groupOrder);
        }
        if (full)
        {
            error.WriteLine($"vethtrace: stopped grouping after {MaxGroupedPackets} packets (the grouped view keeps them all in memory)");
        }
        WriteSummary(output, packets, outcomes, shortFrames, settings.ByFingerprint ? groups : null);
        // Files that could not be opened at all come last, with the usage hint once.
        return InputProblems.Report(notOpened, "packets", error) == ExitCode.Success ? exit : ExitCode.BadInput;
    }

    private static void WriteGroups(TextWriter output, Dictionary<ulong, List<Sighting>> groups, List<ulong> order)
    {
        foreach (ulong fingerprint in order)
        {
            var sightings = groups[fingerprint];
            // Time order; equal timestamps keep the order they were read in.
            sightings.Sort((a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
            long first = sightings[0].TimestampNs;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"fp {fingerprint:x16}  {sightings.Count} sighting{(sightings.Count == 1 ? "" : "s")}  {FormatTime(first)}"));
            foreach (var sighting in sightings)
            {
                double deltaUs = (sighting.TimestampNs - first) / 1000.0;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {"+" + deltaUs.ToString("0.000", CultureInfo.InvariantCulture) + "µs",12} {sighting.Interface,-12} {sighting.Direction,-3} {sighting.Text}"));
            }
        }
    }

    private static void WriteSummary(TextWriter output, long packets, long[] outcomes, long shortFrames, Dictionary<ulong, List<Sighting>>? groups)
    {
        output.WriteLine();
        output.Write(string.Create(CultureInfo.InvariantCulture, $"{packets} packets"));
        if (groups is not null)
        {
            int multi = groups.Values.Count(g => g.Count > 1);
            output.Write(string.Create(CultureInfo.InvariantCulture, $", {groups.Count} distinct fingerprints, {multi} seen more than once"));
        }
        output.WriteLine();
        var notComplete = Enum.GetValues<ParseOutcome>().Where(o => o != ParseOutcome.Complete && outcomes[(int)o] > 0).ToList();
        if (notComplete.Count > 0)
        {
            output.WriteLine("not fully parsed: " + string.Join(", ", notComplete.Select(o => string.Create(CultureInfo.InvariantCulture, $"{outcomes[(int)o]} {OutcomeName(o)}"))));
        }
        if (shortFrames > 0)
        {
            // The record's original length shows that no snaplen cut these: their IP length claims bytes never sent.
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"inconsistent: {shortFrames} with an IP length beyond the frame on the wire"));
        }
    }

    private static string OutcomeName(ParseOutcome outcome) => outcome switch
    {
        ParseOutcome.UnsupportedProtocol => "not IP or a protocol not dissected",
        ParseOutcome.NonFirstFragment => "non-first fragments",
        ParseOutcome.LimitExceeded => "over a header limit",
        _ => outcome.ToString().ToLowerInvariant(),
    };

    private static string Direction(PacketDirection direction, in ParsedPacket packet) => direction switch
    {
        PacketDirection.Inbound => "in",
        PacketDirection.Outbound => "out",
        _ when packet.Outer.LinkType == LinkType.LinuxSll || packet.Outer.LinkType == LinkType.LinuxSll2 =>
            packet.Outer.PacketType == LinuxPacketType.Outgoing ? "out" : "in",
        _ => "-",
    };

    private static string FormatTime(long unixNs)
    {
        var time = DateTime.UnixEpoch.AddTicks(unixNs / 100);
        return string.Create(CultureInfo.InvariantCulture, $"{time:HH:mm:ss}.{unixNs % 1_000_000_000:D9}");
    }
}
