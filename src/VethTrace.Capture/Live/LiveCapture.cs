using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Collections.Concurrent;
using SharpPcap;
using SharpPcap.LibPcap;
using VethTrace.Capture.Files;
using VethTrace.Capture.Topology;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Capture.Live;

/// <summary>
/// One hop to capture on: an interface, in a network namespace (null for the host's), with its role and how that was
/// decided (from the target's topology, given by --egress, or guessed from the name of a --hop).
/// </summary>
public sealed record HopTarget(string Interface, string? NetworkNamespace, InterfaceRole Role, string DisplayName, RoleSource RoleSource = RoleSource.Topology);

/// <summary>Per-interface counters: packets seen by VethTrace, and what libpcap says the kernel dropped.</summary>
public sealed record HopStatistics(string DisplayName, long Packets, long KernelDropped, long InterfaceDropped);

/// <summary>
/// The live source: captures on several hops at once with one libpcap handle each (SharpPcap), and feeds a
/// <see cref="TraceSession"/>, one <see cref="PacketFeed"/> per hop. A handle inside a container's namespace is opened
/// on a dedicated thread that first enters that namespace with setns(2): the packet socket is bound there, and stays
/// there whichever thread reads it. Each packet is handed to the session in the arrival callback, from
/// <see cref="PacketCapture.Data"/> (never copied); the session puts the observations back in time order (the
/// handles deliver independently) when <see cref="Pump"/> is called.
/// </summary>
public sealed class LiveCapture : IDisposable
{
    /// <summary>
    /// The default libpcap ring per handle: 8 MiB (tcpdump's default is 2 MiB) holds about 25,000 packets cut to
    /// follow's 256-byte snapshot, about two seconds of the lab's bulk TCP stream (some 14,000 GSO super-packets a
    /// second per hop), but only 128 whole 64 KiB super-packets at record's full snapshot. Measured with
    /// benchmarks/live-load.sh on 2 cores: 2, 8 and 32 MiB all kept up with 5.5-6.4 Gbit/s without a drop once every
    /// handle's capture loop started at once (see <see cref="Start"/>). Drops beyond the ring are counted by the kernel
    /// and reported per hop.
    /// </summary>
    public const int DefaultBufferBytes = 8 * 1024 * 1024;

    /// <summary>
    /// How long a hop's capture thread lets packets gather in its ring between two reads: it reads everything there
    /// is, sleeps this long, and reads again (after a quiet spell the first packet wakes it at once), so under traffic it
    /// wakes once per this period per hop instead of once per packet. Reading each packet as it came (libpcap's immediate mode, one poll wake-up
    /// per packet per hop) added about 90 us to a 80 us ping round trip on 2 cores, tcpdump -w about 20
    /// (docs/performance.md, "Following live: cost to the workload"). libpcap's own batching (not immediate mode:
    /// TPACKET_V3 blocks handed over when full or after a timeout) dropped packets on all four hops under iperf3 on
    /// the loaded 2-core lab where the per-frame ring (TPACKET_V2, immediate mode) read this way dropped none. 50 ms of
    /// the lab's bulk stream (some 14,000 packets a second per hop) is about 700 packets, against about 25,000 that
    /// the ring holds; when a read finds an eighth of the ring full (whole packets for record, a small --buffer-size)
    /// the thread reads on without pausing, as in immediate mode. A packet reaches the engine at most this late, far inside the orderer's 2 s slack; at
    /// <see cref="Stop"/> each thread reads its ring empty before it ends.
    /// </summary>
    public const int GatherMs = 50;

    /// <summary>
    /// How long an observation is held for time order: the orderer's slack on the session's clock, which is the time
    /// every hop's ring was last read empty (<see cref="Pump"/>), not the wall clock, so a capture thread that runs late
    /// holds the clock back instead of delivering behind it. What is left is a packet's own lateness into its ring: a
    /// stamp taken before the packet reached the socket (an skb keeps the time an earlier hop gave it, the softirq that
    /// hands it over runs late), microseconds to a millisecond in the lab (docs/whole-host.md, "Time order in one ring",
    /// at most 0.8 ms at load 70), so 250 ms leaves hundreds of times that; a packet later than it is counted
    /// (<see cref="LatePackets"/>) and said. With the wall clock and 2 s of slack (before session 10) the session held
    /// two to three seconds of observations at a time, 25 MB of queue chunks under iperf3 written and read back out of
    /// cache, first touched (page faults) as the stream began; now about a quarter of a second.
    /// </summary>
    public const long OrderSlackNs = 250_000_000;

    /// <summary>How long a capture thread's poll waits after a quiet spell: a quiet hop moves its watermark on this often.</summary>
    private const int QuietPollMs = 100;

    private readonly List<(HopTarget Target, HopDevice Device, int Id, LinkType LinkType)> _devices = [];
    private readonly List<HopTarget> _targets = [];
    private readonly ConcurrentQueue<(int Hop, string Name)> _lost = new();
    private readonly TraceSession _session;
    /// <summary>Each hop's feed and its id in the session's registry.</summary>
    private readonly (PacketFeed Feed, int Id)[] _hops;
    private readonly ulong[] _ownAddresses;
    private ulong[] _containerAddresses = [];

    private readonly string? _kernelFilter;
    private readonly int _snapLength;
    private readonly int _bufferBytes;

    /// <summary>
    /// Opens a handle per hop, feeding <paramref name="session"/>; the hops are added to its interface registry.
    /// <paramref name="kernelFilter"/> is handed to libpcap on every hop: only what it matches is captured at all (record
    /// writes what tcpdump -w with the expression would). follow filters in the session instead
    /// (<see cref="TraceSessionOptions.Filter"/>), where a journey is kept when any copy matches.
    /// </summary>
    public LiveCapture(IReadOnlyList<HopTarget> targets, TraceSession session, string? kernelFilter = null, int snapLength = 262_144, int bufferBytes = DefaultBufferBytes)
    {
        _session = session;
        _kernelFilter = kernelFilter;
        _snapLength = snapLength;
        _bufferBytes = bufferBytes;
        _ownAddresses = new ulong[targets.Count];
        _targets.AddRange(targets);
        _hops = [.. targets.Select(t => (session.OpenConcurrentFeed(OrderSlackNs), session.Interfaces.Add(t.DisplayName, t.Role, t.RoleSource)))];
        _newestNs = new long[targets.Count];
        try
        {
            OpenAll(targets, snapLength, bufferBytes, kernelFilter);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void OpenAll(IReadOnlyList<HopTarget> targets, int snapLength, int bufferBytes, string? filter)
    {
        // pcap_findalldevs is slow (it walks every interface): once for the host, once per namespace thread.
        IReadOnlyList<PcapInterface> hostInterfaces = PcapInterface.GetAllPcapInterfaces();
        for (int id = 0; id < targets.Count; id++)
        {
            HopTarget target = targets[id];
            // One handle per hop. libpcap reports no per-packet direction for an Ethernet handle, and the
            // 'inbound'/'outbound' qualifiers were tried (a handle per direction) but lost the first matching
            // packet of each handle here (libpcap 1.10.3, kernel 6.18), so the direction is inferred per packet from
            // the Ethernet source MAC instead (DirectionOf).
            HopDevice device = target.NetworkNamespace is null
                ? Open(hostInterfaces, target.Interface, snapLength, bufferBytes, filter)
                : OpenInNamespace(target.Interface, target.NetworkNamespace, snapLength, bufferBytes, filter);
            int hop = id;
            var linkType = new LinkType((uint)device.LinkType);
            _ownAddresses[id] = device.Interface?.MacAddress is { } mac ? MacAddress(mac.GetAddressBytes()) : 0;
            device.Arrival = (data, ns, originalLength) => Arrived(hop, linkType, data, ns, originalLength);
            // After each read of its ring, a capture thread raises the pumping thread back if it is kept off the CPU.
            device.AfterRead = _pump.Watch;
            device.OnPacketArrival += (_, _) => { }; // SharpPcap starts no capture without one; HopDevice bypasses it
            device.OnCaptureStopped += (_, status) =>
            {
                // libpcap fails a read when the interface goes away: the container stopped, or restarted with a new veth.
                if (status == CaptureStoppedEventStatus.ErrorWhileCapturing)
                {
                    _lost.Enqueue((hop, target.DisplayName));
                }
            };
            _devices.Add((target, device, id, linkType));
        }
        _watched = [.. _devices.Select(d => d.Device)];
        _containerAddresses = [.. targets.Select((t, id) => (t, id)).Where(h => h.t.Role == InterfaceRole.Container && _ownAddresses[h.id] != 0).Select(h => _ownAddresses[h.id])];
    }

    /// <summary>
    /// Moves every hop to new interfaces (a restarted container has a new namespace and a new veth), keeping the
    /// correlation: hop i of <paramref name="targets"/> takes the place of hop i. Returns false when the shape differs.
    /// </summary>
    public bool Reattach(IReadOnlyList<HopTarget> targets)
    {
        if (targets.Count != _targets.Count)
        {
            return false;
        }
        foreach (var (_, device, _, _) in _devices)
        {
            device.RaiseForStop();
            try
            {
                device.StopCapture();
            }
            catch (PcapException)
            {
            }
            device.Dispose();
        }
        _devices.Clear();
        _watched = [];
        _lost.Clear();
        // The capture threads about to start inherit the priority of this (pumping) thread: its own, not SCHED_IDLE.
        _pump.Restore();
        for (int i = 0; i < targets.Count; i++)
        {
            _targets[i] = targets[i];
            _session.Interfaces.Replace(_hops[i].Id, targets[i].DisplayName, targets[i].Role, targets[i].RoleSource);
        }
        OpenAll(targets, _snapLength, _bufferBytes, _kernelFilter);
        Start();
        return true;
    }

    /// <summary>The session the hops feed.</summary>
    public TraceSession Session => _session;

    /// <summary>Hops whose interface went away while capturing (their handle stopped with an error).</summary>
    /// <remarks>In path order: the threads notice at slightly different times (each may be between two reads).</remarks>
    public IReadOnlyCollection<string> LostHops => [.. _lost.OrderBy(l => l.Hop).Select(l => l.Name)];

    /// <summary>The link type libpcap gave the hop's handle.</summary>
    public LinkType LinkTypeOf(int hop) => _devices.First(d => d.Id == hop).LinkType;

    /// <summary>Receives every captured packet with its hop and direction (for <c>record</c>), on the capture threads.</summary>
    public IPacketSink? Sink { get; set; }

    public void Start()
    {
        // SharpPcap runs each handle's capture loop as a long blocking work item; on a 2-core machine the thread pool
        // starts with 2 threads and adds more about once a second, so with seven hops the last handle delivered
        // its packets seconds late (past the orderer's slack) until the pool grew. Room for every hop up front.
        ThreadPool.GetMinThreads(out int workers, out int completion);
        ThreadPool.SetMinThreads(Math.Max(workers, _devices.Count + Environment.ProcessorCount + 2), completion);
        foreach (var (_, device, _, _) in _devices)
        {
            device.StartCapture();
        }
        // The capture threads and the pumping thread run under SCHED_IDLE; this thread raises one back that is kept off the CPU.
        _watch ??= PriorityWatch.Start(() => _watched, _pump);
    }

    private PriorityWatch? _watch;
    /// <summary>The devices capturing now, for the watch thread (replaced, never changed in place).</summary>
    private volatile HopDevice[] _watched = [];

    /// <summary>
    /// Moves what has arrived into the correlator, in time order (<see cref="TraceSession.Pump"/>: the live view lags
    /// by the orderer's slack), and the session's clock to the watermark: the earliest of the times each hop's ring was
    /// last read empty (<see cref="HopDevice.DrainedNs"/>, on the real-time clock the kernel stamps with). Everything
    /// stamped more than <see cref="OrderSlackNs"/> before it has been handed over, however late a capture thread ran.
    /// Nothing moves until every hop has been read once. One thread pumps.
    /// </summary>
    public void Pump()
    {
        _pump.Pumped();
        long watermark = long.MaxValue;
        foreach (var (_, device, _, _) in _devices)
        {
            watermark = Math.Min(watermark, device.DrainedNs);
        }
        if (watermark > 0 && watermark != long.MaxValue && watermark > _watermarkNs)
        {
            Volatile.Write(ref _watermarkNs, watermark);
            _session.Pump(watermark);
        }
        _pump.Done();
    }

    private long _watermarkNs;
    /// <summary>The pumping thread's priority: below the workload while it pumps on time.</summary>
    private readonly PumpPriority _pump = new(BackgroundPolicy.Idle);
    /// <summary>Per hop, the newest stamp handed on (that hop's capture thread only).</summary>
    private readonly long[] _newestNs;
    private long _behindMaxNs;
    private long _late;

    /// <summary>
    /// Packets stamped more than <see cref="OrderSlackNs"/> before what the session's clock had passed when they were
    /// read (<see cref="Pump"/>): the orderer may have let later ones go before them, so their journeys may have been
    /// matched without them. 0 in every measured run; said when not.
    /// </summary>
    public long LatePackets => Volatile.Read(ref _late);

    /// <summary>
    /// How many times a capture thread was raised back from below the workload to its own priority because a read found
    /// its ring filling (<see cref="BackgroundPriority"/>), over the hops.
    /// </summary>
    public int PriorityBoosts => _devices.Sum(d => d.Device.Priority?.Boosts ?? 0);

    /// <summary>How many times the pumping thread was raised back from SCHED_IDLE: at a late pump, or by a capture thread that found it late.</summary>
    public int PumpBoosts => _pump.Priority?.Boosts ?? 0;

    /// <summary>The pumping thread's priority (null before its first pump).</summary>
    public PumpPriority PumpPriority => _pump;

    /// <summary>The priorities of the capture threads started so far (one per hop) and of the pumping thread once it pumped.</summary>
    public IReadOnlyList<BackgroundPriority> ThreadPriorities =>
        [.. _devices.Select(d => d.Device.Priority).OfType<BackgroundPriority>(), .. _pump.Priority is { } pump ? [pump] : Array.Empty<BackgroundPriority>()];

    /// <summary>The furthest a packet came behind the newest stamp read before it on its hop, or the watermark (ns).</summary>
    public long OutOfOrderMaxNs => Volatile.Read(ref _behindMaxNs);

    private static long Now() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    public void Stop()
    {
        // The report is built at the thread's own priority.
        _watch?.Dispose();
        _watch = null;
        _pump.Restore();
        foreach (var (_, device, _, _) in _devices)
        {
            device.RaiseForStop();
        }
        foreach (var (_, device, _, _) in _devices)
        {
            try
            {
                device.StopCapture();
            }
            catch (PcapException)
            {
                // The interface went away (the container stopped): nothing left to stop.
            }
        }
        _session.Finish(Now());
    }

    public IReadOnlyList<HopStatistics> Statistics()
    {
        var dropped = new long[_targets.Count];
        var interfaceDropped = new long[_targets.Count];
        foreach (var (_, device, id, _) in _devices)
        {
            if (PcapStatistics.Read(device) is var (_, kernelDropped, driverDropped))
            {
                dropped[id] += kernelDropped;
                interfaceDropped[id] += driverDropped;
            }
            else
            {
                dropped[id] = -1; // the handle is gone (its interface disappeared)
            }
        }
        return _targets.Select((t, id) => new HopStatistics(t.DisplayName, _hops[id].Feed.Packets, dropped[id], interfaceDropped[id])).ToList();
    }

    public void Dispose()
    {
        _watch?.Dispose();
        _watch = null;
        foreach (var (_, device, _, _) in _devices)
        {
            device.Dispose();
        }
        _devices.Clear();
    }

    private void Arrived(int hop, LinkType linkType, ReadOnlySpan<byte> data, long ns, int originalLength)
    {
        // The capture thread of this handle: the session parses the bytes where they lie and keeps only the observation.
        var (feed, id) = _hops[hop];
        // How far behind what the orderer may already have let go (the newest stamp before it on this hop, the
        // session's watermark) this one comes: a plain compare per packet, counted only when it is behind.
        long newest = _newestNs[hop];
        if (ns > newest)
        {
            _newestNs[hop] = ns;
        }
        long behind = Math.Max(newest, Volatile.Read(ref _watermarkNs)) - ns;
        if (behind > 0)
        {
            Behind(behind);
        }
        PacketDirection direction = DirectionOf(data, linkType, _session.Interfaces.RoleOf(id), _ownAddresses[hop], _containerAddresses);
        Sink?.Write(hop, linkType, ns, data, originalLength, direction);
        feed.Arrive(id, ns, data, originalLength, linkType, direction);
    }

    private void Behind(long behindNs)
    {
        long max;
        while (behindNs > (max = Volatile.Read(ref _behindMaxNs)) && Interlocked.CompareExchange(ref _behindMaxNs, behindNs, max) != max)
        {
        }
        if (behindNs > OrderSlackNs)
        {
            Interlocked.Increment(ref _late);
        }
    }

    /// <summary>
    /// A frame's direction on a hop, from its Ethernet source address. libpcap gives an Ethernet handle no per-packet
    /// direction (Linux offers these devices only EN10MB and DOCSIS, not the cooked SLL2 header that carries the
    /// kernel's packet type), so the sender decides: on a veth (a bridge port) a frame from one of the followed
    /// containers' addresses came in from the container and anything else is on its way to it; on the egress (or a
    /// macvlan parent) a frame from a followed container's address is outbound; on every other interface a frame
    /// from the interface's own address is outbound, anything else inbound. Only Ethernet frames
    /// get a direction.
    /// </summary>
    internal static PacketDirection DirectionOf(ReadOnlySpan<byte> frame, LinkType linkType, InterfaceRole role, ulong ownAddress, ReadOnlySpan<ulong> containerAddresses)
    {
        if (linkType != LinkType.Ethernet || frame.Length < 14)
        {
            return PacketDirection.Unknown;
        }
        // The source address as MacAddress reads it, in two loads (once per packet).
        ulong source = (ulong)BinaryPrimitives.ReadUInt32BigEndian(frame[6..]) << 16 | BinaryPrimitives.ReadUInt16BigEndian(frame[10..]);
        if (role == InterfaceRole.Veth && containerAddresses.Length > 0)
        {
            return containerAddresses.Contains(source) ? PacketDirection.Inbound : PacketDirection.Outbound;
        }
        if (role == InterfaceRole.Egress && containerAddresses.Contains(source))
        {
            // A macvlan container's frames leave through its parent with the container's own address.
            return PacketDirection.Outbound;
        }
        if (ownAddress == 0)
        {
            return PacketDirection.Unknown;
        }
        return source == ownAddress ? PacketDirection.Outbound : PacketDirection.Inbound;
    }

    internal static ulong MacAddress(ReadOnlySpan<byte> address)
    {
        ulong value = 0;
        foreach (byte b in address)
        {
            value = value << 8 | b;
        }
        return value;
    }

    private static HopDevice Open(IReadOnlyList<PcapInterface> interfaces, string name, int snapLength, int bufferBytes, string? filter)
    {
        PcapInterface pcapInterface = interfaces.FirstOrDefault(i => i.Name == name)
            ?? throw new LiveCaptureException($"no interface named {name}");
        var device = new HopDevice(pcapInterface) { PollMs = QuietPollMs };
        // Promiscuous: a bridge device sees bridged (east-west) frames only in promiscuous mode (docs/DESIGN.md, "The hop model").
        device.OpenForHops(DeviceModes.Promiscuous, snapLength, bufferBytes);
        if (filter is not null)
        {
            device.Filter = filter;
        }
        return device;
    }

    private static HopDevice OpenInNamespace(string name, string namespacePath, int snapLength, int bufferBytes, string? filter)
    {
        try
        {
            // The handle's packet socket is bound inside the namespace and stays there after the thread ends.
            return NetworkNamespace.FromPath(namespacePath).Run(() => Open(PcapInterface.GetAllPcapInterfaces(), name, snapLength, bufferBytes, filter));
        }
        catch (TopologyException e)
        {
            throw new LiveCaptureException(e.Message);
        }
    }
}

/// <summary>A packet as libpcap hands it over: the bytes (valid during the call), the time in ns since the epoch, the length on the wire.</summary>
internal delegate void HopArrival(ReadOnlySpan<byte> data, long timestampNs, int originalLength);

/// <summary>
/// A handle with its own capture loop (SharpPcap's polls and dispatches each packet as it comes, with a header and a
/// timestamp object per packet and the time converted through a decimal): it reads the ring empty with pcap_next_ex
/// (non-blocking), then lets more gather for <see cref="LiveCapture.GatherMs"/> before it looks again, reading
/// libpcap's pcap_pkthdr where it lies. A read error (the interface went away) ends the loop as SharpPcap's does.
/// </summary>
internal sealed class HopDevice(PcapInterface pcapInterface) : LibPcapLiveDevice(pcapInterface), IWatchedThread
{
    public HopArrival? Arrival { get; set; }

    /// <summary>Called on the capture thread after each read of the ring (<see cref="PumpPriority.Watch"/>).</summary>
    public Action? AfterRead { get; set; }

    /// <summary>Called on the capture thread when a poll found nothing for its whole wait (the ring is empty).</summary>
    public Action? QuietPoll { get; set; }

    /// <summary>How the capture thread is lowered.</summary>
    public BackgroundPolicy Policy { get; set; } = BackgroundPolicy.Idle;

    /// <summary>The capture thread's priority (null before it started): below the workload, raised while the ring fills.</summary>
    public BackgroundPriority? Priority { get; private set; }

    private volatile bool _stopping;

    /// <summary>
    /// Before a stop: the capture thread back at its own priority for good, so that the last read of its ring (and the
    /// stop that waits for it) is not left for CPU time the workload does not want.
    /// </summary>
    public void RaiseForStop()
    {
        _stopping = true;
        Priority?.Restore();
    }

    private long _drainedNs;
    private long _beatMs;

    /// <summary>
    /// When the capture loop is due to come round next at the latest (Environment.TickCount64): now after each poll and
    /// each read, the end of the wait before a poll or a gathering pause. A loop that is well past it is runnable and
    /// kept off the CPU (<see cref="PriorityWatch"/>).
    /// </summary>
    public long BeatMs => Volatile.Read(ref _beatMs);

    /// <summary>When this capture thread was last raised: a step by <see cref="PriorityWatch"/>, or to its own priority by a read that found its ring filling.</summary>
    public long RaisedMs
    {
        get => Volatile.Read(ref _raisedMs);
        set => Volatile.Write(ref _raisedMs, value);
    }

    private long _raisedMs;

    /// <summary>
    /// How long a capture thread stays above SCHED_IDLE after it was raised (by the watch thread, or by a read that found
    /// its ring filling): under load it would otherwise go back down after its next small read and be kept off the CPU
    /// again for as long as the watch takes to notice, while the ring fills (an 8 MiB ring holds about 0.9 s of the
    /// lab's bulk stream per hop).
    /// </summary>
    public const long HoldMs = 1000;

    /// <summary>
    /// The wall-clock time (ns since the epoch, the clock the kernel stamps packets with) at which this loop last began
    /// a read that emptied the ring, or that a quiet poll ended: every packet that was in the ring by then has been
    /// handed to <see cref="Arrival"/>. 0 before the first read. A packet stamped more than the ring's own disorder
    /// before it is never still to come (<see cref="HostCapture.OrderSlackNs"/>), whatever the reading thread's delays.
    /// </summary>
    public long DrainedNs => Volatile.Read(ref _drainedNs);

    private static long WallClockNs() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    /// <summary>
    /// A read of at least this many packets (an eighth of what the ring holds) is followed by another at once instead
    /// of the gathering pause: whole packets (record) or a small ring fill in less than <see cref="LiveCapture.GatherMs"/>.
    /// </summary>
    public int GatherBelow { get; set; } = 1;

    /// <summary>
    /// Opens the handle as every capture of hops opens it (one per hop in follow, the <c>any</c> device in whole-host
    /// follow): immediate mode, nanosecond stamps, non-blocking reads for this loop, and <see cref="GatherBelow"/> from
    /// what the ring holds.
    /// </summary>
    public void OpenForHops(DeviceModes mode, int snapLength, int bufferBytes)
    {
        Open(new DeviceConfiguration
        {
            Mode = mode,
            Immediate = true,
            ReadTimeout = 100,
            Snaplen = snapLength,
            BufferSize = bufferBytes,
            TimestampResolution = TimestampResolution.Nanosecond,
        });
        // This loop reads until the ring is empty: pcap_next_ex must return 0 then, not wait.
        NonBlockingMode = true;
        // A ring frame holds the snapshot and about 64 bytes of headers.
        GatherBelow = Math.Max(1, (int)Math.Min(int.MaxValue, (long)bufferBytes / (snapLength + 64) / 8));
    }

    protected override void CaptureThread(CancellationToken cancellationToken)
    {
        // The handle stays open while this loop runs (Dispose waits for the reference): the packets read lie in its ring.
        // Close replaces Handle with an invalid one: this loop keeps the one it started with.
        PcapHandle handle = Handle;
        bool referenced = false;
        // Below the workload, back to its own priority while the ring fills faster than it is read (BackgroundPriority).
        BackgroundPriority priority = BackgroundPriority.OfCurrentThread(Policy);
        Priority = priority;
        Volatile.Write(ref _beatMs, Environment.TickCount64);
        try
        {
            if (!_stopping)
            {
                priority.Lower();
            }
            handle.DangerousAddRef(ref referenced);
            IntPtr pcap = handle.DangerousGetHandle();
            while (!cancellationToken.IsCancellationRequested)
            {
                // Read what is there (the first packet after a quiet spell at once), then let more gather: under steady
                // traffic the poll finds packets waiting and does not sleep, so the thread wakes once per gathering time.
                // Coming round again by the end of the poll's wait at the latest (a packet wakes it sooner).
                Volatile.Write(ref _beatMs, Environment.TickCount64 + PollMs);
                int ready = Poll(FileDescriptor, out short events);
                long polled = WallClockNs();
                Volatile.Write(ref _beatMs, Environment.TickCount64);
                if (ready == 0)
                {
                    // Nothing came for the whole poll: the ring is empty now.
                    QuietPoll?.Invoke();
                    Volatile.Write(ref _drainedNs, polled);
                }
                if ((events & (PollError | PollHangUp | PollInvalid)) != 0)
                {
                    // The interface went away (the container stopped): in non-blocking mode libpcap's read does not poll,
                    // so it would not say so. What the ring still holds is read first.
                    ReadAll(pcap, out _);
                    SendCaptureStoppedEvent(CaptureStoppedEventStatus.ErrorWhileCapturing);
                    return;
                }
                if (ready > 0)
                {
                    int result = ReadAll(pcap, out int read);
                    Volatile.Write(ref _beatMs, Environment.TickCount64);
                    AfterRead?.Invoke();
                    if (result == 0)
                    {
                        // Read until empty: whatever was in the ring when the poll returned has been read.
                        Volatile.Write(ref _drainedNs, polled);
                    }
                    if (result == -1)
                    {
                        SendCaptureStoppedEvent(CaptureStoppedEventStatus.ErrorWhileCapturing);
                        return;
                    }
                    if (result < -1 && cancellationToken.IsCancellationRequested)
                    {
                        break;
                    }
                    if (read >= GatherBelow)
                    {
                        // The ring fills fast for its size (whole packets, a small ring, or this thread kept off the CPU):
                        // read on at once, as immediate mode would, at the thread's own priority until it has caught up.
                        priority.Boost();
                        RaisedMs = Environment.TickCount64;
                        continue;
                    }
                    if (read < GatherBelow / 4 && !_stopping && Environment.TickCount64 - RaisedMs > HoldMs)
                    {
                        priority.Lower();
                    }
                }
                Volatile.Write(ref _beatMs, Environment.TickCount64 + LiveCapture.GatherMs);
                cancellationToken.WaitHandle.WaitOne(LiveCapture.GatherMs);
            }
            // StopCapture: read what the ring still holds, so that every packet the kernel did not count as dropped is
            // seen, at the thread's own priority. Its pcap_breakloop makes the first read return -2 (and clears itself).
            priority.Restore();
            for (int attempt = 0; attempt < 2 && ReadAll(pcap, out _) < -1; attempt++)
            {
            }
        }
        finally
        {
            if (referenced)
            {
                handle.DangerousRelease();
            }
            priority.Restore();
        }
        SendCaptureStoppedEvent(CaptureStoppedEventStatus.CompletedWithoutError);
    }

    private const short PollIn = 0x1, PollPriority = 0x2, PollError = 0x8, PollHangUp = 0x10, PollInvalid = 0x20;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollDescriptor
    {
        public int Descriptor;
        public short Events;
        public short ReturnedEvents;
    }

    [DllImport("libc")]
    private static extern int poll(ref PollDescriptor descriptors, nuint count, int timeoutMs);

    /// <summary>
    /// How long a poll(2) waits for a first packet after a quiet spell before the loop looks again (and, with nothing
    /// read, moves <see cref="DrainedNs"/> on): half a second for follow's per-hop handles, less for the <c>any</c>
    /// handle, whose watermark lets a quiet host's journeys be matched and closed.
    /// </summary>
    public int PollMs { get; set; } = 500;

    /// <summary>poll(2) on the handle's socket for up to <see cref="PollMs"/>: &gt; 0 when ready, with what it reported.</summary>
    private int Poll(int descriptor, out short events)
    {
        var request = new PollDescriptor { Descriptor = descriptor, Events = PollIn | PollPriority };
        int ready = poll(ref request, 1, PollMs);
        events = ready > 0 ? request.ReturnedEvents : (short)0;
        return ready;
    }

    /// <summary>Reads until the ring is empty (0), or libpcap says error (-1) or break (-2).</summary>
    private unsafe int ReadAll(IntPtr pcap, out int read)
    {
        read = 0;
        while (true)
        {
            int result = PcapStatistics.Next(pcap, out IntPtr header, out IntPtr data);
            if (result != 1)
            {
                return result;
            }
            read++;
            // struct pcap_pkthdr on Linux: struct timeval { long tv_sec; long tv_usec; } (tv_usec holds nanoseconds on a
            // handle opened with nanosecond precision), then bpf_u_int32 caplen and len.
            nint* time = (nint*)header;
            uint* lengths = (uint*)(time + 2);
            long ns = (long)time[0] * 1_000_000_000 + time[1];
            Arrival?.Invoke(new ReadOnlySpan<byte>((void*)data, (int)lengths[0]), ns, (int)lengths[1]);
        }
    }
}

/// <summary>Where <c>record</c> puts every captured packet; called on the capture threads, concurrently.</summary>
public interface IPacketSink
{
    void Write(int hop, LinkType linkType, long timestampNs, ReadOnlySpan<byte> data, int originalLength, PacketDirection direction);
}

/// <summary>A live capture that cannot start: one line for the user.</summary>
public sealed class LiveCaptureException(string message) : Exception(message);
