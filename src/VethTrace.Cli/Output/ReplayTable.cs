using System.Globalization;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Output;

/// <summary>
/// The human report of a replay, laid out for an 80-column terminal. Interface names come from captures, the kernel
/// or Docker: they are escaped (<see cref="TerminalText"/>) once, before anything is laid out.
/// </summary>
public static class ReplayTable
{
    private const int MaxPaths = 6;
    private const int HopWidth = 34;

    // Histogram ranges (upper bounds, ns): the decades a Docker host's hops fall in.
    private static readonly long[] Edges = [1_000, 10_000, 100_000, 1_000_000, 10_000_000];
    private static readonly string[] EdgeLabels = ["   <1µs", " 1-10µs", "10-100µs", "0.1-1ms", " 1-10ms", "  ≥10ms"];

    public static void Write(TextWriter output, CorrelationReport report, IReadOnlyList<string> names, Func<int, InterfaceRole> roleOf,
        InterfaceRegistry? interfaces = null)
    {
        names = TerminalText.EscapeAll(names);
        output.WriteLine(Invariant($"{report.Packets} packets read, {report.NotIp} of them not IP (not traced)"));
        output.WriteLine(Invariant($"{report.Journeys} journeys: {report.MultiHopJourneys} seen on several hops, {report.Complete} complete, {report.Lost} lost"));
        if (report.Unselected > 0)
        {
            output.WriteLine(Invariant($"{report.Unselected} more journeys left out: --filter matched none of their copies"));
        }
        if (report.MatchedBySequenceRange > 0)
        {
            output.WriteLine(Invariant($"{report.MatchedBySequenceRange} TCP journeys continued as coalesced or cut packets (GRO/GSO)"));
        }

        if (report.TiesWithUnknownRole > 0)
        {
            string unknown = string.Join(", ", report.UnknownRoleTied.Select(id => names[id]));
            output.WriteLine(Invariant($"Warning: {report.TiesWithUnknownRole} groups of equal timestamps were ordered without a known role for {unknown}:"));
            output.WriteLine("  their order is a guess; give the role with --role NAME=ROLE (or name it with --ifname)");
        }
        if (interfaces is not null && RolesWorthShowing(report, interfaces))
        {
            output.WriteLine();
            output.WriteLine("Roles (decided by: name, given (--role, --egress), topology, inferred from the traffic, unknown)");
            int width = Math.Max(9, names.Max(n => n.Length));
            for (int id = 0; id < names.Count; id++)
            {
                output.WriteLine(Invariant($"  {names[id].PadRight(width)}  {InterfaceRoles.Name(interfaces.RoleOf(id)),-10}{InterfaceRoles.Name(interfaces.RoleSourceOf(id))}"));
            }
        }

        var latency = report.Hops.ToDictionary(h => (h.From, h.To), h => h.Histogram);
        output.WriteLine();
        output.WriteLine("Paths (median per hop)");
        if (report.Paths.Count == 0)
        {
            output.WriteLine("  no packet was seen on more than one interface");
        }
        foreach (PathStats path in report.Paths.Take(MaxPaths))
        {
            int towardsEgress = ((int)roleOf(path.Interfaces[^1])).CompareTo((int)roleOf(path.Interfaces[0]));
            string direction = towardsEgress > 0 ? "outbound" : towardsEgress < 0 ? "inbound" : "path";
            output.WriteLine(Invariant($"  {direction}, {path.Journeys} journey{(path.Journeys == 1 ? "" : "s")}:"));
            var chain = new System.Text.StringBuilder("    ").Append(ChainName(report, names, path.Interfaces[0]));
            for (int i = 1; i < path.Interfaces.Count; i++)
            {
                var histogram = latency[(path.Interfaces[i - 1], path.Interfaces[i])];
                // A hop whose median is a reused receive stamp took an unknown time, not zero: say so.
                string median = histogram.Percentile(50) == 0 && histogram.Zeros > 0 ? "reused" : Microseconds(histogram.Percentile(50)) + "µs";
                chain.Append(" ─").Append(median).Append("→ ").Append(ChainName(report, names, path.Interfaces[i]));
            }
            if (path.SideCopies.Count > 0)
            {
                chain.Append("   + ").Append(string.Join(", ", path.SideCopies.Keys.Select(id => names[id] + " (copy)")));
            }
            output.WriteLine(chain.ToString());
        }
        if (report.Paths.Count > MaxPaths)
        {
            output.WriteLine(Invariant($"  … and {report.Paths.Count - MaxPaths} rarer paths"));
        }
        if (report.BridgeSideCopies > 0)
        {
            output.WriteLine(Invariant($"  {report.BridgeSideCopies} bridge copies of bridged frames set aside (copy): a bridge hands its own copy up"));
            output.WriteLine("  after forwarding port to port, so it is not a hop and not in the hop figures");
        }

        output.WriteLine();
        output.WriteLine(Invariant($"{"Hops (µs)",-HopWidth}{"packets",8}{"p50",9}{"p90",9}{"p99",9}{"max",9}"));
        var reused = new List<string>();
        foreach (HopReport hop in report.Hops)
        {
            var h = hop.Histogram;
            string label = Fit($"  {names[hop.From]} → {names[hop.To]}", HopWidth);
            output.WriteLine(Invariant($"{label,-HopWidth}{h.Count,8}{Microseconds(h.Percentile(50)),9}{Microseconds(h.Percentile(90)),9}{Microseconds(h.Percentile(99)),9}{Microseconds(h.Max),9}"));
            if (h.Zeros > 0)
            {
                reused.Add(Invariant($"  {names[hop.To]} reused the timestamp of {names[hop.From]} for {h.Zeros} of {h.Count} packets"));
            }
        }
        if (reused.Count > 0)
        {
            output.WriteLine("Reused timestamps (the kernel stamps a packet once on receive; the time spent");
            output.WriteLine("there is counted on the next hop with a fresh stamp, not as a fast hop):");
            foreach (string line in reused)
            {
                output.WriteLine(line);
            }
        }

        output.WriteLine();
        output.WriteLine("Latency per hop");
        foreach (HopReport hop in report.Hops)
        {
            output.WriteLine(Fit($"  {names[hop.From]} → {names[hop.To]}", 78));
            long[] counts = hop.Histogram.CountBelow(Edges);
            long most = Math.Max(1, counts.Max());
            for (int i = 0; i < counts.Length; i++)
            {
                if (counts[i] == 0)
                {
                    continue;
                }
                int bar = (int)Math.Max(1, counts[i] * 40 / most);
                output.WriteLine(Invariant($"    {EdgeLabels[i],-9} {new string('█', bar),-40} {counts[i]}"));
            }
        }

        if (report.Segmentation.Count > 0)
        {
            output.WriteLine();
            output.WriteLine("Segmentation (GRO/GSO: one hop's packet is several on the next; matched by");
            output.WriteLine("TCP sequence range, never counted as lost)");
            foreach (SegmentationReport segmentation in report.Segmentation)
            {
                output.WriteLine(Invariant($"  {Fit($"{names[segmentation.From]} → {names[segmentation.To]}", HopWidth - 2),-(HopWidth - 2)}{segmentation.Journeys,8} journeys"));
            }
        }

        output.WriteLine();
        output.WriteLine("NAT");
        if (report.Nat.Count > 0)
        {
            // --nat-detail: every translation. Columns as wide as their widest entry; proto fits "icmpv6" and a space.
            int inside = Math.Max(6, report.Nat.Max(n => n.Inside.Length));
            int outside = Math.Max(7, report.Nat.Max(n => n.Outside.Length));
            int peer = Math.Max(4, report.Nat.Max(n => n.Peer.Length));
            output.WriteLine(Invariant($"  {"kind",-5}{"proto",-7}{"inside".PadRight(inside)}  {"outside".PadRight(outside)}  {"peer".PadRight(peer)} {"pkts",5}"));
            foreach (NatMapping nat in report.Nat)
            {
                output.WriteLine(Invariant($"  {Kind(nat.Kind),-5}{nat.Protocol.Name,-7}{nat.Inside.PadRight(inside)}  {nat.Outside.PadRight(outside)}  {nat.Peer.PadRight(peer)} {nat.Packets,5}"));
            }
        }
        else if (report.NatAggregates.Count == 0)
        {
            output.WriteLine("  no translation seen");
        }
        else
        {
            // One row per translation but for the client's ephemeral port (NatAggregate): the top NatRows by flows.
            var rows = report.NatAggregates.Take(NatRows).ToList();
            int inside = Math.Max(6, rows.Max(n => n.Inside.Length));
            int outside = Math.Max(7, rows.Max(n => n.Outside.Length));
            int peer = Math.Max(4, rows.Max(n => n.Peer.Length));
            output.WriteLine(Invariant($"  {"kind",-5}{"proto",-7}{"inside".PadRight(inside)}  {"outside".PadRight(outside)}  {"peer".PadRight(peer)} {"flows",6} {"pkts",6}"));
            foreach (NatAggregate nat in rows)
            {
                output.WriteLine(Invariant($"  {Kind(nat.Kind),-5}{nat.Protocol.Name,-7}{nat.Inside.PadRight(inside)}  {nat.Outside.PadRight(outside)}  {nat.Peer.PadRight(peer)} {nat.Flows,6} {nat.Packets,6}"));
            }
            if (report.NatAggregates.Count > NatRows)
            {
                var rest = report.NatAggregates.Skip(NatRows).ToList();
                output.WriteLine(Invariant($"  … and {rest.Count} more ({rest.Sum(r => r.Flows)} flows, {rest.Sum(r => r.Packets)} packets; --format json lists them all)"));
            }
        }

        if (report.Tunnels.Count > 0)
        {
            output.WriteLine();
            output.WriteLine("Tunnels (packets matched by the packet they carry; outer headers per interface)");
            int width = Math.Max(9, report.Tunnels.Max(t => names[t.Interface].Length));
            output.WriteLine(Invariant($"  {"interface".PadRight(width)}  {"tunnel",-10} {"outer source",-16} {"outer destination",-18} {"pkts",6}"));
            foreach (TunnelReport tunnel in report.Tunnels)
            {
                output.WriteLine(Invariant($"  {names[tunnel.Interface].PadRight(width)}  {Tunnel(tunnel),-10} {tunnel.OuterSource,-16} {tunnel.OuterDestination + ":" + tunnel.Port,-18} {tunnel.Packets,6}"));
            }
        }

        output.WriteLine();
        output.WriteLine("Losses (journeys that stopped before the hop their flow's other packets reach)");
        if (report.Losses.Count == 0)
        {
            output.WriteLine("  none");
        }
        else
        {
            output.WriteLine(Invariant($"  {"proto",-7}{"flow",-49}{"last seen",-14}{"pkts",6}"));
            foreach (LossReport loss in report.Losses)
            {
                string flow = $"{loss.Flow.SourceEndpoint} > {loss.Flow.DestinationEndpoint}";
                output.WriteLine(Invariant($"  {loss.Flow.Protocol.Name,-7}{Fit(flow, 48),-49}{Fit(names[loss.LastSeen], 13),-14}{loss.Packets,6}"));
            }
        }
    }

    /// <summary>How many NAT aggregate rows the table shows; the rest are summed up in one line.</summary>
    public const int NatRows = 20;

    /// <summary>
    /// Whether the report lists every interface's role and how it was decided: when one was given, or came from the
    /// topology (follow's hops: only follow resolves one), or inferred as other than the egress (the names' own
    /// fallback), or ties were ordered without one. Otherwise the names decided them, and a replay of such a capture
    /// reads as it always did.
    /// </summary>
    public static bool RolesWorthShowing(CorrelationReport report, InterfaceRegistry interfaces)
    {
        if (report.TiesWithUnknownRole > 0)
        {
            return true;
        }
        for (int id = 0; id < interfaces.Count; id++)
        {
            RoleSource source = interfaces.RoleSourceOf(id);
            if (source is RoleSource.Given or RoleSource.Topology || source == RoleSource.Inferred && interfaces.RoleOf(id) != InterfaceRole.Egress)
            {
                return true;
            }
        }
        return false;
    }

    public static string Kind(NatKind kind) => kind == NatKind.Snat ? "snat" : "dnat";

    /// <summary>"vxlan 42": the tunnel and its network identifier.</summary>
    public static string Tunnel(TunnelReport tunnel) => Invariant($"vxlan {tunnel.Vni}");

    /// <summary>
    /// An interface's name in a path chain: with the tunnel it carried packets in (the most common one), so the
    /// chain shows where the packet was encapsulated: <c>wire1 [vxlan 42]</c>; the outer headers are in the Tunnels table.
    /// <paramref name="names"/> are printed as given: the caller escapes them.
    /// </summary>
    public static string ChainName(CorrelationReport report, IReadOnlyList<string> names, int id)
    {
        foreach (TunnelReport tunnel in report.Tunnels)
        {
            if (tunnel.Interface == id)
            {
                return Invariant($"{names[id]} [{Tunnel(tunnel)}]");
            }
        }
        return names[id];
    }

    /// <summary>Microseconds with three decimals below 10 µs, one below 1000, none above: what the clock can vouch for.</summary>
    public static string Microseconds(long ns)
    {
        double us = ns / 1000.0;
        return us switch
        {
            < 10 => us.ToString("0.000", CultureInfo.InvariantCulture),
            < 1000 => us.ToString("0.0", CultureInfo.InvariantCulture),
            _ => us.ToString("0", CultureInfo.InvariantCulture),
        };
    }

    private static string Fit(string text, int width) => text.Length <= width ? text : text[..(width - 1)] + "…";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
