using System.Runtime.InteropServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// The matching engine shared by replay and live capture. Observations arrive in time order; those with one
/// fingerprint within <see cref="CorrelatorOptions.WindowNs"/> form a journey (one packet's path through the
/// host). A journey ends when its window passes, when the same interface sees the fingerprint again (a new packet,
/// or a hairpin), or at <see cref="Complete"/>. Ended journeys feed per-hop latency histograms, the NAT table and
/// per-flow reach, from which losses are derived. Memory for open journeys is bounded by the window; the
/// aggregates grow with the number of hops, flows and NAT mappings, not with packets.
/// </summary>
/// <remarks>
/// Each observation is copied once, into <see cref="_observations"/>, a ring in arrival order; a journey is a small
/// entry in <see cref="_journeys"/> (a ring in start order, which is also expiry order) that chains its sightings
/// through the ring. The <see cref="SegmentIndex"/> keeps a 48-byte entry per TCP data packet in a third ring,
/// chained per segment key. Everything a packet writes is read back in the same order a window later, so
/// the reads stream through memory instead of chasing one pooled object and list per journey (a profile of the
/// earlier design: 17 % of replay's time in <see cref="Expire"/> alone, waiting for journeys to come back from memory).
/// </remarks>
public sealed class Correlator : IObservationSink
{
    private readonly CorrelatorOptions _options;
    private readonly Func<int, InterfaceRole> _roleOf;
    /// <summary>The open journey of each fingerprint, as its number in <see cref="_journeys"/>.</summary>
    private readonly OpenJourneyIndex _open = new();
    private int _openCount;
    private readonly SequenceRing<JourneyEntry> _journeys = new();
    private readonly SequenceRing<ObservationSlot> _observations = new();
    /// <summary>
    /// The hops' figures in the order first seen (the report lists ties in that order), found by <see cref="AccountState.HopIndex"/>
    /// for interface ids below <see cref="MaxMatrixInterfaces"/>, else by <see cref="_hopsBeyond"/>.
    /// </summary>
    private readonly List<(int From, int To, LatencyHistogram Histogram, LatencyTimeline Timeline)> _hops = [];
    private readonly Dictionary<(int From, int To), int> _hopsBeyond = [];
    private const int MaxMatrixInterfaces = 256;
    /// <summary>
    /// The roles (and whether each was decided) of the interfaces seen, copied from <c>roleOf</c>: the registry's table is
    /// shared with the reading thread, whose writes next to it (the last interface it looked up) made every read of it a
    /// cache miss (6 % of replay's samples in a profile, on a one-load method). Refreshed when an interface is first
    /// seen, after inference decides, and every <see cref="RoleRefreshObservations"/> observations (follow may replace a hop).
    /// </summary>
    private InterfaceRole[] _roles = [];
    private bool[] _rolesKnown = [];
    private const int RoleRefreshObservations = 4096;

    // One grid of time buckets for every hop's timeline, so their buckets line up.
    private readonly TimelineGrid _timelineGrid = new();
    private readonly Dictionary<PathKey, PathStats> _paths = [];
    /// <summary>The paths of the last two multi-hop journeys: most journeys take one of a few paths, often alternating.</summary>
    private readonly NatTable _nat;
    /// <summary>
    /// Per-flow reach, for losses (docs/DESIGN.md "Losses"): only flows that may have lost something, since a journey
    /// from the inside that ended at the egress is described by <see cref="_ways"/>. Expired by <see cref="Sweep"/>.
    /// </summary>
    /// <remarks>
    /// Keyed by the flow's words as the ring keeps them, each reach inline (<see cref="ReachTable"/>), enumerated in the
    /// order a <c>Dictionary&lt;FlowKey, FlowReach&gt;</c> would give (insertion, removed entries reused last-removed
    /// first): the settled losses and the report follow it.
    /// </remarks>
    private readonly ReachTable _flows = new();
    /// <summary>
    /// The ways to the egress packets showed: (destination, an inside interface a packet to it crossed before the egress)
    /// with the time last shown. A journey to that destination that ended on that interface instead was lost there.
    /// </summary>
    private readonly EgressWayTable _ways = new();
    /// <summary>
    /// The ways seen since they were last written to <see cref="_ways"/>, all to <see cref="AccountState.PendingWayDestination"/>, by
    /// inside interface in the order first seen, with the latest time: a journey to the egress shows two or three ways
    /// (container, veth, bridge) and the journeys around it the same ones, and each hashed into the table (2 % of the
    /// matching thread). Written when the destination changes, when they do not fit, and before anything reads the table
    /// (<see cref="FlushWays"/>), in the order the table would have been given them: the table ends the same.
    /// </summary>
    /// <summary>The losses of flows already expired, by (flow, last interface).</summary>
    private readonly Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)> _settledLosses = [];
    private long _nextSweepNs = long.MinValue;
    /// <summary>
    /// The flows of the last journeys finished, with their reach or none (<see cref="AccountState.Reaches"/>): consecutive
    /// journeys mostly share a flow, alternate between a connection's two directions, or (many short flows) between a
    /// few connections; the journeys of a flow that gets through need no reach, and each asked the dictionary.
    /// </summary>
    /// <summary>
    /// The flow keys last built from ring slots, with whether each is link-scoped (<see cref="Known"/>): a journey's copies
    /// and the journeys around it carry a few flows (a connection's two directions, each before and after NAT), and
    /// building the key from a slot's fields took 3 % of replay's samples.
    /// </summary>
    private const int KnownFlowCount = 4;
    /// <summary>The journey being finished, its sightings copied out of the ring in arrival order (what ordering needs; the rest stays in the ring).</summary>
    private readonly List<Sighting> _sightings = [];
    private readonly List<Sighting> _scratch = [];
    private readonly List<Observation> _ties = [];
    /// <summary>
    /// What the accounting writes journey after journey (the last flows, paths, ways and keys it remembers), in an object
    /// of its own, made on the accounting thread when there is one (<see cref="StartAccounting"/>): in the correlator's
    /// own object these fields shared cache lines with the counters the matching thread writes for every observation,
    /// and with the two threads on two cores each write took the line from the other core.
    /// </summary>
    private AccountState _a = new();

    private sealed class AccountState
    {
        public (PathKey Key, PathStats? Stats) LastPath, PreviousPath;
        public readonly (int Interface, long LastNs)[] PendingWays = new (int, long)[8];
        public int PendingWayCount;
        public IpAddress PendingWayDestination;
        public RecentReaches Reaches = new();
        public readonly KnownFlow[] KnownFlows = new KnownFlow[KnownFlowCount];
        public int NextKnownFlow;
        /// <summary>Flow keys built because none of <see cref="KnownFlows"/> had the flow: how many flows the accounting meets.</summary>
        public long KnownMisses;
        public PathInterfaces ReachPaths = new();
        /// <summary>
        /// One more than the index in <see cref="_hops"/> of hop (from, to) at <c>from * HopStride + to</c>; 0 for none. Here,
        /// not in the correlator's object: there the stride sat among the counters the matching thread writes for every
        /// journey, and each of the accounting's reads (one per hop) took the line from the other core.
        /// </summary>
        public int[] HopIndex = [];
        public int HopStride;

        /// <summary>A copy made on the calling thread (the accounting's, which then owns it), with fresh arrays and list.</summary>
        public AccountState CopyHere()
        {
            var copy = new AccountState
            {
                LastPath = LastPath, PreviousPath = PreviousPath, PendingWayCount = PendingWayCount, PendingWayDestination = PendingWayDestination,
                Reaches = Reaches.CopyHere(), ReachPaths = ReachPaths.CopyHere(),
                NextKnownFlow = NextKnownFlow, HopIndex = HopIndex, HopStride = HopStride,
            };
            PendingWays.CopyTo(copy.PendingWays, 0);
            KnownFlows.CopyTo(copy.KnownFlows, 0);
            return copy;
        }
    }

    /// <summary>The flows of the journey being finished, step by step (<see cref="AccountJourney"/>).</summary>
    private readonly List<FlowBits> _stepFlows = [];
    /// <summary>The accounting thread's pipe while it runs (<see cref="StartAccounting"/>); null: journeys are accounted for where they finish.</summary>
    private AccountingPipe? _accounting;
    private Thread? _accountingThread;
    private Exception? _accountingFailure;
    /// <summary>
    /// The roles <see cref="Settle"/> reads (the accounting's): <see cref="_roles"/> itself without an accounting thread, else
    /// the copy last sent through the pipe, so a sweep sees the roles the matching had when it reached that point.
    /// </summary>
    private InterfaceRole[] _accountRoles = [];
    /// <summary>The roles last sent to the accounting thread (the matching thread's).</summary>
    private InterfaceRole[] _sentRoles = [];
    private readonly Func<int, InterfaceRole> _accountRoleOf;
    /// <summary>The journey being finished as whole observations, for <see cref="Observer"/>.</summary>
    private readonly List<Observation> _whole = [];
    /// <summary>The paths handed to a <see cref="FlowReach"/>, one array each (<see cref="AccountState.ReachPaths"/>).</summary>
    /// <summary>TCP data of the last two windows, for segmentation matches (docs/DESIGN.md, "Segmentation (GRO and GSO)").</summary>
    private readonly SegmentIndex _segmentIndex;
    private readonly Dictionary<(int From, int To), long> _segmentEdges = [];
    /// <summary>Decides the roles no name decided, from the first window's journeys; null when roles come only from <c>roleOf</c>.</summary>
    private readonly RoleInference? _inference;
    private readonly Func<int, bool>? _roleKnown;
    /// <summary>The interfaces whose role was not known when a tie group with them was ordered.</summary>
    private readonly SortedSet<int> _unknownTied = [];
    /// <summary>The bridge copies <see cref="SetAsideBridgeCopies"/> took out of the journey being finished.</summary>
    private readonly List<int> _side = [];
    /// <summary>One more than the largest interface id observed: the interfaces inference may decide.</summary>
    private int _interfacesSeen;

    /// <summary>
    /// A correlator whose roles come from <paramref name="roleOf"/>; with <paramref name="registry"/>, the roles it does
    /// not know are inferred from the traffic (<see cref="RoleInference"/>) before the first journey is ordered.
    /// </summary>
    public Correlator(CorrelatorOptions options, Func<int, InterfaceRole> roleOf, InterfaceRegistry? registry = null)
    {
        _options = options;
        _roleOf = roleOf;
        _accountRoleOf = AccountRoleOf;
        _nat = new NatTable(options.NatDetail, options.Timeouts, options.NatInUse);
        _segmentIndex = new SegmentIndex(options.WindowNs);
        if (registry is not null)
        {
            _inference = new RoleInference(registry);
            _roleKnown = registry.IsKnown;
        }
    }

    /// <summary>Groups of equal timestamps ordered while an interface in them had no known role (a guess; the report warns).</summary>
    public long TiesWithUnknownRole { get; private set; }

    /// <summary>Bridge copies of bridged frames set aside: not hops (docs/DESIGN.md, "Bridge copies").</summary>
    public long BridgeSideCopies { get; private set; }

    public long Observations { get; private set; }

    public long Journeys { get; private set; }

    /// <summary>Journeys seen on more than one interface.</summary>
    public long MultiHopJourneys { get; private set; }

    public int OpenJourneys => _openCount;

    /// <summary>Flows whose reach is held (those that may have lost a packet), until idle for their timeout.</summary>
    public int ActiveFlows => _flows.Count;

    /// <summary>NAT translations held, until idle for their timeout.</summary>
    public int ActiveTranslations => _nat.ActiveTranslations;

    /// <summary>The (destination, interface) ways to the egress held (<see cref="_ways"/>; those of the last destination shown may not be counted yet).</summary>
    public int KnownWays => _ways.Count;

    /// <summary>
    /// The memory its rings and open-journey table hold outside the GC heap (<see cref="LargeBuffer{T}"/>): a memory
    /// benchmark adds it to what the GC counts.
    /// </summary>
    public long NativeBytes => _open.Bytes + _journeys.Bytes + _observations.Bytes + _segmentIndex.Bytes + _nat.Bytes;

    /// <summary>Journeys dropped because a filter selected none of their copies.</summary>
    public long Unselected { get; private set; }

    /// <summary>Told of every journey counted (<c>follow --prometheus</c>); set before the first observation.</summary>
    public IJourneyObserver? Observer { get; set; }

    /// <summary>TCP journeys that reached further hops as other packets: coalesced by GRO or cut by GSO.</summary>
    public long MatchedBySequenceRange { get; private set; }

    /// <summary>
    /// Told, on the matching thread, when a copy joins an open journey on an interface the journey had not visited:
    /// the journey's first interface, this copy's, and whether the journey is selected already (its first copy or this
    /// one passed the filter). Told before the journey's window closes: the match stands (the window can only add
    /// copies; a second copy on a visited interface starts another journey), its figures are counted when the window
    /// closes. Whole-host follow's <c>first_journey</c> event. Null: nothing is told.
    /// </summary>
    public Action<int, int, bool>? Joined { get; set; }

    /// <summary>
    /// Reads, ahead of <see cref="Add"/>, the memory the observation's fingerprint will be looked up in. The
    /// <see cref="TimeOrderer"/> calls it when the observation arrives and adds it milliseconds later, so the
    /// lookup (a random access into a table of a window's journeys, larger than the caches) finds it in cache.
    /// </summary>
    public void Anticipate(ulong fingerprint) => _open.Touch(fingerprint);

    /// <summary>
    /// Asks the CPU to fetch <paramref name="observation"/> itself (its lines, ahead of <see cref="ReadAhead"/> and
    /// <see cref="Add"/>): a batch is written on the reading thread's core, and reading an observation straight from
    /// there stalled <see cref="Add"/>'s copy of it into the ring (most of <c>ObservationSlot.Store</c>'s samples).
    /// </summary>
    public static unsafe void Fetch(ref readonly Observation observation)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            byte* start = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.CompilerServices.Unsafe.AsRef(in observation));
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(start);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(start + sizeof(Observation) - 1);
        }
    }

    /// <summary><see cref="Anticipate"/> for the observation's fingerprint (the segment index chains its entries only when searched: nothing to read ahead there).</summary>
    public void ReadAhead(in Observation observation)
    {
        _open.Touch(observation.Fingerprint);
    }

    public void Add(in Observation observation)
    {
        Observations++;
        if (observation.Interface >= _interfacesSeen)
        {
            _interfacesSeen = observation.Interface + 1;
            RefreshRoles();
        }
        else if ((Observations & (RoleRefreshObservations - 1)) == 0)
        {
            RefreshRoles();
        }
        Expire(observation.TimestampNs - _options.WindowNs);
        if (observation.TimestampNs >= _nextSweepNs)
        {
            if (_nextSweepNs != long.MinValue)
            {
                if (_accounting is { } pipe)
                {
                    AccountBatch batch = pipe.Room();
                    batch.Records[batch.RecordCount++] = new AccountRecord { Kind = AccountKind.Sweep, TimeNs = observation.TimestampNs };
                }
                else
                {
                    Sweep(observation.TimestampNs);
                }
            }
            _nextSweepNs = observation.TimestampNs + Math.Max(1, _options.Timeouts.ShortestNs / SweepsPerTimeout);
        }
        // Only open journeys refer to the ring, and the oldest of them started no earlier than the oldest kept.
        _observations.DropBefore(_journeys.Count > 0 ? _journeys[_journeys.Head].First : _observations.Tail);
        ref ObservationSlot slot = ref _observations.PushRef(out long sequence);
        slot.Store(in observation);
        if (observation.IsTcpData)
        {
            _segmentIndex.Add(in observation);
        }
        int at = _open.Find(observation.Fingerprint, _journeys.Head, new JourneyFingerprints(_journeys), out long open);
        if (open >= 0)
        {
            ref JourneyEntry journey = ref _journeys[open];
            bool visited = Visited(in journey, observation.Interface);
            if (!visited && (!slot.IsLinkScoped || OnOneLink(in journey, in observation)))
            {
                _observations[journey.Last].Chain(journey.Last, sequence);
                journey.Last = sequence;
                journey.Sightings++;
                journey.Visit(observation.Interface);
                _inference?.Observe(observation.Interface, open);
                if (Joined is { } joined)
                {
                    ref ObservationSlot first = ref _observations[journey.First];
                    joined(first.Interface, observation.Interface, first.Selected || observation.Selected);
                }
                return;
            }
            if (visited)
            {
                // The same interface again: a retransmitted copy, a hairpin or a collision. Close and start anew.
                Finish(ref journey);
            }
            // Otherwise link-scoped control traffic from another link (an MLD report each interface sends with the
            // same bytes): a journey of its own; the other stays open until its window ends.
        }
        var started = new JourneyEntry { Fingerprint = observation.Fingerprint, FirstTimestampNs = observation.TimestampNs, First = sequence, Last = sequence, Sightings = 1 };
        started.Visit(observation.Interface);
        open = _journeys.Push(in started);
        _open.Set(at, observation.Fingerprint, open);
        _inference?.Observe(observation.Interface, open);
        _openCount++;
    }

    /// <summary>
    /// Ends every open journey (end of input, or a live stop), whatever its timestamp: a reader saturates a timestamp
    /// it cannot represent to <see cref="long.MaxValue"/>, and such a journey must still be counted.
    /// </summary>
    public void Complete()
    {
        RefreshRoles();
        Expire(long.MaxValue, everything: true);
    }

    /// <summary>
    /// Moves the correlator's clock without an observation: every journey whose window ended before
    /// <paramref name="timestampNs"/> ends now. Live capture calls it as the wall clock goes on (the time orderer
    /// will hand it nothing older), so a quiet container's last journeys are counted when their window passes, not
    /// when the next packet comes.
    /// </summary>
    public void Advance(long timestampNs)
    {
        RefreshRoles();
        if (_journeys.Count > 0)
        {
            Expire(timestampNs - _options.WindowNs);
        }
    }

    public CorrelationReport Report()
    {
        if (_accounting is not null)
        {
            throw new InvalidOperationException("The accounting thread is running: StopAccounting first.");
        }
        RefreshRoles();
        FlushWays();
        var hops = _hops.Select(h => new HopReport(h.From, h.To, h.Histogram) { Timeline = h.Timeline }).OrderByDescending(h => h.Histogram.Count).ToList();
        var paths = _paths.Values.OrderByDescending(p => p.Journeys).ToList();
        var lostBy = new Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)>(_settledLosses);
        for (int i = 0; i < _flows.End; i++)
        {
            if (_flows.Holds(i))
            {
                Settle(_flows.KeyAt(i).ToFlowKey(), ref _flows.ReachAt(i), lostBy);
            }
        }
        var losses = lostBy.Select(l => new LossReport(l.Key.Flow, l.Key.LastSeen, l.Value.Packets) { Inside = l.Value.Inside }).ToList();
        long lost = losses.Sum(l => l.Packets);
        losses.Sort((a, b) => b.Packets.CompareTo(a.Packets));
        var segmentation = _segmentEdges.Select(e => new SegmentationReport(e.Key.From, e.Key.To, e.Value)).OrderByDescending(e => e.Journeys).ToList();
        return new CorrelationReport(Observations, Journeys, MultiHopJourneys, Journeys - lost, lost, hops, paths, _nat.Mappings(), losses)
        {
            MatchedBySequenceRange = MatchedBySequenceRange,
            Segmentation = segmentation,
            Unselected = Unselected,
            NatAggregates = _nat.Aggregates(),
            NatInUse = _nat.InUse(),
            BridgeSideCopies = BridgeSideCopies,
            TiesWithUnknownRole = TiesWithUnknownRole,
            UnknownRoleTied = [.. _unknownTied],
        };
    }

    /// <summary>
    /// From now until <see cref="StopAccounting"/>, what finished journeys add to the figures (<see cref="AccountJourney"/>:
    /// hops, NAT, paths, flow reach, ways, sweeps) is done on a thread of its own, fed through a <see cref="BatchPipe{T}"/>
    /// in the order the journeys finish, while the calling thread assembles journeys (<see cref="Add"/>, <see cref="Expire"/>):
    /// every figure ends as it would on one thread. Replay's matching runs this way (<see cref="TraceSession.RunPipelined"/>);
    /// not with an <see cref="Observer"/>. The report and the running counts of the accounting (<see cref="ActiveFlows"/>,
    /// <see cref="ActiveTranslations"/>, <see cref="KnownWays"/>) are read after <see cref="StopAccounting"/>.
    /// </summary>
    public void StartAccounting()
    {
        if (_accounting is not null || Observer is not null)
        {
            return;
        }
        _accountingFailure = null;
        _sentRoles = _accountRoles = (InterfaceRole[])_roles.Clone();
        var pipe = new AccountingPipe();
        _accounting = pipe;
        AccountingThreadStarted = true;
        _accountingThread = new Thread(() =>
        {
            try
            {
                _a = _a.CopyHere(); // allocated here: away from the matching thread's objects
                pipe.Consume(Account);
            }
            catch (Exception e)
            {
                _accountingFailure = e;
                pipe.Stop(); // the matching thread's further records are dropped, and it never waits for room
            }
        })
        { IsBackground = true, Name = "accounting" };
        _accountingThread.Start();
    }

    /// <summary>Whether an accounting thread runs (<see cref="StartAccounting"/>).</summary>
    public bool AccountingThread => _accounting is not null;

    /// <summary>Whether an accounting thread was started since the correlator was made.</summary>
    public bool AccountingThreadStarted { get; private set; }

    /// <summary>
    /// <see cref="StartAccounting"/> when the first journey seen on two or more hops finishes (until
    /// <see cref="StopAccounting"/>). A capture of one interface (every journey one hop) gives the accounting too little
    /// per journey for a thread to pay: replay-800000.pcap took 0.35 s of CPU with it against 0.26 s without
    /// (docs/performance.md, "Replay matching thread (session 10, match16e)"). Starting later changes no answer: the
    /// journeys accounted for until then were accounted for where they finished, in the same order.
    /// </summary>
    /// <param name="whenHeavy">Not with the first multi-hop journey but once the accounting proves heavy
    /// (<see cref="AccountingPays"/>; <see cref="TraceSessionOptions.AccountingThreadWhenHeavy"/>, two processors).</param>
    public void StartAccountingWithFirstMultiHopJourney(bool whenHeavy = false)
    {
        _accountingWanted = Observer is null;
        _accountingWhenHeavy = whenHeavy;
        _trialFrom = -1;
    }

    private bool _accountingWanted;

    /// <summary>
    /// Start the accounting thread only once the accounting proves heavy (<see cref="AccountingPays"/>): on two cores a
    /// third busy thread costs the captures of a few long flows CPU and gains them no time (docs/performance.md, "The
    /// accounting thread on 2 cores, again").
    /// </summary>
    private bool _accountingWhenHeavy;

    /// <summary>Multi-hop journeys per look at the accounting's weight, and the flow keys built per journey above which it is heavy (1 in 16).</summary>
    internal const int AccountingTrialJourneys = 1 << 15, AccountingHeavyShift = 4;

    private long _trialFrom = -1, _trialMissesFrom;

    /// <summary>
    /// Whether to start the accounting thread now: at once, unless <see cref="_accountingWhenHeavy"/>; then when, over the
    /// last <see cref="AccountingTrialJourneys"/> multi-hop journeys accounted here, the accounting met a new flow (a key
    /// built, <see cref="AccountState.KnownMisses"/>) at least once in 16 journeys: many short flows (containers' requests,
    /// many-flows files) make its work comparable to the matching's, a few long ones (a bulk transfer) leave it light.
    /// Looked at again every window, so a capture whose flows change later still gets the thread; never stopped once
    /// started. The answers are the same either way.
    /// </summary>
    private bool AccountingPays()
    {
        if (!_accountingWhenHeavy)
        {
            return true;
        }
        if (_trialFrom < 0 || MultiHopJourneys - _trialFrom >= AccountingTrialJourneys)
        {
            bool heavy = _trialFrom >= 0 && (_a.KnownMisses - _trialMissesFrom) << AccountingHeavyShift >= MultiHopJourneys - _trialFrom;
            _trialFrom = MultiHopJourneys;
            _trialMissesFrom = _a.KnownMisses;
            return heavy;
        }
        return false;
    }

    /// <summary>
    /// Waits until the accounting thread has accounted for every journey finished so far, and ends it: from then on
    /// journeys are accounted for where they finish. Rethrows what the accounting threw.
    /// </summary>
    public void StopAccounting()
    {
        _accountingWanted = false;
        if (_accounting is not { } pipe)
        {
            return;
        }
        pipe.Complete();
        _accountingThread!.Join();
        pipe.Dispose();
        _accounting = null;
        _accountingThread = null;
        _sentRoles = _accountRoles = _roles;
        if (_accountingFailure is { } failure)
        {
            _accountingFailure = null;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>
    /// Sends a journey to the accounting thread: its steps with their flows (read from the ring straight into the batch),
    /// the reach path if other, the side copies.
    /// </summary>
    private void Send(AccountingPipe pipe, ReadOnlySpan<Sighting> steps, ReadOnlySpan<Sighting> reachPath,
        ReadOnlySpan<int> side, bool timeless, bool closing)
    {
        AccountBatch batch = pipe.Room(steps.Length, reachPath.Length, side.Length);
        batch.Records[batch.RecordCount++] = new AccountRecord
        {
            Kind = AccountKind.Journey, Timeless = timeless, Closing = closing,
            StepsFrom = batch.StepCount, Steps = steps.Length, ReachFrom = batch.ReachCount, ReachSteps = reachPath.Length,
            SideFrom = batch.SideCount, SideCopies = side.Length,
        };
        steps.CopyTo(batch.Steps.AsSpan(batch.StepCount));
        StepFlows(steps, batch.Flows.AsSpan(batch.StepCount));
        batch.StepCount += steps.Length;
        reachPath.CopyTo(batch.Reach.AsSpan(batch.ReachCount));
        batch.ReachCount += reachPath.Length;
        side.CopyTo(batch.Side.AsSpan(batch.SideCount));
        batch.SideCount += side.Length;
    }

    /// <summary>The accounting thread: what a batch of records asks, in order.</summary>
    private void Account(AccountBatch batch)
    {
        ReadOnlySpan<AccountRecord> records = batch.Records.AsSpan(0, batch.RecordCount);
        foreach (ref readonly AccountRecord record in records)
        {
            switch (record.Kind)
            {
                case AccountKind.Single:
                    AccountSingle(in batch.Steps[record.StepsFrom], in batch.Flows[record.StepsFrom], record.Closing);
                    break;
                case AccountKind.Journey:
                    AccountJourney(batch.Steps.AsSpan(record.StepsFrom, record.Steps), batch.Flows.AsSpan(record.StepsFrom, record.Steps),
                        batch.Reach.AsSpan(record.ReachFrom, record.ReachSteps), batch.Side.AsSpan(record.SideFrom, record.SideCopies), record.Timeless, record.Closing);
                    break;
                case AccountKind.Sweep:
                    Sweep(record.TimeNs);
                    break;
                case AccountKind.Roles:
                    _accountRoles = _accounting!.TakeRoles();
                    break;
            }
        }
    }

    /// <summary>Copies the roles of the interfaces seen from <c>roleOf</c> (<see cref="_roles"/>).</summary>
    private void RefreshRoles()
    {
        int count = _interfacesSeen;
        if (_roles.Length != count)
        {
            _roles = new InterfaceRole[count];
            _rolesKnown = new bool[count];
        }
        for (int id = 0; id < count; id++)
        {
            _roles[id] = _roleOf(id);
            _rolesKnown[id] = _roleKnown?.Invoke(id) ?? true;
        }
        if (_accounting is null)
        {
            _accountRoles = _roles;
        }
        else if (!_roles.AsSpan().SequenceEqual(_sentRoles))
        {
            // The accounting thread takes this copy when it reaches this point of the stream.
            _sentRoles = (InterfaceRole[])_roles.Clone();
            _accounting.SendRoles(_sentRoles);
        }
    }

    private InterfaceRole RoleOf(int id) => (uint)id < (uint)_roles.Length ? _roles[id] : _roleOf(id);

    /// <summary><see cref="RoleOf"/> as the accounting sees it (<see cref="_accountRoles"/>).</summary>
    private InterfaceRole AccountRoleOf(int id) => (uint)id < (uint)_accountRoles.Length ? _accountRoles[id] : _roleOf(id);

    private bool RoleKnown(int id) => (uint)id < (uint)_rolesKnown.Length ? _rolesKnown[id] : _roleKnown!(id);

    /// <summary>
    /// The losses of one flow: its journeys that ended on an interface its own longest journey went past, and, for a
    /// flow that started on the inside (container, veth, bridge), those that ended short of the egress on an interface
    /// from which other packets to the same destination went on to the egress (<see cref="_ways"/>): a port blocked
    /// outright, where no packet of the flow got further; and, in follow, those that ended on the inside when the host
    /// routes their destination out of the egress (<see cref="CorrelatorOptions.EgressRoutes"/>), though nothing showed the way.
    /// </summary>
    private void Settle(in FlowKey flow, ref readonly FlowReach reach, Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)> lost)
    {
        // The interfaces journeys ended on, in order of the first to end there.
        if (reach.FirstEnd >= 0)
        {
            SettleEnd(in flow, in reach, reach.FirstEnd, reach.FirstEndCount, lost);
        }
        if (reach.OtherEnds is { } others)
        {
            foreach (var (lastInterface, count) in others)
            {
                SettleEnd(in flow, in reach, lastInterface, count, lost);
            }
        }
    }

    private void SettleEnd(in FlowKey flow, ref readonly FlowReach reach, int lastInterface, long count,
        Dictionary<(FlowKey Flow, int LastSeen), (long Packets, int Inside)> lost)
    {
        if (reach.IsShortOf(lastInterface)
            || reach.StartsInside && AccountRoleOf(lastInterface) != InterfaceRole.Egress && _ways.Contains(flow.Destination, lastInterface)
            || reach.StartsInside && IsInside(AccountRoleOf(lastInterface)) && _options.EgressRoutes?.LeavesByEgress(flow.Destination) == true)
        {
            // Without an accounting thread the registry's roles as they are now, as before; with one, its copy.
            lost[(flow, lastInterface)] = (lost.GetValueOrDefault((flow, lastInterface)).Packets + count,
                reach.Innermost(_accounting is null ? _roleOf : _accountRoleOf));
        }
    }

    /// <summary>
    /// Forgets the per-flow state idle for longer than its protocol's timeout (<see cref="FlowTimeouts"/>), as conntrack
    /// does: a flow's losses are settled when it goes, a NAT translation leaves its counts in its aggregate row, a way
    /// to the egress goes after the generic timeout. Run <see cref="SweepsPerTimeout"/> times per shortest timeout of trace
    /// time, so what is held is at most an eighth more than what is active (at a steady rate of new flows).
    /// </summary>
    private const int SweepsPerTimeout = 8;

    private void Sweep(long nowNs)
    {
        FlowTimeouts timeouts = _options.Timeouts;
        FlushWays();
        for (int i = 0; i < _flows.End; i++)
        {
            if (!_flows.Holds(i))
            {
                continue;
            }
            ref FlowReach reach = ref _flows.ReachAt(i);
            if (nowNs - reach.LastSeenNs > timeouts.For(new IpProtocol(_flows.KeyAt(i).Protocol), reach.Closing))
            {
                Settle(_flows.KeyAt(i).ToFlowKey(), in reach, _settledLosses);
                _flows.RemoveAt(i); // in index order, as a dictionary's removals while enumerating: the same entries freed in the same order
            }
        }
        _a.Reaches.Clear();
        _ways.Sweep(nowNs, timeouts.OtherNs);
        _nat.Sweep(nowNs, timeouts);
    }

    /// <summary>
    /// Whether a link-scoped copy may join a journey: link-local addresses and link-scoped multicast never cross a
    /// router, so only a copy with the same addresses, on the same side of the routing step (the bridge's side, or the
    /// egress), within <see cref="LinkWindowNs"/> (identical control messages repeat).
    /// </summary>
    private bool OnOneLink(in JourneyEntry journey, in Observation observation)
    {
        ref ObservationSlot first = ref _observations[journey.First];
        return observation.TimestampNs - journey.FirstTimestampNs <= LinkWindowNs
            && first.FlowFields.Equals(in observation.FlowFields)
            && (RoleOf(first.Interface) == InterfaceRole.Egress) == (RoleOf(observation.Interface) == InterfaceRole.Egress);
    }

    /// <summary>How long after its first copy a link-scoped packet may still be seen on the link's other interfaces: copies are microseconds apart, repeats (MLD reports are sent twice) much further.</summary>
    private const long LinkWindowNs = 10_000_000;

    /// <summary>How far ahead of the journey it finishes <see cref="Expire"/> asks for the journey to be fetched.</summary>
    private const int JourneysAhead = 16;
    /// <summary>
    /// How far ahead of the first sighting of the journey it finishes <see cref="Expire"/> asks for the observation ring to
    /// be fetched, every slot: a journey's other sightings lie a few to a few dozen slots after its first, among other
    /// journeys' (the copies of one packet on later hops come microseconds later), and fetching only each journey's first
    /// left the rest to miss (the first load of a slot was the most sampled instruction of <see cref="Finish"/>).
    /// </summary>
    private const int SlotsAhead = 128;
    /// <summary>The observation ring has been asked to be fetched up to this slot (<see cref="SlotsAhead"/>).</summary>
    private long _slotsFetched;

    private void Expire(long before, bool everything = false)
    {
        while (_journeys.Count > 0)
        {
            ref JourneyEntry journey = ref _journeys[_journeys.Head];
            if (journey.Finished)
            {
                _journeys.DropBefore(_journeys.Head + 1); // already finished early: its fingerprint has a newer journey
                continue;
            }
            if (journey.FirstTimestampNs >= before && !everything)
            {
                break;
            }
            // The journeys at the head and their sightings were written a window ago: out of cache. Read ahead.
            _journeys.Prefetch(_journeys.Head + JourneysAhead);
            long fetch = Math.Max(_slotsFetched, journey.First);
            long fetchTo = Math.Min(journey.First + SlotsAhead, _observations.Tail);
            for (; fetch < fetchTo; fetch++)
            {
                _observations.Prefetch(fetch);
            }
            _slotsFetched = Math.Max(_slotsFetched, fetchTo);
            if (_inference is not null && (_inference.IsPending(_interfacesSeen) || _inference.IsDue(_journeys.Head)))
            {
                Infer();
            }
            // Finished while still in the ring (dropping it may give its memory back); dropping it also ends its entry in _open.
            Finish(ref journey);
            _journeys.DropBefore(_journeys.Head + 1);
        }
    }

    /// <summary>
    /// Hands <see cref="_inference"/> every journey still open (at most <see cref="RoleInference.MaxJourneys"/> of them:
    /// the first window's, when the first is due, or the window that starts with the journey in which an interface of
    /// unknown role first showed after a decision) and lets it decide, before any of them is ordered.
    /// </summary>
    private void Infer()
    {
        int learnt = 0;
        for (long number = _journeys.Head; number < _journeys.Tail && learnt < RoleInference.MaxJourneys; number++)
        {
            ref JourneyEntry journey = ref _journeys[number];
            if (journey.Finished || journey.First == journey.Last)
            {
                continue;
            }
            _ties.Clear();
            for (long sighting = journey.First; sighting >= 0; sighting = _observations[sighting].Next(sighting))
            {
                _ties.Add(_observations[sighting].ToObservation(journey.Fingerprint));
            }
            _ties.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
            _inference!.Learn(CollectionsMarshal.AsSpan(_ties));
            learnt++;
        }
        _ties.Clear();
        _inference!.Decide(_interfacesSeen);
        RefreshRoles();
    }

    /// <summary>
    /// A bridge forwards a frame from one port to another (veth to veth east-west, veth to a VXLAN port) before it hands
    /// its own copy up (br_forward, then br_pass_frame_up, because capturing made it promiscuous): that copy is not a
    /// step between the ports. A bridge sighting is such a side copy when the journey was seen on two or more ports
    /// (veth or tunnel roles) with the bridge copy's TTL, i.e. on its L2 segment, not routed. It is taken out of
    /// <paramref name="sightings"/> into <see cref="_side"/>. A packet that goes up to the host's IP layer (routed to
    /// the egress, NATed, delivered to the host) crosses one port only, so its bridge copy stays on the path.
    /// </summary>
    private void SetAsideBridgeCopies(List<Sighting> sightings)
    {
        _side.Clear();
        Span<Sighting> all = CollectionsMarshal.AsSpan(sightings);
        int kept = 0;
        for (int i = 0; i < all.Length; i++)
        {
            Sighting sighting = all[i];
            // A TTL of 0 was not read (no IP layer parsed it): no evidence of bridged or routed, so the copy stays.
            if (sighting.Ttl != 0 && sighting.Role == InterfaceRole.Bridge)
            {
                int ports = 0;
                for (int j = 0; j < all.Length; j++)
                {
                    ref readonly Sighting other = ref all[j];
                    if (other.Ttl == sighting.Ttl && other.Role is InterfaceRole.Veth or InterfaceRole.Tunnel)
                    {
                        ports++;
                    }
                }
                if (ports >= 2)
                {
                    _side.Add(sighting.Interface);
                    continue;
                }
            }
            all[kept++] = sighting;
        }
        if (kept < all.Length)
        {
            sightings.RemoveRange(kept, all.Length - kept);
            BridgeSideCopies += _side.Count;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)] // once per observation of an open journey
    private bool Visited(in JourneyEntry journey, int interfaceId) =>
        (uint)interfaceId < 64 ? (journey.VisitedBelow64 & 1UL << interfaceId) != 0 : VisitedAlong(in journey, interfaceId);

    /// <summary><see cref="Visited"/> for an id of 64 or more: along the journey's chain.</summary>
    private bool VisitedAlong(in JourneyEntry journey, int interfaceId)
    {
        for (long sighting = journey.First; sighting >= 0; sighting = _observations[sighting].Next(sighting))
        {
            if (_observations[sighting].Interface == interfaceId)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Ends a journey (the caller drops it from the ring or gives its fingerprint a new one): reads its sightings out of the
    /// ring and orders them (the assembly), then hands them to <see cref="AccountJourney"/> (hops, NAT, paths, reach),
    /// directly or through the accounting thread's pipe (<see cref="StartAccounting"/>).
    /// </summary>
    private void Finish(ref JourneyEntry journey)
    {
        journey.Finished = true;
        _openCount--;
        if (journey.First == journey.Last && FinishSingle(journey.First, journey.Fingerprint))
        {
            return;
        }
        List<Sighting> sightings = _sightings;
        // Written in place (the journey counts its sightings): a list's Add per sighting copied each through the stack.
        CollectionsMarshal.SetCount(sightings, journey.Sightings);
        Span<Sighting> read = CollectionsMarshal.AsSpan(sightings);
        bool selected = false;
        bool timeless = false;
        TcpFlags flags = 0;
        int count = 0;
        int ports = 0;
        for (long number = journey.First; number >= 0;)
        {
            ref ObservationSlot slot = ref _observations[number];
            selected |= slot.Selected;
            timeless |= slot.TimestampInvalid;
            flags |= slot.TcpFlags;
            InterfaceRole role = RoleOf(slot.Interface);
            ports += role is InterfaceRole.Veth or InterfaceRole.Tunnel ? 1 : 0;
            read[count++] = slot.ToSighting(number, role);
            number = slot.Next(number);
        }
        if (!selected)
        {
            Unselected++;
            return;
        }
        if (timeless)
        {
            PlaceByTopology(sightings);
        }
        _side.Clear();
        if (sightings.Count > 2 && ports >= 2)
        {
            SetAsideBridgeCopies(sightings); // a side copy needs two ports (veth or tunnel) with its TTL
        }
        Order(sightings);
        Journeys++;
        if (sightings.Count > 1)
        {
            MultiHopJourneys++;
            if (_accountingWanted && _accounting is null && AccountingPays())
            {
                StartAccounting(); // this journey is the first sent to the thread
            }
        }
        ref ObservationSlot entrySlot = ref _observations[sightings[0].Slot];
        bool closing = (flags & (TcpFlags.Fin | TcpFlags.Rst)) != 0;
        bool segmented = entrySlot.IsTcpData && FindSegmentContinuation(sightings, journey.Fingerprint);
        if (segmented)
        {
            MatchedBySequenceRange++;
        }
        if (Observer is not null)
        {
            Observer.Journey(CollectionsMarshal.AsSpan(Whole(sightings, journey.Fingerprint)), segmented);
        }
        ReadOnlySpan<Sighting> reachPath = _scratch.Count > 0 ? CollectionsMarshal.AsSpan(_scratch) : default;
        if (_accounting is { } pipe)
        {
            Send(pipe, CollectionsMarshal.AsSpan(sightings), reachPath, CollectionsMarshal.AsSpan(_side), timeless, closing);
        }
        else
        {
            List<FlowBits> flows = _stepFlows;
            CollectionsMarshal.SetCount(flows, sightings.Count);
            StepFlows(CollectionsMarshal.AsSpan(sightings), CollectionsMarshal.AsSpan(flows));
            AccountJourney(CollectionsMarshal.AsSpan(sightings), CollectionsMarshal.AsSpan(flows), reachPath, CollectionsMarshal.AsSpan(_side), timeless, closing);
        }
        _scratch.Clear();
    }

    /// <summary>Each step's flow, from its slot in the ring, into <paramref name="flows"/>.</summary>
    private void StepFlows(ReadOnlySpan<Sighting> steps, Span<FlowBits> flows)
    {
        for (int i = 0; i < steps.Length; i++)
        {
            flows[i] = _observations[steps[i].Slot].FlowFields;
        }
    }

    /// <summary>
    /// What a finished journey (<paramref name="steps"/> in path order, each step's flow in <paramref name="flows"/>) adds to
    /// the figures: hops, NAT, its path, and its flow's reach (along <paramref name="reachPath"/> when a segmentation match
    /// extended it, else along the steps). Reads nothing of the assembly's state (rings, open journeys), so it may run on
    /// a thread of its own, given the journeys in the order they were finished (<see cref="StartAccounting"/>).
    /// </summary>
    private void AccountJourney(ReadOnlySpan<Sighting> steps, ReadOnlySpan<FlowBits> flows, ReadOnlySpan<Sighting> reachPath,
        ReadOnlySpan<int> side, bool timeless, bool closing)
    {
        ref KnownFlow entryFlow = ref Known(in flows[0]);
        FlowKey entry = entryFlow.Flow; // a copy: the next Known may reuse the entry
        bool linkScoped = entryFlow.LinkScoped;
        if (steps.Length > 1)
        {
            for (int i = 1; i < steps.Length; i++)
            {
                ref readonly Sighting from = ref steps[i - 1];
                ref readonly Sighting to = ref steps[i];
                // A copy without a valid capture time (Observation.TimestampInvalid) has no latency to give.
                if (!from.TimestampInvalid && !to.TimestampInvalid)
                {
                    var hop = _hops[HopOf(from.Interface, to.Interface)];
                    hop.Histogram.Record(to.TimestampNs - from.TimestampNs);
                    hop.Timeline.Record(from.TimestampNs, to.TimestampNs - from.TimestampNs);
                }
                // Link-local addresses are never NATed: two link-scoped copies never tell of a translation. Two copies
                // with one flow tell of none either (the NAT table would find both endpoints unchanged). A pair of flows
                // the table remembers needs no flow keys built (NatTable.Remembered).
                if (!linkScoped && !flows[i - 1].Equals(in flows[i]) && !_nat.Remembered(in flows[i - 1], in flows[i], from.TimestampNs, closing))
                {
                    FlowKey beforeFlow = Known(in flows[i - 1]).Flow;
                    _nat.Observe(in beforeFlow, in Known(in flows[i]).Flow, from.TimestampNs, closing, in flows[i - 1], in flows[i]);
                }
            }
            PathStats path = PathOf(steps);
            path.Journeys++;
            if (!timeless && _options.PathLatency)
            {
                path.Through.Record(steps[^1].TimestampNs - steps[0].TimestampNs);
            }
            foreach (int copy in side)
            {
                path.AddSideCopy(copy);
            }
        }
        if (!entry.IsEmpty && !linkScoped)
        {
            Reached(in entry, in flows[0], reachPath.Length > 0 ? reachPath : steps, closing);
        }
    }

    /// <summary>The sightings as whole observations (from the ring, with the times the ordering used), in <see cref="_whole"/>.</summary>
    private List<Observation> Whole(List<Sighting> sightings, ulong fingerprint)
    {
        _whole.Clear();
        foreach (ref readonly Sighting sighting in CollectionsMarshal.AsSpan(sightings))
        {
            _whole.Add(_observations[sighting.Slot].ToObservation(fingerprint) with { TimestampNs = sighting.TimestampNs });
        }
        return _whole;
    }

    /// <summary>The index in <see cref="_hops"/> of hop (<paramref name="from"/>, <paramref name="to"/>), made when first seen.</summary>
    private int HopOf(int from, int to)
    {
        AccountState a = _a;
        if ((uint)from < (uint)a.HopStride && (uint)to < (uint)a.HopStride)
        {
            int known = a.HopIndex[from * a.HopStride + to];
            if (known > 0)
            {
                return known - 1;
            }
        }
        return NewHop(from, to);
    }

    private int NewHop(int from, int to)
    {
        int larger = Math.Max(from, to);
        if (larger < MaxMatrixInterfaces)
        {
            if (larger >= _a.HopStride)
            {
                // Re-place the hops known in a matrix large enough for the new one.
                _a.HopStride = Math.Max(8, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)larger + 1));
                _a.HopIndex = new int[_a.HopStride * _a.HopStride];
                for (int i = 0; i < _hops.Count; i++)
                {
                    if (_hops[i].From < _a.HopStride && _hops[i].To < _a.HopStride)
                    {
                        _a.HopIndex[_hops[i].From * _a.HopStride + _hops[i].To] = i + 1;
                    }
                }
            }
            ref int slot = ref _a.HopIndex[from * _a.HopStride + to];
            if (slot == 0)
            {
                _hops.Add((from, to, new LatencyHistogram(), new LatencyTimeline(_timelineGrid)));
                slot = _hops.Count;
            }
            return slot - 1;
        }
        ref int beyond = ref CollectionsMarshal.GetValueRefOrAddDefault(_hopsBeyond, (from, to), out bool exists);
        if (!exists)
        {
            _hops.Add((from, to, new LatencyHistogram(), new LatencyTimeline(_timelineGrid)));
            beyond = _hops.Count - 1;
        }
        return beyond;
    }

    /// <summary>The figures of the path <paramref name="steps"/> took, made when first taken.</summary>
    private PathStats PathOf(ReadOnlySpan<Sighting> steps)
    {
        PathKey key = PathKey.Of(steps);
        if (_a.LastPath.Stats is not null && _a.LastPath.Key == key)
        {
            return _a.LastPath.Stats;
        }
        if (_a.PreviousPath.Stats is not null && _a.PreviousPath.Key == key)
        {
            (_a.LastPath, _a.PreviousPath) = (_a.PreviousPath, _a.LastPath);
            return _a.LastPath.Stats;
        }
        if (!_paths.TryGetValue(key, out PathStats? path))
        {
            var interfaces = new int[steps.Length];
            for (int i = 0; i < steps.Length; i++)
            {
                interfaces[i] = steps[i].Interface;
            }
            _paths[key] = path = new PathStats(interfaces);
        }
        _a.PreviousPath = _a.LastPath;
        _a.LastPath = (key, path);
        return path;
    }

    /// <summary>
    /// <see cref="Finish"/> for a journey of one sighting (every journey of a one-interface capture), read in place in
    /// the ring; false when it needs the general path (TCP data that other interfaces may have carried on).
    /// </summary>
    private bool FinishSingle(long number, ulong fingerprint)
    {
        ref ObservationSlot only = ref _observations[number];
        if (only.IsTcpData && !_segmentIndex.IsOnlyDataInterface(only.Interface))
        {
            return false;
        }
        if (!only.Selected)
        {
            Unselected++;
            return true;
        }
        Journeys++;
        if (Observer is not null)
        {
            Observation whole = only.ToObservation(fingerprint);
            Observer.Journey(new ReadOnlySpan<Observation>(in whole), segmented: false);
        }
        Sighting sighting = only.ToSighting(number, RoleOf(only.Interface));
        bool closing = (only.TcpFlags & (TcpFlags.Fin | TcpFlags.Rst)) != 0;
        if (_accounting is { } pipe)
        {
            AccountBatch batch = pipe.Room(steps: 1);
            batch.Records[batch.RecordCount++] = new AccountRecord { Kind = AccountKind.Single, StepsFrom = batch.StepCount, Steps = 1, Closing = closing };
            batch.Steps[batch.StepCount] = sighting;
            batch.Flows[batch.StepCount++] = only.FlowFields;
        }
        else
        {
            AccountSingle(in sighting, in only.FlowFields, closing);
        }
        return true;
    }

    /// <summary><see cref="AccountJourney"/> for a journey of one sighting.</summary>
    private void AccountSingle(ref readonly Sighting only, ref readonly FlowBits flow, bool closing)
    {
        ref KnownFlow known = ref Known(in flow);
        if (!known.Flow.IsEmpty && !known.LinkScoped)
        {
            ref FlowReach reach = ref ReachOf(in flow, only.TimestampNs, only.Role);
            reach.Closing |= closing;
            reach.Add(only.Interface);
        }
    }

    /// <summary>
    /// Records how far a journey of <paramref name="flow"/> got. A journey from the inside that ended at the egress
    /// shows the way to its destination from every inside interface it crossed (<see cref="_ways"/>) and needs no
    /// state of its own, unless its flow has some already (an earlier journey ended short); any other journey is
    /// kept in its flow's <see cref="FlowReach"/>.
    /// </summary>
    private void Reached(in FlowKey flow, in FlowBits bits, ReadOnlySpan<Sighting> path, bool closing)
    {
        long firstNs = path[0].TimestampNs;
        if (IsInside(path[0].Role) && path[^1].Role == InterfaceRole.Egress)
        {
            int egress = 0;
            while (path[egress].Role != InterfaceRole.Egress)
            {
                egress++; // the last is the egress
            }
            if (egress == path.Length - 1)
            {
                for (int i = 0; i < egress; i++)
                {
                    if (IsInside(path[i].Role))
                    {
                        SawWay(flow.Destination, path[i].Interface, firstNs);
                    }
                }
                int held = HasReach(in bits);
                if (held < 0)
                {
                    return;
                }
                ref FlowReach known = ref _flows.ReachAt(held);
                known.LastSeenNs = Math.Max(known.LastSeenNs, firstNs);
                known.Closing |= closing;
                known.Add(_a.ReachPaths.Of(path));
                return;
            }
        }
        ref FlowReach reach = ref ReachOf(in bits, firstNs, path[0].Role);
        reach.Closing |= closing;
        reach.Add(_a.ReachPaths.Of(path));
    }

    /// <summary><see cref="EgressWayTable.Saw"/>, held in <see cref="AccountState.PendingWays"/> until <see cref="FlushWays"/>.</summary>
    private void SawWay(IpAddress destination, int interfaceId, long timestampNs)
    {
        if (_a.PendingWayCount > 0 && !_a.PendingWayDestination.Equals(destination))
        {
            FlushWays();
        }
        Span<(int Interface, long LastNs)> pending = _a.PendingWays.AsSpan(0, _a.PendingWayCount);
        for (int i = 0; i < pending.Length; i++)
        {
            if (pending[i].Interface == interfaceId)
            {
                pending[i].LastNs = timestampNs;
                return;
            }
        }
        if (_a.PendingWayCount == _a.PendingWays.Length)
        {
            FlushWays();
        }
        _a.PendingWayDestination = destination;
        _a.PendingWays[_a.PendingWayCount++] = (interfaceId, timestampNs);
        _ways.Prefetch(in destination, interfaceId);
    }

    /// <summary>Writes the ways held in <see cref="AccountState.PendingWays"/> to <see cref="_ways"/>.</summary>
    private void FlushWays()
    {
        for (int i = 0; i < _a.PendingWayCount; i++)
        {
            _ways.Saw(in _a.PendingWayDestination, _a.PendingWays[i].Interface, _a.PendingWays[i].LastNs);
        }
        _a.PendingWayCount = 0;
    }

    private static bool IsInside(InterfaceRole role) => role is InterfaceRole.Container or InterfaceRole.Veth or InterfaceRole.Bridge;

    /// <summary>The index in <see cref="_flows"/> of <paramref name="flow"/>'s reach, or -1 when it has none.</summary>
    private int HasReach(in FlowBits flow)
    {
        int recent = _a.Reaches.Last(in flow);
        if (recent >= 0)
        {
            return _a.Reaches.ReachAt(recent);
        }
        int hash = ReachTable.Hash(in flow);
        recent = _a.Reaches.Find(in flow, hash);
        if (recent >= 0)
        {
            return _a.Reaches.ReachAt(recent);
        }
        int reach = _flows.Find(in flow, hash);
        _a.Reaches.SetAt(-1, in flow, hash, reach); // not among them: Find said so above
        return reach;
    }

    /// <summary>
    /// The flow key of the slot's flow and whether it is link-scoped, from <see cref="AccountState.KnownFlows"/> when one of the last
    /// few built has the same fields, else built there (replacing the oldest). Valid until the next call.
    /// </summary>
    private ref KnownFlow Known(ref readonly FlowBits bits)
    {
        KnownFlow[] known = _a.KnownFlows;
        for (int i = 0; i < known.Length; i++)
        {
            ref KnownFlow candidate = ref known[i];
            // FlowBits.Equals is inlined (AggressiveInlining): as a call it was 3-4 % of the accounting thread on multihop-mixed.
            if (candidate.Bits.Equals(in bits) && candidate.Made)
            {
                return ref candidate;
            }
        }
        _a.KnownMisses++;
        ref KnownFlow made = ref known[_a.NextKnownFlow];
        _a.NextKnownFlow = (_a.NextKnownFlow + 1) & (KnownFlowCount - 1);
        made.Bits = bits;
        made.Flow = bits.ToFlowKey();
        made.LinkScoped = bits.IsLinkScoped;
        made.Made = true;
        return ref made;
    }

    private struct KnownFlow
    {
        public FlowBits Bits;
        public FlowKey Flow;
        public bool LinkScoped;
        public bool Made;
    }

    /// <summary>The reach of <paramref name="flow"/>, made on its first journey (which says whether it starts on the inside).</summary>
    private ref FlowReach ReachOf(in FlowBits flow, long firstNs, InterfaceRole firstRole)
    {
        ref FlowReach reach = ref _flows.ReachAt(ReachOf(in flow));
        if (reach.LastSeenNs == 0)
        {
            reach.StartsInside = IsInside(firstRole);
        }
        reach.LastSeenNs = Math.Max(reach.LastSeenNs, firstNs);
        return ref reach;
    }

    /// <summary>The index in <see cref="_flows"/> of <paramref name="flow"/>'s reach, made (no journey yet) when it has none.</summary>
    private int ReachOf(in FlowBits flow)
    {
        // The last few flows before the table.
        int recent = _a.Reaches.Last(in flow);
        if (recent >= 0 && _a.Reaches.ReachAt(recent) is >= 0 and int last)
        {
            return last;
        }
        int hash = ReachTable.Hash(in flow);
        recent = _a.Reaches.Find(in flow, hash);
        if (recent >= 0 && _a.Reaches.ReachAt(recent) is >= 0 and int known)
        {
            return known;
        }
        int reach = _flows.FindOrAdd(in flow, hash, out _); // one probe, not two for a new flow
        _a.Reaches.SetAt(recent, in flow, hash, reach); // replaces a "none" of this flow (recent: Find's answer above)
        return reach;
    }

    /// <summary>
    /// GRO coalesces segments into one super-packet and GSO cuts one into segments, so one hop's packet is
    /// several packets on the next, with other fingerprints. A TCP journey that overlaps, by sequence range
    /// within the same segment key, TCP data seen on interfaces it did not visit continued there (the
    /// <see cref="SegmentIndex"/> finds those). Those interfaces are appended (in time order) to the path used for loss
    /// decisions, in <see cref="_scratch"/>; latency histograms keep to exact matches.
    /// </summary>
    private bool FindSegmentContinuation(List<Sighting> sightings, ulong fingerprint)
    {
        _scratch.Clear();
        ref ObservationSlot first = ref _observations[sightings[0].Slot];
        if (!_segmentIndex.FindContinuations(sightings[0].TimestampNs, fingerprint, first.SegmentKey, first.TcpSequence, first.SequenceEnd,
            CollectionsMarshal.AsSpan(sightings), _scratch))
        {
            return false;
        }
        foreach (ref Sighting candidate in CollectionsMarshal.AsSpan(_scratch))
        {
            candidate.Role = RoleOf(candidate.Interface);
        }
        _scratch.InsertRange(0, sightings);
        _scratch.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
        // Count each step of the extended path that a segmentation match made, in time order.
        for (int i = 1; i < _scratch.Count; i++)
        {
            long before = _scratch[i - 1].Order, after = _scratch[i].Order;
            if (!Contains(sightings, before) || !Contains(sightings, after))
            {
                var edge = (_scratch[i - 1].Interface, _scratch[i].Interface);
                _segmentEdges[edge] = _segmentEdges.GetValueOrDefault(edge) + 1;
            }
        }
        return true;
    }

    private static bool Contains(List<Sighting> sightings, long order)
    {
        foreach (ref readonly Sighting sighting in CollectionsMarshal.AsSpan(sightings))
        {
            if (sighting.Order == order)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// A sighting whose capture time was invalid (<see cref="Observation.TimestampInvalid"/>) carries a stand-in time,
    /// so its place in the path cannot come from it: it takes the time of the valid sighting nearest to it by role, and
    /// <see cref="Order"/> lays the two out as any tie, by topology. Only this journey's copy of the list changes.
    /// </summary>
    private static void PlaceByTopology(List<Sighting> list)
    {
        Span<Sighting> sightings = CollectionsMarshal.AsSpan(list);
        for (int i = 0; i < sightings.Length; i++)
        {
            if (!sightings[i].TimestampInvalid)
            {
                continue;
            }
            int role = (int)sightings[i].Role;
            int nearest = -1;
            for (int j = 0; j < sightings.Length; j++)
            {
                if (!sightings[j].TimestampInvalid
                    && (nearest < 0 || Math.Abs((int)sightings[j].Role - role) < Math.Abs((int)sightings[nearest].Role - role)))
                {
                    nearest = j;
                }
            }
            if (nearest >= 0)
            {
                sightings[i].TimestampNs = sightings[nearest].TimestampNs;
            }
        }
    }

    /// <summary>
    /// Time order. Equal timestamps (the kernel reuses the receive stamp along an ingress path) follow the topology:
    /// a tie after an earlier sighting goes outwards from it, nearest role first (after the egress: egress, tunnel,
    /// bridge, veth, container; after a container's interface the reverse), which also orders a journey that crosses
    /// from one host to another through a tunnel; a tie at the start ends nearest to the sighting after it. Equal
    /// roles keep capture order.
    /// </summary>
    private void Order(List<Sighting> list)
    {
        if (list.Count < 2)
        {
            return;
        }
        Span<Sighting> sightings = CollectionsMarshal.AsSpan(list);
        if (!InTimeOrder(sightings))
        {
            list.Sort(static (a, b) => a.TimestampNs != b.TimestampNs ? a.TimestampNs.CompareTo(b.TimestampNs) : a.Order.CompareTo(b.Order));
        }
        bool outwards = Outwards(sightings);
        for (int start = 0; start < sightings.Length;)
        {
            int end = start + 1;
            while (end < sightings.Length && sightings[end].TimestampNs == sightings[start].TimestampNs)
            {
                end++;
            }
            if (end - start > 1)
            {
                // The neighbour the tie group hangs on: the sighting before it, else the one after it (then the
                // group is laid out backwards from it), else none (the whole journey is one tie).
                if (_roleKnown is not null)
                {
                    bool unknown = false;
                    for (int i = start; i < end; i++)
                    {
                        if (!RoleKnown(sightings[i].Interface))
                        {
                            unknown = true;
                            _unknownTied.Add(sightings[i].Interface);
                        }
                    }
                    if (unknown)
                    {
                        TiesWithUnknownRole++;
                    }
                }
                int anchor = start > 0 ? (int)sightings[start - 1].Role : end < sightings.Length ? (int)sightings[end].Role : -1;
                bool backwards = start == 0;
                // Insertion sort in place: a tie group is a few copies, and the order is total (Order is unique).
                Span<Sighting> group = sightings[start..end];
                for (int i = 1; i < group.Length; i++)
                {
                    Sighting moving = group[i];
                    int j = i - 1;
                    while (j >= 0 && CompareTied(in group[j], in moving, anchor, backwards, outwards) > 0)
                    {
                        group[j + 1] = group[j];
                        j--;
                    }
                    group[j + 1] = moving;
                }
            }
            start = end;
        }
    }

    /// <summary>The order of two sightings with one timestamp (<see cref="Order"/>).</summary>
    private static int CompareTied(in Sighting a, in Sighting b, int anchor, bool backwards, bool outwards)
    {
        int roleA = (int)a.Role, roleB = (int)b.Role;
        if (anchor >= 0)
        {
            int byDistance = Math.Abs(roleA - anchor).CompareTo(Math.Abs(roleB - anchor));
            if (byDistance != 0)
            {
                return backwards ? -byDistance : byDistance;
            }
        }
        int byRole = roleA.CompareTo(roleB);
        return byRole != 0 ? (outwards ? byRole : -byRole) : a.Order.CompareTo(b.Order);
    }

    /// <summary>Whether the sightings are in (timestamp, order) sequence already, as they arrive unless a time was placed by topology.</summary>
    private static bool InTimeOrder(ReadOnlySpan<Sighting> span)
    {
        for (int i = 1; i < span.Length; i++)
        {
            if (span[i].TimestampNs < span[i - 1].TimestampNs || span[i].TimestampNs == span[i - 1].TimestampNs && span[i].Order < span[i - 1].Order)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Whether a journey travels from the container towards the egress. A copy whose direction the capture recorded
    /// says it (sent by the container's interface or the egress, received by a veth or the bridge); otherwise the
    /// roles of the first and last sightings in time order do. Matters when every sighting has one timestamp (a
    /// macvlan child and its parent share the receive stamp).
    /// </summary>
    private static bool Outwards(ReadOnlySpan<Sighting> sightings)
    {
        foreach (ref readonly Sighting sighting in sightings)
        {
            if (sighting.Direction == PacketDirection.Unknown)
            {
                continue;
            }
            InterfaceRole role = sighting.Role;
            if (role == InterfaceRole.Tunnel)
            {
                continue;
            }
            bool sent = sighting.Direction == PacketDirection.Outbound;
            return role is InterfaceRole.Container or InterfaceRole.Egress ? sent : !sent;
        }
        return (int)sightings[0].Role <= (int)sightings[^1].Role;
    }

    /// <summary>The fingerprints of the journeys in <see cref="_journeys"/>, for <see cref="OpenJourneyIndex.Find"/> to confirm a tag.</summary>
    private readonly struct JourneyFingerprints(SequenceRing<JourneyEntry> journeys) : OpenJourneyIndex.IFingerprints
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public ulong FingerprintOf(long journey) => journeys[journey].Fingerprint;
    }

    /// <summary>
    /// An open (or finished, not yet expired) journey: its sightings are chained through <see cref="_observations"/>
    /// from <see cref="First"/> to <see cref="Last"/> by <see cref="ObservationSlot.Next"/>.
    /// </summary>
    private struct JourneyEntry
    {
        public ulong Fingerprint;
        public long FirstTimestampNs;
        public long First;
        public long Last;
        /// <summary>The interfaces below 64 the journey visited, as bits; larger ids are looked up along the chain.</summary>
        public ulong VisitedBelow64;
        /// <summary>How many sightings are chained.</summary>
        public int Sightings;
        public bool Finished;

        public void Visit(int interfaceId)
        {
            if ((uint)interfaceId < 64)
            {
                VisitedBelow64 |= 1UL << interfaceId;
            }
        }
    }

    /// <summary>
    /// An observation as the ring keeps it, 88 bytes instead of 128: the addresses as their halves with one byte for both
    /// versions (an <see cref="IpAddress"/> pads its version byte to 8), no fingerprint (the journey's), the link to the
    /// journey's next sighting as a distance, the small fields packed.
    /// </summary>
    private struct ObservationSlot
    {
        private long _timestampNs;
        private long _order;
        private ulong _segmentKey;
        /// <summary>The flow's addresses, ports, protocol and versions, compared as five words.</summary>
        private FlowBits _flow;
        private uint _tcpSequence;
        private int _tcpPayload;
        private int _length;
        /// <summary>The journey's next sighting, as the distance in sequence numbers to it; 0 for none.</summary>
        private int _next;
        private TcpFlags _tcpFlags;
        private byte _ttl;
        /// <summary><see cref="Observation.Selected"/>, <see cref="Observation.TimestampInvalid"/>, <see cref="Observation.Tunnelled"/>, and the direction above them.</summary>
        private byte _flags;

        public int Interface { get; private set; }

        public readonly long TimestampNs => _timestampNs;

        public readonly bool Selected => (_flags & 1) != 0;

        public readonly bool TimestampInvalid => (_flags & 2) != 0;

        public readonly TcpFlags TcpFlags => _tcpFlags;

        public readonly ulong SegmentKey => _segmentKey;

        public readonly bool IsTcpData => _segmentKey != 0;

        public readonly uint TcpSequence => _tcpSequence;

        /// <summary><see cref="Observation.SequenceEnd"/>.</summary>
        public readonly uint SequenceEnd => _tcpSequence + (uint)_tcpPayload;

        /// <summary>Whether the two sightings carry one flow (the same addresses, ports and protocol).</summary>
        public readonly bool SameFlow(in ObservationSlot other) => _flow.Equals(in other._flow);

        /// <summary>The flow's fields as stored (<see cref="FlowBits"/>).</summary>
        [System.Diagnostics.CodeAnalysis.UnscopedRef]
        public readonly ref readonly FlowBits FlowFields => ref _flow;

        /// <summary>What ordering the journey needs of this sighting (numbered <paramref name="number"/>), with its interface's role.</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public readonly Sighting ToSighting(long number, InterfaceRole role) => new()
        {
            TimestampNs = _timestampNs,
            Order = _order,
            Slot = number,
            Interface = Interface,
            Role = role,
            Ttl = _ttl,
            Direction = (PacketDirection)(_flags >> 3),
            TimestampInvalid = (_flags & 2) != 0,
        };

        /// <summary><see cref="FlowKey.IsLinkScoped"/> of <see cref="Flow"/>, without building the whole key.</summary>
        public readonly bool IsLinkScoped => _flow.IsLinkScoped;

        public readonly FlowKey Flow => _flow.ToFlowKey();

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)] // once per observation
        public void Store(in Observation observation)
        {
            _timestampNs = observation.TimestampNs;
            _order = observation.Order;
            _segmentKey = observation.SegmentKey;
            _flow = observation.FlowFields; // packed on the reading thread: copied, not converted
            _tcpSequence = observation.TcpSequence;
            _tcpPayload = observation.TcpPayload;
            _length = observation.Length;
            _next = 0;
            _tcpFlags = observation.TcpFlags;
            _ttl = observation.Ttl;
            _flags = (byte)((observation.Selected ? 1 : 0) | (observation.TimestampInvalid ? 2 : 0) | (observation.Tunnelled ? 4 : 0) | (int)observation.Direction << 3);
            Interface = observation.Interface;
        }

        /// <summary>Links the sighting numbered <paramref name="sequence"/> (this one) to <paramref name="next"/>.</summary>
        public void Chain(long sequence, long next) => _next = checked((int)(next - sequence));

        /// <summary>The number of the journey's sighting after this one (numbered <paramref name="sequence"/>), or -1.</summary>
        public readonly long Next(long sequence) => _next == 0 ? -1 : sequence + _next;

        /// <summary>The observation stored, with the fingerprint of its journey.</summary>
        public readonly Observation ToObservation(ulong fingerprint)
        {
            var observation = new Observation(_timestampNs, Interface, _order, fingerprint, default, _length,
                (_flags & 1) != 0, _segmentKey, _tcpSequence, _tcpPayload, (PacketDirection)(_flags >> 3), (_flags & 2) != 0, _ttl, (_flags & 4) != 0, _tcpFlags);
            observation.SetFlowFields(in _flow);
            return observation;
        }
    }

    /// <summary>
    /// A flow key as the ring keeps it, 40 bytes instead of 56: the addresses as their halves, the ports, protocol and both
    /// IP versions in one word, so two flows compare as five words (<see cref="Equals(in FlowBits)"/>).
    /// </summary>
    /// <remarks>
    /// The halves in <see cref="PacketLayers"/>' order (each address low half first, the source first), so that
    /// <see cref="Set(in PacketLayers)"/> copies the parser's 32 bytes of addresses as one block. An observation carries
    /// its flow in this form from the reading thread (<see cref="Observation"/>), and the ring slot copies it as it is.
    /// </remarks>
    internal struct FlowBits : IEquatable<FlowBits>
    {
        public ulong SourceLow, SourceHigh, DestinationLow, DestinationHigh;
        /// <summary>Source port (bits 0-15), destination port (16-31), protocol (32-39), the source's IP version (40-47), the destination's (48-55).</summary>
        public ulong Rest;

        /// <summary>
        /// The flow of <paramref name="layers"/> (a packet's innermost stack) in place, as <see cref="Set(in FlowKey)"/> of
        /// <see cref="FlowKey.From(in PacketLayers)"/> stores it, without building the key: the addresses' halves as the
        /// parser left them, the ports as <see cref="FlowKey.PortsOf"/> picks them, both versions the stack's. All zero
        /// without a network layer (the empty key's bits).
        /// </summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public void Set(in PacketLayers layers)
        {
            if (!layers.Has(LayerSet.Network))
            {
                this = default;
                return;
            }
            System.Runtime.CompilerServices.Unsafe.As<ulong, AddressBlock>(ref SourceLow) =
                System.Runtime.CompilerServices.Unsafe.As<ulong, AddressBlock>(ref System.Runtime.CompilerServices.Unsafe.AsRef(in layers.SourceLow));
            ulong version = layers.IpVersion;
            Rest = FlowKey.PortsOf(in layers) | (ulong)layers.Protocol.Value << 32 | version << 40 | version << 48;
        }

        /// <summary>The four address halves, as one 32-byte copy.</summary>
        private struct AddressBlock
        {
#pragma warning disable CS0649 // copied whole, never read field by field
            public ulong A, B, C, D;
#pragma warning restore CS0649
        }

        /// <summary>Stores <paramref name="flow"/> in place (in the ring: no temporary to copy).</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public void Set(in FlowKey flow)
        {
            // The halves as two words each (UInt128's shift was a call, not inlined).
            UInt128 source = flow.Source.Value, destination = flow.Destination.Value;
            SourceHigh = System.Runtime.CompilerServices.Unsafe.Add(ref System.Runtime.CompilerServices.Unsafe.As<UInt128, ulong>(ref source), 1);
            SourceLow = (ulong)source;
            DestinationHigh = System.Runtime.CompilerServices.Unsafe.Add(ref System.Runtime.CompilerServices.Unsafe.As<UInt128, ulong>(ref destination), 1);
            DestinationLow = (ulong)destination;
            Rest = flow.SourcePort | (ulong)flow.DestinationPort << 16 | (ulong)flow.Protocol.Value << 32
                | (ulong)flow.Source.Version << 40 | (ulong)flow.Destination.Version << 48;
        }

        /// <summary>The five words compared (inlined: the reach table, the NAT memo and the recent reaches compare keys this way on every look-up).</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public readonly bool Equals(in FlowBits other) =>
            SourceLow == other.SourceLow && DestinationLow == other.DestinationLow && Rest == other.Rest
            && SourceHigh == other.SourceHigh && DestinationHigh == other.DestinationHigh;

        public readonly bool Equals(FlowBits other) => Equals(in other);

        /// <summary>The source's bits of <see cref="Rest"/>: its port and its IP version.</summary>
        private const ulong SourceRest = 0xFFFFUL | 0xFFUL << 40;

        /// <summary>The destination's bits of <see cref="Rest"/>: its port and its IP version.</summary>
        private const ulong DestinationRest = 0xFFFFUL << 16 | 0xFFUL << 48;

        /// <summary>The same source address and port as <paramref name="other"/>'s (as the keys' Source and SourcePort compare), without building keys.</summary>
        public readonly bool SameSource(in FlowBits other) =>
            SourceLow == other.SourceLow && SourceHigh == other.SourceHigh && ((Rest ^ other.Rest) & SourceRest) == 0;

        /// <summary>The same destination address and port as <paramref name="other"/>'s, without building keys.</summary>
        public readonly bool SameDestination(in FlowBits other) =>
            DestinationLow == other.DestinationLow && DestinationHigh == other.DestinationHigh && ((Rest ^ other.Rest) & DestinationRest) == 0;

        public override readonly bool Equals(object? obj) => obj is FlowBits other && Equals(in other);

        public override readonly int GetHashCode() => HashCode.Combine(SourceLow, SourceHigh, DestinationLow, DestinationHigh, Rest);

        public readonly byte Protocol => (byte)(Rest >> 32);

        private readonly IpAddress Source => Address(SourceHigh, SourceLow, (byte)(Rest >> 40));

        private readonly IpAddress Destination => Address(DestinationHigh, DestinationLow, (byte)(Rest >> 48));

        /// <summary>
        /// <see cref="FlowKey.IsLinkScoped"/>, read from the words (no address built: once per observation joining a journey):
        /// <see cref="IpAddress.IsLinkLocal"/> and <see cref="IpAddress.IsLinkScopedMulticast"/> on the halves as stored.
        /// </summary>
        public readonly bool IsLinkScoped
        {
            [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
            get
            {
                if (Protocol == IpProtocol.Igmp.Value)
                {
                    return true;
                }
                int sourceVersion = (byte)(Rest >> 40), destinationVersion = (byte)(Rest >> 48);
                return IsLinkLocal(SourceHigh, SourceLow, sourceVersion) || IsLinkLocal(DestinationHigh, DestinationLow, destinationVersion)
                    || (destinationVersion == 6 ? DestinationHigh >> 48 is 0xFF01 or 0xFF02 : destinationVersion == 4 && (uint)DestinationLow >> 8 == 0xE00000);
            }
        }

        private static bool IsLinkLocal(ulong high, ulong low, int version) =>
            version == 6 ? high >> 54 == 0x3FA : version == 4 && (uint)low >> 16 == 0xA9FE;

        public readonly FlowKey ToFlowKey() => new(new IpProtocol(Protocol), Source, (ushort)Rest, Destination, (ushort)(Rest >> 16));

        private static IpAddress Address(ulong high, ulong low, int version)
        {
            switch (version)
            {
                case 4:
                    return IpAddress.FromV4((uint)low);
                case 6:
                    return IpAddress.FromV6(high, low);
                default:
                    return default;
            }
        }
    }
}

/// <summary>
/// A path as a value: up to 8 interface ids below 256 packed in one word (the common case, no allocation), else a
/// hash of them all with the length (a collision merges two rare paths' counts, nothing else).
/// </summary>
internal readonly record struct PathKey(ulong Packed, int Length)
{
    public static PathKey Of(ReadOnlySpan<Sighting> sightings)
    {
        ulong packed = 0;
        bool fits = sightings.Length <= 8;
        foreach (ref readonly Sighting sighting in sightings)
        {
            fits &= (uint)sighting.Interface < 256;
            packed = packed << 8 | (byte)sighting.Interface;
        }
        if (fits)
        {
            return new PathKey(packed, sightings.Length);
        }
        ulong hash = Flows.StableHash.Seed;
        foreach (ref readonly Sighting sighting in sightings)
        {
            hash = Flows.StableHash.Add(hash, (ulong)sighting.Interface);
        }
        return new PathKey(Flows.StableHash.Finish(hash), -sightings.Length);
    }
}

/// <summary>
/// One sighting of the journey the correlator is finishing: what ordering it, the hop figures and the losses need (40
/// bytes), the rest left in the correlator's ring at <see cref="Slot"/>. <see cref="TimestampNs"/> is this journey's
/// copy: a sighting without a valid time is given its neighbour's.
/// </summary>
internal struct Sighting
{
    public long TimestampNs;
    /// <summary>Capture order (<see cref="Observation.Order"/>), unique: breaks ties of equal times.</summary>
    public long Order;
    /// <summary>The sighting's number in the correlator's observation ring; -1 for a segmentation candidate (not in it).</summary>
    public long Slot;
    public int Interface;
    /// <summary>The interface's role when the journey was finished.</summary>
    public InterfaceRole Role;
    public byte Ttl;
    public PacketDirection Direction;
    public bool TimestampInvalid;
}

/// <summary>Matching settings.</summary>
public sealed record CorrelatorOptions
{
    /// <summary>How long after its first sighting a journey may still gain hops (<see cref="TraceSessionOptions.DefaultWindowNs"/>).</summary>
    public long WindowNs { get; init; } = TraceSessionOptions.DefaultWindowNs;

    /// <summary>How long idle per-flow state is kept (conntrack's defaults unless given).</summary>
    public FlowTimeouts Timeouts { get; init; } = FlowTimeouts.Default;

    /// <summary>Keep every NAT translation for the report, besides the aggregate rows (<c>--nat-detail</c>).</summary>
    public bool NatDetail { get; init; }

    /// <summary>The host's routes to the egress (follow), for the losses of flows no packet got through; null in replay.</summary>
    public IEgressRoutes? EgressRoutes { get; init; }

    /// <summary>Record each path's through-host time (<see cref="PathStats.Through"/>); <see cref="TraceSessionOptions.PathLatency"/>.</summary>
    public bool PathLatency { get; init; } = true;

    /// <summary>Keep each NAT translation's row for <see cref="CorrelationReport.NatInUse"/>; <see cref="TraceSessionOptions.NatInUse"/>.</summary>
    public bool NatInUse { get; init; } = true;
}

