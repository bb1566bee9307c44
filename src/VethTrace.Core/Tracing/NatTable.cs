using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

public enum NatKind : byte
{
    /// <summary>Source NAT (MASQUERADE): an inside source leaves as an outside address.</summary>
    Snat,
    /// <summary>Destination NAT (a published port): an outside destination is delivered to an inside one.</summary>
    Dnat,
}

/// <summary>
/// One translation: <see cref="Inside"/> (the container side) appears as <see cref="Outside"/> to <see cref="Peer"/>
/// (endpoints with ports), as conntrack holds it. Kept one by one only with <see cref="CorrelatorOptions.NatDetail"/>.
/// </summary>
public sealed record NatMapping(NatKind Kind, IpProtocol Protocol, string Inside, string Outside, string Peer, long Packets);

/// <summary>
/// The translations that differ only in the client's ephemeral port, for people: for SNAT one row per (protocol, inside
/// address, outside address, peer address:port), the inside and outside ports left out; for DNAT per (protocol, inside
/// address:port, outside address:port, peer address), the peer's port left out (the published port is what matters).
/// <see cref="Flows"/> counts translations (a flow that comes back after its idle timeout counts again, as a new
/// conntrack entry would), <see cref="Packets"/> translated steps.
/// </summary>
public sealed record NatAggregate(NatKind Kind, IpProtocol Protocol, string Inside, string Outside, string Peer, long Flows, long Packets);

/// <summary>NAT translations held now (not idle for their protocol's timeout) with one kind, protocol and inside address: the mappings in use.</summary>
public sealed record NatInUse(NatKind Kind, IpProtocol Protocol, string Inside, long Translations);

/// <summary>
/// NAT mappings inferred from matched journeys. Consecutive sightings of one packet whose source changed are a
/// source rewrite (before → after), whose destination changed a destination rewrite. A source rewrite A→B towards
/// P and a destination rewrite B→A from P are the two directions of one mapping (conntrack undoes the translation
/// for replies); which of them came first tells SNAT (the inside side spoke first) from DNAT.
/// </summary>
/// <remarks>
/// Memory is bounded by the translations active at once, as conntrack's is: each translation is 12 bytes in a
/// <see cref="TranslationTable"/> (a hash of its (protocol, inside, outside, peer), the kind of its first journey, its
/// last time), and <see cref="Sweep"/> drops those idle longer than their protocol's timeout (<see cref="FlowTimeouts"/>).
/// The aggregate rows stay (they grow with distinct (inside address, outside address, peer), not with flows); with
/// <c>inUse</c> (follow) a translation keeps its row beside it (4 bytes more), which the live view counts translations
/// in use by. Two translations whose hashes collide count as one
/// flow (<see cref="TranslationTable"/> gives the odds). With <see cref="CorrelatorOptions.NatDetail"/> every
/// translation is also kept in full until the end, as asked.
/// </remarks>
internal sealed unsafe class NatTable(bool detail, FlowTimeouts timeouts, bool inUse = true)
{
    /// <summary>
    /// Each translation's row is kept beside it (4 bytes more) only for <see cref="InUse"/>; without, a translation seen
    /// again finds its row from its key and the kind of its first journey (<see cref="RowOf"/>), as a new one does.
    /// </summary>
    private readonly TranslationTable _translations = new(timeouts, keepRows: inUse);
    /// <summary>
    /// The rows by a 64-bit hash of their key, checked against the row's key: a new translation (every flow, at
    /// 100,000 flows a second) finds its row without hashing <see cref="RowKey"/> field by field, and the key is held
    /// once (in its row): 39,250 rows on the 10M many-flows file. Open addressing (linear probing, a power of two of
    /// 16-byte slots, at most three quarters full: 1 MiB for those rows), one slot read per lookup where a <see cref="Dictionary{TKey, TValue}"/> reads a
    /// bucket and then an entry; two keys with one hash (odds about 10^-10 among 39,250 rows) take two slots. Outside the
    /// GC heap (<see cref="NativeArray{T}"/>), so the doublings leave no old copies on the large-object heap.
    /// </summary>
    private NativeArray<RowSlot> _rowSlots = new(64);
    /// <summary>
    /// The rows, in order of their first translation: structs side by side, so a row's key can be prefetched, in chunks of
    /// <see cref="RowsPerChunk"/> (the first grows to that size by doubling). One array doubling as rows come would
    /// leave up to half of it unused and its old copies on the large-object heap until a full collection: on the 10M
    /// many-flows file (39,250 rows of 120 bytes) 7.9 MB for 4.7 MB of rows, and 3.9 MB and less of old copies.
    /// </summary>
    private Row[][] _rowChunks = [new Row[64]];
    private int _rowCount;
    /// <summary>512 rows of 120 bytes: 61,440 bytes, under the large-object threshold (85,000), so chunks are compacted like other small objects.</summary>
    private const int RowChunkShift = 9;
    private const int RowsPerChunk = 1 << RowChunkShift;

    private ref Row RowAt(int row) => ref _rowChunks[row >> RowChunkShift][row & (RowsPerChunk - 1)];

    private IEnumerable<Row> AllRows()
    {
        for (int row = 0; row < _rowCount; row++)
        {
            yield return RowAt(row);
        }
    }
    private readonly Dictionary<(IpProtocol, Endpoint Inside, Endpoint Outside, Endpoint Peer), Entry>? _entries = detail ? [] : null;

    /// <summary>The translations held now (active, or idle for less than their timeout).</summary>
    public int ActiveTranslations
    {
        get
        {
            Flush();
            return _translations.Count;
        }
    }

    /// <summary>The bytes the translations take (outside the GC heap).</summary>
    public long Bytes
    {
        get
        {
            Flush();
            return _translations.Bytes;
        }
    }

    /// <summary>
    /// A packet seen as <paramref name="before"/> and then as <paramref name="after"/> (consecutive sightings of one
    /// journey) at <paramref name="timestampNs"/>: the translation steps it shows. The correlator asks
    /// <see cref="Remembered"/> first with the flows as the ring keeps them, and calls
    /// <see cref="Observe(in FlowKey, in FlowKey, long, bool, in Correlator.FlowBits, in Correlator.FlowBits)"/> when it says no.
    /// </summary>
    public void Observe(in FlowKey before, in FlowKey after, long timestampNs, bool closing)
    {
        Correlator.FlowBits beforeBits = default, afterBits = default;
        beforeBits.Set(in before);
        afterBits.Set(in after);
        if (!Remembered(in beforeBits, in afterBits, timestampNs, closing))
        {
            Observe(in before, in after, timestampNs, closing, in beforeBits, in afterBits);
        }
    }

    /// <summary>
    /// Whether the call with these flows was done here at once, from the memo (<see cref="_memos"/>): the pair's step
    /// still waits (counted into it, as a repeat is), or the place of its translation is known and still holds (the
    /// translation seen now, its row's packets plus one). False: nothing was done, call <see cref="Observe(in FlowKey, in FlowKey, long, bool, in Correlator.FlowBits, in Correlator.FlowBits)"/>.
    /// </summary>
    internal bool Remembered(in Correlator.FlowBits before, in Correlator.FlowBits after, long timestampNs, bool closing)
    {
        _memoLookedUp = false;
        if (_memos.Length == 0 || (_memoShare < MemoUsefulFrom && (++_memoTurn & (MemoSampling - 1)) != 0))
        {
            return false;
        }
        _memoLookedUp = true;
        ref Memo known = ref _memos[MemoIndex(in before, in after)];
        if (known.Before.Equals(in before) && known.After.Equals(in after))
        {
            if (known.Epoch == 0)
            {
                // Written by this pair's last call, whose step has not been applied (that fills the place): it waits.
                if (known.Step > StepsQueued - _waitingCount)
                {
                    Repeat(known.Step - 1, 1, timestampNs, closing);
                    _memoShare += 32 - (_memoShare >> 5);
                    return true;
                }
            }
            else if (_translations.Touch(known.Shard, known.Index, known.Key, known.Epoch, timestampNs, closing))
            {
                RowAt(known.Row).Packets++;
                _memoShare += 32 - (_memoShare >> 5);
                return true;
            }
        }
        _memoShare -= _memoShare >> 5;
        return false;
    }

    /// <summary>
    /// How many of the last calls looked up (about 32, decaying) the memo served, scaled to 1,024 for all. Below
    /// <see cref="MemoUsefulFrom"/> (a file of one-packet flows, where every call is a new translation and each look-up
    /// and entry written cost a cache miss or two: +5 % of the 1M many-flows file's accounting thread) only every
    /// <see cref="MemoSampling"/>th call looks up and writes an entry, enough to notice when calls repeat again. Only
    /// what is remembered depends on it, not an answer.
    /// </summary>
    private int _memoShare = 1024;
    private const int MemoUsefulFrom = 32;
    private const int MemoSampling = 16;
    private int _memoTurn;
    /// <summary>Whether the last <see cref="Remembered"/> looked the pair up (then its general path writes the pair's entry).</summary>
    private bool _memoLookedUp;

    /// <summary>
    /// The general path of <see cref="Observe(in FlowKey, in FlowKey, long, bool)"/>, called right after
    /// <see cref="Remembered"/> said no for the same flows (whether it looked them up decides whether this call writes
    /// their entry); <paramref name="beforeBits"/> and <paramref name="afterBits"/> are the flows as the ring keeps them.
    /// </summary>
    internal void Observe(in FlowKey before, in FlowKey after, long timestampNs, bool closing, in Correlator.FlowBits beforeBits, in Correlator.FlowBits afterBits)
    {
        // A connection through MASQUERADE repeats its translation journey after journey, its data one way and its
        // acknowledgments the other: a call with the flows of one of the last two, whose steps still wait, is counted
        // into those steps instead of hashed, queued and looked up again (Repeat).
        if (_recent.Before == before && _recent.After == after && Waiting(in _recent))
        {
            Repeat(_recent.FirstStep, _recent.Steps, timestampNs, closing);
            return;
        }
        if (_older.Before == before && _older.After == after && Waiting(in _older) && (_entries is null || _older.Steps == 0))
        {
            Repeat(_older.FirstStep, _older.Steps, timestampNs, closing);
            (_recent, _older) = (_older, _recent);
            return;
        }
        _older = _recent;
        _recent = new Recent { Before = before, After = after, FirstStep = StepsQueued };
        if (before.IsEmpty || after.IsEmpty || before.Protocol != after.Protocol)
        {
            return;
        }
        var (beforeSource, beforeDestination) = Endpoints(before);
        var (afterSource, afterDestination) = Endpoints(after);
        bool sourceChanged = beforeSource != afterSource, destinationChanged = beforeDestination != afterDestination;
        int memo = -1;
        if (_memoLookedUp && sourceChanged != destinationChanged)
        {
            // One step: remember its flows, to be told its translation's place when the step is applied.
            memo = MemoIndex(in beforeBits, in afterBits);
            ref Memo pending = ref _memos[memo];
            pending.Before = beforeBits;
            pending.After = afterBits;
            pending.Epoch = 0;
            pending.Step = StepsQueued + 1;
            // The other direction's first call (a reply) mostly comes while this step still waits: it is counted into
            // it (the same translation and row, Fill), not queued as a step of its own.
            Correlator.FlowBits replyBefore = Reversed(in afterBits), replyAfter = Reversed(in beforeBits);
            ref Memo reply = ref _memos[MemoIndex(in replyBefore, in replyAfter)];
            if (!Unsafe.AreSame(ref reply, ref pending))
            {
                reply.Before = replyBefore;
                reply.After = replyAfter;
                reply.Epoch = 0;
                reply.Step = StepsQueued + 1;
            }
        }
        if (sourceChanged)
        {
            // Outbound through SNAT, or a reply leaving through DNAT's reverse: inside = before, outside = after.
            Add(NatKind.Snat, before.Protocol, beforeSource, afterSource, beforeDestination, timestampNs, closing, memo);
            _recent.Steps++;
        }
        if (destinationChanged)
        {
            // Inbound through DNAT, or a reply entering through SNAT's reverse: outside = before, inside = after.
            Add(NatKind.Dnat, before.Protocol, afterDestination, beforeDestination, beforeSource, timestampNs, closing, memo);
            _recent.Steps++;
        }
    }

    /// <summary>
    /// The places of the translations the last calls' steps were applied to, by their pair of flows as the ring keeps
    /// them (a direct-mapped table, <see cref="MemoIndex(in Correlator.FlowBits, in Correlator.FlowBits)"/>): on multihop-mixed (many short connections from 4 containers
    /// at once) most calls are a connection's later packets, whose translation exists, but other connections' calls came
    /// between, so its steps no longer waited for a repeat of the last two (<see cref="Recent"/>). Such a call finds the
    /// place of its translation and its row here (<see cref="Remembered"/>) and does what applying its step would do
    /// (the translation seen at its time, closing if it closes; the row's packets plus one), without building its flow
    /// keys, hashing the translation or its row, queueing or looking up; or, while its last step still waits, is
    /// counted into that step. An entry is written by a call of one step (an SNAT and a DNAT at once, a hairpin, takes
    /// the general path every time), with the entry of the pair of the other direction (a reply's flows are the
    /// request's reversed, in the other order: the same translation, the same row) waiting for the same step; both are
    /// filled when that step is applied (<see cref="Fill"/>). An entry whose step was applied without filling it (another
    /// pair took the entry meanwhile) no longer counts as waiting (<see cref="Remembered"/> checks the step still waits).
    /// <para>A place holds only while the table's <see cref="TranslationTable.Epoch"/> is the one it was filled in (no
    /// shard rebuilt, no sweep since: only those move or remove a translation), and the slot's key is checked as well.
    /// The row is that of the translation while it is held: made from its endpoints, which the pair of flows decides,
    /// and from the kind of its first step, which only a sweep and a new translation can change. Doing a step at once,
    /// before steps still waiting (<see cref="Delay"/>), changes nothing: its translation exists already, a later time
    /// and a closing mark are kept whichever comes first, and a row's packets are a sum. Not with <c>detail</c> (the full
    /// mappings' first times and kinds follow the steps' order).</para>
    /// </summary>
    private readonly Memo[] _memos = detail ? [] : new Memo[MemoCount];
    private const int MemoBits = 8;
    private const int MemoCount = 1 << MemoBits;

    private struct Memo
    {
        public Correlator.FlowBits Before, After;
        /// <summary>The number of the step (<see cref="StepsQueued"/>) whose application fills the place, while <see cref="Epoch"/> is 0.</summary>
        public long Step;
        /// <summary>The table's epoch when the place was filled; 0: not filled (the step <see cref="Step"/> waits).</summary>
        public long Epoch;
        public ulong Key;
        public int Shard, Index, Row;
    }

    /// <summary>Where in <see cref="_memos"/> the pair (<paramref name="before"/>, <paramref name="after"/>) is kept: the low halves of the four addresses and the other words, multiplied and summed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int MemoIndex(in Correlator.FlowBits before, in Correlator.FlowBits after)
    {
        ulong h = before.SourceLow * 0x9E3779B97F4A7C15 + before.DestinationLow * 0xC2B2AE3D27D4EB4F
            + after.SourceLow * 0x165667B19E3779F9 + after.DestinationLow * 0x85EBCA77C2B2AE63
            + (before.Rest ^ BitOperations.RotateLeft(after.Rest, 32) ^ before.SourceHigh ^ after.DestinationHigh) * 0x27D4EB2F165667C5;
        return (int)(h >> (64 - MemoBits));
    }

    /// <summary><see cref="MemoIndex(in Correlator.FlowBits, in Correlator.FlowBits)"/> of flow keys.</summary>
    internal static int MemoIndex(in FlowKey before, in FlowKey after)
    {
        Correlator.FlowBits beforeBits = default, afterBits = default;
        beforeBits.Set(in before);
        afterBits.Set(in after);
        return MemoIndex(in beforeBits, in afterBits);
    }

    /// <summary>The flow the other way: source and destination (addresses, ports, versions) swapped.</summary>
    private static Correlator.FlowBits Reversed(in Correlator.FlowBits flow)
    {
        ulong rest = flow.Rest;
        return new Correlator.FlowBits
        {
            SourceHigh = flow.DestinationHigh, SourceLow = flow.DestinationLow, DestinationHigh = flow.SourceHigh, DestinationLow = flow.SourceLow,
            // Ports at bits 0-15 and 16-31, protocol 32-39, versions 40-47 and 48-55.
            Rest = (rest & 0xFFFF) << 16 | (rest >> 16 & 0xFFFF) | (rest & 0xFF_0000_0000) | (rest >> 40 & 0xFF) << 48 | (rest >> 48 & 0xFF) << 40,
        };
    }

    /// <summary>
    /// Fills <paramref name="memo"/>'s place from the slot the table returned last (<paramref name="key"/>, its row
    /// <paramref name="row"/>), and the entry of the pair of the other direction: its before is this after reversed,
    /// its after this before reversed. That pair's one step has the same (protocol, inside, outside, peer): an SNAT
    /// step's inside, outside and peer are the before's source, the after's source and the before's destination, and
    /// the reversed pair changes the destination from this after's source to this before's source, a DNAT step with
    /// inside, outside and peer the same three (and the other way round for a DNAT step).
    /// </summary>
    private void Fill(ref Memo memo, ulong key, int row)
    {
        (int shard, int index) = _translations.LastPlace;
        long epoch = _translations.Epoch;
        memo.Shard = shard;
        memo.Index = index;
        memo.Key = key;
        memo.Row = row;
        memo.Epoch = epoch;
        Correlator.FlowBits before = Reversed(in memo.After), after = Reversed(in memo.Before);
        ref Memo reverse = ref _memos[MemoIndex(in before, in after)];
        // The same place and row, with the pair reversed (when both pairs share the entry, the reversed pair is kept).
        reverse = memo;
        reverse.Before = before;
        reverse.After = after;
        reverse.Step = 0;
    }

    /// <summary>
    /// The flows of one of the last two distinct <see cref="Observe(in FlowKey, in FlowKey, long, bool)"/> calls and the steps it queued (numbered by
    /// <see cref="StepsQueued"/>). A repeat adds one to each of those steps while they still wait: applying a step, then
    /// other translations' steps, then the step again gives the table the same state as applying it once with both
    /// (a translation's time is the latest it was seen at, its closing mark an or, its row's packets a sum, its kind and
    /// its row's place those of its first step, which stays first; a translation is removed only by a sweep, which
    /// applies every waiting step first). The one thing order decides among steps of one translation is which kind a
    /// full mapping (<c>detail</c>) takes when two steps have the same earliest time, so with detail only the newest
    /// call's steps take repeats.
    /// </summary>
    private struct Recent
    {
        public FlowKey Before, After;
        public long FirstStep;
        public int Steps;
    }

    private Recent _recent, _older;

    /// <summary>How many steps were queued (a repeat queues none); also the number the next step gets.</summary>
    internal long StepsQueued { get; private set; }

    /// <summary>Whether the steps of <paramref name="recent"/> still wait (a call that queued none always "waits").</summary>
    private bool Waiting(in Recent recent) => recent.Steps == 0 || recent.FirstStep >= StepsQueued - _waitingCount;

    /// <summary>Counts a call into the <paramref name="steps"/> waiting steps after step number <paramref name="firstStep"/> (<see cref="Recent"/>).</summary>
    private void Repeat(long firstStep, int steps, long timestampNs, bool closing)
    {
        long oldest = StepsQueued - _waitingCount;
        for (int i = 0; i < steps; i++)
        {
            int index = _waitingHead + (int)(firstStep + i - oldest);
            ref Step step = ref _waiting[index >= Delay ? index - Delay : index];
            step.Repeats++;
            step.Closing |= closing;
            if (timestampNs > step.LatestNs)
            {
                step.LatestNs = timestampNs;
            }
            if (timestampNs < step.EarliestNs)
            {
                step.EarliestNs = timestampNs;
            }
        }
    }

    /// <summary>Forgets the translations idle for longer than their timeout at <paramref name="nowNs"/>; their rows keep the counts.</summary>
    public void Sweep(long nowNs, FlowTimeouts timeouts)
    {
        Flush();
        _translations.Sweep(nowNs, timeouts);
    }

    /// <summary>Every translation (only with detail; empty otherwise).</summary>
    public List<NatMapping> Mappings()
    {
        Flush();
        return _entries is null ? [] : _entries
            .Select(e => new NatMapping(e.Value.FirstKind, e.Key.Item1, e.Key.Inside.Format(e.Key.Item1), e.Key.Outside.Format(e.Key.Item1), e.Key.Peer.Format(e.Key.Item1), e.Value.Packets))
            .OrderByDescending(m => m.Packets)
            .ToList();
    }

    /// <summary>
    /// The aggregate rows, most flows first. The endpoints' text is made once per distinct endpoint and shared by the
    /// rows that have it: rows are many (39,250 on the 10M many-flows file) but their endpoints few (250 container
    /// addresses, one egress address, 157 servers), and a string per endpoint per row was about 6 MB allocated at the
    /// end of a run, when everything else is still held (the run's peak memory).
    /// </summary>
    public List<NatAggregate> Aggregates()
    {
        Flush();
        var texts = new Dictionary<(Endpoint, bool Icmp), string>();
        string Text(in Endpoint endpoint, IpProtocol protocol)
        {
            var key = (endpoint, protocol == IpProtocol.Icmp || protocol == IpProtocol.IcmpV6);
            if (!texts.TryGetValue(key, out string? text))
            {
                texts[key] = text = endpoint.Format(protocol);
            }
            return text;
        }
        // Most flows first, then most packets, ties in the rows' order (a stable sort by flows and packets, as the
        // LINQ ordering this replaces): the rows' numbers are sorted, and each aggregate made once, in its place.
        int[] order = new int[_rowCount];
        for (int row = 0; row < order.Length; row++)
        {
            order[row] = row;
        }
        Array.Sort(order, (a, b) =>
        {
            ref Row x = ref RowAt(a), y = ref RowAt(b);
            int byFlows = y.Flows.CompareTo(x.Flows);
            if (byFlows != 0)
            {
                return byFlows;
            }
            int byPackets = y.Packets.CompareTo(x.Packets);
            return byPackets != 0 ? byPackets : a.CompareTo(b);
        });
        var aggregates = new List<NatAggregate>(order.Length);
        foreach (int row in order)
        {
            ref Row r = ref RowAt(row);
            aggregates.Add(new NatAggregate(r.Key.Kind, r.Key.Protocol, Text(r.Key.Inside, r.Key.Protocol), Text(r.Key.Outside, r.Key.Protocol), Text(r.Key.Peer, r.Key.Protocol), r.Flows, r.Packets));
        }
        return aggregates;
    }

    /// <summary>The translations held now, counted by kind, protocol and inside address (the rows' order); empty when made without <c>inUse</c>.</summary>
    public List<NatInUse> InUse()
    {
        Flush();
        if (!_translations.KeepsRows)
        {
            return [];
        }
        var active = new long[_rowCount];
        _translations.CountByRow(active);
        return [.. AllRows().Select((r, row) => (Key: (r.Key.Kind, r.Key.Protocol, Inside: r.Key.Inside.Format(r.Key.Protocol)), Active: active[row]))
            .GroupBy(r => r.Key).Select(g => new NatInUse(g.Key.Kind, g.Key.Protocol, g.Key.Inside, g.Sum(r => r.Active)))];
    }

    /// <summary>
    /// ICMP endpoints are bare addresses: the echo identifier is kept out of the key, so a request (identifier on the
    /// source side) and its reply (on the destination side) land in one mapping.
    /// </summary>
    private static (Endpoint Source, Endpoint Destination) Endpoints(in FlowKey flow)
    {
        bool icmp = flow.Protocol == IpProtocol.Icmp || flow.Protocol == IpProtocol.IcmpV6;
        return (new Endpoint(flow.Source, icmp ? (ushort)0 : flow.SourcePort), new Endpoint(flow.Destination, icmp ? (ushort)0 : flow.DestinationPort));
    }

    /// <summary>
    /// How many translation steps wait between <see cref="Add"/> and <see cref="Apply"/>. A new translation (every
    /// flow of a file of one-packet flows) is a random access into a table of the translations held, larger than the
    /// caches: its slot is prefetched when the step arrives and looked up this many steps later, when the line has
    /// come. The steps are applied in their order, and every read of the table or the rows applies the waiting ones
    /// first (<see cref="Flush"/>), so nothing a caller sees changes.
    /// </summary>
    private const int Delay = 4;
    private readonly Step[] _waiting = new Step[Delay];
    private int _waitingHead, _waitingCount;

    private void Add(NatKind kind, IpProtocol protocol, in Endpoint inside, in Endpoint outside, in Endpoint peer, long timestampNs, bool closing, int memo)
    {
        StepsQueued++;
        ulong hash = StableHash.Add(StableHash.Seed, protocol.Value);
        hash = inside.AddTo(outside.AddTo(peer.AddTo(hash)));
        hash = StableHash.Finish(hash);
        _translations.Prefetch(hash);
        int index;
        if (_waitingCount == Delay)
        {
            index = _waitingHead;
            Apply(in _waiting[index]);
            _waitingHead = index + 1 == Delay ? 0 : index + 1;
        }
        else
        {
            index = _waitingHead + _waitingCount;
            if (index >= Delay)
            {
                index -= Delay;
            }
            _waitingCount++;
        }
        ref Step step = ref _waiting[index];
        step.Hash = hash;
        step.Kind = kind;
        step.Protocol = protocol;
        step.Inside = inside;
        step.Outside = outside;
        step.Peer = peer;
        step.EarliestNs = timestampNs;
        step.LatestNs = timestampNs;
        step.Repeats = 0;
        step.Closing = closing;
        step.Memo = memo;
        step.Number = StepsQueued;
        step.RowHashed = _newShare > SpeculateAbove;
        if (step.RowHashed)
        {
            // Most translations are new (one-packet flows): their rows will be looked up too. Ask for this step's row
            // slot now, and for the row of the step two behind, whose slot has come.
            step.RowHash = RowHashOf(kind, protocol, in inside, in outside, in peer);
            PrefetchRowSlot(step.RowHash);
            if (_waitingCount >= 3)
            {
                ref Step older = ref _waiting[index >= 2 ? index - 2 : index + Delay - 2];
                if (older.RowHashed)
                {
                    PrefetchRow(older.RowHash);
                }
            }
        }
    }

    /// <summary>
    /// How many of the last steps (about 32, decaying) made a new translation, scaled to 1,024 for all of them: above
    /// <see cref="SpeculateAbove"/> (a quarter), steps hash and prefetch their row before they know they need it.
    /// Only what is prefetched depends on it, not an answer.
    /// </summary>
    private int _newShare = 1024;
    private const int SpeculateAbove = 256;

    private unsafe void PrefetchRowSlot(ulong rowHash)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch0(_rowSlots.At((int)(rowHash >> 32) & (_rowSlots.Length - 1)));
        }
    }

    /// <summary>Prefetches the key of the row whose hash is <paramref name="rowHash"/> (the first with that hash), if there is one.</summary>
    private unsafe void PrefetchRow(ulong rowHash)
    {
        if (Sse.IsSupported)
        {
            ref RowSlot slot = ref _rowSlots[(int)(rowHash >> 32) & (_rowSlots.Length - 1)];
            if (slot.RowPlusOne != 0 && slot.Hash == rowHash)
            {
                byte* row = (byte*)Unsafe.AsPointer(ref RowAt(slot.RowPlusOne - 1));
                Sse.Prefetch0(row);
                Sse.Prefetch0(row + 64);
                Sse.Prefetch0(row + sizeof(RowKey) - 1);
            }
        }
    }

    /// <summary>Applies the steps still waiting (<see cref="Delay"/>), in their order.</summary>
    private void Flush()
    {
        while (_waitingCount > 0)
        {
            Apply(in _waiting[_waitingHead]);
            _waitingHead = _waitingHead + 1 == Delay ? 0 : _waitingHead + 1;
            _waitingCount--;
        }
    }

    private void Apply(in Step step)
    {
        NatKind kind = step.Kind;
        IpProtocol protocol = step.Protocol;
        // A step and its repeats: the latest time for the translation (a new one is made at the first, then moved to
        // the latest), the earliest for the first-seen of the full mapping.
        long timestampNs = step.EarliestNs;
        ref TranslationTable.Slot translation = ref _translations.FindOrAdd(step.Hash, kind, TimeoutClassOf(protocol), step.LatestNs, step.Closing, out bool exists);
        int row;
        _newShare += (exists ? 0 : 32) - (_newShare >> 5);
        for (int i = Math.Min(step.Repeats, 256); i > 0; i--)
        {
            _newShare -= _newShare >> 5;
        }
        long packets = 1 + step.Repeats;
        if (!exists)
        {
            // A new translation (or one that came back after its timeout): one more flow in its row. Its kind is that of
            // the first journey to finish with it, the side that spoke first.
            ulong rowHash = step.RowHashed ? step.RowHash : RowHashOf(kind, protocol, in step.Inside, in step.Outside, in step.Peer);
            row = RowOf(kind, protocol, in step.Inside, in step.Outside, in step.Peer, rowHash);
            if (_translations.KeepsRows)
            {
                _translations.LastRow = row;
            }
            RowAt(row).Flows++;
        }
        else if (_translations.KeepsRows)
        {
            row = _translations.LastRow;
        }
        else
        {
            // The row was made with the translation, from the kind of its first journey (kept in the slot).
            NatKind first = TranslationTable.KindOf(in translation);
            ulong rowHash = step.RowHashed && first == kind ? step.RowHash : RowHashOf(first, protocol, in step.Inside, in step.Outside, in step.Peer);
            row = RowOf(first, protocol, in step.Inside, in step.Outside, in step.Peer, rowHash);
        }
        RowAt(row).Packets += packets;
        if (step.Memo >= 0)
        {
            ref Memo memo = ref _memos[step.Memo];
            if (memo.Step == step.Number && memo.Epoch == 0)
            {
                Fill(ref memo, translation.Key, row);
            }
        }
        if (_entries is not null)
        {
            var full = (protocol, step.Inside, step.Outside, step.Peer);
            if (!_entries.TryGetValue(full, out var entry))
            {
                _entries[full] = entry = new Entry { FirstKind = kind, FirstSeenNs = timestampNs };
            }
            else if (timestampNs < entry.FirstSeenNs)
            {
                entry.FirstKind = kind;
                entry.FirstSeenNs = timestampNs;
            }
            entry.Packets += packets;
        }
    }

    /// <summary>A translation step waiting to be applied: the hash of its translation and what makes its row.</summary>
    private struct Step
    {
        public ulong Hash;
        /// <summary>The hash of the row the translation gets if it is new (<see cref="RowHashOf"/>), when <see cref="RowHashed"/>.</summary>
        public ulong RowHash;
        public bool RowHashed;
        /// <summary>The earliest and latest times of the step and its repeats (<see cref="Repeat"/>).</summary>
        public long EarliestNs, LatestNs;
        /// <summary>How many times the step came again right after itself.</summary>
        public int Repeats;
        /// <summary>The entry of <see cref="_memos"/> to tell the translation's place, or -1; it is told only if it still waits for this step (<see cref="Number"/>).</summary>
        public int Memo;
        public long Number;
        public Endpoint Inside, Outside, Peer;
        public IpProtocol Protocol;
        public NatKind Kind;
        public bool Closing;
    }

    /// <summary>An address and port; <see cref="NoPort"/> marks an aggregate's endpoint whose port was left out.</summary>
    private readonly record struct Endpoint(IpAddress Address, ushort Port, bool NoPort = false)
    {
        public Endpoint WithoutPort => new(Address, 0, NoPort: true);

        public string Format(IpProtocol protocol) =>
            NoPort || protocol == IpProtocol.Icmp || protocol == IpProtocol.IcmpV6 ? Address.ToString() : Address.ToEndpointString(Port);

        public ulong AddTo(ulong hash)
        {
            UInt128 value = Address.Value;
            hash = StableHash.Add(hash, (ulong)(value >> 64));
            hash = StableHash.Add(hash, (ulong)value);
            return StableHash.Add(hash, (ulong)(NoPort ? 1 : 0) << 24 | (ulong)Address.Version << 16 | Port);
        }

        /// <summary><see cref="AddTo(ulong)"/> of <see cref="WithoutPort"/> when <paramref name="withoutPort"/>, of this endpoint otherwise.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ulong AddTo(ulong hash, bool withoutPort)
        {
            UInt128 value = Address.Value;
            hash = StableHash.Add(hash, (ulong)(value >> 64));
            hash = StableHash.Add(hash, (ulong)value);
            ulong rest = withoutPort ? 1UL << 24 | (ulong)Address.Version << 16 : (ulong)(NoPort ? 1 : 0) << 24 | (ulong)Address.Version << 16 | Port;
            return StableHash.Add(hash, rest);
        }

        /// <summary>Whether this endpoint equals <paramref name="other"/>, or <paramref name="other"/>'s <see cref="WithoutPort"/> when <paramref name="withoutPort"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Is(in Endpoint other, bool withoutPort) =>
            withoutPort ? NoPort && Port == 0 && Address.Equals(other.Address) : Equals(other);
    }

    /// <summary>
    /// The row of a translation whose first journey was <paramref name="kind"/>. The client's port is ephemeral: the
    /// inside (and, kept by MASQUERADE, outside) port of SNAT, the peer's of DNAT.
    /// </summary>
    private int RowOf(NatKind kind, IpProtocol protocol, in Endpoint insideEndpoint, in Endpoint outsideEndpoint, in Endpoint peerEndpoint, ulong hash)
    {
        int mask = _rowSlots.Length - 1;
        int index = (int)(hash >> 32) & mask;
        while (_rowSlots[index].RowPlusOne != 0)
        {
            ref RowSlot slot = ref _rowSlots[index];
            if (slot.Hash == hash && RowAt(slot.RowPlusOne - 1).IsFor(kind, protocol, in insideEndpoint, in outsideEndpoint, in peerEndpoint))
            {
                return slot.RowPlusOne - 1;
            }
            index = (index + 1) & mask;
        }
        // A new row: only here are the row's endpoints made (a translation of a known row compares and hashes the
        // translation's endpoints as they are, leaving the ports out in place).
        RowEndpoints(kind, in insideEndpoint, in outsideEndpoint, in peerEndpoint, out Endpoint inside, out Endpoint outside, out Endpoint peer);
        int row = _rowCount;
        if (row < RowsPerChunk)
        {
            if (row == _rowChunks[0].Length)
            {
                Array.Resize(ref _rowChunks[0], row * 2);
            }
        }
        else if ((row & (RowsPerChunk - 1)) == 0)
        {
            if (row >> RowChunkShift == _rowChunks.Length)
            {
                Array.Resize(ref _rowChunks, _rowChunks.Length * 2);
            }
            _rowChunks[row >> RowChunkShift] = new Row[RowsPerChunk];
        }
        RowAt(row) = new Row(new RowKey(kind, protocol, inside, outside, peer));
        _rowCount++;
        _rowSlots[index] = new RowSlot { Hash = hash, RowPlusOne = row + 1 };
        if (_rowCount * 4 > _rowSlots.Length * 3)
        {
            NativeArray<RowSlot> old = _rowSlots;
            _rowSlots = new NativeArray<RowSlot>(old.Length * 2);
            mask = _rowSlots.Length - 1;
            foreach (RowSlot moved in old.Span)
            {
                if (moved.RowPlusOne != 0)
                {
                    index = (int)(moved.Hash >> 32) & mask;
                    while (_rowSlots[index].RowPlusOne != 0)
                    {
                        index = (index + 1) & mask;
                    }
                    _rowSlots[index] = moved;
                }
            }
            old.Dispose();
        }
        return row;
    }

    /// <summary>The endpoints of a translation's row: the client's port left out (<see cref="RowOf"/>).</summary>
    private static void RowEndpoints(NatKind kind, in Endpoint insideEndpoint, in Endpoint outsideEndpoint, in Endpoint peerEndpoint, out Endpoint inside, out Endpoint outside, out Endpoint peer)
    {
        bool snat = kind == NatKind.Snat;
        inside = snat ? insideEndpoint.WithoutPort : insideEndpoint;
        outside = snat ? outsideEndpoint.WithoutPort : outsideEndpoint;
        peer = snat ? peerEndpoint : peerEndpoint.WithoutPort;
    }

    /// <summary>The hash <see cref="_rowSlots"/> keeps the row of a translation whose first journey was <paramref name="kind"/> by.</summary>
    /// <remarks>The hash of the row's key (<see cref="RowEndpoints"/>) made from the translation's endpoints without copying them: <see cref="Endpoint.AddTo(ulong, bool)"/>.</remarks>
    private static ulong RowHashOf(NatKind kind, IpProtocol protocol, in Endpoint insideEndpoint, in Endpoint outsideEndpoint, in Endpoint peerEndpoint)
    {
        bool snat = kind == NatKind.Snat;
        ulong hash = StableHash.Add(StableHash.Seed, (ulong)kind << 8 | protocol.Value);
        return StableHash.Finish(insideEndpoint.AddTo(outsideEndpoint.AddTo(peerEndpoint.AddTo(hash, withoutPort: !snat), withoutPort: snat), withoutPort: snat));
    }

    /// <summary>A row's place in <see cref="_rowSlots"/>: the hash of its key, and its index plus one (0: an empty slot).</summary>
    private struct RowSlot
    {
        public ulong Hash;
        public int RowPlusOne;
    }

    private static TranslationTable.TimeoutClass TimeoutClassOf(IpProtocol protocol) => protocol.Value switch
    {
        6 => TranslationTable.TimeoutClass.Tcp,
        17 => TranslationTable.TimeoutClass.Udp,
        1 or 58 => TranslationTable.TimeoutClass.Icmp,
        _ => TranslationTable.TimeoutClass.Other,
    };

    private readonly record struct RowKey(NatKind Kind, IpProtocol Protocol, Endpoint Inside, Endpoint Outside, Endpoint Peer);

    private struct Row(RowKey key)
    {
        /// <summary>A field, not a property: <see cref="IsFor"/> compares its parts in place, without copying the 100-byte key.</summary>
        public readonly RowKey Key = key;

        /// <summary>Whether this is the row of a translation with these endpoints whose first journey was <paramref name="kind"/> (<see cref="RowEndpoints"/>, compared in place).</summary>
        public readonly bool IsFor(NatKind kind, IpProtocol protocol, in Endpoint inside, in Endpoint outside, in Endpoint peer)
        {
            bool snat = kind == NatKind.Snat;
            return Key.Kind == kind && Key.Protocol == protocol && Key.Inside.Is(in inside, withoutPort: snat)
                && Key.Outside.Is(in outside, withoutPort: snat) && Key.Peer.Is(in peer, withoutPort: !snat);
        }
        public long Flows;
        public long Packets;
    }

    private sealed class Entry
    {
        public NatKind FirstKind;
        public long FirstSeenNs;
        public long Packets;
    }
}
