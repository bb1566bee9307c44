using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Corpus;

/// <summary>
/// The public test captures of tcpdump and libpcap (issue 12), kept beside the clone at <c>&lt;repo root&gt;/../shared/corpus</c>
/// with <c>SOURCES.tsv</c> naming each file's origin. CI has them there; a developer may not.
/// </summary>
internal static class PublicCorpus
{
    /// <summary>
    /// <c>&lt;repo root&gt;/../shared/corpus</c>; a git worktree one level deeper (/work/wt/NAME beside /work/main) finds
    /// the same folder one level further up, so the nearest <c>shared/corpus</c> above the root is taken.
    /// </summary>
    public static string Directory { get; } = Locate();

    public static string SourcesFile => Path.Combine(Directory, "SOURCES.tsv");

    public static bool IsPresent => File.Exists(SourcesFile);

    /// <summary>CI sets CI=true (GitHub Actions, GitLab, tests/run.sh's callers): there a missing corpus is a failure, not a skip.</summary>
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>The files SOURCES.tsv lists, as paths relative to the corpus folder (tcpdump/x.pcap), in its order.</summary>
    public static IReadOnlyList<string> Files() =>
        [.. File.ReadLines(SourcesFile).Where(line => line.Length > 0 && !line.StartsWith('#')).Select(line => line.Split('\t')[0])];

    private static string Locate()
    {
        string expected = Path.GetFullPath(Path.Combine(CaptureCorpus.RepositoryRoot, "..", "shared", "corpus"));
        for (var dir = new DirectoryInfo(CaptureCorpus.RepositoryRoot).Parent; dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared", "corpus");
            if (File.Exists(Path.Combine(candidate, "SOURCES.tsv")))
            {
                return candidate;
            }
        }
        return expected;
    }
}

/// <summary>
/// A fact over the public corpus: skipped, with the reason, when the corpus is absent outside CI; run (and failing
/// loudly on the missing folder) under CI=true.
/// </summary>
public sealed class CorpusFactAttribute : FactAttribute
{
    public CorpusFactAttribute()
    {
        if (!PublicCorpus.IsPresent && !PublicCorpus.InCi)
        {
            Skip = $"the public capture corpus is not at {PublicCorpus.Directory} (CI has it there; set CI=true to make its absence a failure)";
        }
    }
}
