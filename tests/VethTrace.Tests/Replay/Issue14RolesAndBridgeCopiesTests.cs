using System.Text.Json;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Replay;

/// <summary>
/// Issue 14 §2 and §3 against the answers tests/lab/derive-journeys.py derived from tshark's fields
/// (captures/replay/expected/issue14/): roles inferred from the traffic when names don't decide them (a
/// <c>tcpdump -i any</c> file with only some interfaces named, per-hop files named as users name them), and a bridge's
/// own copy of a bridged frame kept out of the chain and the hop figures (east-west, the VXLAN overlay).
/// </summary>
public sealed class Issue14RolesAndBridgeCopiesTests
{
    private static string ExpectedDirectory => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "expected", "issue14");

    public static TheoryData<string, string[], string[]> Cases() => new()
    {
        // -i any with only the bridge and the egress named: the veth's role is inferred (it is if34).
        { "any-partial.pcap.json", [], ["--ifname", "5=docker0", "--ifname", "6=vt-up0"] },
        { "any-partial-ns.pcap.json", [], ["--ifname", "5=docker0", "--ifname", "6=vt-up0"] },
        // No names at all, and only the egress named.
        { "any-partial.pcap.json", [], [] },
        { "any-partial.pcap.json", [], ["--ifname", "6=vt-up0"] },
        // Per-hop files: c1-eth0 and wan match no naming rule; in path order and in reverse.
        { "per-hop.json", [], [] },
        { "per-hop.json", ["captures/replay/per-hop/wan.pcap", "captures/replay/per-hop/docker0.pcap", "captures/replay/per-hop/veth.pcap", "captures/replay/per-hop/c1-eth0.pcap"], [] },
        // Bridged frames: docker0 (br-ov1, br-ov2) a side copy.
        { "east-west-bridged.pcapng.json", [], [] },
        { "east-west.pcapng.side-copies.json", [], [] },
        { "overlay-vxlan.pcapng.side-copies.json", [], [] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Replay_NamesThatDontTellOrBridgedFrames_SamePathsHopsAndLossesAsDerived(string expectedFile, string[] files, string[] options)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(ExpectedDirectory, expectedFile)));
        JsonElement expected = document.RootElement;
        var args = new List<string> { "replay" };
        args.AddRange((files.Length > 0 ? files : expected.GetProperty("files").EnumerateArray().Select(f => f.GetString()!))
            .Select(f => Path.Combine(CaptureCorpus.RepositoryRoot, f)));
        args.AddRange(options);
        args.AddRange(["--format", "json", "--nat-detail"]);
        var named = options.Where((o, i) => i > 0 && options[i - 1] == "--ifname").Select(o => o[..o.IndexOf('=')]).ToHashSet();

        // The derivation's interface labels as this replay names them: an SLL2 index not named here is if<index>.
        var ours = new Dictionary<string, string>();
        var taken = new HashSet<string>();
        foreach (JsonElement entry in expected.GetProperty("interfaces").EnumerateArray())
        {
            string name = entry.GetProperty("name").GetString()!, key = entry.GetProperty("key").GetString()!;
            if (expected.TryGetProperty("ifname_args", out _) && !named.Contains(key))
            {
                name = "if" + key;
            }
            string shown = name;
            for (int n = 2; !taken.Add(shown); n++)
            {
                shown = $"{name}#{n}";
            }
            ours[entry.GetProperty("label").GetString()!] = shown;
        }

        var records = Run(args);
        JsonElement summary = records.Single(r => Type(r) == "summary");
        JsonElement expectedSummary = expected.GetProperty("summary");
        Assert.Equal(expectedSummary.GetProperty("journeys").GetInt64(), summary.GetProperty("journeys").GetInt64());
        Assert.Equal(expectedSummary.GetProperty("lost").GetInt64(), summary.GetProperty("lost").GetInt64());
        long sideCopies = expectedSummary.TryGetProperty("bridge_side_copies", out JsonElement side) ? side.GetInt64() : 0;
        Assert.Equal(sideCopies, summary.TryGetProperty("bridge_side_copies", out JsonElement mine) ? mine.GetInt64() : 0);
        // Every tie was ordered with a known role.
        Assert.False(summary.TryGetProperty("ties_without_known_role", out _), "ties ordered without a known role");

        // The same paths (chains), with the same journey counts.
        var expectedPaths = expected.GetProperty("paths").EnumerateArray()
            .Select(p => string.Join(" > ", p.GetProperty("path").EnumerateArray().Select(l => ours[l.GetString()!])) + " " + p.GetProperty("journeys").GetInt64())
            .Order(StringComparer.Ordinal).ToList();
        var paths = records.Where(r => Type(r) == "path")
            .Select(p => string.Join(" > ", p.GetProperty("interfaces").EnumerateArray().Select(n => n.GetString())) + " " + p.GetProperty("journeys").GetInt64())
            .Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedPaths, paths);

        // The same hops, with their packet counts and percentiles within a microsecond.
        var hops = records.Where(r => Type(r) == "hop").ToDictionary(h => (h.GetProperty("from").GetString()!, h.GetProperty("to").GetString()!));
        var expectedHops = expected.GetProperty("hops").EnumerateArray().ToList();
        Assert.Equal(expectedHops.Count, hops.Count);
        foreach (JsonElement hop in expectedHops)
        {
            var key = (ours[hop.GetProperty("from_label").GetString()!], ours[hop.GetProperty("to_label").GetString()!]);
            Assert.True(hops.TryGetValue(key, out JsonElement ourHop), $"hop {key} missing");
            Assert.Equal(hop.GetProperty("packets").GetInt64(), ourHop.GetProperty("packets").GetInt64());
            foreach (string field in new[] { "p50_us", "p90_us", "p99_us", "max_us" })
            {
                double theirs = hop.GetProperty(field).GetDouble(), ourValue = ourHop.GetProperty(field).GetDouble();
                Assert.True(Math.Abs(theirs - ourValue) < 1.0, $"{key} {field}: ours {ourValue}, derived {theirs}");
            }
        }

        // The same losses, and every NAT mapping.
        Assert.Equal(expected.GetProperty("losses").GetArrayLength(), records.Count(r => Type(r) == "loss"));
        var nat = records.Where(r => Type(r) == "nat").Select(n => (n.GetProperty("kind").GetString(), n.GetProperty("inside").GetString(), n.GetProperty("outside").GetString())).ToHashSet();
        foreach (JsonElement mapping in expected.GetProperty("nat").EnumerateArray())
        {
            Assert.Contains((mapping.GetProperty("kind").GetString(), mapping.GetProperty("inside").GetString(), mapping.GetProperty("outside").GetString()), nat);
        }

        // Where the bridge copies were set aside: beside the chains of exactly the derivation's side-copy interfaces.
        var expectedSide = expected.GetProperty("journeys").EnumerateArray()
            .SelectMany(j => j.TryGetProperty("side_copies", out JsonElement copies) ? copies.EnumerateArray().Select(c => ours[c.GetProperty("iface").GetString()!]) : [])
            .ToHashSet();
        var ourSide = records.Where(r => Type(r) == "path" && r.TryGetProperty("side_copies", out _))
            .SelectMany(r => r.GetProperty("side_copies").EnumerateArray().Select(c => c.GetProperty("interface").GetString()!)).ToHashSet();
        Assert.Equal(expectedSide.Order(StringComparer.Ordinal), ourSide.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Replay_PerHopFiles_RolesInferredAndSaidSo()
    {
        var roles = Roles(Run(["replay", .. PerHop, "--format", "json"]));
        Assert.Equal(("container", "inferred"), roles["c1-eth0"]);
        Assert.Equal(("veth", "name"), roles["veth"]);
        Assert.Equal(("bridge", "name"), roles["docker0"]);
        Assert.Equal(("egress", "inferred"), roles["wan"]);
    }

    [Fact]
    public void Replay_AnyWithPartialNames_VethInferredFromTrafficAndSaidInTheTable()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", AnyPartial, "--ifname", "5=docker0", "--ifname", "6=vt-up0"], output, error));
        string table = output.ToString();
        Assert.Contains("  if34       veth      inferred", table);
        Assert.Contains("  docker0    bridge    name", table);
        Assert.Contains("  outbound, 294 journeys:", table);
        Assert.DoesNotContain("Warning", table);
    }

    [Fact]
    public void Replay_RoleGiven_OverridesInference()
    {
        // Given the wrong way round on purpose: the given roles win over what the traffic says, and the report says so.
        var records = Run(["replay", .. PerHop, "--role", "wan=container", "--role", "c1-eth0=egress", "--format", "json"]);
        var roles = Roles(records);
        Assert.Equal(("container", "given"), roles["wan"]);
        Assert.Equal(("egress", "given"), roles["c1-eth0"]);
        // With the container and the egress swapped, the 13 reused veth -> docker0 stamps are ordered by the given roles:
        // the outbound ones now read docker0 before veth, which the inferred roles (the test above) get right.
        var paths = records.Where(r => Type(r) == "path").Select(p => string.Join(" > ", p.GetProperty("interfaces").EnumerateArray().Select(n => n.GetString()))).ToList();
        Assert.Contains("c1-eth0 > docker0 > veth > wan", paths);
    }

    [Fact]
    public void Replay_RoleNotARole_IsAUsageError()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(["replay", AnyPartial, "--role", "if34=router"], output, error);
        Assert.NotEqual(ExitCode.Success, code);
        Assert.Contains("--role expects NAME=container|veth|bridge|egress|tunnel", error.ToString());
    }

    [Fact]
    public void Replay_OverlayWithoutNamesForTheWire_NoWarningAndNoRolesSection()
    {
        // wire1/wire2 match no naming rule; they carried the VXLAN copies, so they are the underlay (egress) as the names'
        // fallback said: the report reads as before but for the bridge copies.
        var output = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "overlay-vxlan.pcapng")], output, new StringWriter()));
        Assert.DoesNotContain("Warning", output.ToString());
        Assert.DoesNotContain("Roles (", output.ToString());
        Assert.Contains("   + br-ov1 (copy), br-ov2 (copy)", output.ToString());
    }

    private static string AnyPartial => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "any-partial.pcap");

    private static string[] PerHop => [.. new[] { "c1-eth0", "veth", "docker0", "wan" }.Select(n => Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "per-hop", n + ".pcap"))];

    private static List<JsonElement> Run(IEnumerable<string> args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run([.. args], output, error);
        Assert.True(code == ExitCode.Success, $"exit {code}: {error}");
        return [.. output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
    }

    private static Dictionary<string, (string, string)> Roles(List<JsonElement> records) =>
        records.Where(r => Type(r) == "role").ToDictionary(r => r.GetProperty("interface").GetString()!,
            r => (r.GetProperty("role").GetString()!, r.GetProperty("decided_by").GetString()!));

    private static string Type(JsonElement record) => record.GetProperty("type").GetString()!;
}
