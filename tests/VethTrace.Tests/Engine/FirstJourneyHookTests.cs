using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// <see cref="Correlator.Joined"/>, the hook whole-host follow's first_journey event is said from: told as a copy joins
/// an open journey on a new interface, before the journey's window closes, and changing nothing the report says.
/// </summary>
public sealed class FirstJourneyHookTests
{
    // Interface ids are roles: 1 veth, 2 bridge, 4 egress.
    private static InterfaceRole Role(int id) => (InterfaceRole)id;

    private static readonly FlowKey Flow = new(IpProtocol.Icmp, IpAddress.Parse("172.17.0.5"), 0, IpAddress.Parse("198.51.100.2"), 0);

    private static Observation At(long ns, int iface, ulong fingerprint, long order, bool selected = true) => new(ns, iface, order, fingerprint, Flow, 98, selected);

    private static readonly Observation[] Ping =
    [
        // A ping veth → bridge (the veth's stamp, reused) → egress, its reply back, then the next ping half a second on.
        At(1_000_000, 1, 11, 0), At(1_000_000, 2, 11, 1), At(1_070_000, 4, 11, 2),
        At(1_500_000, 4, 12, 3), At(1_510_000, 2, 12, 4), At(1_514_000, 1, 12, 5),
        At(501_000_000, 1, 13, 6), At(501_000_000, 2, 13, 7), At(501_070_000, 4, 13, 8),
    ];

    [Fact]
    public void Joined_CopiesOnNewInterfaces_ToldAsTheyJoinBeforeTheWindowCloses()
    {
        var told = new List<(int First, int Joined, bool Selected, long Counted)>();
        var correlator = new Correlator(new CorrelatorOptions { WindowNs = 1_000_000_000 }, Role);
        correlator.Joined = (first, joined, selected) => told.Add((first, joined, selected, correlator.Journeys));
        foreach (Observation observation in Ping[..6])
        {
            correlator.Add(observation);
        }

        // Every join told, with the journey's first interface, while no journey has been counted yet (the window is open).
        Assert.Equal([(1, 2, true, 0L), (1, 4, true, 0L), (4, 2, true, 0L), (4, 1, true, 0L)], told);
        Assert.Equal(0, correlator.Journeys);
    }

    [Fact]
    public void Joined_Hooked_ReportUnchanged()
    {
        var plain = new Correlator(new CorrelatorOptions(), Role);
        var hooked = new Correlator(new CorrelatorOptions(), Role);
        int told = 0;
        hooked.Joined = (_, _, _) => told++;
        foreach (Observation observation in Ping)
        {
            plain.Add(observation);
            hooked.Add(observation);
        }
        plain.Complete();
        hooked.Complete();

        Assert.Equal(6, told);
        CorrelationReport a = plain.Report(), b = hooked.Report();
        Assert.Equal(3, b.Journeys);
        Assert.Equal(a.Journeys, b.Journeys);
        Assert.Equal(a.Paths.Select(p => string.Join(' ', p.Interfaces) + ":" + p.Journeys), b.Paths.Select(p => string.Join(' ', p.Interfaces) + ":" + p.Journeys));
        Assert.Equal(a.Hops.Select(h => (h.From, h.To, h.Histogram.Count)), b.Hops.Select(h => (h.From, h.To, h.Histogram.Count)));
    }

    [Fact]
    public void Joined_SameInterfaceAgain_NotToldAndStartsAnotherJourney()
    {
        var told = new List<(int, int, bool)>();
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Joined = (first, joined, selected) => told.Add((first, joined, selected));
        correlator.Add(At(1_000, 1, 7, 0));
        correlator.Add(At(2_000, 1, 7, 1)); // the same bytes on the same veth: a second packet, not a hop
        correlator.Add(At(3_000, 4, 7, 2));
        correlator.Complete();

        Assert.Equal([(1, 4, true)], told);
        Assert.Equal(2, correlator.Journeys);
    }

    [Theory]
    [InlineData(true, false, true)]
    [InlineData(false, true, true)]
    [InlineData(false, false, false)]
    public void Joined_Selected_WhenTheFirstCopyOrThisOnePassedTheFilter(bool firstSelected, bool joinedSelected, bool expected)
    {
        bool? said = null;
        var correlator = new Correlator(new CorrelatorOptions(), Role);
        correlator.Joined = (_, _, selected) => said = selected;
        correlator.Add(At(1_000, 1, 9, 0, firstSelected));
        correlator.Add(At(2_000, 4, 9, 1, joinedSelected));

        Assert.Equal(expected, said);
    }
}
