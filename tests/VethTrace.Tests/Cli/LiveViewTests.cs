using Spectre.Console;
using VethTrace.Capture.Files;
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

/// <summary>
/// follow's live view says how it read the path, as replay's table does (issue 14 §2, §3): every interface's role and
/// how it was decided, and the bridge copies of bridged frames beside the chain, out of it. Rendered from the engine's
/// report of real captures, against the answers derived with tshark (captures/replay/expected/issue14/).
/// </summary>
public sealed class LiveViewRolesAndCopiesTests
{
    [Fact]
    public void Render_EastWest_BridgeCopyBesideTheChainRolesByName()
    {
        string capture = Path.Combine(Captures.CaptureCorpus.CapturesDirectory, "replay", "east-west.pcapng");
        FileTraceResult result = VethTrace.Capture.Files.FileTrace.Run([capture], new TraceSessionOptions());
        using var expected = System.Text.Json.JsonDocument.Parse(File.ReadAllText(
            Path.Combine(Captures.CaptureCorpus.CapturesDirectory, "replay", "expected", "issue14", "east-west.pcapng.side-copies.json")));
        long copies = expected.RootElement.GetProperty("summary").GetProperty("bridge_side_copies").GetInt64();

        string view = Render(result);

        // The derivation's first path, c1 to c2 through the two veths, with docker0's copy beside it.
        var first = expected.RootElement.GetProperty("paths")[0];
        string[] names = [.. first.GetProperty("path_names").EnumerateArray().Select(n => n.GetString()!)];
        Assert.Matches($@"{names[0]} ─[^→]+→ {names[1]} ─[^→]+→ {names[2]} ─[^→]+→ {names[3]}#2\s+\+ docker0 \(copy\)", view);
        Assert.Contains($"{copies} bridge copies of bridged frames set aside (copy)", view);
        Assert.Contains("docker0 bridge (name)", view);
        Assert.Contains($"{names[1]} veth (name)", view);
    }

    [Fact]
    public void Render_PerHopFreeNames_RolesInferredShown()
    {
        string[] files = [.. new[] { "c1-eth0", "veth", "docker0", "wan" }.Select(n => Path.Combine(Captures.CaptureCorpus.CapturesDirectory, "replay", "per-hop", n + ".pcap"))];
        FileTraceResult result = VethTrace.Capture.Files.FileTrace.Run(files, new TraceSessionOptions());

        string view = Render(result);

        // per-hop.json's roles: c1-eth0 is the container, wan the egress; neither name says so.
        using var expected = System.Text.Json.JsonDocument.Parse(File.ReadAllText(
            Path.Combine(Captures.CaptureCorpus.CapturesDirectory, "replay", "expected", "issue14", "per-hop.json")));
        var roles = expected.RootElement.GetProperty("interfaces").EnumerateArray().ToDictionary(i => i.GetProperty("name").GetString()!, i => i.GetProperty("role").GetString()!);
        Assert.Contains($"c1-eth0 {roles["c1-eth0"]} (inferred)", view);
        Assert.Contains($"wan {roles["wan"]} (inferred)", view);
        Assert.Contains("docker0 bridge (name)", view);
        Assert.DoesNotContain("bridge copies", view);
    }

    private static string Render(FileTraceResult result)
    {
        Assert.NotNull(result.Report);
        Assert.NotNull(result.Interfaces);
        IReadOnlyList<string> names = result.Interfaces.Names;
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(text) });
        console.Profile.Width = 200;
        console.Write(LiveView.Render("east-west", TimeSpan.FromSeconds(1), result.Report, names, result.Interfaces.RoleOf,
            [.. names.Select(n => new HopStatistics(n, 1, 0, 0))], result.Interfaces));
        return text.ToString();
    }
}
