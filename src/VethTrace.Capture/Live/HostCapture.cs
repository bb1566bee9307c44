using System.Buffers.Binary;
using SharpPcap;
using SharpPcap.LibPcap;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Capture.Live;

/// <summary>
/// Whole-host capture through one libpcap handle on the <c>any</c> device in LINUX_SLL2 (benchmarks/README.md,
/// "Capture design for the whole host"): every host-side hop (bridges, veths, the egress) arrives in one ring, each
/// packet with the ifindex of the interface it crossed and the kernel's packet type. Interfaces are attached and
/// detached by ifindex while capturing (<see cref="Attach"/>, <see cref="Detach"/>, from one thread); a packet on an
/// interface not attached is counted (<see cref="OtherPackets"/>) and dropped before parsing. A detached interface keeps
/// its id, name and counts: what was measured on it stays in the report. Bridges are made promiscuous
/// (<see cref="PromiscuousBridges"/>), which <c>any</c> does not do.
/// <para>
/// An interface that has appeared but is not decided yet (<see cref="Expect"/>: netlink said so, the thread that
/// attaches has not looked) has its packets held (<see cref="HeldMax"/>, <see cref="HeldBytesMax"/>, at most
/// <see cref="HoldNs"/>), and the time order waits for them: attached, they are traced as if it had been attached when
/// they came (a new container's first packets, sent as its process starts, while the attaching thread is kept off the
/// CPU on a busy host); declined (<see cref="Decline"/>) or held too long, they are counted as other packets.
/// </para>
/// </summary>
public sealed class HostCapture : IDisposable
{
    /// <summary>
    /// Interfaces one run can attach (every veth of every container started during it counts once): the per-interface
    /// packet counters are a fixed array so the capture thread never sees one replaced. Past it, an interface is not
    /// captured and <see cref="Attach"/> says so.
    /// </summary>
    public const int MaxInterfaces = 8192;

    /// <summary>The <c>any</c> ring: one ring carries every hop, so it is sized for their sum (32 MiB; follow's per-hop ring is 8).</summary>
    public const int DefaultBufferBytes = 32 * 1024 * 1024;

    /// <summary>
    /// How long an observation is held for time order (the live orderer's slack, 2 s for follow's per-hop handles).
    /// One ring carries every hop here, filled in the order the kernel hands packets to it, so a packet can lie behind
    /// one read before it only by the time between its stamp and its place in the ring (a softirq that ran late):
    /// at most 27.5 µs over 528,163 packets of iperf3 and 50 containers' ping/HTTP (docs/whole-host.md, "Time order
    /// in one ring"). Nor does a late reading thread matter: the session's clock is the time the ring was last read
    /// empty (<see cref="HopDevice.DrainedNs"/>), not the wall clock. 100 ms leaves thousands of times the disorder
    /// measured; a packet later than that is counted (<see cref="LatePackets"/>) and said.
    /// </summary>
    public const long OrderSlackNs = 100_000_000;

    /// <summary>Packets held at most for interfaces not decided yet (<see cref="Expect"/>); past it they are other packets.</summary>
    public const int HeldMax = 4096;

    /// <summary>Bytes held at most for interfaces not decided yet (the captured bytes of the packets held).</summary>
    public const int HeldBytesMax = 4 * 1024 * 1024;

    /// <summary>
    /// How long a packet is held for its interface to be attached or declined (by the newest time the capture has seen):
    /// the attaching thread looks at every link change, and at least every 0.2 s; the engine's name for a new veth is
    /// awaited 0.8 s in selective runs. Longer, and the packet is counted as another interface's.
    /// </summary>
    public const long HoldNs = 2_000_000_000;

    /// <summary>A slot of <see cref="_flat"/>/<see cref="_high"/>: the interface appeared and is not decided yet.</summary>
    private const int Expected = -1;

    /// <summary>How long the capture thread's poll waits after a quiet spell (the watermark moves on at least this often).</summary>
    private const int QuietPollMs = 100;

    private const int Sll2HeaderLength = 20;
    private const int Sll2InterfaceIndex = 4;
    private const int Sll2PacketType = 10;
    /// <summary>PACKET_OUTGOING (linux/if_packet.h): sent by this host on that interface.</summary>
    private const byte PacketOutgoing = 4;
    /// <summary>ifindexes above this are looked up in a dictionary instead of the flat table.</summary>
    private const int FlatIndexes = 1 << 16;

    private readonly TraceSession _session;
    private readonly HopDevice _device;
    private readonly PacketFeed _feed;
    private readonly PromiscuousBridges _promiscuous = new();
    private readonly long[] _packets = new long[MaxInterfaces];
    private readonly Dictionary<int, int> _attachedByIndex = [];
    /// <summary>Serialises the writers of the ifindex map: the attaching thread and the link watcher's (<see cref="Expect"/>).</summary>
    private readonly Lock _mapLock = new();
    /// <summary>Packets of interfaces not decided yet, in the order read (capture thread only, and <see cref="Stop"/> after it).</summary>
    private readonly List<HeldPacket> _held = [];
    private int _heldBytes;
    /// <summary>The oldest stamp held (long.MaxValue: none): written by the capture thread before its watermark moves past it.</summary>
    private long _heldOldestNs = long.MaxValue;
    /// <summary>Set when an expected interface is attached or declined: the capture thread looks at what it holds.</summary>
    private volatile bool _heldDecided;
    private long _heldTraced;
    private long _heldDropped;
    private readonly List<string> _displayNames = [];
    /// <summary>ifindex → interface id + 1 (0: not attached); replaced, never changed in place, so the capture thread needs no lock.</summary>
    private volatile int[] _flat = new int[256];
    private volatile Dictionary<int, int> _high = [];
    private long _other;
    private int _refused;
    /// <summary>The newest stamp handed on (capture thread only).</summary>
    private long _newestNs;
    private long _behindMaxNs;
    private long _late;

    /// <summary>Opens the <c>any</c> handle (not started); throws <see cref="LiveCaptureException"/> or SharpPcap's PcapException.</summary>
    /// <param name="kernelFilter">handed to libpcap (record's --filter); null for follow, which filters in the session.</param>
    public HostCapture(TraceSession session, string? kernelFilter, int snapLength, int bufferBytes)
    {
        _session = session;
        _feed = session.OpenConcurrentFeed(OrderSlackNs);
        PcapInterface any = PcapInterface.GetAllPcapInterfaces().FirstOrDefault(i => i.Name == "any")
            ?? throw new LiveCaptureException("libpcap offers no 'any' device: whole-host capture needs Linux's any device");
        // HopDevice, as follow's per-hop handles: the ring read empty, then 50 ms to gather (LiveCapture.GatherMs), the
        // header read where it lies. SharpPcap's own loop woke for every packet and made a header, a timestamp and a
        // decimal per packet; on the bulk stream that was most of whole-host follow's CPU (docs/whole-host.md, "Cost").
        _device = new HopDevice(any) { PollMs = QuietPollMs };
        _device.OpenForHops(DeviceModes.None, snapLength, bufferBytes);
        if (!PcapStatistics.TrySetDataLink(_device, (int)LinkType.LinuxSll2.Value))
        {
            _device.Dispose();
            throw new LiveCaptureException("libpcap cannot give the any device the LINUX_SLL2 link type (libpcap 1.10 or later is needed): without it packets carry no interface index");
        }
        if (kernelFilter is not null)
        {
            _device.Filter = kernelFilter;
        }
        _device.Arrival = Arrived;
        _device.AfterRead = AfterRead;
        _device.QuietPoll = TraceHeld;
        _device.OnPacketArrival += (_, _) => { }; // SharpPcap starts no capture without one; HopDevice bypasses it
    }

    public TraceSession Session => _session;

    /// <summary>Receives every packet of an attached interface, with its interface id, on the capture thread (for <c>record</c>).</summary>
    public IPacketSink? Sink { get; set; }

    /// <summary>Packets on interfaces not attached (the host's other interfaces, loopback): counted, not traced.</summary>
    public long OtherPackets => Interlocked.Read(ref _other);

    /// <summary>
    /// The farthest a packet's stamp lay behind what could already have been let go when it was read: the newest stamp
    /// read before it, or the time the ring was last read empty. The ring's own disorder, which
    /// <see cref="OrderSlackNs"/> must cover.
    /// </summary>
    public long OutOfOrderMaxNs => Volatile.Read(ref _behindMaxNs);

    /// <summary>Packets more than <see cref="OrderSlackNs"/> out of order: their journeys may have been matched without them.</summary>
    public long LatePackets => Volatile.Read(ref _late);

    /// <summary>Packets held while their interface was not decided yet, then traced when it was attached.</summary>
    public long HeldThenTraced => Interlocked.Read(ref _heldTraced);

    /// <summary>
    /// Packets of an interface not decided yet that could not be held (<see cref="HeldMax"/>, <see cref="HeldBytesMax"/>)
    /// or waited longer than <see cref="HoldNs"/>: counted as other packets (so are those of a declined interface).
    /// </summary>
    public long HeldDropped => Interlocked.Read(ref _heldDropped);

    /// <summary>
    /// Says that interface <paramref name="ifindex"/> has appeared and may be attached soon (from any thread: the link
    /// watcher's, as the kernel says so). Until it is attached or declined, its packets are held and the time order
    /// waits for them (<see cref="HoldNs"/> at most). Nothing happens for an interface attached now. Returns whether it is
    /// expected from now on.
    /// </summary>
    public bool Expect(int ifindex)
    {
        lock (_mapLock)
        {
            if (Slot(ifindex) != 0)
            {
                return false;
            }
            Map(ifindex, Expected);
            return true;
        }
    }

    /// <summary>An interface <see cref="Expect"/> announced will not be attached: what is held of it is counted as other packets.</summary>
    public void Decline(int ifindex)
    {
        lock (_mapLock)
        {
            if (Slot(ifindex) == Expected)
            {
                Map(ifindex, 0);
                _heldDecided = true;
            }
        }
    }

    /// <summary>Packets held now (for the tests: read from another thread than the capture's, so only an indication).</summary>
    internal int HeldNow => _held.Count;

    /// <summary>Whether <see cref="Expect"/> announced this interface and it is neither attached nor declined yet.</summary>
    public bool IsExpected(int ifindex) => Slot(ifindex) == Expected;

    /// <summary>The interfaces announced by <see cref="Expect"/> and not decided yet.</summary>
    public IReadOnlyList<int> ExpectedIndexes()
    {
        var indexes = new List<int>();
        int[] flat = _flat;
        for (int i = 0; i < flat.Length; i++)
        {
            if (flat[i] == Expected)
            {
                indexes.Add(i);
            }
        }
        indexes.AddRange(_high.Where(p => p.Value == Expected).Select(p => p.Key));
        return indexes;
    }

    /// <summary>Interfaces not captured because <see cref="MaxInterfaces"/> was reached.</summary>
    public int Refused => _refused;

    /// <summary>Packets seen on interface id <paramref name="id"/> (attached now or before).</summary>
    public long PacketsOf(int id) => Volatile.Read(ref _packets[id]);

    /// <summary>Whether an interface with this ifindex is attached now.</summary>
    public bool IsAttached(int ifindex) => _attachedByIndex.ContainsKey(ifindex);

    /// <summary>The interface id of an attached ifindex.</summary>
    public int? IdOf(int ifindex) => _attachedByIndex.TryGetValue(ifindex, out int id) ? id : null;

    /// <summary>The ifindexes attached now.</summary>
    public IReadOnlyCollection<int> AttachedIndexes => _attachedByIndex.Keys;

    /// <summary>
    /// Starts capturing interface <paramref name="ifindex"/> under <paramref name="name"/>; returns its interface id, or
    /// null (with <paramref name="problem"/>) when it cannot be captured (too many interfaces; a bridge that cannot be
    /// made promiscuous is captured, with the problem said).
    /// </summary>
    public int? Attach(int ifindex, string name, InterfaceRole role, out string? problem) => Attach(ifindex, name, role, beforeCapture: null, out problem);

    /// <summary>
    /// <see cref="Attach(int, string, InterfaceRole, out string?)"/>, with <paramref name="beforeCapture"/> called with the
    /// new interface id before the capture thread can hand on a packet of it (a recording's interface block, which must
    /// exist before the first packet written for it, held ones included).
    /// </summary>
    public int? Attach(int ifindex, string name, InterfaceRole role, Action<int>? beforeCapture, out string? problem)
    {
        problem = null;
        if (_attachedByIndex.TryGetValue(ifindex, out int known))
        {
            return known;
        }
        if (_displayNames.Count >= MaxInterfaces)
        {
            _refused++;
            problem = $"{name} not captured: this run already attached {MaxInterfaces} interfaces, the most one whole-host capture holds";
            return null;
        }
        int id = _session.Interfaces.Add(name, role, RoleSource.Topology);
        if (id != _displayNames.Count)
        {
            throw new InvalidOperationException("the session's interfaces must all be this capture's");
        }
        _displayNames.Add(name);
        if (role == InterfaceRole.Bridge && _promiscuous.Add(ifindex) is { } error)
        {
            problem = $"{name} could not be made promiscuous ({error}): its copies of bridged frames will be missing";
        }
        _attachedByIndex[ifindex] = id;
        beforeCapture?.Invoke(id);
        lock (_mapLock)
        {
            if (Slot(ifindex) == Expected)
            {
                _heldDecided = true;
            }
            Map(ifindex, id + 1);
        }
        return id;
    }

    /// <summary>Stops capturing an ifindex (the link went away); its id, name and figures stay.</summary>
    public int? Detach(int ifindex)
    {
        if (!_attachedByIndex.Remove(ifindex, out int id))
        {
            return null;
        }
        lock (_mapLock)
        {
            Map(ifindex, 0);
        }
        _promiscuous.Remove(ifindex);
        return id;
    }

    /// <summary>Shows interface <paramref name="id"/> under another name (its container became known, or the link was renamed).</summary>
    public void Rename(int id, string name, InterfaceRole role)
    {
        _displayNames[id] = name;
        _session.Interfaces.Replace(id, name, role, RoleSource.Topology);
    }

    /// <summary>The map's slot for an ifindex: interface id + 1, <see cref="Expected"/>, or 0 (every packet: inlined).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int Slot(int ifindex)
    {
        int[] flat = _flat;
        return (uint)ifindex < (uint)flat.Length ? flat[ifindex] : ifindex >= FlatIndexes ? _high.GetValueOrDefault(ifindex) : 0;
    }

    /// <summary>Under <see cref="_mapLock"/>.</summary>
    private void Map(int ifindex, int value)
    {
        if ((uint)ifindex < FlatIndexes)
        {
            int[] flat = _flat;
            int[] next = ifindex < flat.Length ? (int[])flat.Clone() : new int[Math.Min(FlatIndexes, Math.Max(flat.Length * 2, ifindex + 1))];
            if (ifindex >= flat.Length)
            {
                flat.CopyTo(next, 0);
            }
            next[ifindex] = value;
            _flat = next;
        }
        else
        {
            var high = new Dictionary<int, int>(_high);
            if (value == 0)
            {
                high.Remove(ifindex);
            }
            else
            {
                high[ifindex] = value;
            }
            _high = high;
        }
    }

    public void Start()
    {
        ThreadPool.GetMinThreads(out int workers, out int completion);
        ThreadPool.SetMinThreads(Math.Max(workers, Environment.ProcessorCount + 3), completion);
        _device.StartCapture();
        // The capture thread and the pumping thread run under SCHED_IDLE; this thread raises one back that is kept off the CPU.
        IWatchedThread[] devices = [_device];
        _watch ??= PriorityWatch.Start(() => devices, _pump);
    }

    private PriorityWatch? _watch;

    /// <summary>
    /// Moves what arrived into the correlator, in time order, and the session's clock to the time the ring was last
    /// read empty: everything stamped more than <see cref="OrderSlackNs"/> before it has been handed over, however late
    /// the capture thread ran (on a loaded host the wall clock would run ahead of what was read).
    /// </summary>
    public void Pump()
    {
        _pump.Pumped();
        long drained = _device.DrainedNs;
        if (drained > 0)
        {
            _session.Pump(WatermarkFor(drained, Volatile.Read(ref _heldOldestNs)));
        }
        _pump.Done();
    }

    /// <summary>
    /// The clock handed to the session: the time the ring was last read empty, held back while a packet is held for an
    /// interface not decided yet, so that the orderer lets go of nothing after it (the session releases what is stamped
    /// up to the clock less the slack, and a sixteenth of it more).
    /// </summary>
    internal static long WatermarkFor(long drainedNs, long heldOldestNs) =>
        heldOldestNs == long.MaxValue ? drainedNs : Math.Min(drainedNs, heldOldestNs + OrderSlackNs / 2);

    /// <summary>The pumping thread's priority: below the workload while it pumps on time.</summary>
    private readonly PumpPriority _pump = new(BackgroundPolicy.Idle);

    /// <summary>The pumping thread's priority (null before its first pump).</summary>
    public PumpPriority PumpPriority => _pump;

    public void Stop()
    {
        _watch?.Dispose();
        _watch = null;
        _pump.Restore();
        _device.RaiseForStop();
        try
        {
            _device.StopCapture();
        }
        catch (PcapException)
        {
        }
        // The capture thread has ended: what it still holds is decided here (attached ones traced, the rest other).
        _heldDecided = true;
        TraceHeld(stopping: true);
        _session.Finish(Now());
    }

    /// <summary>The handle's counters: packets libpcap received (every interface), dropped by the kernel and by the driver.</summary>
    public (long Received, long KernelDropped, long InterfaceDropped) HandleStatistics() =>
        PcapStatistics.Read(_device) is var (received, dropped, ifDropped) ? (received, dropped, ifDropped) : (0, -1, 0);

    private static long Now() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    private void Arrived(ReadOnlySpan<byte> data, long ns, int originalLength)
    {
        if (data.Length < Sll2HeaderLength)
        {
            Interlocked.Increment(ref _other);
            return;
        }
        int ifindex = (int)BinaryPrimitives.ReadUInt32BigEndian(data.Slice(Sll2InterfaceIndex, 4));
        int slot = Slot(ifindex);
        if (slot <= 0)
        {
            if (slot == 0 || !Hold(ifindex, data, ns, originalLength))
            {
                Interlocked.Increment(ref _other);
            }
            return;
        }
        int id = slot - 1;
        // How far behind what the orderer may have let go (the newest stamp before it, the watermark) this one comes.
        long behind = Math.Max(_newestNs, _device.DrainedNs) - ns;
        if (behind > 0)
        {
            if (behind > _behindMaxNs)
            {
                Volatile.Write(ref _behindMaxNs, behind);
            }
            if (behind > OrderSlackNs)
            {
                Volatile.Write(ref _late, _late + 1);
            }
        }
        if (ns > _newestNs)
        {
            _newestNs = ns;
        }
        Deliver(_feed, id, data, ns, originalLength);
    }

    private void Deliver(PacketFeed feed, int id, ReadOnlySpan<byte> data, long ns, int originalLength)
    {
        _packets[id]++; // one writer: the capture thread
        // The kernel's own word on the direction: sent on that interface, or received on it.
        PacketDirection direction = data[Sll2PacketType] == PacketOutgoing ? PacketDirection.Outbound : PacketDirection.Inbound;
        Sink?.Write(id, LinkType.LinuxSll2, ns, data, originalLength, direction);
        feed.Arrive(id, ns, data, originalLength, LinkType.LinuxSll2, direction);
    }

    private readonly record struct HeldPacket(int Ifindex, long Ns, byte[] Data, int Length, int OriginalLength);

    /// <summary>
    /// The feed the held packets are traced through, opened with the first (capture thread). Not the ring's own: that
    /// feed's queue is in time order and has gone on past them, while these are older than what it holds since; a queue of
    /// their own, filled in the order they were read, is merged with it by time (<see cref="ArrivalMerge"/>).
    /// </summary>
    private PacketFeed? _heldFeed;

    /// <summary>Keeps a copy of a packet of an interface not decided yet (capture thread); false when there is no room.</summary>
    private bool Hold(int ifindex, ReadOnlySpan<byte> data, long ns, int originalLength)
    {
        if (_held.Count >= HeldMax || _heldBytes + data.Length > HeldBytesMax)
        {
            Interlocked.Increment(ref _heldDropped);
            return false;
        }
        byte[] copy = System.Buffers.ArrayPool<byte>.Shared.Rent(data.Length);
        data.CopyTo(copy);
        _held.Add(new HeldPacket(ifindex, ns, copy, data.Length, originalLength));
        _heldBytes += data.Length;
        if (ns < _heldOldestNs)
        {
            // Before the watermark moves past it (DrainedNs is written after this read of the ring).
            Volatile.Write(ref _heldOldestNs, ns);
        }
        if (ns > _newestNs)
        {
            _newestNs = ns;
        }
        return true;
    }

    private void AfterRead()
    {
        _pump.Watch();
        TraceHeld();
    }

    private void TraceHeld() => TraceHeld(stopping: false);

    /// <summary>
    /// On the capture thread after each read and quiet poll (and at the stop, after it has ended): goes through the held
    /// packets in the order they were read, tracing those whose interface was attached and counting as other packets
    /// those declined or held longer than <see cref="HoldNs"/>, up to the first still waiting for its interface: it and
    /// what came after it wait on, so the held packets reach their feed's queue in time order.
    /// </summary>
    private void TraceHeld(bool stopping)
    {
        if (_held.Count == 0)
        {
            return;
        }
        long now = Math.Max(_newestNs, _device.DrainedNs);
        if (!_heldDecided && !stopping && now - Volatile.Read(ref _heldOldestNs) <= HoldNs)
        {
            return;
        }
        _heldDecided = false;
        int done = 0;
        for (; done < _held.Count; done++)
        {
            HeldPacket held = _held[done];
            int slot = Slot(held.Ifindex);
            if (slot == Expected && !stopping && now - held.Ns <= HoldNs)
            {
                break;
            }
            if (slot > 0)
            {
                _heldFeed ??= _session.OpenConcurrentFeed(OrderSlackNs);
                Deliver(_heldFeed, slot - 1, held.Data.AsSpan(0, held.Length), held.Ns, held.OriginalLength);
                Interlocked.Increment(ref _heldTraced);
            }
            else
            {
                if (slot == Expected)
                {
                    Interlocked.Increment(ref _heldDropped);
                }
                Interlocked.Increment(ref _other);
            }
            _heldBytes -= held.Length;
            System.Buffers.ArrayPool<byte>.Shared.Return(held.Data);
        }
        _held.RemoveRange(0, done);
        long oldest = long.MaxValue;
        foreach (HeldPacket held in _held)
        {
            oldest = Math.Min(oldest, held.Ns);
        }
        Volatile.Write(ref _heldOldestNs, oldest);
    }

    public void Dispose()
    {
        _watch?.Dispose();
        _watch = null;
        _device.Dispose();
        _promiscuous.Dispose();
    }
}
