using VethTrace.Capture.Files;
using VethTrace.Text;

namespace VethTrace.Cli.Commands;

/// <summary>
/// How replay, packets and bench report problems with their input files: one line each, <c>vethtrace: FILE: at byte N:
/// problem</c> (or <c>vethtrace: FILE: problem</c> for a file that could not be opened, followed once by the usage
/// hint, since a wrong path is a command-line slip); never a stack trace. The line is escaped for the terminal: the
/// path and the message can hold names from the file, and a file's name can hold any byte but '/' and NUL. Damage and
/// a file not opened make the exit code <see cref="ExitCode.BadInput"/>: something could not be read. Warnings
/// (<see cref="CaptureFileError.IsWarning"/>: a link type not decoded, records read despite breaking the format's rules,
/// one line per kind and file with the count) are printed as <c>vethtrace: warning: …</c> and leave it at
/// <see cref="ExitCode.Success"/>: everything was read.
/// </summary>
internal static class InputProblems
{
    public static ExitCode Report(IEnumerable<CaptureFileError> problems, string command, TextWriter error)
    {
        bool unread = false;
        bool notOpened = false;
        foreach (CaptureFileError problem in problems)
        {
            error.WriteLine(TerminalText.Escape(problem.IsWarning ? $"vethtrace: warning: {problem}" : $"vethtrace: {problem}"));
            unread |= !problem.IsWarning;
            notOpened |= problem.Kind == CaptureProblem.NotOpened;
        }
        if (notOpened)
        {
            error.WriteLine($"Try 'vethtrace {command} --help'.");
        }
        return unread ? ExitCode.BadInput : ExitCode.Success;
    }
}
