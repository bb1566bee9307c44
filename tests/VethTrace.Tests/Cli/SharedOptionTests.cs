using VethTrace.Cli;
using VethTrace.Tracing;

namespace VethTrace.Tests.Cli;

/// <summary>replay, follow and record take --window, --filter and --egress with one meaning and one default.</summary>
public sealed class SharedOptionTests
{
    [Theory]
    [InlineData("replay")]
    [InlineData("follow")]
    [InlineData("record")]
    public void Help_Window_SameDefaultInEveryCommand(string command)
    {
        var output = new StringWriter();

        Assert.Equal(ExitCode.Success, VethTraceCommand.Run([command, "--help"], output, new StringWriter()));

        string help = output.ToString();
        int at = help.IndexOf("-w, --window <window>", StringComparison.Ordinal);
        Assert.True(at >= 0, help);
        string entry = help[at..help.IndexOf("\n  -", at + 1, StringComparison.Ordinal)];
        Assert.Contains("[default: 1s]", entry);
        Assert.Equal(1_000_000_000, TraceSessionOptions.DefaultWindowNs);
        Assert.Equal("1s", Durations.Format(TraceSessionOptions.DefaultWindowNs));
    }

    [Theory]
    [InlineData("follow", "web")]
    [InlineData("record", "web", "-o", "x.pcapng")]
    public void Run_WindowNotADuration_OneLineAndHintExitOne(string command, params string[] rest)
    {
        var error = new StringWriter();

        ExitCode code = VethTraceCommand.Run([command, .. rest, "--window", "soon"], new StringWriter(), error);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Equal(["vethtrace: --window expects a positive duration such as 500ms, 1s, 250us or 0.5; got 'soon'", $"Try 'vethtrace {command} --help'."],
            error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData(1_000_000_000L, "1s")]
    [InlineData(1_500_000_000L, "1500ms")]
    [InlineData(250_000L, "250us")]
    [InlineData(7L, "7ns")]
    public void Format_Nanoseconds_ParsesBackToTheSameValue(long nanoseconds, string text)
    {
        Assert.Equal(text, Durations.Format(nanoseconds));
        Assert.Null(Durations.TryParseNanoseconds(text, out long parsed));
        Assert.Equal(nanoseconds, parsed);
    }
}
