namespace VethTrace.Cli;

/// <summary>The process exit codes, documented in README.md ("Exit codes").</summary>
public enum ExitCode
{
    /// <summary>The command did what it was asked.</summary>
    Success = 0,
    /// <summary>The command line was wrong: an unknown command or option, a missing argument, a malformed value, a --filter that does not compile.</summary>
    Usage = 1,
    /// <summary>
    /// An input file is missing, unreadable, a directory, not a capture, or damaged (the packets before the damage were still
    /// reported), or declares an interface whose link type VethTrace does not decode (every packet was still read).
    /// </summary>
    BadInput = 2,
    /// <summary>The container cannot be found or is not running, or the Docker socket cannot be reached.</summary>
    ContainerUnavailable = 3,
    /// <summary>
    /// A live capture could not start: a missing capability (checked first), an interface that is not there, an unwritable output
    /// (record's pcapng, or the page of --html, which replay checks too before it reads anything);
    /// or record's output could not be written any more (a full disk): it stopped, its file cut back to the last whole packet.
    /// </summary>
    CaptureFailed = 4,
}
