using System.Runtime.InteropServices;

namespace VethTrace.Tracing;

/// <summary>
/// The TCP data of the last two windows, for segmentation matches (docs/DESIGN.md, "Segmentation (GRO and GSO)"): GRO coalesces
/// segments into one super-packet and GSO cuts one into segments, so one hop's packet is several packets on the next,
/// with other fingerprints but the same segment key (<see cref="Observation.SegmentKeyOf"/>) and overlapping sequence
/// ranges. Entries sit in a ring in arrival order, each key's entries chained backwards through it from its last, found
/// in an <see cref="OpenJourneyTable"/>: an entry leaves the ring and its key's chain by itself when the ring's head
/// passes it, so nothing is looked up or removed as entries expire (a dictionary of (first, last) per key cost two
/// lookups and a removal per TCP data packet, 4 % of replay's samples).
/// </summary>
internal sealed class SegmentIndex(long windowNs)
{
    private readonly long _windowNs = windowNs;
    private readonly SequenceRing<SegmentEntry> _segmentEntries = new();
    /// <summary>The last entry of each segment key, as its number in <see cref="_segmentEntries"/>; made when first needed.</summary>
    private OpenJourneyTable? _lastOfKey;
    /// <summary>A key's chain, walked backwards, to be read in arrival order.</summary>
    private readonly List<long> _chain = [];
    /// <summary>
    /// The entries below this number are chained (or have left the ring). Entries are chained when a search needs them
    /// (<see cref="CatchUp"/>), not as they arrive: a search is made only for a journey that missed an interface that
    /// carried TCP data, and on a capture whose journeys visit every such interface (per-interface captures of one path)
    /// there is none, where chaining each TCP data packet on arrival took a probe of the key table (4 % of the matching
    /// thread). Chained later, a chain holds the same live entries in the same order (below).
    /// </summary>
    private long _chainedTo;
    /// <summary>Every interface that has carried TCP data, in order of first appearance: few, so a list.</summary>
    private readonly List<int> _dataInterfaces = [];
    /// <summary>The ids below 64 in <see cref="_dataInterfaces"/>, as bits: the test on every TCP data packet.</summary>
    private ulong _dataInterfacesBelow64;

    /// <summary>How far ahead of the entry it chains <see cref="CatchUp"/> asks for the key table to be fetched.</summary>
    private const int PrefetchAhead = 16;

    /// <summary>The ring's memory outside the GC heap.</summary>
    public long Bytes => _segmentEntries.Bytes + (_lastOfKey?.Bytes ?? 0);

    /// <summary>Whether <paramref name="interfaceId"/> is the one interface that has carried TCP data so far.</summary>
    public bool IsOnlyDataInterface(int interfaceId) => _dataInterfaces.Count == 1 && _dataInterfaces[0] == interfaceId;

    /// <summary>
    /// Adds to <paramref name="into"/> the TCP data, within a window of the journey's start, on interfaces the journey
    /// (<paramref name="sightings"/>, its first a TCP data packet seen at <paramref name="timestampNs"/> with
    /// <paramref name="fingerprint"/>, <paramref name="segmentKey"/> and the sequence range [<paramref name="sequence"/>,
    /// <paramref name="sequenceEnd"/>)) did not visit, that overlaps its sequence range under its segment key: where its
    /// bytes went on as other packets. One per interface, in arrival order, without roles; false when none.
    /// </summary>
    public bool FindContinuations(long timestampNs, ulong fingerprint, ulong segmentKey, uint sequence, uint sequenceEnd,
        ReadOnlySpan<Sighting> sightings, List<Sighting> into)
    {
        if (VisitsAll(sightings, _dataInterfaces))
        {
            // A candidate must be on an interface the journey did not visit. When it visited every interface that ever
            // carried TCP data (always, in a capture of one interface), none can be: skip the walk over the candidates.
            return false;
        }
        CatchUp();
        if (!_lastOfKey!.TryGet(segmentKey, _segmentEntries.Head, out long last))
        {
            return false;
        }
        if ((_segmentEntries[last].Interfaces & ~InterfaceBits(sightings)) == 0)
        {
            // Every entry of the key's chain is on an interface the journey visited: none is a candidate. Whole-host
            // follow's bulk stream walked chains of dozens for each journey once other containers' veths carried data.
            return false;
        }
        // Plain loops, no lambdas: a lambda capturing the loop variable allocated a closure (holding a copy of the
        // observation) on every iteration, dozens per TCP packet of a bulk stream.
        _chain.Clear();
        for (long number = last; number >= _segmentEntries.Head; number = _segmentEntries[number].PreviousSameKey(number))
        {
            _chain.Add(number);
        }
        for (int i = _chain.Count - 1; i >= 0; i--)
        {
            ref SegmentEntry candidate = ref _segmentEntries[_chain[i]];
            if (Math.Abs(candidate.TimestampNs - timestampNs) > _windowNs || candidate.Fingerprint == fingerprint
                || !Overlaps(sequence, sequenceEnd, in candidate) || Visits(sightings, candidate.Interface)
                || Visits(CollectionsMarshal.AsSpan(into), candidate.Interface))
            {
                continue;
            }
            // What the extended path needs of a candidate: its time, order and interface.
            into.Add(new Sighting { TimestampNs = candidate.TimestampNs, Order = candidate.Order, Slot = -1, Interface = candidate.Interface });
        }
        return into.Count > 0;
    }

    private static bool Visits(ReadOnlySpan<Sighting> sightings, int interfaceId)
    {
        foreach (ref readonly Sighting sighting in sightings)
        {
            if (sighting.Interface == interfaceId)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// An interface's bit in <see cref="SegmentEntry.Interfaces"/>: ids from 31 on share the last bit, never a journey's (a
    /// chain with such an entry is walked: the bits only spare walks that can find nothing).
    /// </summary>
    private static uint InterfaceBit(int interfaceId) => (uint)interfaceId < 31 ? 1U << interfaceId : 1U << 31;

    /// <summary>The bits of the interfaces a journey visited (those below 31: the last bit stays clear, so it never excuses a walk).</summary>
    private static uint InterfaceBits(ReadOnlySpan<Sighting> sightings)
    {
        uint bits = 0;
        foreach (ref readonly Sighting sighting in sightings)
        {
            bits |= InterfaceBit(sighting.Interface) & ~(1U << 31);
        }
        return bits;
    }

    private static bool VisitsAll(ReadOnlySpan<Sighting> sightings, List<int> interfaceIds)
    {
        foreach (int interfaceId in CollectionsMarshal.AsSpan(interfaceIds))
        {
            if (!Visits(sightings, interfaceId))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Whether two sequence ranges share a byte, modulo 2^32 (RFC 9293 section 3.4 comparisons).</summary>
    private static bool Overlaps(uint sequence, uint sequenceEnd, in SegmentEntry b) =>
        (int)(sequence - b.SequenceEnd) < 0 && (int)(b.TcpSequence - sequenceEnd) < 0;

    /// <summary>
    /// Indexes a TCP data packet (in time order), forgetting what is older than two windows every
    /// <see cref="ForgetEvery"/> packets.
    /// </summary>
    public void Add(in Observation observation)
    {
        long timestampNs = observation.TimestampNs;
        if (timestampNs < _newestNs)
        {
            // Older than an entry before it (follow: observations released late). Until it leaves the ring, forget on every
            // packet, as the ring always did (a search for a journey that started late may reach back that far); first
            // forget what the packets so far would have made it forget (entries in time order: their newest time decides).
            if (_segmentEntries.Head > _lastUnordered)
            {
                Forget(_newestNs - 2 * _windowNs, inTimeOrder: true);
            }
            _lastUnordered = _segmentEntries.Tail;
        }
        if (_segmentEntries.Head <= _lastUnordered)
        {
            Forget(timestampNs - 2 * _windowNs, inTimeOrder: false);
        }
        else if ((++_added & (ForgetEvery - 1)) == 0)
        {
            Forget(timestampNs - 2 * _windowNs, inTimeOrder: true);
        }
        if (!IsDataInterface(observation.Interface))
        {
            _dataInterfaces.Add(observation.Interface);
            if ((uint)observation.Interface < 64)
            {
                _dataInterfacesBelow64 |= 1UL << observation.Interface;
            }
        }
        _segmentEntries.PushRef(out _).Set(in observation);
        _newestNs = Math.Max(_newestNs, timestampNs);
    }

    /// <summary>
    /// Chains the entries not chained yet that are still in the ring, in arrival order. The chains end as they would have
    /// if each entry had been chained on arrival, as far as a search can tell: an entry's link to the one before it under
    /// its key is made when that one is still in the ring (it was then on arrival too, since the head only moves on), a
    /// link to an entry gone is never followed (a walk stops at the head), and a chain's <see cref="SegmentEntry.Interfaces"/>
    /// still covers every entry of it in the ring (it may leave out some gone, never a candidate).
    /// </summary>
    private void CatchUp()
    {
        _lastOfKey ??= new OpenJourneyTable();
        long tail = _segmentEntries.Tail;
        for (long sequence = Math.Max(_chainedTo, _segmentEntries.Head); sequence < tail; sequence++)
        {
            if (sequence + PrefetchAhead < tail)
            {
                _lastOfKey.Touch(_segmentEntries[sequence + PrefetchAhead].SegmentKey); // a random access per entry: read ahead
            }
            Chain(sequence);
        }
        _chainedTo = tail;
    }

    /// <summary>
    /// How many packets <see cref="Add"/> indexes between two calls of <see cref="Forget"/> while the entries are in time
    /// order (always in replay). Forgetting on every packet read the ring's head (written two windows before: a miss) for
    /// each TCP data packet. Entries kept longer are never a candidate: a journey searched for started no earlier than a
    /// window before every packet indexed so far (the correlator ends a journey at the first packet a window after its
    /// start), and looks back one window from its start, while what is forgotten is two windows older than the newest.
    /// </summary>
    private const int ForgetEvery = 4096;
    private long _added;
    /// <summary>The newest time indexed, and the number of the last entry older than it when added (-1: none).</summary>
    private long _newestNs = long.MinValue, _lastUnordered = -1;

    /// <summary>
    /// Forgets the entries from the head up to the first not older than <paramref name="horizon"/>. When they are in time
    /// order (<paramref name="inTimeOrder"/>) that entry is found by doubling steps from the head and then halving them: a
    /// few entries read, not every one (the head's were written two windows before: out of cache).
    /// </summary>
    private void Forget(long horizon, bool inTimeOrder)
    {
        long head = _segmentEntries.Head, tail = _segmentEntries.Tail;
        if (!inTimeOrder)
        {
            while (head < tail && _segmentEntries[head].TimestampNs < horizon)
            {
                head++;
            }
            _segmentEntries.DropBefore(head);
            return;
        }
        if (head == tail || _segmentEntries[head].TimestampNs >= horizon)
        {
            return;
        }
        // [old, keep): old is older than the horizon, keep is the tail or an entry at or after it.
        long old = head, step = 1, keep = tail;
        while (old + step < tail)
        {
            if (_segmentEntries[old + step].TimestampNs >= horizon)
            {
                keep = old + step;
                break;
            }
            old += step;
            step *= 2;
        }
        while (keep - old > 1)
        {
            long middle = old + (keep - old) / 2;
            if (_segmentEntries[middle].TimestampNs < horizon)
            {
                old = middle;
            }
            else
            {
                keep = middle;
            }
        }
        _segmentEntries.DropBefore(keep);
    }

    private bool IsDataInterface(int interfaceId) =>
        (uint)interfaceId < 64 ? (_dataInterfacesBelow64 & 1UL << interfaceId) != 0 : _dataInterfaces.Contains(interfaceId);

    /// <summary>Appends a segment entry to its key's chain.</summary>
    private void Chain(long sequence)
    {
        ref SegmentEntry entry = ref _segmentEntries[sequence];
        ref long last = ref _lastOfKey!.Find(entry.SegmentKey, _segmentEntries.Head, out bool exists);
        entry.LinkTo(sequence, exists ? last : -1);
        entry.Interfaces = InterfaceBit(entry.Interface) | (exists ? _segmentEntries[last].Interfaces : 0);
        last = sequence;
    }

    /// <summary>What a segmentation match needs of a TCP data packet; chained per segment key. 56 bytes (the link as a distance, the interfaces' bits in 32).</summary>
    [StructLayout(LayoutKind.Auto)]
    private struct SegmentEntry
    {
        public long TimestampNs;
        public long Order;
        public ulong Fingerprint;
        public ulong SegmentKey;
        public int Interface;
        public uint TcpSequence;
        public uint SequenceEnd;

        /// <summary>Fills the entry in place in the ring (a copy through a temporary stalled on forwarding its stores).</summary>
        public void Set(in Observation observation)
        {
            TimestampNs = observation.TimestampNs;
            Order = observation.Order;
            Fingerprint = observation.Fingerprint;
            SegmentKey = observation.SegmentKey;
            Interface = observation.Interface;
            TcpSequence = observation.TcpSequence;
            SequenceEnd = observation.SequenceEnd;
        }

        /// <summary>How far back the entry before it under the same key is; 0: none.</summary>
        private int _previousDistance;

        /// <summary>The interfaces of this entry and of every one before it in its key's chain, a bit each (<see cref="InterfaceBit"/>).</summary>
        public uint Interfaces;

        /// <summary>The entry before this one (numbered <paramref name="number"/>) under the same key, or -1; an entry before the ring's head has left the chain.</summary>
        public readonly long PreviousSameKey(long number) => _previousDistance == 0 ? -1 : number - _previousDistance;

        /// <summary>Links this entry (numbered <paramref name="number"/>) to <paramref name="previous"/> (-1: none), an entry still in the ring.</summary>
        public void LinkTo(long number, long previous) => _previousDistance = previous < 0 ? 0 : checked((int)(number - previous));
    }
}
