using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// The parser runs in the capture callback for every packet: it and the fingerprint must not allocate.
/// GC.GetAllocatedBytesForCurrentThread counts this thread only, so tests running in parallel don't disturb it; but
/// the runtime itself can allocate a few hundred bytes on the thread once (a tier-up or on-stack replacement in the
/// middle of the loop, seen once in a full parallel run), so each measurement is the least of three runs: a real
/// per-packet allocation costs at least 100,000 × its size in every run.
/// </summary>
[Collection(VethTrace.Tests.Files.AllocationMeasurement.Name)]
public class AllocationTests
{
    private const int Iterations = 100_000;

    [Fact]
    public void ParseAndFingerprint_AllSamples_AllocateNothing()
    {
        var samples = SamplePackets.All;
        byte[][] frames = [.. samples.Select(s => s.Frame)];
        LinkType[] linkTypes = [.. samples.Select(s => s.LinkType)];
        var options = new ParserOptions { VxlanPort = 4789 };

        // Warm up: JIT every path (tiering may recompile later, which allocates nothing on this thread either).
        ulong sink = Run(frames, linkTypes, options, 20 * frames.Length);

        long allocated = long.MaxValue;
        for (int attempt = 0; attempt < 3 && allocated != 0; attempt++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            sink ^= Run(frames, linkTypes, options, Iterations);
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.Equal(0, allocated);
        Assert.NotEqual(0UL, sink);
    }

    [Fact]
    public void ParseAndFingerprint_TruncatedAndMalformed_AllocateNothing()
    {
        // The failure paths (truncated, malformed, limits) must not allocate either: no exceptions, no strings.
        SamplePacket[] samples = [.. SamplePackets.All]; // an array: a foreach over the interface would box its enumerator
        var tight = new ParserOptions { MaxVlanTags = 1, MaxExtensionHeaders = 2, MaxTunnelDepth = 1 };
        ulong sink = 0;
        long least = long.MaxValue;
        for (int run = 0; run < 4 && least != 0; run++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Iterations / samples.Length; i++)
            {
                foreach (var sample in samples)
                {
                    ReadOnlySpan<byte> cut = sample.Frame.AsSpan(0, i % (sample.Frame.Length + 1));
                    // The original length: the whole frame (a snaplen cut) or the cut itself (a short frame, flagged).
                    PacketParser.Parse(cut, sample.LinkType, (i & 1) == 0 ? ParserOptions.Default : tight, (i & 2) == 0 ? sample.Frame.Length : cut.Length,
                        out var packet);
                    sink += PacketFingerprint.Compute(in packet, cut);
                }
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (run > 0) // the first run warms up
            {
                least = Math.Min(least, allocated);
            }
        }
        Assert.Equal(0, least);
        Assert.NotEqual(0UL, sink);
    }

    private static ulong Run(byte[][] frames, LinkType[] linkTypes, ParserOptions options, int iterations)
    {
        ulong sink = 0;
        // Round-robin over the set: every sample is parsed iterations / frames.Length times.
        for (int i = 0; i < iterations; i++)
        {
            int p = i % frames.Length;
            PacketParser.Parse(frames[p], linkTypes[p], options, frames[p].Length, out var packet);
            sink += PacketFingerprint.Compute(in packet, frames[p]);
            sink += (ulong)FlowKey.From(in packet).SourcePort;
            // The MPLS labels are read from the stack stored inline: no allocation either.
            foreach (MplsLabel label in packet.Outer.MplsLabels)
            {
                sink += label.Label;
            }
        }
        return sink;
    }
}
