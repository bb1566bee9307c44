using System.Runtime.CompilerServices;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// Where one source thread hands a <see cref="TraceSession"/> its packets: a packet arrived on interface X at time T,
/// with these bytes. The feed parses it, counts it (every packet, and those that are not IP), counts the tunnel it
/// came in, asks the filter, and passes the <see cref="Observation"/> on towards the correlator. A feed is used by one
/// thread; its counters may be read from any.
/// </summary>
/// <remarks>
/// The bytes are read only during the call (a live handle's ring, a reader's reused buffer): nothing is copied but
/// the observation, and nothing is allocated per packet.
/// </remarks>
public sealed class PacketFeed
{
    private readonly ParserOptions _parser;
    private readonly IPacketSelector? _filter;
    private readonly TunnelTable _tunnels;
    /// <summary>A pipelined run orders on this (the producer's) thread; a concurrent feed queues for the session's pump.</summary>
    private readonly PipedOrderer? _orderer;
    private readonly ArrivalQueue? _queue;
    private readonly BatchPipe<Observation>? _pipe;
    private readonly bool _stopWhenOvertaken;
    private long _packets;
    private long _notIp;
    private readonly int _sample;
    private long _sampledOut;

    internal PacketFeed(TraceSession session, PipedOrderer? orderer, BatchPipe<Observation>? pipe, ArrivalQueue? queue, bool stopWhenOvertaken)
    {
        _parser = session.Options.Parser;
        _filter = session.Options.Filter;
        _sample = session.Options.Sample;
        _tunnels = session.Tunnels;
        _orderer = orderer;
        _pipe = pipe;
        _queue = queue;
        _stopWhenOvertaken = stopWhenOvertaken;
    }

    /// <summary>Every packet handed in.</summary>
    public long Packets => Volatile.Read(ref _packets);

    /// <summary>Packets without an IP layer (ARP, LLDP…): counted, not traced, for nothing routes or NATs them.</summary>
    public long NotIp => Volatile.Read(ref _notIp);

    /// <summary>IP packets left out by <see cref="TraceSessionOptions.Sample"/>: read and parsed, not traced.</summary>
    public long SampledOut => Volatile.Read(ref _sampledOut);

    /// <summary>
    /// An observation came later than the pipelined run's slack allows (see <see cref="TraceSession.RunPipelined"/>):
    /// the run is void and the producer should stop.
    /// </summary>
    public bool Overtaken { get; private set; }

    /// <summary>The producer may stop: the run is void (<see cref="Overtaken"/>), or nobody consumes any more.</summary>
    public bool Stopped => Overtaken || _pipe is { Stopped: true };

    /// <summary>
    /// A packet arrived on interface <paramref name="interfaceId"/> (an id from the session's registry) at
    /// <paramref name="timestampNs"/>; <paramref name="originalLength"/> is its length on the wire (below the frame's when unknown).
    /// </summary>
    public void Arrive(int interfaceId, long timestampNs, ReadOnlySpan<byte> frame, int originalLength, LinkType linkType, PacketDirection direction)
    {
        if (TryParse(frame, originalLength, linkType, out ParsedPacket packet))
        {
            Observe(in packet, frame, linkType, timestampNs, interfaceId, direction);
        }
    }

    /// <summary>
    /// The first half of <see cref="Arrive"/>, for a source that needs the parsed packet to know the interface (a Linux
    /// cooked v2 record names it by index): counts and parses; false when the packet is not IP (nothing more to do).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, into the source's read loop
    public bool TryParse(ReadOnlySpan<byte> frame, int originalLength, LinkType linkType, out ParsedPacket packet)
    {
        _packets++; // one writer; 64-bit stores are atomic, so readers on other threads see a whole value
        PacketParser.Parse(frame, linkType, _parser, originalLength, out packet);
        if (!packet.Innermost.Has(LayerSet.Network))
        {
            _notIp++;
            return false;
        }
        return true;
    }

    /// <summary>
    /// The second half of <see cref="Arrive"/>: a parsed IP packet on its interface. <paramref name="timestampInvalid"/>
    /// marks a record without a valid time (placed at its file position: matched, but no latency measured with it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, into the source's read loop
    public void Observe(in ParsedPacket packet, ReadOnlySpan<byte> frame, LinkType linkType, long timestampNs, int interfaceId, PacketDirection direction,
        bool timestampInvalid = false)
    {
        _tunnels.Add(in packet, interfaceId);
        if (_sample > 1 && !JourneySampling.Keeps(in packet, frame, _sample))
        {
            _sampledOut++;
            return;
        }
        bool selected = _filter is null || _filter.Matches(frame, packet.OriginalLength, linkType);
        // Capture order breaks ties of equal timestamps: the packet's number for the one feed of a pipelined run, the
        // feed's own queue's (its place among the feeds, then its count) for the session's concurrent feeds.
        if (_orderer is not null)
        {
            // Written once, where the matching thread will read it (PipedOrderer).
            Observation.Write(ref _orderer.Reserve(), in packet, frame, timestampNs, interfaceId, _packets, selected, direction, timestampInvalid);
            _orderer.Commit();
            if (_stopWhenOvertaken && _orderer.Overtaken > 0)
            {
                Overtaken = true;
            }
        }
        else
        {
            // Written once, in place, in the feed's own queue, where the pump merges it (ArrivalMerge): built as a value
            // and assigned, it was made on the stack and copied in (112 bytes, a memmove call per packet).
            ArrivalQueue queue = _queue!;
            Observation.Write(ref queue.Reserve(), in packet, frame, timestampNs, interfaceId, queue.NextOrder(), selected, direction, timestampInvalid);
            queue.Commit(timestampNs);
        }
    }
}
