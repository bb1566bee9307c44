namespace VethTrace.Tracing;

/// <summary>
/// Told of every journey the <see cref="Correlator"/> counts, as it counts it: the metrics exporter's hook
/// (<c>follow --prometheus</c>). Called on the matching thread, once for each increment of
/// <see cref="Correlator.Journeys"/>, so what an observer adds up equals the report's totals. A journey a filter left
/// out (<see cref="Correlator.Unselected"/>) is not told.
/// </summary>
public interface IJourneyObserver
{
    /// <summary>
    /// One journey, its sightings in path order (bridge side copies set aside, as the report's paths have them): each
    /// consecutive pair whose capture times are both valid is a hop the correlator recorded in that hop's
    /// <see cref="LatencyHistogram"/> (a difference of 0 or less recorded as 0: a reused timestamp).
    /// <paramref name="segmented"/>: the journey continued as coalesced or cut packets
    /// (<see cref="CorrelationReport.MatchedBySequenceRange"/>).
    /// </summary>
    void Journey(ReadOnlySpan<Observation> path, bool segmented);
}
