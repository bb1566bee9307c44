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
        _device.AfterRead = _pump.Watch;
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
    public int? Attach(int ifindex, string name, InterfaceRole role, out string? problem)
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
        Map(ifindex, id + 1);
        return id;
    }

    /// <summary>Stops capturing an ifindex (the link went away); its id, name and figures stay.</summary>
    public int? Detach(int ifindex)
    {
        if (!_attachedByIndex.Remove(ifindex, out int id))
        {
            return null;
        }
        Map(ifindex, 0);
        _promiscuous.Remove(ifindex);
        return id;
    }

    /// <summary>Shows interface <paramref name="id"/> under another name (its container became known, or the link was renamed).</summary>
    public void Rename(int id, string name, InterfaceRole role)
    {
        _displayNames[id] = name;
        _session.Interfaces.Replace(id, name, role, RoleSource.Topology);
    }

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
            _session.Pump(drained);
        }
        _pump.Done();
    }

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
        int[] flat = _flat;
        int slot = (uint)ifindex < (uint)flat.Length ? flat[ifindex] : ifindex >= FlatIndexes ? _high.GetValueOrDefault(ifindex) : 0;
        if (slot == 0)
        {
            Interlocked.Increment(ref _other);
            return;
        }
        int id = slot - 1;
        _packets[id]++; // one writer: the capture thread
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
        // The kernel's own word on the direction: sent on that interface, or received on it.
        PacketDirection direction = data[Sll2PacketType] == PacketOutgoing ? PacketDirection.Outbound : PacketDirection.Inbound;
        Sink?.Write(id, LinkType.LinuxSll2, ns, data, originalLength, direction);
        _feed.Arrive(id, ns, data, originalLength, LinkType.LinuxSll2, direction);
    }

    public void Dispose()
    {
        _watch?.Dispose();
        _watch = null;
        _device.Dispose();
        _promiscuous.Dispose();
    }
}
