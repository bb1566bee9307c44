using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;

namespace VethTrace.Cli;

/// <summary>
/// What <c>vethtrace --version</c> prints: the project's version and the commit it was built from. The SDK's
/// SourceLink support records the commit as <c>SourceRevisionId</c> and appends it to the informational version
/// (<c>0.1.0+&lt;40 hex digits&gt;</c>); a build outside a git checkout has the version alone.
/// </summary>
public static class VersionText
{
    public static string Line { get; } = Describe(
        typeof(VersionText).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown");

    internal static string Describe(string informationalVersion)
    {
        int plus = informationalVersion.IndexOf('+');
        return plus < 0
            ? $"vethtrace {informationalVersion}"
            : $"vethtrace {informationalVersion[..plus]} (commit {informationalVersion[(plus + 1)..]})";
    }

    /// <summary>
    /// Replaces System.CommandLine's own --version action, which reads the entry assembly: the test host's when the
    /// command runs in-process.
    /// </summary>
    public static void Attach(RootCommand root)
    {
        foreach (VersionOption option in root.Options.OfType<VersionOption>())
        {
            option.Action = new PrintVersion();
        }
    }

    private sealed class PrintVersion : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(Line);
            return (int)ExitCode.Success;
        }
    }
}
