namespace VethTrace.Capture.Files;

/// <summary>
/// When <see cref="RotatingPcapngWriter"/> starts a new file, how many it keeps, and how often it flushes: tcpdump's
/// <c>-C</c>, <c>-W</c> and <c>-G</c>, and its <c>-U</c> made periodic.
/// </summary>
public sealed record RotationOptions
{
    /// <summary>No rotation, no ring; a flush every <see cref="DefaultFlushInterval"/>.</summary>
    public static readonly RotationOptions None = new();

    /// <summary>
    /// Half a second: a process killed without warning (SIGKILL, the OOM killer, a crash) loses at most the packets
    /// of the last half second, plus however late the flush thread is scheduled on a loaded machine.
    /// </summary>
    public static readonly TimeSpan DefaultFlushInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Start a new file before a packet that would take the current one past this many bytes; 0 for no limit. A file
    /// holds at least one packet, so it is larger only when its section and interface blocks and that one packet are.
    /// </summary>
    public long MaxFileBytes { get; init; }

    /// <summary>
    /// Start a new file at the first packet whose timestamp is this many nanoseconds or more after the first packet of
    /// the current one; 0 for never. Nothing is rotated while no packet arrives, as with tcpdump's <c>-G</c>.
    /// </summary>
    public long RotateEveryNs { get; init; }

    /// <summary>
    /// With rotation, keep this many files, numbered 0 to N-1, and overwrite the oldest (a ring, tcpdump's <c>-W</c>);
    /// 0 to number the files 1, 2, 3… after the first with no limit.
    /// </summary>
    public int MaxFiles { get; init; }

    /// <summary>How often a background thread hands the buffered blocks to the file; <see cref="TimeSpan.Zero"/> for never (the caller flushes).</summary>
    public TimeSpan FlushInterval { get; init; } = DefaultFlushInterval;

    /// <summary>Whether files are numbered: a size or time limit is set.</summary>
    public bool Rotates => MaxFileBytes > 0 || RotateEveryNs > 0;
}
