using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// <see cref="SegmentIndex.FindContinuations"/> skips a key's chain when every interface in it is one the journey
/// visited (a bit per interface id). Whole-host follow has hundreds of interfaces: ids from 63 on share one bit, which
/// must never let a walk be skipped, or a continuation on veth 70 would be missed by a journey that visited interface 6
/// (70 mod 64).
/// </summary>
public sealed class SegmentIndexSkipTests
{
    private const ulong Key = 0x1234_5679;
    private static readonly FlowKey Flow = new(IpProtocol.Tcp, IpAddress.Parse("172.17.0.2"), 40000, IpAddress.Parse("198.51.100.2"), 5201);

    /// <summary>A TCP data segment of <paramref name="payload"/> bytes from <paramref name="sequence"/>, on an interface.</summary>
    private static Observation Segment(long ns, int interfaceId, long order, ulong fingerprint, uint sequence, int payload) =>
        new(ns, interfaceId, order, fingerprint, Flow, 100, SegmentKey: Key, TcpSequence: sequence, TcpPayload: payload);

    [Theory]
    [InlineData(6, 70)]    // 70 mod 64 is 6: a bit per id modulo 64 would skip
    [InlineData(6, 63)]
    [InlineData(62, 200)]
    [InlineData(1, 2)]     // both below 63: the exact bits
    public void FindContinuations_ContinuationOnAnUnvisitedInterface_FoundWhateverItsId(int visited, int continuation)
    {
        var index = new SegmentIndex(windowNs: 1_000_000_000);
        // A super-packet on the visited interface, then the segments GSO cut it into on the other.
        index.Add(Segment(1_000_000, visited, 1, fingerprint: 11, sequence: 1000, payload: 3000));
        index.Add(Segment(1_010_000, continuation, 2, fingerprint: 12, sequence: 1000, payload: 1500));
        index.Add(Segment(1_020_000, continuation, 3, fingerprint: 13, sequence: 2500, payload: 1500));
        var into = new List<Sighting>();
        Sighting[] journey = [new Sighting { TimestampNs = 1_000_000, Order = 1, Slot = 0, Interface = visited }];
        Assert.True(index.FindContinuations(1_000_000, 11, Key, 1000, 4000, journey, into));
        // One candidate per interface: the first segment there.
        Sighting found = Assert.Single(into);
        Assert.Equal((2L, continuation), (found.Order, found.Interface));
    }

    [Theory]
    [InlineData(6, 70)]
    [InlineData(1, 2)]
    public void FindContinuations_JourneyVisitedEveryInterfaceOfTheChain_NoCandidate(int first, int second)
    {
        var index = new SegmentIndex(windowNs: 1_000_000_000);
        index.Add(Segment(1_000_000, first, 1, fingerprint: 11, sequence: 1000, payload: 1500));
        index.Add(Segment(1_010_000, second, 2, fingerprint: 11, sequence: 1000, payload: 1500));
        var into = new List<Sighting>();
        Sighting[] journey =
        [
            new Sighting { TimestampNs = 1_000_000, Order = 1, Slot = 0, Interface = first },
            new Sighting { TimestampNs = 1_010_000, Order = 2, Slot = 1, Interface = second },
        ];
        Assert.False(index.FindContinuations(1_000_000, 11, Key, 1000, 2500, journey, into));
        Assert.Empty(into);
    }
}
