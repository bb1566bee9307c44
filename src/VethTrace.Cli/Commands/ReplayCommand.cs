using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Cli.Output;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace replay FILE…</c>: reads captures (merged by time), matches every packet's copies across the hops
/// into journeys, and reports the paths, per-hop latency, the NAT mappings and the losses.
/// </summary>
public static class ReplayCommand
{
    public enum Format
    {
        Table,
        Json,
    }

    public sealed record Settings(
        IReadOnlyList<string> Files,
        Format OutputFormat,
        long WindowNs,
        string? Egress,
        string? Filter,
        ParserOptions Parser,
        Dictionary<int, string> InterfaceMap);

    /// <summary>
    /// How long the first pass holds each observation for time order. A file from one handle is in time order but for
    /// a few microseconds (12 µs in the bulk capture, 22 µs in the any-sll2 one: the kernel stamps on several CPUs), so
    /// holding for <see cref="TimeOrderer.DefaultSlackNs"/> (2 s of traffic, tens of thousands of observations) only
    /// costs memory traffic. When an observation arrives later than this behind the newest (a file written from
    /// several handles that buffered independently), the files are read again with the full slack; otherwise the
    /// correlator saw exactly the sequence the full slack gives (<see cref="TimeOrderer.Overtaken"/>).
    /// </summary>
    public const long FirstPassSlackNs = 10_000_000;

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error)
    {
        using PacketFilter? filter = settings.Filter is null ? null : PacketFilter.TryCreate(settings.Filter, out _);
        if (TryTrace(settings, filter, FirstPassSlackNs, output, error, out ExitCode code))
        {
            return code;
        }
        TryTrace(settings, filter, TimeOrderer.DefaultSlackNs, output, error, out code);
        return code;
    }

    /// <summary>
    /// One pass over the files. Returns false, having written nothing, when <paramref name="slackNs"/> is shorter than
    /// the default and an observation arrived later than it; the caller then reads again with the default.
    /// </summary>
    private static bool TryTrace(Settings settings, PacketFilter? filter, long slackNs, TextWriter output, TextWriter error, out ExitCode code)
    {
        code = ExitCode.Success;
        MergedCaptureReader reader;
        try
        {
            reader = new MergedCaptureReader(settings.Files);
        }
        catch (CaptureFileException e)
        {
            code = InputProblems.Report(e.Errors, "replay", error);
            return true;
        }

        var interfaces = new InterfaceRegistry(settings.Egress);
        var names = new InterfaceNames(settings.InterfaceMap);
        var correlator = new Correlator(new CorrelatorOptions { WindowNs = settings.WindowNs }, interfaces.RoleOf);
        // Files written from several handles (dumpcap -i A -i B, vethtrace record) are in arrival order, not time order.
        bool rereadable = Enumerable.Range(0, reader.FileCount).All(file => reader.File(file).IsSeekable);
        if (!rereadable)
        {
            slackNs = TimeOrderer.DefaultSlackNs; // a pipe cannot be read twice: the full slack from the start
        }
        var orderer = new TimeOrderer(correlator, slackNs);
        bool mayRetry = slackNs < TimeOrderer.DefaultSlackNs;
        var tunnels = new TunnelTable();
        long packets = 0;
        long notIp = 0;
        using (reader)
        {
            // Name the declared interfaces in file order first, so names (and eth0#2 for a second eth0) do not
            // depend on which interface happens to carry the first packet.
            for (int file = 0; file < reader.FileCount; file++)
            {
                foreach (CaptureInterface declared in reader.File(file).Interfaces)
                {
                    if (declared.LinkType != LinkType.LinuxSll2)
                    {
                        interfaces.IdOf((file, declared.Id, 0), declared.Name);
                    }
                }
            }
            while (reader.TryReadNext(out CaptureRecord record, out int file))
            {
                packets++;
                PacketParser.Parse(record.Data, record.LinkType, settings.Parser, out ParsedPacket packet);
                if (!packet.Innermost.Has(LayerSet.Network))
                {
                    // ARP and other link-local frames are not routed or NATed: nothing to trace.
                    notIp++;
                    continue;
                }
                CaptureInterface captured = reader.File(file).Interfaces[record.InterfaceId];
                int id = interfaces.IdOf((file, record.InterfaceId, packet.Outer.LinkType == LinkType.LinuxSll2 ? packet.Outer.InterfaceIndex : 0),
                    names.Name(captured, in packet));
                tunnels.Add(in packet, id);
                bool selected = filter is null || filter.Matches(record.Data, record.LinkType);
                var observation = Observation.From(in packet, record.Data, record.TimestampNs, id, packets, selected, record.Direction);
                orderer.Add(in observation);
                if (mayRetry && orderer.Overtaken > 0)
                {
                    return false;
                }
            }
            orderer.Flush();
            correlator.Complete();
            CorrelationReport report = correlator.Report() with { Packets = packets, NotIp = notIp, Tunnels = tunnels.Report() };
            if (settings.OutputFormat == Format.Json)
            {
                ReplayJson.Write(output, report, interfaces.Names);
            }
            else
            {
                ReplayTable.Write(output, report, interfaces.Names, interfaces.RoleOf);
            }
            code = InputProblems.Report([.. reader.Warnings, .. reader.Errors], "replay", error);
            return true;
        }
    }

    /// <summary>Interface names to dense ids, and each one's place on the path (DESIGN.md's topology).</summary>
    private sealed class InterfaceRegistry(string? egress)
    {
        private readonly Dictionary<(int File, int Interface, int Index), int> _ids = [];
        private readonly HashSet<string> _taken = [];
        private readonly List<string> _names = [];
        private readonly List<InterfaceRole> _roles = [];
        /// <summary>The last key asked for and its id: packets come in runs from one interface, so most lookups end here.</summary>
        private ((int File, int Interface, int Index) Key, int Id) _last = ((-1, -1, -1), -1);

        public IReadOnlyList<string> Names => _names;

        /// <summary>
        /// The id of an interface: a file's interface, or for Linux cooked v2 an interface index within it. Two
        /// interfaces with one name (two containers' eth0 in one capture) stay apart, the second shown as eth0#2.
        /// </summary>
        public int IdOf((int File, int Interface, int Index) key, string name)
        {
            if (_last.Key == key)
            {
                return _last.Id;
            }
            if (!_ids.TryGetValue(key, out int id))
            {
                id = _names.Count;
                _ids[key] = id;
                string shown = name;
                for (int n = 2; !_taken.Add(shown); n++)
                {
                    shown = $"{name}#{n}";
                }
                _names.Add(shown);
                _roles.Add(Classify(name));
            }
            _last = (key, id);
            return id;
        }

        public InterfaceRole RoleOf(int id) => _roles[id];

        private InterfaceRole Classify(string name) => InterfaceRoles.FromName(name, egress);
    }
}
