namespace VethTrace.Tracing;

/// <summary>
/// The trace engine that replay and follow share: everything between "a packet arrived on interface X at time T" and
/// the finished report. It owns the interface registry (names, roles and how they were decided), the counters, the
/// tunnel table, the time orderer, the filter policy, the <see cref="Correlator"/> and the report; a source (capture
/// files, live handles) only hands it packets through a <see cref="PacketFeed"/> (docs/DESIGN.md, "Data flow").
/// </summary>
/// <remarks>
/// Two ways to run it, for the two kinds of source:
/// <list type="bullet">
/// <item><see cref="RunPipelined"/>: one producer that can go as fast as it likes (files). It reads, parses and
/// orders on a thread of its own while the calling thread matches, batch by batch through a <see cref="BatchPipe{T}"/>:
/// two stages on two cores.</item>
/// <item><see cref="OpenConcurrentFeed"/> and <see cref="Pump"/>: producers that push on threads of their own (one
/// libpcap handle each). They parse where the bytes lie and queue observations; one thread puts them in time order
/// and matches them when it pumps.</item>
/// </list>
/// </remarks>
public sealed class TraceSession
{
    private readonly List<PacketFeed> _feeds = [];
    private readonly ArrivalMerge _arrivals = new();
    private TimeOrderer? _pumped;
    private long _order;

    public TraceSession(TraceSessionOptions options)
    {
        Options = options;
        Interfaces = new InterfaceRegistry(options.Egress, options.Roles);
        Correlator = new Correlator(new CorrelatorOptions { WindowNs = options.WindowNs, Timeouts = options.FlowTimeouts, NatDetail = options.NatDetail, EgressRoutes = options.EgressRoutes,
            PathLatency = options.PathLatency, NatInUse = options.NatInUse },
            Interfaces.RoleOf, Interfaces);
    }

    public TraceSessionOptions Options { get; }

    public InterfaceRegistry Interfaces { get; }

    /// <summary>The matching itself; its running counts (journeys, open journeys) are what a live view shows.</summary>
    public Correlator Correlator { get; }

    public TunnelTable Tunnels { get; } = new();

    /// <summary>Every packet handed to the session's feeds.</summary>
    public long Packets
    {
        get
        {
            lock (_feeds)
            {
                return _feeds.Sum(feed => feed.Packets);
            }
        }
    }

    /// <summary>The packets that were not IP.</summary>
    public long NotIp
    {
        get
        {
            lock (_feeds)
            {
                return _feeds.Sum(feed => feed.NotIp);
            }
        }
    }

    /// <summary>The IP packets <see cref="TraceSessionOptions.Sample"/> left out.</summary>
    public long SampledOut
    {
        get
        {
            lock (_feeds)
            {
                return _feeds.Sum(feed => feed.SampledOut);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="produce"/> on a thread of its own with a feed that puts the observations in time order
    /// there, holding each for <paramref name="slackNs"/>, while this thread matches them; then ends every journey.
    /// With <paramref name="stopWhenOvertaken"/>, an observation later than the slack voids the run: the feed says
    /// <see cref="PacketFeed.Stopped"/>, and this returns false, having ended nothing (the caller starts a new session
    /// with a longer slack). Whatever <paramref name="produce"/> throws is rethrown here.
    /// </summary>
    public bool RunPipelined(long slackNs, bool stopWhenOvertaken, Action<PacketFeed> produce)
    {
        using var pipe = new BatchPipe<Observation>();
        var orderer = new PipedOrderer(pipe, slackNs);
        var feed = new PacketFeed(this, orderer, pipe, queue: null, stopWhenOvertaken);
        lock (_feeds)
        {
            _feeds.Add(feed);
        }
        var thread = new Thread(() =>
        {
            try
            {
                produce(feed);
                if (!feed.Overtaken)
                {
                    orderer.Flush();
                }
                pipe.Complete();
            }
            catch (Exception e)
            {
                pipe.Complete(e);
            }
        })
        { IsBackground = true, Name = "trace source" };
        thread.Start();
        var matching = new Matching(Correlator);
        if (Options.AccountingThread)
        {
            Correlator.StartAccountingWithFirstMultiHopJourney(Options.AccountingThreadWhenHeavy);
        }
        try
        {
            try
            {
                pipe.Consume(ref matching);
            }
            finally
            {
                pipe.Stop();
                thread.Join();
            }
            if (feed.Overtaken)
            {
                return false;
            }
            Correlator.Complete();
        }
        finally
        {
            Correlator.StopAccounting();
        }
        return true;
    }

    /// <summary>
    /// A feed for one producer thread among several (a live handle's): its observations wait in a queue until
    /// <see cref="Pump"/> puts them in time order, with <see cref="TimeOrderer.DefaultSlackNs"/> of slack for handles
    /// that deliver late (one was seen more than a second late in the lab), or the <paramref name="slackNs"/> the first
    /// feed opened asks for (whole-host follow's one <c>any</c> ring, nearly in time order).
    /// </summary>
    public PacketFeed OpenConcurrentFeed(long slackNs = TimeOrderer.DefaultSlackNs)
    {
        var feed = new PacketFeed(this, orderer: null, pipe: null, _arrivals.Open(), stopWhenOvertaken: false);
        lock (_feeds)
        {
            _pumped ??= new TimeOrderer(Correlator, slackNs);
            _feeds.Add(feed);
        }
        return feed;
    }

    /// <summary>Observations the live orderer (<see cref="Pump"/>) received later than its slack allows (0: the correlator saw exact time order).</summary>
    internal long PumpOvertaken => _pumped?.Overtaken ?? 0;

    /// <summary>
    /// Moves what the concurrent feeds queued into the correlator in time order, and moves the clock to
    /// <paramref name="nowNs"/> (live handles stamp with the real-time clock, which goes on when traffic pauses).
    /// One thread pumps.
    /// </summary>
    public void Pump(long nowNs)
    {
        if (_pumped is null)
        {
            return;
        }
        // The feeds' queues merged by time (ArrivalMerge): what is old enough for the orderer to let go of, and a margin more
        // for a ring's own disorder, the orderer's clock moved along as they go in.
        long margin = _pumped.SlackNs / 16;
        _arrivals.Release(nowNs > long.MinValue + _pumped.SlackNs ? nowNs - _pumped.SlackNs + margin : long.MinValue, _pumped.SlackNs - margin, _pumped);
        _pumped.Advance(nowNs);
        // Nothing older than the orderer's slack is still to come: journeys whose window ended before it are over.
        Correlator.Advance(nowNs - _pumped.SlackNs);
    }

    /// <summary>Pumps what is left, releases everything held for order, and ends every open journey (a live stop).</summary>
    public void Finish(long nowNs)
    {
        Pump(nowNs);
        if (_pumped is not null)
        {
            _arrivals.Release(long.MaxValue, 0, _pumped);
            _pumped.Flush();
        }
        Correlator.Complete();
    }

    /// <summary>
    /// What the trace found: the correlator's report with the session's packet counts and tunnels. While running, a
    /// snapshot (journeys still open are not in it yet).
    /// </summary>
    public CorrelationReport Report() => Correlator.Report() with
    {
        Packets = Packets, NotIp = NotIp, Tunnels = Tunnels.Report(), Sample = Options.Sample, SampledOut = SampledOut,
    };

    internal long NextOrder() => Interlocked.Increment(ref _order);

    /// <summary>
    /// The matching stage: the correlator, fed a batch at a time in time order. It reads ahead for the observation
    /// <see cref="Ahead"/> places on (<see cref="Correlator.ReadAhead"/>), so the lookup finds its memory in cache.
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
                    correlator.ReadAhead(in values[i + Ahead]);
                    if (i + 2 * Ahead < values.Length)
                    {
                        Correlator.Fetch(in values[i + 2 * Ahead]); // written on the reading thread's core
                    }
                }
                correlator.Add(in values[i]);
            }
        }
    }
}
