using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Replay;

/// <summary>
/// Issue 14 §2, the two rules the first round left out, on per-hop files cut from <c>masquerade-multi.pcapng</c> with
/// tshark (one file per interface, named as people name them: c1, hostc1, hostc2, br, wan; captures/README.md):
/// <list type="bullet">
/// <item>Inference again after the first window: vt-c2's veth (hostc2) carries its first packet 4 s into the capture
/// (the DNAT part), after the first decision; it used to stay unknown (egress).</item>
/// <item>"One container's addresses against many": in free-names-tied, the DNAT part is moved (editcap -t) into the
/// first second beside vt-c1's echo requests, whose veth and bridge copies share one receive stamp. Nothing orders
/// hostc1 against br; br carried both containers' addresses, hostc1 only vt-c1's, so br is the bridge, hostc1 its port.</item>
/// </list>
/// Expected roles: the recording's topology (captures/replay/topology/masquerade-multi.pcapng.tsv, from netlink when it
/// was recorded) through names.tsv; expected paths: the tshark derivation of masquerade-multi
/// (captures/replay/expected/masquerade-multi.pcapng.json).
/// </summary>
public sealed class Issue14LaterRolesTests
{
    private static readonly string[] Files = ["c1", "hostc1", "hostc2", "br", "wan"];

    [Theory]
    [InlineData("free-names")]
    [InlineData("free-names-tied")]
    public void Replay_FreeNames_RolesAsTheTopologySays(string set)
    {
        var records = Replay(set);
        var roles = records.Where(r => Type(r) == "role").ToDictionary(r => r.GetProperty("interface").GetString()!,
            r => (r.GetProperty("role").GetString()!, r.GetProperty("decided_by").GetString()!));

        Dictionary<string, string> expected = ExpectedRoles(set);
        Assert.Equal(expected.Count, roles.Count);
        foreach (var (file, role) in expected)
        {
            Assert.Equal((role, "inferred"), roles[file]);
        }
        Assert.DoesNotContain(records, r => Type(r) == "loss");
    }

    [Fact]
    public void Replay_FreeNamesLateVeth_SamePathsAsTheDerivationWithProperNames()
    {
        var records = Replay("free-names");
        Dictionary<string, string> original = Names("free-names").ToDictionary(n => n.Value, n => n.Key); // if_name -> file
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "expected", "masquerade-multi.pcapng.json")));
        var expected = document.RootElement.GetProperty("paths").EnumerateArray()
            .Select(p => (string.Join(" > ", p.GetProperty("path_names").EnumerateArray().Select(n => original[n.GetString()!])), p.GetProperty("journeys").GetInt64()))
            .Order().ToList();
        var paths = records.Where(r => Type(r) == "path")
            .Select(p => (string.Join(" > ", p.GetProperty("interfaces").EnumerateArray().Select(n => n.GetString()!)), p.GetProperty("journeys").GetInt64()))
            .Order().ToList();
        Assert.Equal(expected, paths);
    }

    private static List<JsonElement> Replay(string set)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", .. Files.Select(f => Path.Combine(Directory(set), f + ".pcap")), "--format", "json"], output, error);
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        return [.. output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
    }

    private static string Directory(string set) => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", set);

    /// <summary>file name -> if_name in masquerade-multi.pcapng (names.tsv).</summary>
    private static Dictionary<string, string> Names(string set) => File.ReadLines(Path.Combine(Directory(set), "names.tsv"))
        .Where(l => !l.StartsWith('#')).Select(l => l.Split('\t')).ToDictionary(f => f[0], f => f[1]);

    /// <summary>file name -> role in the recording's topology (topology/masquerade-multi.pcapng.tsv: key, name, label, role).</summary>
    private static Dictionary<string, string> ExpectedRoles(string set)
    {
        var roleOf = File.ReadLines(Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "topology", "masquerade-multi.pcapng.tsv"))
            .Where(l => !l.StartsWith('#')).Select(l => l.Split('\t')).ToDictionary(f => f[1], f => f[3]);
        return Names(set).ToDictionary(n => n.Key, n => roleOf[n.Value]);
    }

    private static string Type(JsonElement record) => record.GetProperty("type").GetString()!;
}
