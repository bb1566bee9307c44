using VethTrace.Cli.Bench;
using VethTrace.Packets;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// The harness <c>vethtrace bench</c> and the BenchmarkDotNet suite share (src/VethTrace.Cli/Bench): how a set is brought to
/// 65,536 packets, the order of the passes and the clock that times them. Each decides what a figure means, so each is
/// pinned here (docs/performance.md, "Parser round 3", has the measurements behind them).
/// Run alone (the allocation tests' collection), so other tests' threads do not add to the process's CPU clock.
/// </summary>
[Collection(VethTrace.Tests.Files.AllocationMeasurement.Name)]
public sealed class BenchHarnessTests
{
    [Fact]
    public void Resample_SmallerSet_RepeatsTheSameFramesByReference()
    {
        PacketSet loaded = PacketSetLoader.LoadFiles("vxlan", [CaptureCorpus.PathOf("vxlan.pcap")]);
        Assert.Equal(22, loaded.Count);

        PacketSet repeated = loaded.Resample(1_000);

        Assert.Equal(1_000, repeated.Count);
        // The repeats are the loaded bytes themselves, not copies: no more memory than the 22 frames take.
        Assert.Same(loaded.Data, repeated.Data);
        for (int i = 0; i < repeated.Count; i++)
        {
            int source = i % loaded.Count;
            Assert.Equal(loaded.Offsets[source], repeated.Offsets[i]);
            Assert.Equal(loaded.Lengths[source], repeated.Lengths[i]);
            Assert.Equal(loaded.OriginalLengths[source], repeated.OriginalLengths[i]);
            Assert.Equal(loaded.LinkTypes[source], repeated.LinkTypes[i]);
        }
    }

    [Fact]
    public void Resample_LargerSet_SamplesEvenlyIntoOneContiguousArray()
    {
        PacketSet loaded = PacketSetLoader.LoadFiles("masquerade", [CaptureCorpus.PathOf("masquerade-multi.pcapng")]);
        Assert.Equal(177, loaded.Count);

        PacketSet sampled = loaded.Resample(59);

        Assert.NotSame(loaded.Data, sampled.Data);
        Assert.Equal(sampled.Offsets[^1] + sampled.Lengths[^1], sampled.Data.Length);
        for (int i = 0; i < sampled.Count; i++)
        {
            // Every third packet (177 / 59), copied back to back.
            Assert.True(sampled.Frame(i).SequenceEqual(loaded.Frame(3 * i)), $"packet {i}");
            Assert.Equal(i == 0 ? 0 : sampled.Offsets[i - 1] + sampled.Lengths[i - 1], sampled.Offsets[i]);
        }
    }

    [Fact]
    public void Passes_RepeatedSet_ParsersReadTheSameValuesAndPacketDotNetSharesItsArrays()
    {
        PacketSet set = ParserPasses.ParsableByBoth(PacketSetLoader.LoadFiles("mixed", [CaptureCorpus.PathOf("vlan-8021q.pcap"), CaptureCorpus.PathOf("any-sll2.pcap")]))
            .Resample(4_096);
        var passes = new ParserPasses(set, ParserOptions.Default);

        Assert.Equal(passes.PacketDotNet(), passes.VethTrace());
        // The same checksum over the same packets pass after pass (nothing in a pass changes the frames it reads).
        Assert.Equal(passes.VethTrace(), passes.VethTrace());
        Assert.Equal(passes.PacketDotNet(), passes.PacketDotNet());
    }

    [Fact]
    public void Cycle_EachPassFollowsEachOtherOnceAround()
    {
        string cycle = ParserRace.Cycle;
        var follows = new Dictionary<(char Before, char After), int>();
        for (int i = 0; i < cycle.Length; i++)
        {
            var pair = (cycle[i], cycle[(i + 1) % cycle.Length]);
            follows[pair] = follows.GetValueOrDefault(pair) + 1;
        }

        // The three passes, each twice per cycle, and all six ordered pairs of different passes once: none follows itself.
        Assert.Equal(["F", "F", "P", "P", "V", "V"], cycle.Select(c => c.ToString()).Order(StringComparer.Ordinal));
        Assert.Equal(6, follows.Count);
        Assert.All(follows, pair => Assert.NotEqual(pair.Key.Before, pair.Key.After));
        Assert.All(follows.Values, count => Assert.Equal(1, count));
    }

    [Fact]
    public void ProcessCpuClock_CountsWorkNotSleep()
    {
        long before = ProcessCpuClock.Nanoseconds();
        Thread.Sleep(400);
        long asleep = ProcessCpuClock.Nanoseconds() - before;
        // The runtime's own threads (tiered compilation, the GC) may run meanwhile; not for most of 400 ms.
        Assert.True(asleep < 300_000_000, $"the CPU clock advanced {asleep / 1e6:0} ms while this thread slept 400 ms");

        long start = ProcessCpuClock.Nanoseconds();
        var wall = System.Diagnostics.Stopwatch.StartNew();
        ulong spin = 0;
        while (ProcessCpuClock.Nanoseconds() - start < 50_000_000)
        {
            spin++;
            Assert.True(wall.Elapsed < TimeSpan.FromSeconds(30), "the CPU clock did not advance by 50 ms in 30 s of spinning");
        }
        Assert.True(spin > 0);
    }

    /// <summary>
    /// Each VethTrace pass is a method of its own, whoever calls it: inlined into a BenchmarkDotNet benchmark method, the
    /// loop and the parser's first tier exceeded that method's inlining budget and the parser's small helpers became calls
    /// on every packet (Parse measured 25.8 ns a packet there against 14.0-15.0 as its own method; docs/performance.md,
    /// "BenchmarkDotNet, quiet"). The attribute is what keeps the benchmark measuring the parser rather than the budget.
    /// </summary>
    [Theory]
    [InlineData(nameof(ParserPasses.VethTrace))]
    [InlineData(nameof(ParserPasses.VethTraceAndFingerprint))]
    public void VethTracePasses_AreNeverInlinedIntoTheirCaller(string pass)
    {
        System.Reflection.MethodInfo method = typeof(ParserPasses).GetMethod(pass, Type.EmptyTypes)!;
        Assert.True(method.MethodImplementationFlags.HasFlag(System.Reflection.MethodImplAttributes.NoInlining),
            $"ParserPasses.{pass} must be [MethodImpl(MethodImplOptions.NoInlining)]");
    }
}
