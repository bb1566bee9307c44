namespace VethTrace.Tracing;

/// <summary>
/// Puts observations back in timestamp order before they reach the <see cref="Correlator"/>, which needs time order
/// to close journeys. Live handles deliver independently, and a capture file written from several handles (dumpcap
/// with several -i, vethtrace record) holds its packets in arrival order, not time order. Observations wait up to
/// <see cref="SlackNs"/> behind the newest timestamp seen; memory is bounded by that slack.
/// </summary>
public sealed class TimeOrderer(Correlator correlator, long slackNs)
{
    private readonly PriorityQueue<Observation, (long, long)> _pending = new();
    private long _newest = long.MinValue;

    /// <summary>The default slack: a live handle was seen delivering more than a second late in the lab.</summary>
    public const long DefaultSlackNs = 2_000_000_000;

    public long SlackNs { get; } = slackNs;

    public int Pending => _pending.Count;

    public void Add(in Observation observation)
    {
        _pending.Enqueue(observation, (observation.TimestampNs, observation.Order));
        Advance(observation.TimestampNs);
    }

    /// <summary>Moves the clock (for example to the wall clock when live traffic pauses) and releases what is old enough.</summary>
    public void Advance(long nowNs)
    {
        _newest = Math.Max(_newest, nowNs);
        while (_pending.TryPeek(out Observation next, out _) && next.TimestampNs < _newest - SlackNs)
        {
            _pending.Dequeue();
            correlator.Add(in next);
        }
    }

    /// <summary>Releases everything (end of input).</summary>
    public void Flush()
    {
        while (_pending.TryDequeue(out Observation next, out _))
        {
            correlator.Add(in next);
        }
    }
}
