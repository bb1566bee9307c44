using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The overlay capture (captures/replay/overlay-vxlan.pcapng, tests/lab/overlay.sh record): two hosts, each a bridge and
/// a VXLAN device, joined by a veth wire. What the derivation of ReplayScenarioTests does not check: the tunnel each
/// interface carried the packets in, counted against tshark, and the order of a journey's hops across both hosts.
/// </summary>
public sealed class OverlayReplayTests
{
    private static string Capture => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "overlay-vxlan.pcapng");

    private static List<JsonElement> Replay(params string[] extra)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", Capture, "--format", "json", .. extra], output, error);
        Assert.True(code == ExitCode.Success, error.ToString());
        return [.. output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
    }

    [Fact]
    public void Replay_Overlay_TunnelRecordsGiveTheOuterHeadersTsharkSees()
    {
        // tshark's outer headers (first occurrence) of every VXLAN frame, by interface.
        var expected = WiresharkTool.Run("tshark", ["-r", Capture, "-n", "-Y", "vxlan", "-T", "fields", "-E", "occurrence=f",
                "-e", "frame.interface_name", "-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport"])
            .GroupBy(line => line).ToDictionary(g => g.Key, g => (long)g.Count());
        Assert.NotEmpty(expected);

        var tunnels = Replay().Where(r => r.GetProperty("type").GetString() == "tunnel").ToDictionary(
            t => string.Join('\t', t.GetProperty("interface").GetString(), t.GetProperty("vni").GetUInt32(), t.GetProperty("outer_src").GetString(),
                t.GetProperty("outer_dst").GetString(), t.GetProperty("port").GetUInt16()),
            t => t.GetProperty("packets").GetInt64());
        Assert.Equal(expected.OrderBy(e => e.Key), tunnels.OrderBy(t => t.Key));
    }

    [Fact]
    public void Replay_Overlay_PathsCrossBothHostsInDatapathOrder()
    {
        var paths = Replay().Where(r => r.GetProperty("type").GetString() == "path")
            .Select(p => string.Join(' ', p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString())))
            .ToList();
        // Equal receive timestamps (wire2 and vxlan2 share one) are laid out from the hop before them, through the
        // tunnel role, so the decapsulating host reads wire → vxlan → veth. br-ov1 and br-ov2 forward the frame port to
        // port (veth ⇄ vxlan): their own copies are side copies, not hops (issue 14 §3).
        Assert.Contains("eth0 vethov1 vxlan1 wire1 wire2 vxlan2 vethov2 eth0#2", paths);
        Assert.Contains("eth0#2 vethov2 vxlan2 wire2 wire1 vxlan1 vethov1 eth0", paths);
        Assert.All(paths, p => Assert.Equal(8, p.Split(' ').Length));
        Assert.All(Replay().Where(r => r.GetProperty("type").GetString() == "path"), p => Assert.Equal(["br-ov1", "br-ov2"],
            p.GetProperty("side_copies").EnumerateArray().Select(c => c.GetProperty("interface").GetString())));
    }

    [Fact]
    public void Replay_OverlayWithDecapsulationOff_NoJourneyCrossesTheWire()
    {
        // --vxlan-port 0: the wire's copies are plain UDP between the hosts and match nothing inside them.
        var records = Replay("--vxlan-port", "0");
        Assert.DoesNotContain(records, r => r.GetProperty("type").GetString() == "tunnel");
        var paths = records.Where(r => r.GetProperty("type").GetString() == "path")
            .Select(p => p.GetProperty("interfaces").EnumerateArray().Select(i => i.GetString()!).ToList()).ToList();
        Assert.NotEmpty(paths);
        Assert.All(paths, p => Assert.False(p.Contains("wire1") && p.Contains("vethov1"), string.Join(' ', p)));
    }
}
