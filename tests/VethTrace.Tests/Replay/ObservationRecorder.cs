using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>The (timestamp, order) of every observation an orderer hands on, in the order it handed them.</summary>
internal sealed class ObservationRecorder : IObservationSink
{
    public List<(long, long)> Seen { get; } = [];

    public void Add(in Observation observation) => Seen.Add((observation.TimestampNs, observation.Order));
}
