using System.Net;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Files;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Capture.Topology.Netlink;
using VethTrace.Cli;
using VethTrace.Cli.Commands;
using VethTrace.Cli.Output;
using VethTrace.Tests.Files;
using VethTrace.Tests.Parser;
using VethTrace.Tests.Text;
using VethTrace.Tracing;
using static VethTrace.Tests.Topology.RtnetlinkParserTests;

namespace VethTrace.Tests.Cli;

/// <summary>
/// Issue 12, section 1: a pcapng whose interface names and descriptions hold terminal escape sequences, Spectre.Console
/// markup, a bidi override and bytes that are not UTF-8, run through the real commands. Nothing of it may reach the
/// terminal raw; each name must show in its visible escaped form. The expected forms follow from the escaping rules
/// (README, Robustness), written out by hand here, never taken from VethTrace's output.
/// </summary>
public sealed class HostileNameTests : IDisposable
{
    /// <summary>A hostile if_name, as bytes; how a terminal must show it; what a JSON reader must decode it to.</summary>
    public sealed record HostileName(byte[] Raw, string Shown)
    {
        /// <summary>UTF-8 with U+FFFD for each invalid byte: what JSON, which holds only Unicode, carries.</summary>
        public string Json => Encoding.UTF8.GetString(Raw);
    }

    public static readonly HostileName[] Names =
    [
        new("\u001b[2J\u001b[31mA"u8.ToArray(), @"\x1b[2J\x1b[31mA"),     // clear screen, red
        new("\u001b]0;pwned\u0007B"u8.ToArray(), @"\x1b]0;pwned\x07B"),    // OSC: set the window title
        new("[red]C[/]"u8.ToArray(), "[red]C[/]"),                         // Spectre.Console markup: printed as it is
        new("D\u202eevil"u8.ToArray(), @"D\u202eevil"),                    // RIGHT-TO-LEFT OVERRIDE
        new([(byte)'E', 0xFF, 0xFE], @"E\xff\xfe"),                        // not UTF-8
        new("F\u009b31m"u8.ToArray(), @"F\u009b31m"),                      // C1 CSI, as UTF-8
        new(@"G\x1b"u8.ToArray(), @"G\\x1b"),                              // a backslash: doubled, so it cannot pose as an escape
    ];

    private static readonly byte[] HostileDescription = "\u001b[2J\u001b[3J description \u001b[0m"u8.ToArray();

    private readonly List<string> _files = [];

    public void Dispose()
    {
        foreach (string file in _files)
        {
            File.Delete(file);
        }
    }

    /// <summary>One TCP segment seen on each hostile interface in turn, 10 µs apart: one journey across all of them.</summary>
    internal static byte[] HostileCapture()
    {
        var capture = CaptureBuilder.Pcapng();
        foreach (HostileName name in Names)
        {
            capture.InterfaceDescriptionBytes(name.Raw, HostileDescription);
        }
        byte[] packet = SamplePackets.EthernetIpv4Tcp();
        for (int i = 0; i < Names.Length; i++)
        {
            capture.EnhancedPacket((uint)i, 1_700_000_000_000_000UL + (ulong)i * 10, packet);
        }
        return capture.ToArray();
    }

    private string Write(byte[] bytes, string name = "hostile")
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-{name}-{Environment.ProcessId}-{Guid.NewGuid():N}.pcapng");
        File.WriteAllBytes(path, bytes);
        _files.Add(path);
        return path;
    }

    private static (ExitCode Code, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode code = VethTraceCommand.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Packets_HostileInterfaceNames_EachLineShowsTheEscapedName()
    {
        var (code, output, error) = Run("packets", Write(HostileCapture()));

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        TerminalAssert.Safe(output);
        string[] lines = output.Split('\n');
        foreach (HostileName name in Names)
        {
            Assert.Single(lines, line => line.Contains($" {name.Shown} ", StringComparison.Ordinal) && line.Contains("tcp ", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void PacketsByFingerprint_HostileInterfaceNames_OneGroupWithEveryEscapedName()
    {
        var (code, output, error) = Run("packets", Write(HostileCapture()), "--by-fingerprint");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        TerminalAssert.Safe(output);
        Assert.Contains($"{Names.Length} sightings", output);
        Assert.All(Names, name => Assert.Contains($" {name.Shown} ", output));
    }

    [Fact]
    public void ReplayTable_HostileInterfaceNames_PathHopsAndLatencyShowEscapedNames()
    {
        var (code, output, error) = Run("replay", Write(HostileCapture()));

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        TerminalAssert.Safe(output);
        string[] lines = output.Split('\n');
        // The path chain, in time order, and each hop's heading in the latency section (not clipped there).
        string chain = Assert.Single(lines, line => line.StartsWith("    ", StringComparison.Ordinal) && line.Contains('─'));
        Assert.Equal(string.Join(" ─10.0µs→ ", Names.Select(n => n.Shown)), chain.Trim());
        for (int i = 1; i < Names.Length; i++)
        {
            Assert.Contains($"  {Names[i - 1].Shown} → {Names[i].Shown}", lines);
        }
    }

    [Fact]
    public void ReplayJson_HostileInterfaceNames_EscapedAsJsonAndDecodeToTheNames()
    {
        var (code, output, error) = Run("replay", Write(HostileCapture()), "--format", "json");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        TerminalAssert.Safe(output);
        // System.Text.Json writes \u001B for ESC; the bidi override, which it leaves raw, is escaped as well.
        Assert.Contains(@"\u001B[2J", output);
        Assert.Contains(@"D\u202eevil", output);
        var records = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        JsonElement path = Assert.Single(records, r => r.GetProperty("type").GetString() == "path");
        Assert.Equal(Names.Select(n => n.Json), path.GetProperty("interfaces").EnumerateArray().Select(e => e.GetString()));
        var hops = records.Where(r => r.GetProperty("type").GetString() == "hop").Select(r => (r.GetProperty("from").GetString()!, r.GetProperty("to").GetString()!));
        Assert.Equal(Names.Zip(Names.Skip(1), (a, b) => (a.Json, b.Json)), hops);
    }

    [Theory]
    [InlineData("packets")]
    [InlineData("replay")]
    public void IfnameMapping_HostileName_Escaped(string command)
    {
        // Index 11 is docker0 in the shipped tcpdump -i any capture (captures/any-sll2.interfaces.tsv).
        var (code, output, error) = Run(command, VethTrace.Tests.Captures.CaptureCorpus.PathOf("any-sll2.pcap"), "--ifname", "11=\u001b]0;pwned\u0007docker0");

        Assert.Equal(ExitCode.Success, code);
        Assert.Equal("", error);
        TerminalAssert.Safe(output);
        Assert.Contains(@" \x1b]0;pwned\x07docker0 ", output);
    }

    [Theory]
    [InlineData(new[] { "\u001b[31mreplay" }, @"vethtrace: unknown command '\x1b[31mreplay'")]
    [InlineData(new[] { "replay", "x.pcap", "--filter", "host \u001b]0;pwned\u0007" }, @"vethtrace: --filter 'host \x1b]0;pwned\x07' does not compile")]
    [InlineData(new[] { "packets", "x.pcap", "--ifname", "\u001b[2J" }, @"got '\x1b[2J'")]
    public void UsageError_HostileArgument_QuotedEscaped(string[] args, string expected)
    {
        var (code, output, error) = Run(args);

        Assert.Equal(ExitCode.Usage, code);
        TerminalAssert.Safe(output + error);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void FollowStartRecord_HostileTargetAndInterfaces_EscapedAndDecodeToTheNames()
    {
        string target = "\u001b]0;pwned\u0007web (network mode [red]x[/]\u202e)";
        string[] interfaces = [.. Names.Select(n => n.Json)];

        string line = FollowCommand.StartRecord(target, interfaces);

        TerminalAssert.Safe(line);
        JsonElement record = JsonDocument.Parse(line).RootElement;
        Assert.Equal(target, record.GetProperty("target").GetString());
        Assert.Equal(interfaces, record.GetProperty("interfaces").EnumerateArray().Select(e => e.GetString()));
    }

    [Theory]
    [InlineData("packets")]
    [InlineData("replay")]
    public void ErrorLine_HostileFileName_Escaped(string command)
    {
        // A damaged file whose name holds ESC[31m, and a missing one whose name holds an OSC title sequence.
        string damaged = Write(HostileCapture()[..^10], "\u001b[31mdamaged");
        string missing = Path.Combine(Path.GetTempPath(), $"vethtrace-\u001b]0;pwned\u0007-{Guid.NewGuid():N}.pcapng");

        var (damagedCode, damagedOutput, damagedError) = Run(command, damaged);
        var (missingCode, missingOutput, missingError) = Run(command, missing);

        Assert.Equal((ExitCode.BadInput, ExitCode.BadInput), (damagedCode, missingCode));
        TerminalAssert.Safe(damagedOutput + damagedError + missingOutput + missingError);
        Assert.Matches(@"^vethtrace: .*vethtrace-\\x1b\[31mdamaged-.*: at byte \d+: ", damagedError);
        Assert.Contains(@"vethtrace-\x1b]0;pwned\x07-", missingError);
    }

    [Fact]
    public void LiveView_HostileNamesAndTitle_EscapedAndMarkupShownLiterally()
    {
        // The names as the pcapng reader gives them (invalid bytes included), correlated for real.
        string path = Write(HostileCapture());
        string[] names;
        using (CaptureFileReader reader = CaptureFileReader.Open(path))
        {
            while (reader.TryReadNext(out _))
            {
            }
            names = [.. reader.Interfaces.Select(i => i.Name)];
        }
        Assert.Equal(Names.Length, names.Length);
        var flow = new VethTrace.Flows.FlowKey(VethTrace.Packets.IpProtocol.Tcp, VethTrace.Packets.IpAddress.Parse("172.17.0.2"), 43512,
            VethTrace.Packets.IpAddress.Parse("198.51.100.2"), 80);
        var correlator = new Correlator(new CorrelatorOptions(), _ => InterfaceRole.Egress);
        for (int i = 0; i < names.Length; i++)
        {
            correlator.Add(new Observation(i * 10_000L, i, i, 42, flow, 98));
        }
        correlator.Complete();
        HopStatistics[] statistics = [.. names.Select(n => new HopStatistics(n + "@:rocket:\u001b[5mns", 1, 0, 0))];

        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(text) });
        console.Profile.Width = 400;
        console.Write(LiveView.Render("\u001b]0;pwned\u0007[bold]web[/] (network mode :rocket:)", TimeSpan.FromSeconds(1), correlator.Report(), names,
            _ => InterfaceRole.Egress, statistics));
        string view = text.ToString();

        TerminalAssert.Safe(view);
        // Markup and Spectre's emoji codes are shown as they are, not interpreted.
        Assert.Contains(@"\x1b]0;pwned\x07[bold]web[/] (network mode :rocket:) · 1s", view);
        Assert.Contains(string.Join(" ─10.0µs→ ", Names.Select(n => n.Shown)), view);
        Assert.Contains($"{Names[1].Shown} → {Names[2].Shown}", view);
        Assert.Contains($"kernel drops: {Names[0].Shown}@:rocket:\\x1b[5mns 0", view);
    }

    [Fact]
    public void PcapngWriter_HostileNames_WrittenByteForByteAndReadBackTheSame()
    {
        // What record does with the kernel's names: they come decoded by LosslessUtf8 (as the netlink parser does).
        string[] names = [.. Names.Select(n => VethTrace.Text.LosslessUtf8.Decode(n.Raw))];
        byte[] packet = SamplePackets.EthernetIpv4Tcp();
        var stream = new MemoryStream();
        using (var writer = new PcapngWriter(stream, leaveOpen: true))
        {
            foreach (string name in names)
            {
                writer.WritePacket(writer.AddInterface(name, "hop", VethTrace.Packets.LinkType.Ethernet, 262_144), 0, packet, packet.Length,
                    VethTrace.Packets.PacketDirection.Unknown);
            }
        }
        byte[] file = stream.ToArray();
        string path = Write(file);

        Assert.All(Names, name => Assert.True(file.AsSpan().IndexOf(name.Raw) >= 0, Convert.ToHexString(name.Raw)));
        using CaptureFileReader reader = CaptureFileReader.Open(path);
        while (reader.TryReadNext(out _))
        {
        }
        Assert.Equal(names, reader.Interfaces.Select(i => i.Name));
    }

    [Fact]
    public void InterfacesListing_HostileKernelAndDockerNames_Escaped()
    {
        // Made-up netlink and Docker records (a real dockerd refuses such names; the kernel and a proxied API do not).
        var host = new NamespaceSnapshot("host", null, "net:[1]",
            [
                LinkRecord("\u001b[2Jbr0", 3, "bridge"),
                LinkRecord("veth\u001b]0;x\u0007", 50, "veth", link: 7, netnsId: 0, master: 3),
                LinkRecord("[red]v[/]\u202e", 51, "veth", link: 9, netnsId: 1),
                LinkRecord("eth\u009b0", 2),
            ],
            [], [new NetlinkRoute(2, 0, null, IPAddress.Parse("192.0.2.1"), 2, 254, 1, 0)], []);
        var container = new DockerContainer(new string('a', 64), "\u001b[31mweb", "running", true, 100, "[red]net[/]\u202e", []);
        var inside = new NamespaceSnapshot("pid:100", "/proc/100/ns/net", "net:[10]",
            [LinkRecord("eth\u001b[8m0", 7, "veth", link: 50, netnsId: 0)], [new NetlinkAddress(7, IPAddress.Parse("172.17.0.2"), 16, "eth0")], [], []);
        var other = new DockerContainer(new string('b', 64), "m\u0007", "running", true, 101, "[red]n\u202e", []);
        var otherNs = new NamespaceSnapshot("pid:101", "/proc/101/ns/net", "net:[11]", [LinkRecord("eth0\u001b[1m", 4, "macvlan", link: 2, netnsId: 0)], [], [], []);

        HostInterfaceListing listing = HostInterfaces.Build(host, [(container, inside), (other, otherNs)], ["\u001b]0;pwned\u0007: namespace gone"]);
        var text = new StringWriter();
        listing.Format(text);
        string table = text.ToString();

        TerminalAssert.Safe(table);
        string[] lines = table.Split('\n');
        Assert.StartsWith(@"\x1b[2Jbr0 ", lines[1]);
        Assert.StartsWith(@"veth\x1b]0;x\x07 veth   \x1b[2Jbr0", lines[2]);
        // Rows are clipped to 80 columns after escaping (the network mode here falls beyond).
        Assert.EndsWith(@"\x1b[31mweb:eth\x1b[8m0 172.17.0…", lines[2]);
        Assert.Contains(lines, line => line.StartsWith(@"[red]v[/]\u202e ", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith(@"-                -      -                -     m\x07 [[red]n\u202e]: eth0\x1b[1", StringComparison.Ordinal));
        Assert.Contains(@"egress: eth\u009b0", lines);
        Assert.Contains(@"warning: \x1b]0;pwned\x07: namespace gone", lines);
    }
}
