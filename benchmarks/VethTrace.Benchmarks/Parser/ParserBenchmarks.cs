using BenchmarkDotNet.Attributes;
using VethTrace.Cli.Bench;
using VethTrace.Packets;

namespace VethTrace.Benchmarks.Parser;

/// <summary>
/// VethTrace's parser against PacketDotNet on the same packets, reading the same fields. Every method
/// handles <see cref="PacketsPerInvoke"/> packets and declares them as operations, so the table reads in
/// nanoseconds and allocated bytes per packet. The loops are <see cref="ParserPasses"/>, the ones
/// <c>vethtrace bench</c> times; each returns a checksum of what it read so nothing is eliminated as dead
/// code, and <see cref="Setup"/> checks that the checksums agree.
/// </summary>
[MemoryDiagnoser]
public class ParserBenchmarks
{
    /// <summary>
    /// Packets per invocation. OperationsPerInvoke must be a constant, so every set is sampled or repeated
    /// to this count (<see cref="PacketSet.Resample"/>). 64 Ki packets of the bulk set's 128-byte snaplen are ~8 MB,
    /// larger than the caches, as a capture stream is, and streamed in by the prefetcher; the mixed set (455 frames) is
    /// repeated by reference, so its frames are in the cache as well, as a tracer's are when it parses them.
    /// </summary>
    public const int PacketsPerInvoke = 1 << 16;

    private ParserPasses _passes = null!;

    [Params("bulk", "mixed")]
    public string Set { get; set; } = "bulk";

    [GlobalSetup]
    public void Setup()
    {
        PacketSet loaded = PacketSetLoader.Load(Set);
        // Both parsers must see the same packets: those PacketDotNet throws on are dropped, and `compare` lists them.
        PacketSet parsable = ParserPasses.ParsableByBoth(loaded);
        Console.WriteLine($"// packet set '{Set}': {loaded.Count} packets from {string.Join(", ", loaded.Sources)}; " +
            $"link types {string.Join(", ", loaded.DistinctLinkTypes())}; {loaded.Count - parsable.Count} dropped because PacketDotNet throws on them");
        _passes = new ParserPasses(parsable.Resample(PacketsPerInvoke), ParserOptions.Default);

        ulong ours = Parse();
        ulong theirs = PacketDotNet();
        Console.WriteLine(ours == theirs
            ? $"// checksums agree: {ours:x16}"
            : $"// checksums DISAGREE: VethTrace {ours:x16}, PacketDotNet {theirs:x16}; run `-- compare {Set}` for the fields");
        ulong naive = NaiveSpanRead();
        Console.WriteLine(naive == ours
            ? $"// NaiveSpanRead checksum agrees: every packet has the shape it assumes"
            : $"// NaiveSpanRead checksum differs ({naive:x16}): not every packet is Ethernet/IPv4 (20-byte header)/TCP|UDP, so its row is a timing of the same reads only");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public ulong PacketDotNet() => _passes.PacketDotNet();

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public ulong Parse() => _passes.VethTrace();

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public ulong ParseAndFingerprint() => _passes.VethTraceAndFingerprint();

    /// <summary>
    /// The floor, not a parser: the same fields read at fixed Ethernet/IPv4/TCP|UDP offsets without validation
    /// (<see cref="ParserPasses.NaiveSpanRead"/>). Right only on the bulk set, whose packets all have that shape.
    /// </summary>
    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public ulong NaiveSpanRead() => _passes.NaiveSpanRead();
}
