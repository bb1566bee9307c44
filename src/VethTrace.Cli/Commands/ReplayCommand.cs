using System.CommandLine;
using VethTrace.Capture.Files;
using VethTrace.Capture.Filters;
using VethTrace.Cli.Output;
using VethTrace.Packets;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>vethtrace replay FILE…</c>: reads captures (merged by time), matches every packet's copies across the hops
/// into journeys, and reports the paths, per-hop latency, the NAT mappings and the losses.
/// </summary>
public static class ReplayCommand
{
    /// <summary>The <c>replay</c> command: its arguments and options, parsed into <see cref="Settings"/>.</summary>
    public static Command Build(TextWriter output, TextWriter error)
    {
        var files = CommonOptions.Files();
        var format = CommonOptions.Format("table (for people) or json (JSON Lines: summary, hop, nat, loss, path, segmentation and tunnel records)");
        var window = CommonOptions.Window();
        var egress = new Option<string?>("--egress")
        {
            Description = "The host's egress interface, when its name does not say so (e.g. --egress eth0 on a host whose uplink is eth0)",
        };
        var filter = CommonOptions.Filter("A pcap-filter expression (as for tcpdump), compiled by libpcap; a packet is traced when any of its copies on any hop matches, so 'host 172.17.0.2' follows it past NAT");
        var vxlanPort = CommonOptions.VxlanPort();
        var ifname = CommonOptions.Ifname();
        var flowTimeout = CommonOptions.FlowTimeout();
        var natDetail = CommonOptions.NatDetail();
        var role = CommonOptions.Role();
        var sample = CommonOptions.Sample();
        var html = CommonOptions.Html("beside the table or JSON on stdout");

        var command = new Command("replay", "Match each packet's copies across the captured hops (container eth0, veth, bridge, NAT, egress) " +
            "and report the paths, per-hop latency, NAT mappings and where lost packets were last seen.\n\nExamples:\n" +
            "  vethtrace replay captures/masquerade-multi.pcapng\n" +
            "  vethtrace replay captures/masquerade-multi.pcapng --filter 'icmp and host 172.17.0.2'\n" +
            "  vethtrace replay eth0.pcap veth1eae2a7.pcap docker0.pcap vt-up0.pcap --format json\n" +
            "  vethtrace replay captures/any-sll2.pcap --ifname 11=docker0 --ifname 12=vt-up0 --ifname 14=veth1eae2a7\n" +
            "  vethtrace replay web-eth0.pcap veth.pcap host.pcap wan.pcap --role web-eth0=container --role host=bridge\n" +
            "  vethtrace replay captures/replay/overlay-vxlan.pcapng   (VXLAN between two hosts: matched by the inner packet)\n" +
            "  vethtrace replay captures/replay/firewall-drop.pcapng --html report.html   (the report as a page to open in a browser)")
        {
            files, format, window, filter, egress, vxlanPort, ifname, role, flowTimeout, natDetail, sample, html,
        };
        command.SetAction(parseResult =>
        {
            long windowNs = CommonOptions.WindowNs(parseResult, window);
            var settings = new ReplayCommand.Settings(
                parseResult.GetValue(files) ?? [],
                parseResult.GetValue(format),
                windowNs,
                parseResult.GetValue(egress),
                parseResult.GetValue(filter),
                new ParserOptions { VxlanPort = (ushort)parseResult.GetValue(vxlanPort) },
                CommonOptions.InterfaceMap(parseResult, ifname))
            {
                FlowTimeouts = CommonOptions.FlowTimeoutsOf(parseResult, flowTimeout),
                NatDetail = parseResult.GetValue(natDetail),
                Roles = CommonOptions.RoleMap(parseResult, role),
                Sample = CommonOptions.SampleOf(parseResult.GetValue(sample)) ?? 1,
                HtmlPath = parseResult.GetValue(html),
            };
            return (int)ReplayCommand.Execute(settings, output, error);
        });
        return command;
    }

    public enum Format
    {
        Table,
        Json,
    }

    public sealed record Settings(
        IReadOnlyList<string> Files,
        Format OutputFormat,
        long WindowNs,
        string? Egress,
        string? Filter,
        ParserOptions Parser,
        Dictionary<int, string> InterfaceMap)
    {
        /// <summary>Idle timeouts of per-flow state (<c>--flow-timeout</c>).</summary>
        public FlowTimeouts FlowTimeouts { get; init; } = FlowTimeouts.Default;

        /// <summary>Every NAT translation, not only the aggregate (<c>--nat-detail</c>).</summary>
        public bool NatDetail { get; init; }

        /// <summary>--role: roles given by interface name.</summary>
        public IReadOnlyDictionary<string, InterfaceRole> Roles { get; init; } = new Dictionary<string, InterfaceRole>();

        /// <summary>--sample 1/N: N.</summary>
        public int Sample { get; init; } = 1;
        /// <summary>--html: where to write the HTML report too.</summary>
        public string? HtmlPath { get; init; }
    }

    public static ExitCode Execute(Settings settings, TextWriter output, TextWriter error)
    {
        using HtmlReportFile? html = settings.HtmlPath is null ? null : HtmlReportFile.Create(settings.HtmlPath, error);
        if (settings.HtmlPath is not null && html is null)
        {
            return ExitCode.CaptureFailed;
        }
        using PacketFilter? filter = settings.Filter is null ? null : PacketFilter.TryCreate(settings.Filter, out _);
        var options = new TraceSessionOptions { WindowNs = settings.WindowNs, Egress = settings.Egress, Roles = settings.Roles, Parser = settings.Parser,
            Filter = filter, FlowTimeouts = settings.FlowTimeouts, NatDetail = settings.NatDetail, Sample = settings.Sample };
        FileTraceResult result = FileTrace.Run(settings.Files, options, settings.InterfaceMap);
        if (result is { Report: { } report, Interfaces: { } interfaces })
        {
            // A whole-host recording (record with no target) names its containers: the per-container report too.
            IReadOnlyList<ContainerFigures>? containers = result.Owners is { } owners ? ContainerReport.Build(report, interfaces.RoleOf, owners) : null;
            if (settings.OutputFormat == Format.Json)
            {
                ReplayJson.Write(output, report, interfaces.Names, interfaces, result.Owners);
                if (containers is not null)
                {
                    ReplayJson.WriteContainers(output, containers, interfaces.Names);
                }
            }
            else
            {
                ReplayTable.Write(output, report, interfaces.Names, interfaces.RoleOf, interfaces);
                if (containers is not null)
                {
                    output.WriteLine();
                    ContainerTable.Write(output, containers, interfaces.Names);
                }
            }
            if (html is not null)
            {
                var context = new HtmlReportContext(string.Join(", ", settings.Files.Select(file => Path.GetFileName(file))), "replay");
                if (!html.Write(report, interfaces.Names, interfaces, context, error))
                {
                    return ExitCode.CaptureFailed;
                }
                if (settings.OutputFormat != Format.Json)
                {
                    output.WriteLine();
                    output.WriteLine(TerminalText.Escape($"HTML report written to {html.Path}"));
                }
            }
        }
        else
        {
            html?.Discard(); // nothing was read: no page rather than an empty one
        }
        return InputProblems.Report(result.Problems, "replay", error);
    }
}
