using System.Text.RegularExpressions;
using VethTrace.Cli;

namespace VethTrace.Tests.Lab;

/// <summary>
/// follow's final table says how it read the path, as replay's does (issue 14 §2, §3): the roles the topology decided
/// (listed since follow14: every follow hop's role comes from the topology or is given), and the bridge's copies of
/// bridged frames beside the chain. East-west: vt-c1 fetches a page from vt-c2 while follow captures vt-c1's hops plus
/// vt-c2's veth and eth0; dumpcap on vt-c1's veth counts the requests independently.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class FollowReportLabTests
{
    [Fact]
    public async Task Follow_EastWestTable_RolesByTopologyAndBridgeCopyBesideTheChain()
    {
        var lab = LabEnvironment.Load();
        string vethFile = Path.Combine(Path.GetTempPath(), $"follow14-eastwest-{Environment.ProcessId}.pcapng");
        try
        {
            var output = new SignallingWriter("capturing.");
            var error = new StringWriter();
            var follow = Task.Run(() => VethTraceCommand.Run(
                ["follow", lab["C1_NAME"], "--hop", lab["C2_VETH"], "--hop", $"eth0@{lab["C2_NETNS"]}", "--egress", lab["EGRESS_IF"],
                 "--duration", "6s", "--filter", "tcp port 80"], output, error));
            Assert.True(output.Seen.Wait(TimeSpan.FromSeconds(20)), $"follow did not start capturing: {error}");
            using (var dumpcap = new DumpcapSession(vethFile, null, lab["C1_VETH"]))
            {
                LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "wget", "-q", "-O", "/dev/null", $"http://{lab["C2_IP"]}/");
                Thread.Sleep(300);
                dumpcap.Stop();
            }
            ExitCode code = await follow.WaitAsync(TimeSpan.FromSeconds(40));
            Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
            string requests = LabEnvironment.Run("tshark", "-n", "-r", vethFile, "-Y", $"ip.src=={lab["C1_IP"]} && ip.dst=={lab["C2_IP"]} && tcp.dstport==80", "-T", "fields", "-e", "frame.number");
            int count = requests.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            Assert.True(count >= 4, $"the east-west fetch did not cross {lab["C1_VETH"]}");
            string text = output.ToString();

            Assert.Contains("Roles (decided by:", text);
            Assert.Matches($@"\n  eth0\({Regex.Escape(lab["C1_NAME"])}\)\s+container\s+topology\n", text);
            Assert.Matches($@"\n  {Regex.Escape(lab["C1_VETH"])}\s+veth\s+topology\n", text);
            Assert.Matches($@"\n  {Regex.Escape(lab["BRIDGE"])}\s+bridge\s+topology\n", text);
            Assert.Matches($@"\n  {Regex.Escape(lab["EGRESS_IF"])}\s+egress\s+given\n", text);
            // The chain veth(c1) -> veth(c2) -> eth0(c2), with docker0's copy beside it, for the requests dumpcap counted.
            Assert.Matches($@"\w+, {count} journeys:\n    eth0\({Regex.Escape(lab["C1_NAME"])}\) ─[^→]+→ {Regex.Escape(lab["C1_VETH"])} ─[^→]+→ {Regex.Escape(lab["C2_VETH"])} ─[^→]+→ eth0@{lab["C2_PID"]}   \+ {Regex.Escape(lab["BRIDGE"])} \(copy\)", text);
            Assert.Contains("bridge copies of bridged frames set aside (copy)", text);
        }
        finally
        {
            File.Delete(vethFile);
        }
    }
}
