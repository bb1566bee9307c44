using VethTrace.Cli;
using VethTrace.Cli.Commands;

namespace VethTrace.Tests.Cli;

/// <summary>record's file options (-C, -W, -G): sizes read as tcpdump reads -C, and mistakes are usage errors.</summary>
public sealed class RecordOptionTests
{
    [Theory]
    [InlineData("1", 1_000_000L)] // tcpdump: millions of bytes
    [InlineData("100", 100_000_000L)]
    [InlineData("512k", 524_288L)]
    [InlineData("512K", 524_288L)]
    [InlineData("64m", 67_108_864L)]
    [InlineData("2G", 2_147_483_648L)]
    [InlineData(" 3 ", 3_000_000L)]
    public void TryParseSize_NumberOrSuffix_Bytes(string text, long expected)
    {
        Assert.True(RecordFileOptions.TryParseSize(text, out long bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("10kb")]
    [InlineData("k")]
    [InlineData("99999999999999999999")]
    [InlineData("9999999999999g")]
    public void TryParseSize_NotASize_False(string text)
    {
        Assert.False(RecordFileOptions.TryParseSize(text, out _));
    }

    [Theory]
    [InlineData("vethtrace: --file-size expects a positive size in millions of bytes (100), or with a suffix k, m or g (512k, 64m); got '10kb'", "-C", "10kb")]
    [InlineData("vethtrace: --file-count (-W) needs --file-size (-C) or --rotate-seconds (-G): without rotation there is one file", "-W", "3")]
    [InlineData("vethtrace: --file-count must be at least 1; got 0", "-C", "1", "-W", "0")]
    [InlineData("vethtrace: --rotate-seconds must be at least 1; got 0", "-G", "0")]
    public void Run_BadFileOption_OneLineAndHintExitOne(string line, params string[] options)
    {
        var output = new StringWriter();
        var error = new StringWriter();

        ExitCode code = VethTraceCommand.Run(["record", "web", "-o", "x.pcapng", .. options], output, error);

        Assert.Equal(ExitCode.Usage, code);
        Assert.Equal("", output.ToString());
        Assert.Equal([line, "Try 'vethtrace record --help'."], error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Follow_FileOptions_AreUnknown()
    {
        var error = new StringWriter();

        ExitCode code = VethTraceCommand.Run(["follow", "web", "-C", "10"], new StringWriter(), error);

        Assert.Equal(ExitCode.Usage, code);
    }
    [Fact]
    public void Record_UnwritablePathWithEscapes_OneEscapedLineExitFour()
    {
        // A hostile output name (in a directory that does not exist) is quoted escaped, never raw, in the one error line.
        string path = "/nonexistent-vethtrace-dir/\u001b[2Jweb.pcapng";
        var error = new StringWriter();

        ExitCode code = VethTraceCommand.Run(["record", "--hop", "lo", "-o", path, "-C", "1", "--duration", "1s"], new StringWriter(), error);

        Assert.Equal(ExitCode.CaptureFailed, code);
        string line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("vethtrace: cannot write /nonexistent-vethtrace-dir/\\x1b[2Jweb.pcapng: ", line);
        Assert.DoesNotContain('\u001b', line);
    }
}
