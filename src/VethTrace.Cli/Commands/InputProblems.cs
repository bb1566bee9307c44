using VethTrace.Capture.Files;
using VethTrace.Text;

namespace VethTrace.Cli.Commands;

/// <summary>
/// How replay and packets report problems with their input files: one line each, <c>vethtrace: FILE: at byte N:
/// problem</c> (or <c>vethtrace: FILE: problem</c> for a file that could not be opened, followed once by the usage
/// hint, since a wrong path is a command-line slip); never a stack trace. The line is escaped for the terminal: the
/// path and the message can hold names from the file, and a file's name can hold any byte but '/' and NUL. Any of
/// them makes the exit code
/// <see cref="ExitCode.BadInput"/>.
/// </summary>
internal static class InputProblems
{
    public static ExitCode Report(IEnumerable<CaptureFileError> problems, string command, TextWriter error)
    {
        bool any = false;
        bool notOpened = false;
        foreach (CaptureFileError problem in problems)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: {problem}"));
            any = true;
            notOpened |= problem.Kind == CaptureProblem.NotOpened;
        }
        if (notOpened)
        {
            error.WriteLine($"Try 'vethtrace {command} --help'.");
        }
        return any ? ExitCode.BadInput : ExitCode.Success;
    }
}
