using System.CommandLine;
using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// What a user finds out from the tool itself: every command in --help, the version and the commit it was built
/// from in --version, and bash completion (completions/vethtrace.bash) through System.CommandLine's [suggest] directive.
/// </summary>
public sealed partial class HelpVersionCompletionTests
{
    private static readonly string[] Commands = ["follow", "record", "interfaces", "replay", "packets", "bench"];

    [Fact]
    public void Help_Root_ListsEveryCommand()
    {
        var output = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["--help"], output, new StringWriter()));

        RootCommand root = VethTraceCommand.Build(new StringWriter(), new StringWriter());
        Assert.Equal(Commands.Order(), root.Subcommands.Select(c => c.Name).Order());
        string listing = output.ToString()[output.ToString().IndexOf("Commands:", StringComparison.Ordinal)..];
        foreach (string command in Commands)
        {
            Assert.Matches(new Regex($"^  {command}( <[a-z]+>)? +\\S", RegexOptions.Multiline), listing);
        }
    }

    [Fact]
    public void Readme_CommandsTable_ListsEveryCommandOfHelp()
    {
        // The README's table of commands and docs/usage.md's pasted listing name the commands --help lists (bench
        // was once missing from the README's).
        string[] readme = File.ReadAllLines(Path.Combine(CaptureCorpus.RepositoryRoot, "README.md"));
        var table = readme.Select(l => ReadmeCommandRow().Match(l)).Where(m => m.Success).Select(m => m.Groups["name"].Value);
        Assert.Equal(Commands.Order(), table.Order());

        string usage = File.ReadAllText(Path.Combine(CaptureCorpus.RepositoryRoot, "docs", "usage.md"));
        string listing = usage[usage.IndexOf("Commands:\n", StringComparison.Ordinal)..];
        listing = listing[..listing.IndexOf("```", StringComparison.Ordinal)];
        var listed = Regex.Matches(listing, @"^  (?<name>[a-z]+)\b", RegexOptions.Multiline).Select(m => m.Groups["name"].Value);
        Assert.Equal(Commands.Order(), listed.Order());
    }

    [Fact]
    public void Help_Root_NamesEveryCapabilityTheReadmeGrants()
    {
        // The README's setcap line grants what follow needs; --help must not name fewer (CAP_SYS_PTRACE was missing).
        string readme = File.ReadAllText(Path.Combine(CaptureCorpus.RepositoryRoot, "README.md"));
        Match setcap = Regex.Match(readme, @"^setcap (?<caps>[a-z_,]+)\+eip ", RegexOptions.Multiline);
        Assert.True(setcap.Success, "the README has no setcap line");
        string[] capabilities = setcap.Groups["caps"].Value.Split(',').Select(c => c.ToUpperInvariant()).ToArray();
        Assert.Equal(["CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"], capabilities);

        var output = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["--help"], output, new StringWriter()));
        string description = output.ToString()[..output.ToString().IndexOf("Usage:", StringComparison.Ordinal)];
        foreach (string capability in capabilities)
        {
            Assert.Contains(capability, description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Version_PrintsProjectVersionAndACommitOfThisRepository()
    {
        var output = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["--version"], output, new StringWriter()));

        // The version is the project's <Version>; the commit is the one SourceLink recorded at build time.
        string project = Path.Combine(CaptureCorpus.RepositoryRoot, "src", "VethTrace.Cli", "VethTrace.Cli.csproj");
        string version = XDocument.Load(project).Descendants("Version").Single().Value;
        Match match = VersionLine().Match(output.ToString());
        Assert.True(match.Success, output.ToString());
        Assert.Equal(version, match.Groups["version"].Value);
        var (exit, _, _) = Run("git", CaptureCorpus.RepositoryRoot, "", "cat-file", "-e", match.Groups["commit"].Value + "^{commit}");
        Assert.Equal(0, exit);

        // The executable itself says the same (System.CommandLine's own action would read the entry assembly).
        var (processExit, processOutput, _) = Run(Path.Combine(AppContext.BaseDirectory, "vethtrace"), CaptureCorpus.RepositoryRoot, "", "--version");
        Assert.Equal(0, processExit);
        Assert.Equal(output.ToString(), processOutput);
    }

    [Theory]
    [InlineData("vethtrace rep", "replay")]
    [InlineData("vethtrace replay x.pcap --fo", "--format")]
    [InlineData("vethtrace follow --h", "--help --hop --host-label --html")]
    [InlineData("vethtrace replay x.pcap --format ", "Json Table")]
    [InlineData("vethtrace ", "--help --version -h bench follow interfaces packets record replay")]
    public void Completion_Bash_OffersWhatTheCommandTakes(string line, string expected)
    {
        Assert.Equal(expected, Complete(line));
    }

    [Fact]
    public void Completion_Bash_CommandTypedAsAPath_SameCandidates()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "vethtrace");

        Assert.Equal("--filter --flow-timeout --format", Complete($"{path} replay x.pcap --f"));
    }

    /// <summary>Runs the completion function in a real bash as the shell would for the line typed so far.</summary>
    private static string Complete(string line)
    {
        string script = Path.Combine(CaptureCorpus.RepositoryRoot, "completions", "vethtrace.bash");
        string program = """
            source "$1"
            COMP_LINE=$2; COMP_POINT=${#2}
            read -ra COMP_WORDS <<<"$2"; [[ $2 == *' ' ]] && COMP_WORDS+=("")
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            _vethtrace_complete
            echo "${COMPREPLY[*]}"
            """;
        string path = $"{AppContext.BaseDirectory}:{Environment.GetEnvironmentVariable("PATH")}";
        var (exit, output, error) = Run("bash", CaptureCorpus.RepositoryRoot, path, "-c", program, "bash", script, line);
        Assert.True(exit == 0, error);
        return output.TrimEnd('\n');
    }

    private static (int Exit, string Output, string Error) Run(string file, string directory, string path, params string[] args)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        if (path.Length > 0)
        {
            start.Environment["PATH"] = path;
        }
        using var process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, output.Result, error.Result);
    }

    [GeneratedRegex(@"^\| `vethtrace (?<name>[a-z]+)\b")]
    private static partial Regex ReadmeCommandRow();

    [GeneratedRegex(@"^vethtrace (?<version>\d+\.\d+\.\d+) \(commit (?<commit>[0-9a-f]{40})\)\n?$")]
    private static partial Regex VersionLine();
}
