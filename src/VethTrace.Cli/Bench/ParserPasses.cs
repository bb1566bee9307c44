using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using PacketDotNet;
using VethTrace.Packets;

namespace VethTrace.Cli.Bench;

/// <summary>
/// One pass of each parser over a <see cref="PacketSet"/>, reading the same fields (<see cref="PacketFields"/>) from
/// the same packets: the loops that <c>vethtrace bench</c> times and the BenchmarkDotNet suite runs, so the two
/// measure the same thing. Each returns a checksum of what it read, so nothing is eliminated as dead code, and equal
/// checksums mean both parsers read equal values.
/// </summary>
public sealed class ParserPasses
{
    private readonly byte[] _data;
    private readonly int[] _offsets;
    private readonly int[] _lengths;
    private readonly int[] _originalLengths;
    private readonly LinkType[] _linkTypes;
    // PacketDotNet parses a byte[]: one per distinct frame, built here so the copy is not measured. A set repeated by
    // reference (PacketSet.Resample) repeats the same arrays, so PacketDotNet reads as many distinct frames as the others.
    private readonly byte[][] _frames;
    private readonly LinkLayers[] _linkLayers;
    private readonly ParserOptions _options;

    public ParserPasses(PacketSet set, ParserOptions options)
    {
        Set = set;
        _data = set.Data;
        _offsets = set.Offsets;
        _lengths = set.Lengths;
        _originalLengths = set.OriginalLengths;
        _linkTypes = set.LinkTypes;
        _options = options;
        _frames = new byte[set.Count][];
        _linkLayers = new LinkLayers[set.Count];
        var distinct = new Dictionary<(int Offset, int Length), byte[]>();
        for (int i = 0; i < set.Count; i++)
        {
            if (!distinct.TryGetValue((set.Offsets[i], set.Lengths[i]), out byte[]? frame))
            {
                distinct[(set.Offsets[i], set.Lengths[i])] = frame = set.FrameArray(i);
            }
            _frames[i] = frame;
            _linkLayers[i] = PacketDotNetFields.ToLinkLayer(_linkTypes[i]);
        }
    }

    public PacketSet Set { get; }

    public int Count => _offsets.Length;

    /// <summary>
    /// Keeps the packets PacketDotNet can parse. It throws on some (link types it lacks, headers it cannot fit), and
    /// both parsers must see the same packets.
    /// </summary>
    public static PacketSet ParsableByBoth(PacketSet set) => set.Where(i => TryPacketDotNet(set, i));

    /// <summary>
    /// VethTrace: <see cref="PacketParser.Parse(ReadOnlySpan{byte}, LinkType, ParserOptions, int, out ParsedPacket)"/>, every
    /// layer, with the record's original length as replay and follow pass it.
    /// </summary>
    // NoInlining on both: each pass is a method of its own, as replay's reading loop is. Inlined into a caller (a
    // BenchmarkDotNet benchmark method is one), the loop, the parser's first tier and its helpers exceeded the JIT's
    // inlining budget of that caller, and the helpers marked AggressiveInlining (ClearBlock, StoreTwo,
    // ReadCommonTransport, ...) became calls on every packet: 25.8 ns a packet instead of 15.0 (docs/performance.md,
    // "BenchmarkDotNet, quiet", session 14). `vethtrace bench` calls the passes through delegates, so they were roots already.
    [MethodImpl(MethodImplOptions.NoInlining)]
    public ulong VethTrace() => VethTracePass(fingerprint: false);

    /// <summary>VethTrace's parser and the NAT-invariant fingerprint, as replay and follow run them.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public ulong VethTraceAndFingerprint() => VethTracePass(fingerprint: true);

    // Inlined into both callers with a constant argument, so each gets a loop without the test.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong VethTracePass(bool fingerprint)
    {
        byte[] data = _data;
        int[] offsets = _offsets;
        int[] lengths = _lengths;
        int[] originalLengths = _originalLengths;
        LinkType[] linkTypes = _linkTypes;
        ParserOptions options = _options;
        ulong hash = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            var frame = new ReadOnlySpan<byte>(data, offsets[i], lengths[i]);
            PacketParser.Parse(frame, linkTypes[i], options, originalLengths[i], out ParsedPacket packet);
            hash += PacketFields.HashOf(in packet.Outer);
            if (fingerprint)
            {
                hash += PacketFields.Hash(global::VethTrace.Flows.PacketFingerprint.Compute(in packet, frame));
            }
        }
        return hash;
    }

    /// <summary>
    /// The floor: no parser, a hand-written read of the same <see cref="PacketFields"/> at the fixed offsets of
    /// Ethernet (no VLAN), IPv4 with a 20-byte header and TCP or UDP, with no validation beyond one length check
    /// (frames shorter than Ethernet + IPv4 + TCP are skipped so it cannot throw). It reads the fields' bytes
    /// and nothing else, so it is the bare cost of touching them and folding them into the checksum, which any
    /// parser pays too. It is only right for packets of exactly that shape, like the bulk set's (its checksum
    /// then equals the parsers'); on any other set it reads the same offsets and its values mean nothing.
    /// </summary>
    public ulong NaiveSpanRead()
    {
        byte[] data = _data;
        int[] offsets = _offsets;
        int[] lengths = _lengths;
        ulong hash = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            var frame = new ReadOnlySpan<byte>(data, offsets[i], lengths[i]);
            if (frame.Length < NaiveTcpEnd)
            {
                continue;
            }
            byte protocol = frame[23];
            int totalLength = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
            TransportKind transport = protocol == 6 ? TransportKind.Tcp : protocol == 17 ? TransportKind.Udp : TransportKind.None;
            int payloadLength = transport switch
            {
                TransportKind.Tcp => Math.Max(totalLength - 20 - (frame[46] >> 4) * 4, 0),
                TransportKind.Udp => Math.Max(Math.Min(BinaryPrimitives.ReadUInt16BigEndian(frame[38..]), totalLength - 20) - 8, 0),
                _ => 0,
            };
            bool tcp = transport == TransportKind.Tcp;
            hash += PacketFields.Hash(
                (byte)(frame[14] >> 4),
                BinaryPrimitives.ReadUInt32BigEndian(frame[26..]),
                BinaryPrimitives.ReadUInt32BigEndian(frame[30..]),
                protocol,
                frame[22],
                BinaryPrimitives.ReadUInt16BigEndian(frame[18..]),
                transport,
                transport == TransportKind.None ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(frame[34..]),
                transport == TransportKind.None ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(frame[36..]),
                tcp ? BinaryPrimitives.ReadUInt32BigEndian(frame[38..]) : 0,
                tcp ? BinaryPrimitives.ReadUInt32BigEndian(frame[42..]) : 0,
                tcp ? (ushort)(BinaryPrimitives.ReadUInt16BigEndian(frame[46..]) & 0x01FF) : (ushort)0,
                payloadLength);
        }
        return hash;
    }

    /// <summary>Ethernet (14) + IPv4 without options (20) + TCP without options (20).</summary>
    private const int NaiveTcpEnd = 54;

    /// <summary>PacketDotNet: <see cref="Packet.ParsePacket(LinkLayers, byte[])"/> and the same fields (<see cref="PacketDotNetFields"/>).</summary>
    public ulong PacketDotNet()
    {
        byte[][] frames = _frames;
        LinkLayers[] linkLayers = _linkLayers;
        ulong hash = 0;
        for (int i = 0; i < frames.Length; i++)
        {
            hash = PacketDotNetFields.Read(linkLayers[i], frames[i]).Fold(hash);
        }
        return hash;
    }

    private static bool TryPacketDotNet(PacketSet set, int index)
    {
        try
        {
            PacketDotNetFields.Read(PacketDotNetFields.ToLinkLayer(set.LinkTypes[index]), set.FrameArray(index));
            return true;
        }
        catch (Exception)
        {
            // Deliberately broad: PacketDotNet throws NotImplementedException, IndexOutOfRange,
            // ArgumentOutOfRange and InvalidOperationException on frames it cannot take.
            return false;
        }
    }
}
