using System.Globalization;
using System.Text;
using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Fuzz;

/// <summary>
/// The <c>replay</c> target: a small capture in, the correlation report out, through the stages
/// <c>vethtrace replay</c> runs (merged reader, parser, interface naming, time orderer, correlator, report),
/// in process, on one thread, without the console; then through <see cref="FileTrace.Run"/>, replay's own engine
/// entry (the same stages pipelined on two threads), which must give the same report. Checked: nothing escapes; every interface in the report is one
/// the capture declared; the counts add up; the percentiles are monotone and no latency is negative; the report
/// is the same when the input is replayed again with the full time-order slack (replay's first pass uses a
/// shorter one and claims the same result whenever nothing was overtaken).
/// </summary>
public static class ReplayTarget
{
    /// <summary>
    /// Files of this fuzzing process, on tmpfs: the merged reader takes paths, as replay gives it. A classic pcap file's
    /// interface is named after the file, so these two names give the container's and a veth's role.
    /// </summary>
    private static readonly string[] FilePaths = [.. new[] { "eth0.pcap", "veth0.pcap" }.Select(name => Path.Combine(Directory.CreateDirectory(
        Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"vethtrace-fuzz-replay-{Environment.ProcessId}")).FullName, name))];

    public static void Run(ReadOnlySpan<byte> input)
    {
        byte[] file = input.ToArray();
        bool gzip = file.Length >= 2 && file[0] == 0x1f && file[1] == 0x8b;
        if (!gzip && file.Length >= 4 && !Targets.IsCaptureMagic(file))
        {
            // A pcapng section header block type: multi-interface captures are what replay correlates.
            file[0] = 0x0a;
            file[1] = 0x0d;
            file[2] = 0x0d;
            file[3] = 0x0a;
        }
        // The input's length picks the settings, so a seed file is a capture as it is: the defaults, a 1 ms window
        // (journeys expire while the capture is read), a packet filter (journeys left out as unselected), an egress.
        ReplaySettings settings = (file.Length % 4) switch
        {
            1 => new ReplaySettings(WindowNs: 1_000_000, Filter: null, Egress: null),
            2 => new ReplaySettings(WindowNs: 1_000_000_000, Filter: PacketFilter.TryCreate("tcp or icmp", out _)!, Egress: null),
            3 => new ReplaySettings(WindowNs: 1_000_000_000, Filter: null, Egress: "eth0"),
            _ => new ReplaySettings(WindowNs: 1_000_000_000, Filter: null, Egress: null),
        };
        try
        {
            // A second capture magic after the first header makes two files, merged by time as replay merges the files given.
            int second = SecondCapture(file);
            string[] paths = second < 0 ? [FilePaths[0]] : FilePaths;
            if (second < 0)
            {
                File.WriteAllBytes(paths[0], file);
            }
            else
            {
                File.WriteAllBytes(paths[0], file[..second]);
                File.WriteAllBytes(paths[1], file[second..]);
            }

            // As replay runs it: a first pass with the short slack, again with the full slack when something was overtaken.
            ReplayOutcome? first = ReplayEngine.Trace(paths, settings, ReplayEngine.FirstPassSlackNs);
            if (first is null)
            {
                return; // not opened: replay reports the error and exits 2
            }
            if (first.Overtaken)
            {
                first = ReplayEngine.Trace(paths, settings, TimeOrderer.DefaultSlackNs)!;
                if (first.Overtaken)
                {
                    throw new FuzzFinding("overtaken with the full slack, which must not stop the pass");
                }
            }
            Check(first, settings);
            // The engine replay itself runs (FileTrace: the same stages, pipelined on two threads, in Core and Capture)
            // gives the same report, so the checks above hold for it too.
            var options = new TraceSessionOptions { WindowNs = settings.WindowNs, Egress = settings.Egress, Filter = settings.Filter };
            FileTraceResult engine = FileTrace.Run(paths, options);
            if (engine.Report is null || engine.Interfaces is null)
            {
                throw new FuzzFinding($"FileTrace could not open what the merged reader opened: {string.Join("; ", engine.Problems)}");
            }
            string ours = Describe(first.Report, first.Names), theirs = Describe(engine.Report, engine.Interfaces.Names);
            if (ours != theirs)
            {
                throw new FuzzFinding($"FileTrace's report differs from the stages run one by one:\n{ours}\n---\n{theirs}");
            }
            // Deterministic, and the short first pass saw what the full slack gives.
            ReplayOutcome again = ReplayEngine.Trace(paths, settings, TimeOrderer.DefaultSlackNs)
                ?? throw new FuzzFinding("opened once, not the second time");
            string expected = Describe(first), actual = Describe(again);
            if (expected != actual)
            {
                throw new FuzzFinding($"two replays of one input differ:\n{expected}\n---\n{actual}");
            }
            if (Environment.GetEnvironmentVariable("VETHTRACE_FUZZ_PRINT") == "1")
            {
                Console.Write(expected); // Program --check: what the target saw, to compare with vethtrace replay
            }
        }
        finally
        {
            settings.Filter?.Dispose(); // one per execution: the filter keeps a program for every link type it meets
        }
    }

    /// <summary>Where a second capture starts: a pcap magic (pcapng sections may follow each other in one file) on a 4-byte boundary after the first 24 bytes, or -1.</summary>
    private static int SecondCapture(byte[] file)
    {
        for (int offset = 24; offset + 4 <= file.Length; offset += 4)
        {
            uint magic = BitConverter.ToUInt32(file, offset);
            if (magic is 0xA1B2C3D4 or 0xD4C3B2A1 or 0xA1B23C4D or 0x4D3CB2A1)
            {
                return offset;
            }
        }
        return -1;
    }

    private static void Check(ReplayOutcome outcome, ReplaySettings settings)
    {
        CorrelationReport report = outcome.Report;
        int interfaces = outcome.Names.Count;
        void InRange(int id, string what)
        {
            if ((uint)id >= (uint)interfaces)
            {
                throw new FuzzFinding($"{what} on interface {id} of {interfaces}");
            }
        }
        // Every interface named is one the file declared (an SLL2 index within a declared interface of that link type).
        foreach ((int file, int declared, int index) in outcome.Keys)
        {
            if ((uint)file >= (uint)outcome.Declared.Count || (uint)declared >= (uint)outcome.Declared[file])
            {
                throw new FuzzFinding($"an interface ({file}, {declared}, {index}) the captures did not declare ({string.Join(", ", outcome.Declared)} declared)");
            }
        }
        if (outcome.Keys.Count != interfaces)
        {
            throw new FuzzFinding($"{outcome.Keys.Count} interfaces, {interfaces} names");
        }
        if (outcome.Names.Distinct().Count() != interfaces)
        {
            throw new FuzzFinding("two interfaces with one name");
        }

        // Counts: every packet read is not IP or an observation; every selected journey's copies are its path's length.
        if (report.Packets != outcome.PacketsRead)
        {
            throw new FuzzFinding($"{report.Packets} packets in the report, {outcome.PacketsRead} read");
        }
        if (report.Packets != report.NotIp + outcome.Observations)
        {
            throw new FuzzFinding($"{report.Packets} packets != {report.NotIp} not IP + {outcome.Observations} observations");
        }
        long multiHop = 0, copies = 0, steps = 0;
        foreach (PathStats path in report.Paths)
        {
            if (path.Interfaces.Count < 2 || path.Journeys <= 0)
            {
                throw new FuzzFinding($"a path of {path.Interfaces.Count} interfaces and {path.Journeys} journeys");
            }
            if (path.Interfaces.Distinct().Count() != path.Interfaces.Count)
            {
                throw new FuzzFinding($"a path through one interface twice: {string.Join(" > ", path.Interfaces)}");
            }
            foreach (int id in path.Interfaces)
            {
                InRange(id, "a path");
            }
            multiHop += path.Journeys;
            copies += path.Journeys * path.Interfaces.Count;
            steps += path.Journeys * (path.Interfaces.Count - 1);
        }
        if (multiHop != report.MultiHopJourneys || report.MultiHopJourneys > report.Journeys)
        {
            throw new FuzzFinding($"paths hold {multiHop} journeys; {report.MultiHopJourneys} multi-hop of {report.Journeys}");
        }
        copies += report.Journeys - report.MultiHopJourneys;
        copies += report.BridgeSideCopies; // bridge copies of bridged frames, set aside beside their journeys
        long unselectedCopies = outcome.Observations - copies;
        if (settings.Filter is null ? unselectedCopies != 0 || report.Unselected != 0 : unselectedCopies < report.Unselected)
        {
            throw new FuzzFinding($"{outcome.Observations} observations, {copies} copies in {report.Journeys} journeys, {report.Unselected} unselected");
        }
        if (report.Complete < 0 || report.Lost < 0 || report.Complete + report.Lost != report.Journeys)
        {
            throw new FuzzFinding($"{report.Complete} complete + {report.Lost} lost != {report.Journeys} journeys");
        }
        if (report.Losses.Sum(l => l.Packets) != report.Lost || report.Losses.Any(l => l.Packets <= 0))
        {
            throw new FuzzFinding($"losses add up to {report.Losses.Sum(l => l.Packets)}, not {report.Lost}");
        }
        foreach (LossReport loss in report.Losses)
        {
            InRange(loss.LastSeen, "a loss");
        }
        if (report.MatchedBySequenceRange < 0 || report.MatchedBySequenceRange > report.Journeys)
        {
            throw new FuzzFinding($"{report.MatchedBySequenceRange} matched by sequence range of {report.Journeys}");
        }
        foreach (SegmentationReport segmentation in report.Segmentation)
        {
            InRange(segmentation.From, "a segmentation");
            InRange(segmentation.To, "a segmentation");
            if (segmentation.Journeys <= 0)
            {
                throw new FuzzFinding("a segmentation edge of no journeys");
            }
        }
        foreach (TunnelReport tunnel in report.Tunnels)
        {
            InRange(tunnel.Interface, "a tunnel");
        }
        if (report.Nat.Any(n => n.Packets <= 0))
        {
            throw new FuzzFinding("a NAT mapping of no packets");
        }

        // Latency: one sample per step of a multi-hop journey, none negative, percentiles in order.
        long samples = 0;
        foreach (HopReport hop in report.Hops)
        {
            InRange(hop.From, "a hop");
            InRange(hop.To, "a hop");
            if (hop.From == hop.To)
            {
                throw new FuzzFinding($"a hop from interface {hop.From} to itself");
            }
            LatencyHistogram h = hop.Histogram;
            long p50 = h.Percentile(50), p90 = h.Percentile(90), p99 = h.Percentile(99);
            if (h.Count <= 0 || h.Min < 0 || p50 < 0 || p50 > p90 || p90 > p99 || p99 > h.Max || h.Zeros > h.Count
                || h.Zeros > 0 != (h.Min == 0))
            {
                throw new FuzzFinding($"hop {hop.From}>{hop.To}: count {h.Count}, min {h.Min}, p50 {p50}, p90 {p90}, p99 {p99}, max {h.Max}, zeros {h.Zeros}");
            }
            samples += h.Count;
        }
        // A step to or from a copy whose capture time was invalid gives no latency.
        if (outcome.InvalidTimestamps == 0 ? samples != steps : samples > steps)
        {
            throw new FuzzFinding($"{samples} latency samples for {steps} steps of multi-hop journeys ({outcome.InvalidTimestamps} invalid timestamps)");
        }
    }

    /// <summary>Everything the report says, as text, to compare two runs.</summary>
    private static string Describe(ReplayOutcome outcome) =>
        string.Create(CultureInfo.InvariantCulture, $"{outcome.Observations} observations, {outcome.InvalidTimestamps} invalid timestamps\n")
        + Describe(outcome.Report, outcome.Names);

    private static string Describe(CorrelationReport r, IReadOnlyList<string> names)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{r.Packets} {r.NotIp} {r.Journeys} {r.MultiHopJourneys} {r.Complete} {r.Lost} {r.Unselected} {r.MatchedBySequenceRange}");
        text.AppendLine(string.Join(",", names));
        foreach (HopReport hop in r.Hops)
        {
            LatencyHistogram h = hop.Histogram;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"hop {hop.From}>{hop.To} {h.Count} {h.Min} {h.Percentile(50)} {h.Percentile(90)} {h.Percentile(99)} {h.Max} {h.Zeros}");
        }
        foreach (PathStats path in r.Paths)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"path {string.Join(">", path.Interfaces)} {path.Journeys}");
        }
        foreach (NatMapping nat in r.Nat)
        {
            text.AppendLine(nat.ToString());
        }
        foreach (LossReport loss in r.Losses)
        {
            text.AppendLine(loss.ToString());
        }
        foreach (SegmentationReport segmentation in r.Segmentation)
        {
            text.AppendLine(segmentation.ToString());
        }
        foreach (TunnelReport tunnel in r.Tunnels)
        {
            text.AppendLine(tunnel.ToString());
        }
        return text.ToString();
    }
}

public sealed record ReplaySettings(long WindowNs, PacketFilter? Filter, string? Egress);

/// <summary>What one pass found: the report, the interfaces it named, and what the check needs besides.</summary>
public sealed record ReplayOutcome(
    CorrelationReport Report,
    IReadOnlyList<string> Names,
    IReadOnlyList<(int File, int Interface, int Index)> Keys,
    IReadOnlyList<int> Declared,
    long PacketsRead,
    long Observations,
    long InvalidTimestamps,
    bool Overtaken);

/// <summary>
/// The replay engine as src/VethTrace.Cli/Commands/ReplayCommand.cs drives it (TryTrace and its Reading stage), on
/// one thread: the time orderer feeds the correlator directly instead of through replay's pipe to a second thread,
/// which hands the correlator the same sequence of observations.
/// </summary>
public static class ReplayEngine
{
    /// <summary>ReplayCommand.FirstPassSlackNs.</summary>
    public const long FirstPassSlackNs = 10_000_000;

    /// <summary>One pass; null when the file cannot be opened.</summary>
    public static ReplayOutcome? Trace(string[] paths, ReplaySettings settings, long slackNs)
    {
        MergedCaptureReader reader;
        try
        {
            reader = new MergedCaptureReader(paths);
        }
        catch (CaptureFileException)
        {
            return null;
        }
        using (reader)
        {
            var interfaces = new Registry(settings.Egress);
            var correlator = new Correlator(new CorrelatorOptions { WindowNs = settings.WindowNs }, interfaces.RoleOf);
            var orderer = new TimeOrderer(correlator, slackNs);
            bool mayRetry = slackNs < TimeOrderer.DefaultSlackNs;
            var declared = new int[reader.FileCount];
            for (int file = 0; file < reader.FileCount; file++)
            {
                foreach (CaptureInterface captureInterface in reader.File(file).Interfaces)
                {
                    if (captureInterface.LinkType != LinkType.LinuxSll2)
                    {
                        interfaces.IdOf((file, captureInterface.Id, 0), captureInterface.Name);
                    }
                }
            }
            var tunnels = new TunnelTable();
            long packets = 0, notIp = 0, invalidTimestamps = 0;
            while (reader.TryReadNext(out CaptureRecord record, out int file))
            {
                packets++;
                PacketParser.Parse(record.Data, record.LinkType, ParserOptions.Default, record.OriginalLength, out ParsedPacket packet);
                if (!packet.Innermost.Has(LayerSet.Network))
                {
                    notIp++;
                    continue;
                }
                CaptureInterface captured = reader.File(file).Interfaces[record.InterfaceId];
                bool sll2 = packet.Outer.LinkType == LinkType.LinuxSll2;
                int index = sll2 ? packet.Outer.InterfaceIndex : 0;
                // InterfaceNames.Name: an SLL2 packet by its interface index, anything else by the capture's interface.
                string name = sll2 && index > 0 ? "if" + index.ToString(CultureInfo.InvariantCulture) : captured.Name;
                int id = interfaces.IdOf((file, record.InterfaceId, index), name);
                tunnels.Add(in packet, id);
                bool selected = settings.Filter is null || settings.Filter.Matches(record.Data, record.OriginalLength, record.LinkType);
                var observation = Observation.From(in packet, record.Data, record.TimestampNs, id, packets, selected, record.Direction, record.TimestampInvalid);
                invalidTimestamps += record.TimestampInvalid ? 1 : 0;
                orderer.Add(in observation);
                if (mayRetry && orderer.Overtaken > 0)
                {
                    return new ReplayOutcome(correlator.Report(), interfaces.Names, interfaces.Keys, declared, packets, correlator.Observations, invalidTimestamps, Overtaken: true);
                }
            }
            orderer.Flush();
            correlator.Complete();
            long read = 0;
            for (int file = 0; file < reader.FileCount; file++)
            {
                declared[file] = reader.File(file).Interfaces.Count;
                read += reader.File(file).PacketsRead;
            }
            if (read != packets)
            {
                throw new FuzzFinding($"the merged reader returned {packets} packets, the files' readers count {read}");
            }
            CorrelationReport report = correlator.Report() with { Packets = packets, NotIp = notIp, Tunnels = tunnels.Report() };
            return new ReplayOutcome(report, interfaces.Names, interfaces.Keys, declared, packets, correlator.Observations, invalidTimestamps, Overtaken: false);
        }
    }

    /// <summary>ReplayCommand's InterfaceRegistry: interface keys to dense ids, names made unique (eth0#2), roles from names.</summary>
    private sealed class Registry(string? egress)
    {
        private readonly Dictionary<(int File, int Interface, int Index), int> _ids = [];
        private readonly HashSet<string> _taken = [];
        private readonly List<string> _names = [];
        private readonly List<(int, int, int)> _keys = [];
        private readonly List<InterfaceRole> _roles = [];

        public IReadOnlyList<string> Names => _names;

        public IReadOnlyList<(int File, int Interface, int Index)> Keys => _keys;

        public int IdOf((int File, int Interface, int Index) key, string name)
        {
            if (!_ids.TryGetValue(key, out int id))
            {
                id = _names.Count;
                _ids[key] = id;
                string shown = name;
                for (int n = 2; !_taken.Add(shown); n++)
                {
                    shown = string.Create(CultureInfo.InvariantCulture, $"{name}#{n}");
                }
                _names.Add(shown);
                _keys.Add(key);
                _roles.Add(InterfaceRoles.FromName(name, egress));
            }
            return id;
        }

        public InterfaceRole RoleOf(int id) => _roles[id];
    }
}
