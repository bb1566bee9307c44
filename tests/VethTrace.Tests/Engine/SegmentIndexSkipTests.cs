using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// <see cref="SegmentIndex.FindContinuations"/> skips a key's chain when every interface in it is one the journey
/// visited (a bit per interface id). Whole-host follow has hundreds of interfaces: ids from 31 on share one bit, which
/// must never let a walk be skipped, or a continuation on veth 38 would be missed by a journey that visited interface 6
/// (38 mod 32).
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
    [InlineData(6, 38)]    // 38 mod 32 is 6: the entries' bits are 32 (ids from 31 share the last), a bit per id modulo 32 would skip
    [InlineData(30, 31)]
    [InlineData(40, 45)]   // both share the last bit: never a journey's, the walk is made
    [InlineData(1, 2)]     // both below 31: the exact bits
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
    [InlineData(30, 31)]
    [InlineData(40, 45)]
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
    /// <summary>
    /// Entries are chained when a search needs them: a second search must see the entries added since the first (chained
    /// then, each once), after the entries of the first have left the ring (older than two windows). Expected by
    /// construction: the segments that overlap the journey's range on the interfaces it missed, within its window.
    /// </summary>
    [Fact]
    public void FindContinuations_SearchedAgainAfterMoreData_FindsTheNewSegmentsOnce()
    {
        const long window = 1_000_000;
        var index = new SegmentIndex(windowNs: window);
        index.Add(Segment(1_000_000, 1, 1, fingerprint: 11, sequence: 1000, payload: 3000));
        index.Add(Segment(1_010_000, 2, 2, fingerprint: 12, sequence: 1000, payload: 1500));
        Sighting[] first = [new Sighting { TimestampNs = 1_000_000, Order = 1, Slot = 0, Interface = 1 }];
        var into = new List<Sighting>();
        Assert.True(index.FindContinuations(1_000_000, 11, Key, 1000, 4000, first, into));
        Assert.Equal([2L], into.Select(s => s.Order));

        // A second super-packet 1.5 windows later, whose segments come after the first search; the first packet's
        // segment (order 2) is then more than two windows old when the last segment arrives, and has left the ring.
        index.Add(Segment(2_500_000, 1, 3, fingerprint: 21, sequence: 4000, payload: 3000));
        index.Add(Segment(2_510_000, 2, 4, fingerprint: 22, sequence: 4000, payload: 1500));
        index.Add(Segment(3_020_000, 3, 5, fingerprint: 23, sequence: 5500, payload: 1500));
        Sighting[] second = [new Sighting { TimestampNs = 2_500_000, Order = 3, Slot = 0, Interface = 1 }];
        into.Clear();
        Assert.True(index.FindContinuations(2_500_000, 21, Key, 4000, 7000, second, into));
        Assert.Equal([(4L, 2), (5L, 3)], into.Select(s => (s.Order, s.Interface)));

        // Searched again with nothing new: the same answer (no entry chained twice, which would loop or repeat).
        into.Clear();
        Assert.True(index.FindContinuations(2_500_000, 21, Key, 4000, 7000, second, into));
        Assert.Equal([(4L, 2), (5L, 3)], into.Select(s => (s.Order, s.Interface)));
    }
    /// <summary>
    /// Entries older than two windows before the newest are forgotten in batches while the entries come in time order; a
    /// packet released late (follow) must not find what the ring would have forgotten by then. Expected by construction
    /// (docs/DESIGN.md, "Segmentation"): the segment at 1.0 ms is more than two windows older than the one at 3.5 ms,
    /// so it had left the index when the late super-packet (1.2 ms) came, though it overlaps it within a window.
    /// </summary>
    [Fact]
    public void FindContinuations_PacketReleasedLate_DoesNotFindWhatTheRingHadForgotten()
    {
        var index = new SegmentIndex(windowNs: 1_000_000);
        index.Add(Segment(1_000_000, 2, 1, fingerprint: 12, sequence: 1000, payload: 1500));
        index.Add(Segment(3_500_000, 3, 2, fingerprint: 13, sequence: 90_000, payload: 1500));
        index.Add(Segment(1_200_000, 1, 3, fingerprint: 11, sequence: 1000, payload: 3000));
        Sighting[] late = [new Sighting { TimestampNs = 1_200_000, Order = 3, Slot = 0, Interface = 1 }];
        var into = new List<Sighting>();
        Assert.False(index.FindContinuations(1_200_000, 11, Key, 1000, 4000, late, into));
        Assert.Empty(into);
    }
}
