using System.Text.Json;
using VethTrace.Capture.Topology;
using VethTrace.Cli;
using VethTrace.Packets;

namespace VethTrace.Tests.Lab;

/// <summary>
/// Issue 14 §1 in follow, "the route lookup says it": a UDP port blocked outright (an iptables DOCKER-USER DROP) to an
/// upstream address nothing else talks to. No packet to that address reaches the egress, so no other packet shows the
/// way; the host's route to it (out of the egress) says the datagrams were expected there. The address is this test's
/// own (added to the upstream namespace, removed after), the rule too (comment "follow14"); the expected count is the
/// rule's own packet counter.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class RouteLossLabTests
{
    private const string Address = "198.51.100.114";
    private const string Port = "9914";
    private static readonly string[] Rule = ["DOCKER-USER", "-p", "udp", "-d", Address, "--dport", Port, "-m", "comment", "--comment", "follow14", "-j", "DROP"];

    [Fact]
    public void HostEgressRoutes_AgreesWithIpRouteGet()
    {
        var lab = LabEnvironment.Load();
        using HostEgressRoutes? routes = HostEgressRoutes.TryCreate([lab["EGRESS_IF"]]);
        Assert.NotNull(routes);
        // upstream (out of the egress), the other container (docker0), the egress's own address (local), a broadcast.
        foreach (string destination in new[] { lab["UPSTREAM_IP"], lab["C2_IP"], lab["EGRESS_IP"], lab["BRIDGE_IP"], "255.255.255.255" })
        {
            // "198.51.100.2 dev vt-up0 src 198.51.100.1 uid 0", "local 198.51.100.1 dev lo …", "broadcast 255.255.255.255 dev eth0 …"
            string[] words = LabEnvironment.Run("ip", "route", "get", destination).Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            bool unicast = words[0] == destination;
            bool expected = unicast && words[Array.IndexOf(words, "dev") + 1] == lab["EGRESS_IF"];
            Assert.True(expected == routes.LeavesByEgress(IpAddress.Parse(destination)), $"{destination}: ip route get says {string.Join(' ', words)}");
        }
        Assert.True(routes.LeavesByEgress(IpAddress.Parse(lab["UPSTREAM_IP"])));
        long lookups = routes.Lookups;
        Assert.True(routes.LeavesByEgress(IpAddress.Parse(lab["UPSTREAM_IP"])));
        Assert.Equal(lookups, routes.Lookups); // cached
    }

    [Fact]
    public async Task Follow_PortBlockedToAnAddressNothingElseReaches_LostAtTheBridge()
    {
        var lab = LabEnvironment.Load();
        LabEnvironment.TryRun("ip", "netns", "exec", lab["UPSTREAM_NS"], "ip", "addr", "del", $"{Address}/24", "dev", lab["UPSTREAM_IF"]);
        LabEnvironment.TryRun("iptables", ["-D", .. Rule]);
        try
        {
            LabEnvironment.Run("ip", "netns", "exec", lab["UPSTREAM_NS"], "ip", "addr", "add", $"{Address}/24", "dev", lab["UPSTREAM_IF"]);
            LabEnvironment.Run("iptables", ["-I", .. Rule]);
            long before = Counter();

            var output = new SignallingWriter("\"type\":\"start\"");
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(
                ["follow", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "--duration", "6s", "--format", "json",
                 "--filter", $"udp port {Port} or (icmp and host {lab["UPSTREAM_IP"]})"], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
            // Six datagrams to the blocked address; controls: two to the other container on the bridge (routed to
            // docker0, not the egress, so ending there is no loss: vt-c2's veth is not captured) and a ping upstream.
            Send(lab, Address, 6);
            Send(lab, lab["C2_IP"], 2);
            LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "2", "-W", "2", lab["UPSTREAM_IP"]);
            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
            long dropped = Counter() - before;
            Assert.Equal(6, dropped);

            var records = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            var losses = records.Where(r => r.GetProperty("type").GetString() == "loss").ToList();
            var blocked = Assert.Single(losses, l => l.GetProperty("dst").GetString() == $"{Address}:{Port}");
            Assert.Equal("udp", blocked.GetProperty("proto").GetString());
            Assert.Equal($"{lab["C1_IP"]}:40114", blocked.GetProperty("src").GetString());
            Assert.Equal($"{Address}:{Port}", blocked.GetProperty("dst").GetString());
            Assert.Equal(lab["BRIDGE"], blocked.GetProperty("last_seen").GetString());
            Assert.Equal(dropped, blocked.GetProperty("packets").GetInt64());
            // The datagrams to vt-c2 end at docker0 (its veth is not captured) and are routed there, not out of the
            // egress: not lost there, whatever else happens on a busy lab.
            Assert.DoesNotContain(losses, l => l.GetProperty("dst").GetString() == $"{lab["C2_IP"]}:{Port}" && l.GetProperty("last_seen").GetString() == lab["BRIDGE"]);
            // With no capture drop (other helpers' traffic can fill the rings), nothing else is lost at all.
            long kernelDropped = records.Where(r => r.GetProperty("type").GetString() == "capture").Sum(r => r.GetProperty("kernel_dropped").GetInt64());
            if (kernelDropped == 0)
            {
                Assert.Single(losses);
            }
            // The controls were traced (so their not being lost means something).
            var paths = records.Where(r => r.GetProperty("type").GetString() == "path").ToList();
            Assert.Contains(paths, p => p.GetProperty("interfaces").EnumerateArray().Last().GetString() == lab["EGRESS_IF"]);
            var summary = records.Single(r => r.GetProperty("type").GetString() == "summary" && !r.TryGetProperty("live", out _));
            Assert.True(summary.GetProperty("journeys").GetInt64() >= 6 + 2 + 4, summary.ToString());
        }
        finally
        {
            LabEnvironment.TryRun("iptables", ["-D", .. Rule]);
            LabEnvironment.TryRun("ip", "netns", "exec", lab["UPSTREAM_NS"], "ip", "addr", "del", $"{Address}/24", "dev", lab["UPSTREAM_IF"]);
        }
    }

    /// <summary>UDP datagrams from vt-c1's namespace, source port 40114, 100 ms apart.</summary>
    private static void Send(LabEnvironment lab, string destination, int count) =>
        LabEnvironment.Run("nsenter", $"--net=/proc/{lab["C1_PID"]}/ns/net", "python3", "-c",
            "import socket,sys,time\n" +
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',40114))\n" +
            $"for i in range({count}):\n    s.sendto(b'follow14 %d' % i, ('{destination}', {Port})); time.sleep(0.1)\n");

    /// <summary>The DROP rule's packet counter (iptables -L -v -x: pkts is the first column).</summary>
    private static long Counter()
    {
        string line = LabEnvironment.Run("iptables", "-L", "DOCKER-USER", "-v", "-x", "-n").Split('\n').Single(l => l.Contains("follow14", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
    }
}
