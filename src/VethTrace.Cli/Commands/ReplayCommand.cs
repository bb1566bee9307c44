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
        var correlator = new Correlator(new CorrelatorOptions { WindowNs = settings.WindowNs }, interfaces.RoleOf);
        // Files written from several handles (dumpcap -i A -i B, vethtrace record) are in arrival order, not time order.
        bool rereadable = Enumerable.Range(0, reader.FileCount).All(file => reader.File(file).IsSeekable);
        if (!rereadable)
        {
            slackNs = TimeOrderer.DefaultSlackNs; // a pipe cannot be read twice: the full slack from the start
        }
        bool mayRetry = slackNs < TimeOrderer.DefaultSlackNs;
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
            // Two stages on two cores: another thread reads, parses and puts the observations in time order while this
            // one matches them.
            using var pipe = new BatchPipe<Observation>();
            var reading = new Reading(reader, settings, filter, interfaces, new TimeOrderer(new PipeSink(pipe), slackNs), mayRetry, pipe);
            var thread = new Thread(reading.Run) { IsBackground = true, Name = "replay reader" };
            thread.Start();
            var matching = new Matching(correlator);
            try
            {
                pipe.Consume(ref matching);
            }
            finally
            {
                pipe.Stop();
                thread.Join();
            }
            if (reading.Overtaken)
            {
                return false;
            }
            correlator.Complete();
            CorrelationReport report = correlator.Report() with { Packets = reading.Packets, NotIp = reading.NotIp, Tunnels = reading.Tunnels.Report() };
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

    /// <summary>
    /// The first stage, on its own thread: reads the files, parses each packet, names its interface, builds its
    /// observation and puts it in time order into the pipe. With a short first-pass slack (<paramref name="mayRetry"/>)
    /// it stops as soon as an observation comes later than the slack (<see cref="Overtaken"/>), for the caller to read
    /// again.
    /// </summary>
    private sealed class Reading(MergedCaptureReader reader, Settings settings, PacketFilter? filter, InterfaceRegistry interfaces,
        TimeOrderer orderer, bool mayRetry, BatchPipe<Observation> pipe)
    {
        private readonly InterfaceNames _names = new(settings.InterfaceMap);

        public long Packets { get; private set; }

        public long NotIp { get; private set; }

        public bool Overtaken { get; private set; }

        public TunnelTable Tunnels { get; } = new();

        public void Run()
        {
            try
            {
                Read();
                pipe.Complete();
            }
            catch (Exception e)
            {
                pipe.Complete(e);
            }
        }

        private void Read()
        {
            long packets = 0;
            while (!pipe.Stopped && reader.TryReadNext(out CaptureRecord record, out int file))
            {
                packets++;
                PacketParser.Parse(record.Data, record.LinkType, settings.Parser, record.OriginalLength, out ParsedPacket packet);
                if (!packet.Innermost.Has(LayerSet.Network))
                {
                    // ARP and other link-local frames are not routed or NATed: nothing to trace.
                    NotIp++;
                    continue;
                }
                CaptureInterface captured = reader.File(file).Interfaces[record.InterfaceId];
                int id = interfaces.IdOf((file, record.InterfaceId, packet.Outer.LinkType == LinkType.LinuxSll2 ? packet.Outer.InterfaceIndex : 0),
                    _names.Name(captured, in packet));
                Tunnels.Add(in packet, id);
                bool selected = filter is null || filter.Matches(record.Data, record.LinkType);
                var observation = Observation.From(in packet, record.Data, record.TimestampNs, id, packets, selected, record.Direction, record.TimestampInvalid);
                orderer.Add(in observation);
                if (mayRetry && orderer.Overtaken > 0)
                {
                    Overtaken = true;
                    return;
                }
            }
            orderer.Flush();
            Packets = packets;
        }
    }

    /// <summary>The time orderer's output on the reading thread: into the pipe (the correlator reads ahead in <see cref="Matching"/>, on its own thread, where its cache is).</summary>
    private sealed class PipeSink(BatchPipe<Observation> pipe) : IObservationSink
    {
        public void Add(in Observation observation) => pipe.Add(in observation);
    }

    /// <summary>
    /// The second stage: the correlator, fed a batch at a time in time order. It reads ahead for the observation
    /// <see cref="Ahead"/> places on (<see cref="Correlator.Anticipate"/>), so the lookup finds its memory in cache.
    /// </summary>
    private readonly struct Matching(Correlator correlator) : IBatchConsumer<Observation>
    {
        private const int Ahead = 8;

        public void Take(ReadOnlySpan<Observation> values)
        {
            for (int i = 0; i < values.Length; i++)
            {
                if (i + Ahead < values.Length)
                {
                    correlator.Anticipate(values[i + Ahead].Fingerprint);
                }
                correlator.Add(in values[i]);
            }
        }
    }

    /// <summary>Interface names to dense ids, and each one's place on the path (DESIGN.md's topology).</summary>
    private sealed class InterfaceRegistry(string? egress)
    {
        private readonly Dictionary<(int File, int Interface, int Index), int> _ids = [];
        private readonly HashSet<string> _taken = [];
        private readonly List<string> _names = [];
        /// <summary>Replaced, never changed: the matching thread reads it while the reading thread adds interfaces.</summary>
        private InterfaceRole[] _roles = [];
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
                InterfaceRole[] roles = [.. _roles, Classify(name)];
                Volatile.Write(ref _roles, roles);
            }
            _last = (key, id);
            return id;
        }

        public InterfaceRole RoleOf(int id) => Volatile.Read(ref _roles)[id];

        private InterfaceRole Classify(string name) => InterfaceRoles.FromName(name, egress);
    }
}
