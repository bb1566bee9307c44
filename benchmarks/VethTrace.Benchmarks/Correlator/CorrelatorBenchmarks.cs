using BenchmarkDotNet.Attributes;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Benchmarks.Correlator;

/// <summary>
/// The correlator on a Docker host's outbound path: every packet seen on 3 hops (container eth0, veth, docker0) or 4
/// (and the egress, where MASQUERADE rewrote its source), as bulk TCP data so the segmentation index works too.
/// <list type="bullet">
/// <item><c>Observations3Hops</c>, <c>Observations4Hops</c>: <see cref="Journeys"/> packets, one every 40 µs (2.6 s in all, so journeys expire
/// through the 1 s window as in a long replay), in time order; <c>Mean</c> is per observation, and its inverse is
/// observations per second.</item>
/// <item><c>OpenJourneys3Hops</c>, <c>OpenJourneys4Hops</c>: the same observations under a window longer than the capture, so every journey is
/// still open at the end; <c>Allocated</c> per operation is then the GC-heap memory that one open journey holds. Its
/// sightings and index entries live in rings outside the GC heap (<c>LargeBuffer</c>, huge pages), which the setup adds
/// and prints as the memory per open journey.</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
public class CorrelatorBenchmarks
{
    public const int Journeys = 1 << 16;
    private const long SpacingNs = 40_000;
    private const long HopLatencyNs = 5_000;
    private const int Flows = 64;

    private static readonly InterfaceRole[] Roles = [InterfaceRole.Container, InterfaceRole.Veth, InterfaceRole.Bridge, InterfaceRole.Egress];

    private Observation[] _threeHops = [];
    private Observation[] _fourHops = [];

    [GlobalSetup]
    public void Setup()
    {
        _threeHops = Build(3);
        _fourHops = Build(4);
        // The same journeys every time, or the figures would mean nothing: check the shape once.
        foreach (Observation[] observations in new[] { _threeHops, _fourHops })
        {
            var correlator = Run(observations, longWindow: false);
            if (correlator.Journeys != Journeys || correlator.MultiHopJourneys != Journeys)
            {
                throw new InvalidOperationException($"expected {Journeys} multi-hop journeys, got {correlator.Journeys} ({correlator.MultiHopJourneys} multi-hop)");
            }
            // The rings and the open-journey table live outside the GC heap (huge pages), where the Allocated column
            // does not look: the memory per open journey is the GC's share plus theirs.
            long before = GC.GetAllocatedBytesForCurrentThread();
            var open = Run(observations, longWindow: true);
            long managed = GC.GetAllocatedBytesForCurrentThread() - before;
            Console.WriteLine($"// {observations.Length / Journeys} hops, all {open.OpenJourneys} journeys open: {(managed + open.NativeBytes) / (double)Journeys:F0} B per open journey " +
                $"({managed / (double)Journeys:F0} B on the GC heap, the Allocated column; {open.NativeBytes / (double)Journeys:F0} B in rings and table outside it)");
        }
    }

    [Benchmark(OperationsPerInvoke = Journeys * 3)]
    public long Observations3Hops() => Run(_threeHops, longWindow: false).Journeys;

    [Benchmark(OperationsPerInvoke = Journeys * 4)]
    public long Observations4Hops() => Run(_fourHops, longWindow: false).Journeys;

    [Benchmark(OperationsPerInvoke = Journeys)]
    public long OpenJourneys3Hops() => Run(_threeHops, longWindow: true).OpenJourneys;

    [Benchmark(OperationsPerInvoke = Journeys)]
    public long OpenJourneys4Hops() => Run(_fourHops, longWindow: true).OpenJourneys;

    /// <summary>Feeds every observation; with the short window, ends the journeys still open too.</summary>
    private static VethTrace.Tracing.Correlator Run(Observation[] observations, bool longWindow)
    {
        var correlator = new VethTrace.Tracing.Correlator(
            new CorrelatorOptions { WindowNs = longWindow ? 3_600_000_000_000 : 1_000_000_000 }, id => Roles[id]);
        foreach (ref readonly Observation observation in observations.AsSpan())
        {
            correlator.Add(in observation);
        }
        if (!longWindow)
        {
            correlator.Complete();
        }
        return correlator;
    }

    /// <summary>Journey i starts at i × 40 µs on the container's eth0 and reaches each next hop 5 µs later.</summary>
    private static Observation[] Build(int hops)
    {
        var inside = IpAddress.Parse("172.17.0.2");
        var outside = IpAddress.Parse("198.51.100.1");
        var peer = IpAddress.Parse("198.51.100.2");
        var observations = new Observation[Journeys * hops];
        int next = 0;
        for (int i = 0; i < Journeys; i++)
        {
            ushort port = (ushort)(40_000 + i % Flows);
            var flow = new FlowKey(IpProtocol.Tcp, inside, port, peer, 5201);
            var masqueraded = flow with { Source = outside };
            ulong fingerprint = StableHash.Finish(StableHash.Add(StableHash.Seed, (ulong)i));
            ulong segmentKey = StableHash.Finish(StableHash.Add(StableHash.Seed, (ulong)(i / 40))) | 1; // ~40 segments share a TSval
            uint sequence = (uint)(i / Flows) * 1448;
            long start = i * SpacingNs;
            for (int hop = 0; hop < hops; hop++)
            {
                observations[next] = new Observation(start + hop * HopLatencyNs, hop, next, fingerprint, hop == 3 ? masqueraded : flow, 1514,
                    SegmentKey: segmentKey, TcpSequence: sequence, TcpPayload: 1448);
                next++;
            }
        }
        return observations;
    }
}
