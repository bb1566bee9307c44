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
}
