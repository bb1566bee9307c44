namespace VethTrace.Cli;

/// <summary>The process exit codes, documented in README.md ("Exit codes").</summary>
public enum ExitCode
{
    /// <summary>The command did what it was asked.</summary>
    Success = 0,
    /// <summary>The command line was wrong: an unknown option, a missing argument, a malformed value.</summary>
    Usage = 1,
    /// <summary>An input file is missing, unreadable, not a capture, or damaged (the packets before the damage were still reported).</summary>
    BadInput = 2,
    /// <summary>The container cannot be found or is not running, or the Docker socket cannot be reached.</summary>
    ContainerUnavailable = 3,
    /// <summary>A live capture could not start: a missing capability, an interface that is not there.</summary>
    CaptureFailed = 4,
}
