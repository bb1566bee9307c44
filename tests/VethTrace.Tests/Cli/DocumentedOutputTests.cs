using System.Diagnostics;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Cli;

/// <summary>
/// The README and docs/ paste real output under the command that printed it (`$ vethtrace replay captures/…`). Every
/// such command on a shipped capture (replay and packets: their output depends on the file alone) is run again here,
/// through bash as written (pipes included), with this build's vethtrace, and must print exactly the lines the page
/// shows. So a change of the report that leaves a page behind fails here, and no page shows output nobody ran.
/// Live commands (follow, record, docker, setcap), bench (timings) and files outside captures/ are not checked.
/// </summary>
public sealed class DocumentedOutputTests
{
    /// <summary>The README and every page of docs/ (a page added later is checked without being listed here).</summary>
    private static readonly string[] Pages =
    [
        "README.md",
        .. Directory.GetFiles(Path.Combine(CaptureCorpus.RepositoryRoot, "docs"), "*.md")
            .Select(f => "docs/" + Path.GetFileName(f)).Order(StringComparer.Ordinal),
    ];

    public static TheoryData<string, int, string> Commands()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var (page, line, command, _) in Documented())
        {
            data.Add(page, line, command);
        }
        return data;
    }

    [Fact]
    public void Pages_ShowCommandsOnShippedCaptures()
    {
        // The README's set-up command, a replay scenario and the JSON example must stay among the checked ones.
        var documented = Documented().ToList();
        Assert.Contains(documented, d => d.Page == "README.md" && d.Command.StartsWith("dotnet run --project src/VethTrace.Cli -c Release -- replay captures/masquerade-multi.pcapng", StringComparison.Ordinal));
        Assert.Contains(documented, d => d.Page == "README.md" && d.Command.StartsWith("vethtrace replay captures/replay/firewall-drop.pcapng", StringComparison.Ordinal));
        Assert.Contains(documented, d => d.Page == "README.md" && d.Command.StartsWith("vethtrace replay captures/masquerade-multi.pcapng --format json", StringComparison.Ordinal));
        // Pages beyond the first six are found by themselves: the HTML report's and the sampling example.
        Assert.Contains(documented, d => d.Page == "docs/html-report.md");
        Assert.Contains(documented, d => d.Page == "docs/performance.md");
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Command_PrintsWhatThePageShows(string page, int line, string command)
    {
        var (_, _, _, expected) = Documented().Single(d => d.Page == page && d.Line == line);
        // `dotnet run … --` is the set-up command's way to run this same build.
        string script = "vethtrace() { \"$VETHTRACE\" \"$@\"; }\n{ " +
            command.Replace("dotnet run --project src/VethTrace.Cli -c Release -- ", "vethtrace ", StringComparison.Ordinal) + "\n} 2>&1";
        var start = new ProcessStartInfo("bash", ["-c", script])
        {
            WorkingDirectory = CaptureCorpus.RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["VETHTRACE"] = Path.Combine(AppContext.BaseDirectory, "vethtrace");
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(120_000), $"{page}:{line}: {command} did not finish");

        Assert.Equal(expected, output.TrimEnd('\n').Split('\n'));
    }

    /// <summary>Every `$ vethtrace replay|packets …captures/…` line in a fenced block, with the lines up to the next `$ ` or the fence.</summary>
    private static IEnumerable<(string Page, int Line, string Command, string[] Expected)> Documented()
    {
        foreach (string page in Pages)
        {
            string[] lines = File.ReadAllLines(Path.Combine(CaptureCorpus.RepositoryRoot, page));
            bool fenced = false;
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].StartsWith("```", StringComparison.Ordinal))
                {
                    fenced = !fenced;
                    continue;
                }
                if (!fenced || !IsChecked(lines[i]))
                {
                    continue;
                }
                int end = i + 1;
                while (end < lines.Length && !lines[end].StartsWith("$ ", StringComparison.Ordinal) && !lines[end].StartsWith("```", StringComparison.Ordinal))
                {
                    end++;
                }
                string[] expected = lines[(i + 1)..end];
                while (expected.Length > 0 && expected[^1].Length == 0)
                {
                    expected = expected[..^1];
                }
                yield return (page, i + 1, lines[i][2..], expected);
                i = end - 1;
            }
        }
    }

    private static bool IsChecked(string line) =>
        (line.StartsWith("$ vethtrace replay captures/", StringComparison.Ordinal)
            || line.StartsWith("$ vethtrace packets captures/", StringComparison.Ordinal)
            || line.StartsWith("$ dotnet run --project src/VethTrace.Cli -c Release -- replay captures/", StringComparison.Ordinal))
        && !line.Contains('#', StringComparison.Ordinal);
}
