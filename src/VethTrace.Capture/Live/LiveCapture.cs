using System.Collections.Concurrent;
using SharpPcap;
using SharpPcap.LibPcap;
using VethTrace.Capture.Files;
using VethTrace.Capture.Topology;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Capture.Live;

/// <summary>One hop to capture on: an interface, in a network namespace (null for the host's), with its role.</summary>
public sealed record HopTarget(string Interface, string? NetworkNamespace, InterfaceRole Role, string DisplayName);

/// <summary>Per-interface counters: packets seen by VethTrace, and what libpcap says the kernel dropped.</summary>
public sealed record HopStatistics(string DisplayName, long Packets, long KernelDropped, long InterfaceDropped);

/// <summary>
/// Captures on several hops at once with one libpcap handle each (SharpPcap), and feeds one <see cref="Correlator"/>.
/// A handle inside a container's namespace is opened on a dedicated thread that first enters that namespace with
/// setns(2): the packet socket is bound there, and stays there whichever thread reads it. Packets are parsed in the
/// arrival callback, from <see cref="PacketCapture.Data"/> (never copied), into small <see cref="Observation"/>s;
/// a single consumer puts them back in time order (the handles deliver independently) and correlates them.
/// </summary>
public sealed class LiveCapture : IDisposable
{
    /// <summary>
    /// The libpcap buffer per handle: 8 MiB holds about 60k full-size 128-byte snaplen packets, or a few seconds of
    /// a busy container at line rate; drops beyond it are counted by the kernel and reported.
    /// </summary>
    public const int BufferBytes = 8 * 1024 * 1024;

    private readonly List<(HopTarget Target, LibPcapLiveDevice Device, int Id, PacketDirection Direction)> _devices = [];
    private readonly List<HopTarget> _targets = [];
    private readonly ConcurrentQueue<Observation> _arrivals = new();
    private readonly ConcurrentQueue<string> _lost = new();
    private readonly Correlator _correlator;
    private readonly TimeOrderer _orderer;
    private readonly ParserOptions _parser;
    private readonly long[] _packets;
    private long _order;

    private readonly string? _filter;
    private readonly int _snapLength;

    public LiveCapture(IReadOnlyList<HopTarget> targets, CorrelatorOptions options, ParserOptions parser, string? filter, int snapLength = 262_144)
    {
        _parser = parser;
        _filter = filter;
        _snapLength = snapLength;
        _packets = new long[targets.Count];
        _targets.AddRange(targets);
        _correlator = new Correlator(options, id => _targets[id].Role);
        _orderer = new TimeOrderer(_correlator, TimeOrderer.DefaultSlackNs);
        try
        {
            OpenAll(targets, snapLength, filter);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void OpenAll(IReadOnlyList<HopTarget> targets, int snapLength, string? filter)
    {
        // pcap_findalldevs is slow (it walks every interface): once for the host, once per namespace thread.
        IReadOnlyList<PcapInterface> hostInterfaces = PcapInterface.GetAllPcapInterfaces();
        for (int id = 0; id < targets.Count; id++)
        {
            HopTarget target = targets[id];
            // One handle per hop. libpcap reports no per-packet direction for an Ethernet handle, and the
            // 'inbound'/'outbound' qualifiers were tried (a handle per direction) but lost the first matching
            // packet of each handle here (libpcap 1.10.3, kernel 6.18), so directions stay unknown.
            LibPcapLiveDevice device = target.NetworkNamespace is null
                ? Open(hostInterfaces, target.Interface, snapLength, filter)
                : OpenInNamespace(target.Interface, target.NetworkNamespace, snapLength, filter);
            int hop = id;
            device.OnPacketArrival += (_, capture) => Arrived(hop, PacketDirection.Unknown, capture);
            device.OnCaptureStopped += (_, status) =>
            {
                // libpcap fails a read when the interface goes away: the container stopped, or restarted with a new veth.
                if (status == CaptureStoppedEventStatus.ErrorWhileCapturing)
                {
                    _lost.Enqueue(target.DisplayName);
                }
            };
            _devices.Add((target, device, id, PacketDirection.Unknown));
        }
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
        _lost.Clear();
        for (int i = 0; i < targets.Count; i++)
        {
            _targets[i] = targets[i];
        }
        OpenAll(targets, _snapLength, _filter);
        Start();
        return true;
    }

    public IReadOnlyList<string> Names => _targets.Select(t => t.DisplayName).ToList();

    public Func<int, InterfaceRole> RoleOf => id => _targets[id].Role;

    /// <summary>Hops whose interface went away while capturing (their handle stopped with an error).</summary>
    public IReadOnlyCollection<string> LostHops => _lost;

    /// <summary>The link type libpcap gave the hop's handle.</summary>
    public LinkType LinkTypeOf(int hop) => new((uint)_devices.First(d => d.Id == hop).Device.LinkType);

    /// <summary>Receives every captured packet with its hop and direction (for <c>record</c>), on the capture threads.</summary>
    public IPacketSink? Sink { get; set; }

    public void Start()
    {
        foreach (var (_, device, _, _) in _devices)
        {
            device.StartCapture();
        }
    }

    /// <summary>
    /// Moves what has arrived into the correlator, in time order, with <see cref="TimeOrderer.DefaultSlackNs"/> of slack
    /// for late handles (one was seen delivering more than a second late in the lab); the live view lags by as much.
    /// </summary>
    public void Pump(bool all = false)
    {
        while (_arrivals.TryDequeue(out Observation observation))
        {
            _orderer.Add(in observation);
        }
        // The handles stamp with the system's real-time clock: when traffic pauses, wall time still moves on.
        _orderer.Advance((DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100);
        if (all)
        {
            _orderer.Flush();
        }
    }

    public void Stop()
    {
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
        Pump(all: true);
        _correlator.Complete();
    }

    public CorrelationReport Report() => _correlator.Report();

    /// <summary>A snapshot of the running correlation (journeys still open are not in it yet).</summary>
    public Correlator Correlator => _correlator;

    public IReadOnlyList<HopStatistics> Statistics()
    {
        var dropped = new long[_targets.Count];
        var interfaceDropped = new long[_targets.Count];
        foreach (var (_, device, id, _) in _devices)
        {
            try
            {
                ICaptureStatistics stats = device.Statistics;
                dropped[id] += stats.DroppedPackets;
                interfaceDropped[id] += stats.InterfaceDroppedPackets;
            }
            catch (PcapException)
            {
                dropped[id] = -1; // the handle is gone (its interface disappeared)
            }
        }
        return _targets.Select((t, id) => new HopStatistics(t.DisplayName, Interlocked.Read(ref _packets[id]), dropped[id], interfaceDropped[id])).ToList();
    }

    public void Dispose()
    {
        foreach (var (_, device, _, _) in _devices)
        {
            device.Dispose();
        }
        _devices.Clear();
    }

    private void Arrived(int hop, PacketDirection direction, PacketCapture capture)
    {
        // The capture thread of this handle: parse the bytes where they lie and keep only the observation.
        ReadOnlySpan<byte> data = capture.Data;
        var linkType = new LinkType((uint)capture.Device.LinkType);
        PosixTimeval time = capture.Header.Timeval;
        long ns = (long)(time.Value * 1_000_000_000m);
        Sink?.Write(hop, linkType, ns, data, capture.Header is PcapHeader header ? (int)header.PacketLength : data.Length, direction);
        PacketParser.Parse(data, linkType, _parser, out ParsedPacket packet);
        Interlocked.Increment(ref _packets[hop]);
        if (!packet.Innermost.Has(LayerSet.Network))
        {
            return;
        }
        _arrivals.Enqueue(Observation.From(in packet, data, ns, hop, Interlocked.Increment(ref _order)));
    }

    private static LibPcapLiveDevice Open(IReadOnlyList<PcapInterface> interfaces, string name, int snapLength, string? filter)
    {
        PcapInterface pcapInterface = interfaces.FirstOrDefault(i => i.Name == name)
            ?? throw new LiveCaptureException($"no interface named {name}");
        var device = new LibPcapLiveDevice(pcapInterface);
        device.Open(new DeviceConfiguration
        {
            // Promiscuous: a bridge device sees bridged (east-west) frames only in promiscuous mode (DESIGN.md).
            Mode = DeviceModes.Promiscuous,
            Immediate = true,
            ReadTimeout = 100,
            Snaplen = snapLength,
            BufferSize = BufferBytes,
            TimestampResolution = TimestampResolution.Nanosecond,
        });
        if (filter is not null)
        {
            device.Filter = filter;
        }
        return device;
    }

    private static LibPcapLiveDevice OpenInNamespace(string name, string namespacePath, int snapLength, string? filter)
    {
        try
        {
            // The handle's packet socket is bound inside the namespace and stays there after the thread ends.
            return NetworkNamespace.FromPath(namespacePath).Run(() => Open(PcapInterface.GetAllPcapInterfaces(), name, snapLength, filter));
        }
        catch (TopologyException e)
        {
            throw new LiveCaptureException(e.Message);
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
