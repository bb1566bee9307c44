using BenchmarkDotNet.Attributes;
using PacketDotNet;
using VethTrace.Benchmarks.PacketSets;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Benchmarks.Parser;

/// <summary>
/// VethTrace's parser against PacketDotNet on the same packets, reading the same fields. Every method
/// handles <see cref="PacketsPerInvoke"/> packets and declares them as operations, so the table reads in
/// nanoseconds and allocated bytes per packet. Each returns a checksum of what it read so nothing is
/// eliminated as dead code; <see cref="Setup"/> checks that the checksums agree.
/// </summary>
[MemoryDiagnoser]
public class ParserBenchmarks
{
    /// <summary>
    /// Packets per invocation. OperationsPerInvoke must be a constant, so every set is sampled or repeated
    /// to this count (<see cref="PacketSet.Resample"/>). 64 Ki packets of a 128-byte snaplen are ~8 MB:
    /// larger than the caches, as a capture stream is.
    /// </summary>
    public const int PacketsPerInvoke = 1 << 16;

    private PacketSet _set = null!;
    private byte[] _data = [];
    private int[] _offsets = [];
    private int[] _lengths = [];
    private LinkType[] _linkTypes = [];
    // PacketDotNet parses a byte[]: one per packet, built here so the copy is not measured.
    private byte[][] _frames = [];
    private LinkLayers[] _linkLayers = [];
    private readonly ParserOptions _options = ParserOptions.Default;

    [Params("bulk", "mixed")]
    public string Set { get; set; } = "bulk";

    [GlobalSetup]
    public void Setup()
    {
        PacketSet loaded = PacketSetLoader.Load(Set);
        // Both parsers must see the same packets. PacketDotNet throws on some (link types it lacks,
        // headers it cannot fit): those are dropped here, and `compare` lists them.
        PacketSet parsable = loaded.Where(i => TryPacketDotNet(loaded, i));
        Console.WriteLine($"// packet set '{Set}': {loaded.Count} packets from {string.Join(", ", loaded.Sources)}; " +
            $"link types {string.Join(", ", loaded.DistinctLinkTypes())}; {loaded.Count - parsable.Count} dropped because PacketDotNet throws on them");
        _set = parsable.Resample(PacketsPerInvoke);
        _data = _set.Data;
        _offsets = _set.Offsets;
        _lengths = _set.Lengths;
        _linkTypes = _set.LinkTypes;
        _frames = new byte[_set.Count][];
        _linkLayers = new LinkLayers[_set.Count];
        for (int i = 0; i < _set.Count; i++)
        {
            _frames[i] = _set.FrameArray(i);
            _linkLayers[i] = PacketDotNetFields.ToLinkLayer(_linkTypes[i]);
        }

        ulong ours = Parse();
        ulong theirs = PacketDotNet();
        Console.WriteLine(ours == theirs
            ? $"// checksums agree: {ours:x16}"
            : $"// checksums DISAGREE: VethTrace {ours:x16}, PacketDotNet {theirs:x16}; run `-- compare {Set}` for the fields");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
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

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public ulong Parse()
    {
        byte[] data = _data;
        int[] offsets = _offsets;
        int[] lengths = _lengths;
        LinkType[] linkTypes = _linkTypes;
        ParserOptions options = _options;
        ulong hash = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            var frame = new ReadOnlySpan<byte>(data, offsets[i], lengths[i]);
            PacketParser.Parse(frame, linkTypes[i], options, out ParsedPacket packet);
            hash = PacketFields.From(in packet.Outer).Fold(hash);
        }
        return hash;
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public ulong ParseAndFingerprint()
    {
        byte[] data = _data;
        int[] offsets = _offsets;
        int[] lengths = _lengths;
        LinkType[] linkTypes = _linkTypes;
        ParserOptions options = _options;
        ulong hash = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            var frame = new ReadOnlySpan<byte>(data, offsets[i], lengths[i]);
            PacketParser.Parse(frame, linkTypes[i], options, out ParsedPacket packet);
            hash = PacketFields.From(in packet.Outer).Fold(hash);
            hash = PacketFields.Mix(hash, PacketFingerprint.Compute(in packet, frame));
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
