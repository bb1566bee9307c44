using System.Runtime.CompilerServices;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Capture.Files;

/// <summary>What a trace of capture files found; <see cref="Report"/> is null when a file could not be opened.</summary>
/// <param name="Problems">The files' problems (damage, truncation, files that could not be opened), in the order found.</param>
public sealed record FileTraceResult(CorrelationReport? Report, InterfaceRegistry? Interfaces, IReadOnlyList<CaptureFileError> Problems)
{
    /// <summary>
    /// The containers of a whole-host recording (<c>vethtrace record</c> with no target), read from its interfaces'
    /// if_description (<see cref="HostInterfaceDescription"/>); null when no interface carries one.
    /// </summary>
    public ContainerOwners? Owners { get; init; }
}

/// <summary>
/// The file source: reads captures (merged by time) into a <see cref="TraceSession"/> and returns its report. This is
/// all of <c>replay</c> but the printing, and the entry for anything else that wants a replay's report in-process
/// (tests, fuzzing).
/// </summary>
public static class FileTrace
{
    /// <summary>
    /// How long the first pass holds each observation for time order. A file from one handle is in time order but for
    /// a few microseconds (12 µs in the bulk capture, 22 µs in the any-sll2 one: the kernel stamps on several CPUs), so
    /// holding for <see cref="TimeOrderer.DefaultSlackNs"/> (2 s of traffic, tens of thousands of observations) only
    /// costs memory traffic. When an observation arrives later than this behind the newest (a file written from
    /// several handles that buffered independently), the files are read again with the full slack; otherwise the
    /// correlator saw exactly the sequence the full slack gives (<see cref="TimeOrderer.Overtaken"/>).
    /// </summary>
    public const long FirstPassSlackNs = 10_000_000;

    /// <summary>
    /// Traces <paramref name="files"/>. <paramref name="interfaceMap"/> names Linux cooked v2 interface indices
    /// (<c>--ifname</c>). Never throws for a bad file: its problems are in the result.
    /// </summary>
    public static FileTraceResult Run(IReadOnlyList<string> files, TraceSessionOptions options, IReadOnlyDictionary<int, string>? interfaceMap = null)
    {
        interfaceMap ??= new Dictionary<int, string>();
        return TryRun(files, options, interfaceMap, FirstPassSlackNs) ?? TryRun(files, options, interfaceMap, TimeOrderer.DefaultSlackNs)!;
    }

    /// <summary>
    /// One pass over the files. Returns null when <paramref name="slackNs"/> is shorter than the default and an
    /// observation arrived later than it; the caller then reads again with the default.
    /// </summary>
    private static FileTraceResult? TryRun(IReadOnlyList<string> files, TraceSessionOptions options, IReadOnlyDictionary<int, string> interfaceMap, long slackNs)
    {
        MergedCaptureReader reader;
        try
        {
            reader = new MergedCaptureReader(files);
        }
        catch (CaptureFileException e)
        {
            return new FileTraceResult(null, null, e.Errors);
        }
        using (reader)
        {
            // The paths' through-host times are read only for the containers a whole-host recording names (the
            // per-container figures, the JSON path records beside them): kept only then.
            bool wholeHost = Enumerable.Range(0, reader.FileCount).Any(file => reader.File(file).Interfaces
                .Any(declared => HostInterfaceDescription.TryParse(declared.Description, out _, out _)));
            // The NAT translations in use per row are read only by follow's metrics.
            var session = new TraceSession((options.PathLatency && !wholeHost ? options with { PathLatency = false } : options) with { NatInUse = false });
            // Files written from several handles (dumpcap -i A -i B, vethtrace record) are in arrival order, not time order.
            bool rereadable = Enumerable.Range(0, reader.FileCount).All(file => reader.File(file).IsSeekable);
            if (!rereadable)
            {
                slackNs = TimeOrderer.DefaultSlackNs; // a pipe cannot be read twice: the full slack from the start
            }
            // Name the declared interfaces in file order first, so names (and eth0#2 for a second eth0) do not
            // depend on which interface happens to carry the first packet.
            ContainerOwners? owners = null;
            for (int file = 0; file < reader.FileCount; file++)
            {
                foreach (CaptureInterface declared in reader.File(file).Interfaces)
                {
                    // A whole-host recording's interface is one interface even in LINUX_SLL2: its block names it, and
                    // its description gives the role and the container.
                    if (HostInterfaceDescription.TryParse(declared.Description, out InterfaceRole role, out ContainerOwner? owner))
                    {
                        int id = session.Interfaces.IdOf(new InterfaceKey(file, declared.Id, 0), declared.Name);
                        if (session.Interfaces.RoleSourceOf(id) != RoleSource.Given)
                        {
                            session.Interfaces.Decide(id, role, RoleSource.Topology);
                        }
                        owners ??= new ContainerOwners();
                        if (owner is not null)
                        {
                            owners.Assign(id, owner);
                        }
                    }
                    else if (declared.LinkType != LinkType.LinuxSll2)
                    {
                        session.Interfaces.IdOf(new InterfaceKey(file, declared.Id, 0), declared.Name);
                    }
                }
            }
            var names = new InterfaceNames(interfaceMap);
            if (!session.RunPipelined(slackNs, stopWhenOvertaken: slackNs < TimeOrderer.DefaultSlackNs, feed => Read(reader, session.Interfaces, names, feed)))
            {
                return null;
            }
            return new FileTraceResult(session.Report(), session.Interfaces, [.. reader.Warnings, .. reader.Errors]) { Owners = owners };
        }
    }

    /// <summary>The producer, on the session's source thread: each record to the feed, on the interface it names.</summary>
    private static void Read(MergedCaptureReader reader, InterfaceRegistry interfaces, InterfaceNames names, PacketFeed feed)
    {
        var ids = new InterfaceIds(reader, interfaces, names);
        while (!feed.Stopped && reader.TryReadNext(out CaptureRecord record, out int file))
        {
            if (!feed.TryParse(record.Data, record.OriginalLength, record.LinkType, out ParsedPacket packet))
            {
                continue;
            }
            int id = ids.Of(file, record.InterfaceId, in packet);
            feed.Observe(in packet, record.Data, record.LinkType, record.TimestampNs, id, record.Direction, record.TimestampInvalid);
        }
    }

    /// <summary>
    /// The registry's id of each (file, interface[, Linux cooked v2 interface index]), asked of the registry the first
    /// time and then kept in an array per file: with the interfaces of a file interleaved packet by packet, the
    /// registry's one-key cache missed nearly every time, and each miss hashed the key and re-read the interface's
    /// description (a regular expression) and name (the profile of session 8: 8 % of the process).
    /// </summary>
    private sealed class InterfaceIds(MergedCaptureReader reader, InterfaceRegistry interfaces, InterfaceNames names)
    {
        /// <summary>Interface indices below this are kept in an array; larger ones (seldom) in a dictionary.</summary>
        private const int DenseIndices = 1 << 16;

        /// <summary>By file, by the file's interface.</summary>
        private readonly Slot[][] _slots = [.. Enumerable.Range(0, reader.FileCount).Select(_ => Array.Empty<Slot>())];
        private readonly Dictionary<InterfaceKey, int> _sparse = [];

        /// <summary>
        /// One interface of a file: its id + 1 (0: not asked yet), or, for an interface in Linux cooked v2 that no
        /// whole-host description names (its packets name the interface by index), the id + 1 by index.
        /// </summary>
        private struct Slot
        {
            public int IdPlusOne;
            public int[]? ByIndex;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, into the read loop
        public int Of(int file, int interfaceId, in ParsedPacket packet)
        {
            Slot[] slots = _slots[file];
            if ((uint)interfaceId < (uint)slots.Length)
            {
                ref Slot slot = ref slots[interfaceId];
                if (slot.IdPlusOne > 0)
                {
                    return slot.IdPlusOne - 1;
                }
                if (slot.ByIndex is { } byIndex && packet.Outer.LinkType == LinkType.LinuxSll2
                    && (uint)packet.Outer.InterfaceIndex < (uint)byIndex.Length && byIndex[packet.Outer.InterfaceIndex] > 0)
                {
                    return byIndex[packet.Outer.InterfaceIndex] - 1;
                }
            }
            return Slow(file, interfaceId, in packet);
        }

        private int Slow(int file, int interfaceId, in ParsedPacket packet)
        {
            ref Slot[] slots = ref _slots[file];
            if (interfaceId >= slots.Length)
            {
                Array.Resize(ref slots, Math.Max(interfaceId + 1, slots.Length * 2));
            }
            ref Slot slot = ref slots[interfaceId];
            CaptureInterface captured = reader.File(file).Interfaces[interfaceId];
            if (slot.ByIndex is null)
            {
                bool named = captured.LinkType == LinkType.LinuxSll2 && HostInterfaceDescription.TryParse(captured.Description, out _, out _);
                if (captured.LinkType != LinkType.LinuxSll2 || named)
                {
                    // The name does not depend on the packet (InterfaceNames.Name reads the index of Linux cooked v2 only).
                    int id = interfaces.IdOf(new InterfaceKey(file, interfaceId, 0), named ? captured.Name : names.Name(captured, in packet));
                    slot.IdPlusOne = id + 1;
                    return id;
                }
                slot.ByIndex = [];
            }
            int index = packet.Outer.LinkType == LinkType.LinuxSll2 ? packet.Outer.InterfaceIndex : 0;
            if ((uint)index >= DenseIndices)
            {
                var key = new InterfaceKey(file, interfaceId, index);
                if (!_sparse.TryGetValue(key, out int sparse))
                {
                    _sparse[key] = sparse = interfaces.IdOf(key, names.Name(captured, in packet));
                }
                return sparse;
            }
            if (index >= slot.ByIndex.Length)
            {
                Array.Resize(ref slot.ByIndex, Math.Min(DenseIndices, Math.Max(index + 1, slot.ByIndex.Length * 2)));
            }
            ref int byIndex = ref slot.ByIndex[index];
            if (byIndex == 0)
            {
                byIndex = interfaces.IdOf(new InterfaceKey(file, interfaceId, index), names.Name(captured, in packet)) + 1;
            }
            return byIndex - 1;
        }
    }
}
