namespace VethTrace.Tracing;

/// <summary>
/// One container's share of a whole-host trace: its journeys each way (outbound: from the container towards the
/// egress or another container; inbound: towards it), the time through the host each way (first hop to last, merged
/// over its paths), its losses and the interface where most of them were last seen, and the kernel drops of the
/// capture that carried it.
/// </summary>
/// <remarks>
/// <see cref="ThroughOut"/> and <see cref="ThroughIn"/> may be a path's own histogram (a container with one path that
/// way): read them, never record into them.
/// </remarks>
public sealed record ContainerFigures(
    ContainerOwner Owner,
    long PacketsOut,
    long PacketsIn,
    LatencyHistogram ThroughOut,
    LatencyHistogram ThroughIn,
    long Lost,
    int? WorstLossInterface,
    long WorstLossPackets,
    long? KernelDropped)
{
    /// <summary>Lost per journey of the container: the first key of the live view's order.</summary>
    public double LossShare => PacketsOut + PacketsIn == 0 ? 0 : (double)Lost / (PacketsOut + PacketsIn);
}

/// <summary>Builds <see cref="ContainerFigures"/> from a report and the interfaces' owners.</summary>
public static class ContainerReport
{
    /// <summary>
    /// The figures of every container in <paramref name="owners"/>, worst first: the largest share lost, then the
    /// slowest p99 through the host either way, then the name.
    /// </summary>
    /// <param name="report">The trace's report.</param>
    /// <param name="roleOf">Interface roles: a path towards the egress is outbound.</param>
    /// <param name="owners">Which container each interface belongs to.</param>
    /// <param name="kernelDroppedOf">The kernel drops of the capture that carried a container's interfaces (a shared <c>any</c> handle's total when there is one handle).</param>
    public static IReadOnlyList<ContainerFigures> Build(CorrelationReport report, Func<int, InterfaceRole> roleOf, ContainerOwners owners,
        Func<ContainerOwner, long>? kernelDroppedOf = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(roleOf);
        ArgumentNullException.ThrowIfNull(owners);
        var rows = owners.Containers.ToDictionary(o => o.Name, o => new Accumulator(), StringComparer.Ordinal);
        foreach (PathStats path in report.Paths)
        {
            ContainerOwner? first = null, last = null;
            foreach (int id in path.Interfaces)
            {
                if (owners.Of(id) is { } owner)
                {
                    first ??= owner;
                    last = owner;
                }
            }
            if (first is null || last is null)
            {
                continue;
            }
            int towardsEgress = ((int)roleOf(path.Interfaces[^1])).CompareTo((int)roleOf(path.Interfaces[0]));
            if (towardsEgress < 0)
            {
                rows[last.Name].In(path);
            }
            else
            {
                // Outbound, or east-west between two veths: the sender's out, and the receiver's in.
                rows[first.Name].Out(path);
                if (towardsEgress == 0 && last.Name != first.Name)
                {
                    rows[last.Name].In(path);
                }
            }
        }
        foreach (LossReport loss in report.Losses)
        {
            if (owners.OfLoss(loss) is { } owner)
            {
                rows[owner.Name].Lose(loss);
            }
        }
        return [.. owners.Containers
            .Select(o => rows[o.Name].Figures(o, kernelDroppedOf?.Invoke(o)))
            .OrderByDescending(f => f.LossShare)
            .ThenByDescending(f => Math.Max(f.ThroughOut.Percentile(99), f.ThroughIn.Percentile(99)))
            .ThenBy(f => f.Owner.Name, StringComparer.Ordinal)];
    }

    /// <summary>
    /// One container's sums. Its time through the host each way is its paths' <see cref="PathStats.Through"/> merged;
    /// with one path that way (a container talking to one peer: the usual case) that path's own histogram is the
    /// figure, not a copy: the live view builds every row once a redraw, and a merged copy is 64 KiB per octave used
    /// (at 200 containers the final report's copies alone were about 100 MB of peak RSS). A merged one is made only for
    /// a container with several paths that way, and is never written to afterwards.
    /// </summary>
    private sealed class Accumulator
    {
        private readonly Dictionary<int, long> _lostAt = [];
        private LatencyHistogram? _out, _in;
        private bool _outMerged, _inMerged;
        private long _packetsOut, _packetsIn, _lost;

        public void Out(PathStats path)
        {
            _packetsOut += path.Journeys;
            Merge(ref _out, ref _outMerged, path.Through);
        }

        public void In(PathStats path)
        {
            _packetsIn += path.Journeys;
            Merge(ref _in, ref _inMerged, path.Through);
        }

        private static void Merge(ref LatencyHistogram? into, ref bool merged, LatencyHistogram path)
        {
            if (path.Count == 0)
            {
                return;
            }
            if (into is null)
            {
                into = path; // shared, read only: copied below before a second path is added
                return;
            }
            if (!merged)
            {
                var copy = new LatencyHistogram();
                copy.Add(into);
                into = copy;
                merged = true;
            }
            into.Add(path);
        }

        public void Lose(LossReport loss)
        {
            _lost += loss.Packets;
            _lostAt[loss.LastSeen] = _lostAt.GetValueOrDefault(loss.LastSeen) + loss.Packets;
        }

        public ContainerFigures Figures(ContainerOwner owner, long? kernelDropped)
        {
            KeyValuePair<int, long>? worst = _lostAt.Count == 0 ? null : _lostAt.MaxBy(pair => pair.Value);
            return new ContainerFigures(owner, _packetsOut, _packetsIn, _out ?? Empty, _in ?? Empty, _lost, worst?.Key, worst?.Value ?? 0, kernelDropped);
        }

        /// <summary>No journey that way (no octave allocated: an empty histogram holds only its octave table).</summary>
        private static LatencyHistogram Empty => new();
    }
}
