using System.Text.Json;
using VethTrace.Capture.Files;
using VethTrace.Cli;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// Issue 14 §5: per-flow state expires as conntrack's does, so memory follows the flows active at once, not the flows
/// seen. Fed benchmarks/many-flows.py's committed 1 000-flow file (one DNS query per flow, 10 µs apart on average, each
/// on a veth, docker0 and the MASQUERADEd egress), with the counts checked against tshark.
/// </summary>
public sealed class FlowExpiryTests
{
    private static string ManyFlows => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "many-flows-1000.pcapng");

    [Fact]
    public void ManyFlows_ShortUdpTimeout_TranslationsHeldAreBoundedAndAggregateKeepsEveryFlow()
    {
        // tshark: 1 000 distinct translated flows (source port and DNS server per query), over about 10 ms.
        string[] egress = WiresharkTool.Run("tshark", ["-r", ManyFlows, "-Y", "frame.interface_name == \"ens3\"", "-T", "fields", "-e", "udp.srcport", "-e", "ip.dst", "-e", "frame.time_epoch"]);
        Assert.Equal(1000, egress.Select(l => string.Join('\t', l.Split('\t')[..2])).Distinct().Count());
        double[] times = [.. egress.Select(l => double.Parse(l.Split('\t')[2], System.Globalization.CultureInfo.InvariantCulture))];
        double spanMs = (times.Max() - times.Min()) * 1000;
        Assert.InRange(spanMs, 5, 20);

        var (heldAtMost, report, correlator) = Run(new FlowTimeouts { UdpNs = 1_000_000 });   // udp=1ms
        // Swept every 0.125 ms: at most about 1.125 ms of flows (about 113 at 100 000 flows/s) are held at once, never the 1 000.
        Assert.InRange(heldAtMost, 1, 300);
        Assert.Equal(1000, report.NatAggregates.Sum(r => r.Flows));
        Assert.Equal(1000, report.NatAggregates.Sum(r => r.Packets));
        Assert.Equal(250, report.NatAggregates.Count);
        Assert.Equal(0, report.Lost);
        Assert.Equal(0, correlator.ActiveFlows);   // journeys that reached the egress need no per-flow reach

        // With conntrack's 30 s nothing expires within the file: every translation is still held at the end.
        var (heldWithDefaults, defaults, _) = Run(FlowTimeouts.Default);
        Assert.Equal(1000, heldWithDefaults);
        Assert.Equal(report.NatAggregates.Select(r => r.ToString()), defaults.NatAggregates.Select(r => r.ToString()));
    }

    [Fact]
    public void Replay_FlowTimeoutOption_ValidatedAndApplied()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", ManyFlows, "--format", "json", "--flow-timeout", "udp=1ms", "--flow-timeout", "icmp=5s"], output, error));
        var nat = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "nat").ToList();
        Assert.Equal(1000, nat.Sum(r => r.GetProperty("flows").GetInt64()));

        error = new StringWriter();
        Assert.NotEqual(ExitCode.Success, VethTraceCommand.Run(["replay", ManyFlows, "--flow-timeout", "sctp=1s"], new StringWriter(), error));
        Assert.Contains("--flow-timeout expects PROTO=DURATION", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A window of 100 µs (the copies of a query are at most 75 µs apart), so journeys finish, and translations are made,
    /// as the file goes rather than after the 10 ms it spans.
    /// Feeds the file's packets to a correlator in file order (the file is in time order, capinfos says) and records the
    /// most translations it held after any packet.
    /// </summary>
    private static (int HeldAtMost, CorrelationReport Report, Correlator Correlator) Run(FlowTimeouts timeouts)
    {
        var roles = new List<InterfaceRole>();
        var correlator = new Correlator(new CorrelatorOptions { Timeouts = timeouts, WindowNs = 100_000 }, id => roles[id]);
        int heldAtMost = 0;
        using (var reader = CaptureFileReader.Open(ManyFlows))
        {
            long order = 0;
            while (reader.TryReadNext(out CaptureRecord record))
            {
                while (roles.Count <= record.InterfaceId)
                {
                    roles.Add(InterfaceRoles.FromName(reader.Interfaces[roles.Count].Name, "ens3"));
                }
                Assert.Equal(ParseOutcome.Complete, VethTrace.Packets.PacketParser.Parse(record.Data, record.LinkType, out ParsedPacket packet));
                correlator.Add(Observation.From(in packet, record.Data, record.TimestampNs, record.InterfaceId, order++));
                heldAtMost = Math.Max(heldAtMost, correlator.ActiveTranslations);
            }
            Assert.Null(reader.Error);
        }
        correlator.Complete();
        return (Math.Max(heldAtMost, correlator.ActiveTranslations), correlator.Report(), correlator);
    }
}
