using System.Text.Json;
using VethTrace.Packets;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Output;

/// <summary>
/// The JSON Lines report (docs/DESIGN.md, "The report"): one object per line, each with a <c>type</c> — <c>summary</c>, <c>hop</c>,
/// <c>nat</c>, <c>loss</c> (field names fixed by the contract), plus <c>path</c> records. Names are the real names:
/// System.Text.Json escapes control characters (<c>\u001B</c>), <see cref="TerminalText.EscapeJson"/> the Unicode format
/// characters it leaves raw, so a line is safe on a terminal and decodes to the name as captured (a byte that was not
/// UTF-8 becomes U+FFFD).
/// </summary>
public static class ReplayJson
{
    /// <param name="owners">
    /// The interfaces' containers in a whole-host trace: then every <c>hop</c>, <c>path</c>, <c>nat</c> and <c>loss</c>
    /// record has a <c>container</c> field (the container's name, or null for what is no single container's: a hop
    /// between a bridge and the egress). Null: the records are as before, without the field.
    /// </param>
    public static void Write(TextWriter output, CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry? interfaces = null,
        ContainerOwners? owners = null)
    {
        Line(output, w =>
        {
            w.WriteString("type", "summary");
            w.WriteNumber("packets", report.Packets);
            w.WriteNumber("journeys", report.Journeys);
            w.WriteNumber("complete", report.Complete);
            w.WriteNumber("lost", report.Lost);
            w.WriteNumber("multi_hop_journeys", report.MultiHopJourneys);
            w.WriteNumber("not_ip", report.NotIp);
            w.WriteNumber("matched_by_sequence_range", report.MatchedBySequenceRange);
            w.WriteNumber("filtered_out", report.Unselected);
            if (report.Sample > 1)
            {
                w.WriteString("sample", $"1/{report.Sample}");
                w.WriteNumber("sampled_out_packets", report.SampledOut);
            }
            // Only when there are any, so the summary of a capture without them reads as before.
            if (report.BridgeSideCopies > 0)
            {
                w.WriteNumber("bridge_side_copies", report.BridgeSideCopies);
            }
            if (report.TiesWithUnknownRole > 0)
            {
                w.WriteNumber("ties_without_known_role", report.TiesWithUnknownRole);
            }
        });
        if (interfaces is not null && ReplayTable.RolesWorthShowing(report, interfaces))
        {
            for (int id = 0; id < names.Count; id++)
            {
                Line(output, w =>
                {
                    w.WriteString("type", "role");
                    w.WriteString("interface", names[id]);
                    w.WriteString("role", InterfaceRoles.Name(interfaces.RoleOf(id)));
                    w.WriteString("decided_by", InterfaceRoles.Name(interfaces.RoleSourceOf(id)));
                    w.WriteBoolean("ordered_ties_unknown", report.UnknownRoleTied.Contains(id));
                });
            }
        }
        foreach (HopReport hop in report.Hops)
        {
            var h = hop.Histogram;
            Line(output, w =>
            {
                w.WriteString("type", "hop");
                w.WriteString("from", names[hop.From]);
                w.WriteString("to", names[hop.To]);
                Container(w, owners, owners?.OfHop(hop));
                w.WriteNumber("packets", h.Count);
                w.WriteNumber("p50_us", h.Percentile(50) / 1000.0);
                w.WriteNumber("p90_us", h.Percentile(90) / 1000.0);
                w.WriteNumber("p99_us", h.Percentile(99) / 1000.0);
                w.WriteNumber("max_us", h.Max / 1000.0);
                w.WriteNumber("reused_timestamps", h.Zeros);
            });
        }
        foreach (NatMapping nat in report.Nat)
        {
            Line(output, w =>
            {
                WriteNat(w, nat.Kind, nat.Protocol, nat.Inside, nat.Outside, nat.Peer, flows: null, nat.Packets);
                Container(w, owners, owners?.OfNatInside(nat.Inside));
            });
        }
        if (report.Nat.Count == 0)
        {
            // Without --nat-detail: the aggregate, the client's ephemeral port left out (NatAggregate), with a flow count.
            foreach (NatAggregate nat in report.NatAggregates)
            {
                Line(output, w =>
                {
                    WriteNat(w, nat.Kind, nat.Protocol, nat.Inside, nat.Outside, nat.Peer, nat.Flows, nat.Packets);
                    Container(w, owners, owners?.OfNatInside(nat.Inside));
                });
            }
        }
        foreach (TunnelReport tunnel in report.Tunnels)
        {
            Line(output, w =>
            {
                w.WriteString("type", "tunnel");
                w.WriteString("interface", names[tunnel.Interface]);
                w.WriteString("encapsulation", "vxlan");
                w.WriteNumber("vni", tunnel.Vni);
                w.WriteString("outer_src", tunnel.OuterSource.ToString());
                w.WriteString("outer_dst", tunnel.OuterDestination.ToString());
                w.WriteNumber("port", tunnel.Port);
                w.WriteNumber("packets", tunnel.Packets);
            });
        }
        foreach (LossReport loss in report.Losses)
        {
            Line(output, w =>
            {
                w.WriteString("type", "loss");
                w.WriteString("proto", loss.Flow.Protocol.Name);
                w.WriteString("src", loss.Flow.SourceEndpoint);
                w.WriteString("dst", loss.Flow.DestinationEndpoint);
                w.WriteString("last_seen", names[loss.LastSeen]);
                w.WriteNumber("packets", loss.Packets);
                Container(w, owners, owners?.OfLoss(loss));
            });
        }
        foreach (SegmentationReport segmentation in report.Segmentation)
        {
            Line(output, w =>
            {
                w.WriteString("type", "segmentation");
                w.WriteString("from", names[segmentation.From]);
                w.WriteString("to", names[segmentation.To]);
                w.WriteNumber("journeys", segmentation.Journeys);
            });
        }
        foreach (PathStats path in report.Paths)
        {
            Line(output, w =>
            {
                w.WriteString("type", "path");
                w.WriteStartArray("interfaces");
                foreach (int id in path.Interfaces)
                {
                    w.WriteStringValue(names[id]);
                }
                w.WriteEndArray();
                w.WriteNumber("journeys", path.Journeys);
                if (owners is not null)
                {
                    Container(w, owners, owners.OfPath(path.Interfaces));
                    w.WriteNumber("through_p50_us", path.Through.Percentile(50) / 1000.0);
                    w.WriteNumber("through_p99_us", path.Through.Percentile(99) / 1000.0);
                }
                if (path.SideCopies.Count > 0)
                {
                    w.WriteStartArray("side_copies");
                    foreach (var (id, journeys) in path.SideCopies)
                    {
                        w.WriteStartObject();
                        w.WriteString("interface", names[id]);
                        w.WriteNumber("journeys", journeys);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
            });
        }
    }

    /// <summary>
    /// One <c>container</c> record per container of a whole-host trace, worst first (<see cref="ContainerReport.Build"/>):
    /// its journeys each way, the time through the host each way, its losses and where most were last seen, and the
    /// kernel drops of the capture that carried it.
    /// </summary>
    public static void WriteContainers(TextWriter output, IReadOnlyList<ContainerFigures> figures, IReadOnlyList<string> names)
    {
        foreach (ContainerFigures row in figures)
        {
            Line(output, w =>
            {
                w.WriteString("type", "container");
                w.WriteString("name", row.Owner.Name);
                if (row.Owner.Network is { } network)
                {
                    w.WriteString("network", network);
                }
                else
                {
                    w.WriteNull("network");
                }
                w.WriteNumber("packets_out", row.PacketsOut);
                w.WriteNumber("packets_in", row.PacketsIn);
                w.WriteNumber("out_p50_us", row.ThroughOut.Percentile(50) / 1000.0);
                w.WriteNumber("out_p99_us", row.ThroughOut.Percentile(99) / 1000.0);
                w.WriteNumber("in_p50_us", row.ThroughIn.Percentile(50) / 1000.0);
                w.WriteNumber("in_p99_us", row.ThroughIn.Percentile(99) / 1000.0);
                w.WriteNumber("lost", row.Lost);
                if (row.WorstLossInterface is { } where)
                {
                    w.WriteString("lost_most_at", names[where]);
                    w.WriteNumber("lost_most_at_packets", row.WorstLossPackets);
                }
                else
                {
                    w.WriteNull("lost_most_at");
                }
                if (row.KernelDropped is { } dropped)
                {
                    w.WriteNumber("kernel_dropped", dropped);
                }
                else
                {
                    w.WriteNull("kernel_dropped");
                }
            });
        }
    }

    private static void Container(Utf8JsonWriter w, ContainerOwners? owners, ContainerOwner? owner)
    {
        if (owners is null)
        {
            return;
        }
        if (owner is null)
        {
            w.WriteNull("container");
        }
        else
        {
            w.WriteString("container", owner.Name);
        }
    }

    /// <summary>One NAT record: a mapping (<c>--nat-detail</c>, no flow count) or an aggregate of them.</summary>
    private static void WriteNat(Utf8JsonWriter w, NatKind kind, IpProtocol protocol, string inside, string outside, string peer, long? flows, long packets)
    {
        w.WriteString("type", "nat");
        w.WriteString("kind", ReplayTable.Kind(kind));
        w.WriteString("proto", protocol.Name);
        w.WriteString("inside", inside);
        w.WriteString("outside", outside);
        w.WriteString("peer", peer);
        if (flows is { } count)
        {
            w.WriteNumber("flows", count);
        }
        w.WriteNumber("packets", packets);
    }

    private static void Line(TextWriter output, Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        output.WriteLine(TerminalText.EscapeJson(System.Text.Encoding.UTF8.GetString(buffer.ToArray())));
    }
}
