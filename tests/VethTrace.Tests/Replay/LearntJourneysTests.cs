using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// Role inference keeps the journeys of a window back to back in native memory (session 9) instead of one array per
/// journey: each must come back as it was given, in order, across the buffer's growth and after a release.
/// </summary>
public sealed class LearntJourneysTests
{
    private static Observation Sighting(int journey, int hop) => new(journey * 10L + hop, hop, journey, (ulong)journey,
        new FlowKey(IpProtocol.Udp, IpAddress.Parse("172.17.0.2"), (ushort)journey, IpAddress.Parse("198.51.100.2"), 53), 0, Ttl: (byte)(64 - hop));

    [Fact]
    public void Add_ManyJourneysOfVaryingLengths_EachComesBackWhole()
    {
        var journeys = new LearntJourneys();
        for (int round = 0; round < 2; round++)
        {
            var expected = new List<Observation[]>();
            for (int j = 0; j < 3_000; j++)
            {
                Observation[] journey = Enumerable.Range(0, 2 + j % 5).Select(hop => Sighting(j + round, hop)).ToArray();
                expected.Add(journey);
                journeys.Add(journey);
            }
            Assert.Equal(expected.Count, journeys.Count);
            int index = 0;
            foreach (ReadOnlySpan<Observation> journey in journeys)
            {
                Assert.Equal(expected[index++], journey.ToArray());
            }
            Assert.Equal(expected.Count, index);
            journeys.Release();
            Assert.Equal(0, journeys.Count);
            foreach (ReadOnlySpan<Observation> unused in journeys)
            {
                Assert.Fail("a released buffer enumerated a journey");
            }
        }
    }
}
