using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// --duration and --window: a number with a unit, or a bare number of seconds as timeout(1), sleep(1), tcpdump -G and
/// ping -w take it.
/// </summary>
public sealed class DurationsTests
{
    [Theory]
    [InlineData("12", 12_000_000_000L)]
    [InlineData("0.5", 500_000_000L)]
    [InlineData(" 3 ", 3_000_000_000L)]
    [InlineData("1e-3", 1_000_000L)]
    [InlineData("10s", 10_000_000_000L)]
    [InlineData("500ms", 500_000_000L)]
    [InlineData("1500us", 1_500_000L)]
    [InlineData("1500µs", 1_500_000L)]
    [InlineData("250ns", 250L)]
    public void TryParseNanoseconds_NumberWithOrWithoutUnit_Nanoseconds(string text, long expected)
    {
        Assert.True(Durations.TryParseNanoseconds(text, out long ns) is null, text);
        Assert.Equal(expected, ns);
    }

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("soon")]
    [InlineData("1,5")]
    [InlineData("12m")]
    [InlineData("0x10")]
    [InlineData("Infinity")]
    [InlineData("NaN")]
    [InlineData("1e300")]
    public void TryParseNanoseconds_NotADuration_Problem(string text)
    {
        Assert.NotNull(Durations.TryParseNanoseconds(text, out _));
    }

    [Fact]
    public void Replay_WindowBareSeconds_SameReportAsWithUnit()
    {
        string capture = CaptureCorpus.PathOf("masquerade-multi.pcapng");
        var withUnit = new StringWriter();
        var bare = new StringWriter();
        var error = new StringWriter();

        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", capture, "--window", "500ms", "--format", "json"], withUnit, error));
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", capture, "--window", "0.5", "--format", "json"], bare, error));

        Assert.Equal("", error.ToString());
        Assert.Equal(withUnit.ToString(), bare.ToString());
    }

    [Theory]
    [InlineData("follow", "--hop", "lo", "--duration", "12")]
    [InlineData("follow", "--hop", "lo", "--duration", "0.5")]
    [InlineData("record", "--hop", "lo", "-o", "x.pcapng", "--duration", "2")]
    [InlineData("bench", "--duration", "1")]
    [InlineData("replay", "x.pcap", "--window", "2")]
    [InlineData("follow", "--hop", "lo", "--window", "0.25")]
    [InlineData("replay", "x.pcap", "--flow-timeout", "udp=30")]
    public void Parse_BareSeconds_NoUsageError(params string[] args)
    {
        var parsed = VethTraceCommand.Build(new StringWriter(), new StringWriter()).Parse(args);

        Assert.Empty(parsed.Errors);
    }

    [Fact]
    public void Replay_FlowTimeoutBareSeconds_SameReportAsWithUnit()
    {
        // --flow-timeout takes the duration syntax of --window and --duration: a bare number is seconds.
        string capture = CaptureCorpus.PathOf("masquerade-multi.pcapng");
        var withUnit = new StringWriter();
        var bare = new StringWriter();
        var error = new StringWriter();

        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", capture, "--flow-timeout", "udp=1s", "--format", "json"], withUnit, error));
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", capture, "--flow-timeout", "udp=1", "--format", "json"], bare, error));

        Assert.Equal("", error.ToString());
        Assert.Equal(withUnit.ToString(), bare.ToString());
    }

    [Theory]
    [InlineData("follow", "--duration", "0")]
    [InlineData("follow", "--duration", "-3")]
    [InlineData("replay", "--window", "0")]
    public void Run_ZeroOrNegativeBareSeconds_UsageError(string command, string option, string value)
    {
        var error = new StringWriter();
        string[] args = command == "follow" ? [command, "--hop", "lo", option, value] : [command, "x.pcap", option, value];

        ExitCode code = VethTraceCommand.Run(args, new StringWriter(), error);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Contains($"{option} expects a positive duration", error.ToString());
    }
}
