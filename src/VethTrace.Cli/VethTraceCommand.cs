using System.CommandLine;
using System.CommandLine.Parsing;
using System.Runtime.InteropServices;
using VethTrace.Cli.Commands;
using VethTrace.Text;

namespace VethTrace.Cli;

/// <summary>
/// The command tree; each command builds its own arguments and options beside its handler (Commands/, shared ones in
/// <see cref="CommonOptions"/>). Handlers take writers and return an <see cref="ExitCode"/>, so tests need no process.
/// </summary>
public static class VethTraceCommand
{
    public static ExitCode Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = Build(output, error);
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            return ReportUsageErrors(root, parsed, error);
        }
        return (ExitCode)parsed.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    /// <summary>One line per problem, then a hint: no stack trace, no wall of help text.</summary>
    private static ExitCode ReportUsageErrors(RootCommand root, ParseResult parsed, TextWriter error)
    {
        if (parsed.CommandResult.Command == root)
        {
            // No subcommand recognised: System.CommandLine says both "required command" and "unrecognized"; one line is enough.
            string commands = string.Join(", ", root.Subcommands.Select(c => c.Name));
            string? unknown = parsed.UnmatchedTokens.FirstOrDefault() ?? parsed.Tokens.FirstOrDefault()?.Value;
            error.WriteLine(TerminalText.Escape(unknown is null
                ? $"vethtrace: no command given; the commands are {commands}"
                : unknown.StartsWith('-') ? $"vethtrace: unknown option '{unknown}'" : $"vethtrace: unknown command '{unknown}'; the commands are {commands}"));
            error.WriteLine("Try 'vethtrace --help'.");
            return ExitCode.Usage;
        }
        foreach (ParseError parseError in parsed.Errors)
        {
            // Messages quote the command line, which may hold a name pasted from a capture.
            error.WriteLine(TerminalText.Escape($"vethtrace: {parseError.Message}"));
        }
        error.WriteLine($"Try 'vethtrace {parsed.CommandResult.Command.Name} --help'.");
        return ExitCode.Usage;
    }

    /// <summary>
    /// The process entry: like <see cref="Run"/>, but asynchronous, so SIGINT (Ctrl-C), SIGTERM and SIGHUP become
    /// cancellation; follow and record then stop capturing, record closes its file, and both print their final report.
    /// </summary>
    public static async Task<ExitCode> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var root = Build(output, error);
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            return ReportUsageErrors(root, parsed, error);
        }
        // Ctrl-C and SIGTERM cancel the command instead of killing the process: the handles stop and the final
        // report is printed. A second signal, while that is under way, is left to its default action.
        // Only follow and record watch for cancellation; replay, packets and bench keep the signals' default action
        // (a swallowed Ctrl-C would leave them running to the end).
        bool stoppable = parsed.CommandResult.Command.Name is "follow" or "record";
        using var stop = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            if (stoppable && !stop.IsCancellationRequested)
            {
                context.Cancel = true;
                stop.Cancel();
            }
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        // A closed terminal (SIGHUP) stops a recording the same way, with its file complete, instead of killing it.
        using var hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Cancel);
        var configuration = new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null };
        return (ExitCode)await parsed.InvokeAsync(configuration, stop.Token);
    }

    public static RootCommand Build(TextWriter output, TextWriter error)
    {
        var root = new RootCommand(
            "VethTrace: follow a container's packets across its eth0, its veth, the bridge, NAT and the host's egress, " +
            "and see where the time went.\n\n" +
            "Replay and packets read capture files and need no privilege; follow, record and interfaces need root (or CAP_NET_RAW, " +
            "CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_SYS_PTRACE, granted with setcap: see the README) and the Docker socket. " +
            "Exit codes: 0 success, 1 command line, 2 input file, " +
            "3 container or Docker, 4 capture could not start.\n\nExamples:\n" +
            "  vethtrace replay captures/masquerade-multi.pcapng\n" +
            "  vethtrace packets captures/masquerade-multi.pcapng --by-fingerprint\n" +
            "  vethtrace follow web --duration 10s\n" +
            "  vethtrace record web -o web.pcapng --duration 30s\n" +
            "  vethtrace interfaces\n" +
            "  vethtrace bench");
        root.Subcommands.Add(FollowCommand.Build(output, error, record: false));
        root.Subcommands.Add(FollowCommand.Build(output, error, record: true));
        root.Subcommands.Add(InterfacesCommand.Build(output, error));
        root.Subcommands.Add(ReplayCommand.Build(output, error));
        root.Subcommands.Add(PacketsCommand.Build(output, error));
        root.Subcommands.Add(BenchCommand.Build(output, error));
        VersionText.Attach(root);
        return root;
    }
}
