using Spectre.Console;
using VethTrace.Capture.Live;
using VethTrace.Cli.Output;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Cli;

/// <summary>The follow terminal view, rendered by Spectre.Console into a string (no ANSI) from a real correlation.</summary>
public sealed class LiveViewTests
{
    [Fact]
    public void Render_Correlation_ShowsChainsHopsNatAndDrops()
    {
        // Two echo exchanges through MASQUERADE over container eth0 (0), veth (1), bridge (2), egress (3).
        var inside = new FlowKey(IpProtocol.Icmp, IpAddress.Parse("172.17.0.2"), 7, IpAddress.Parse("198.51.100.2"), 0);
        var outside = inside with { Source = IpAddress.Parse("198.51.100.1") };
        var correlator = new Correlator(new CorrelatorOptions(), id => (InterfaceRole)id);
        long order = 0;
        for (int i = 0; i < 2; i++)
        {
            long t = i * 1_000_000_000L;
            ulong request = (ulong)(10 + i), reply = (ulong)(20 + i);
            correlator.Add(new Observation(t, 0, order++, request, inside, 98));
            correlator.Add(new Observation(t + 9_000, 1, order++, request, inside, 98));
            correlator.Add(new Observation(t + 9_000, 2, order++, request, inside, 98));
            correlator.Add(new Observation(t + 80_000, 3, order++, request, outside, 98));
            correlator.Add(new Observation(t + 200_000, 3, order++, reply, outside.Reversed, 98));
            correlator.Add(new Observation(t + 208_000, 2, order++, reply, inside.Reversed, 98));
            correlator.Add(new Observation(t + 211_000, 1, order++, reply, inside.Reversed, 98));
            correlator.Add(new Observation(t + 212_000, 0, order++, reply, inside.Reversed, 98));
        }
        correlator.Complete();
        string[] names = ["eth0(c1)", "veth1", "docker0", "vt-up0"];
        HopStatistics[] statistics = [.. names.Select(n => new HopStatistics(n, 4, 0, 0))];

        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(text) });
        console.Profile.Width = 80;
        console.Write(LiveView.Render("c1 (network mode bridge)", TimeSpan.FromSeconds(3), correlator.Report(), names, id => (InterfaceRole)id, statistics));
        string view = text.ToString();

        Assert.Contains("c1 (network mode bridge) · 3s · 16 packets · 4 journeys · 0 lost", view);
        Assert.Contains("out  eth0(c1) ─9.000µs→ veth1 ─reused→ docker0 ─71.0µs→ vt-up0", view);
        Assert.Contains("in   vt-up0 ─8.000µs→ docker0 ─3.000µs→ veth1 ─1.000µs→ eth0(c1)", view);
        Assert.Matches(@"docker0 → vt-up0\s+2\s+71\.0\s+71\.0\s+71\.0", view);
        Assert.Matches(@"snat\s+icmp\s+172\.17\.0\.2\s+198\.51\.100\.1\s+198\.51\.100\.2\s+1\s+4", view);   // one flow, four packets
        Assert.Contains("kernel drops: eth0(c1) 0  veth1 0  docker0 0  vt-up0 0", view);
        Assert.All(view.Split('\n'), line => Assert.True(line.TrimEnd().Length <= 80, line));
    }

    [Fact]
    public void Render_Tunnels_MarksTheEncapsulatingHopAndListsItsOuterHeaders()
    {
        // A journey over a VXLAN wire: container eth0 (0), veth (1), bridge (2), the wire (3).
        var flow = new FlowKey(IpProtocol.Icmp, IpAddress.Parse("10.42.0.1"), 7, IpAddress.Parse("10.42.0.2"), 0);
        var correlator = new Correlator(new CorrelatorOptions(), id => (InterfaceRole)id);
        correlator.Add(new Observation(0, 0, 0, 11, flow, 98));
        correlator.Add(new Observation(5_000, 1, 1, 11, flow, 98));
        correlator.Add(new Observation(6_000, 2, 2, 11, flow, 98));
        correlator.Add(new Observation(20_000, 3, 3, 11, flow, 148));
        correlator.Complete();
        var report = correlator.Report() with
        {
            Tunnels = [new TunnelReport(3, 42, IpAddress.Parse("203.0.113.1"), IpAddress.Parse("203.0.113.2"), 4789, 1)],
        };
        string[] names = ["eth0(c1)", "veth1", "br-ov1", "wire1"];

        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(text) });
        console.Profile.Width = 100;
        console.Write(LiveView.Render("overlay", TimeSpan.FromSeconds(1), report, names, id => (InterfaceRole)id, [.. names.Select(n => new HopStatistics(n, 1, 0, 0))]));
        string view = text.ToString();

        Assert.Contains("eth0(c1) ─5.000µs→ veth1 ─1.000µs→ br-ov1 ─14.0µs→ wire1 [vxlan 42]", view);
        Assert.Contains("tunnel: wire1 vxlan 42 203.0.113.1 → 203.0.113.2:4789, 1 packets", view);
    }
}
