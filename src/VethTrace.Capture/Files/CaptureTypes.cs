using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>One interface of a capture: a pcapng Interface Description Block, or a classic pcap file's only one.</summary>
public sealed record CaptureInterface(int Id, string Name, string? Description, LinkType LinkType, int SnapLength, int TimestampResolution)
{
    /// <summary>A readable label: the name, with the description when there is one.</summary>
    public override string ToString() => Description is null ? Name : $"{Name} ({Description})";
}

/// <summary>
/// One packet read from a capture file. <see cref="Data"/> points into the reader's own buffer and is
/// valid only until the next read: parse it, or copy it, before reading on.
/// </summary>
public readonly ref struct CaptureRecord
{
    public CaptureRecord(ReadOnlySpan<byte> data, long timestampNs, int interfaceId, LinkType linkType, int originalLength, PacketDirection direction, long fileOffset,
        bool timestampInvalid = false)
    {
        Data = data;
        TimestampNs = timestampNs;
        InterfaceId = interfaceId;
        LinkType = linkType;
        OriginalLength = originalLength;
        Direction = direction;
        FileOffset = fileOffset;
        TimestampInvalid = timestampInvalid;
    }

    public ReadOnlySpan<byte> Data { get; }

    /// <summary>Nanoseconds since the Unix epoch (UTC), after if_tsresol and if_tsoffset.</summary>
    public long TimestampNs { get; }

    /// <summary>Index into <see cref="CaptureFileReader.Interfaces"/>.</summary>
    public int InterfaceId { get; }

    public LinkType LinkType { get; }

    /// <summary>The packet's length on the wire; <see cref="Data"/> may be shorter (the snaplen).</summary>
    public int OriginalLength { get; }

    public PacketDirection Direction { get; }

    /// <summary>Where the record starts in the file.</summary>
    public long FileOffset { get; }

    /// <summary>
    /// The record's own timestamp is invalid (a classic pcap sub-second field of 10^6 µs or 10^9 ns or more, which
    /// tcpdump marks "(invalid us)"): <see cref="TimestampNs"/> is then the previous record's time in the same file
    /// (its whole seconds for a first record), which keeps the packet in its file position, and a latency measured
    /// from it would be made up.
    /// </summary>
    public bool TimestampInvalid { get; }
}

/// <summary>What kind of problem a <see cref="CaptureFileError"/> is.</summary>
public enum CaptureProblem
{
    /// <summary>The bytes are not a sound capture: reading stopped there, and the packets before it were read.</summary>
    Damaged,
    /// <summary>The file could not be opened at all (missing, a directory, no permission); it has no offset.</summary>
    NotOpened,
    /// <summary>Sound, but not something VethTrace can trace (a link type it does not decode); reading went on.</summary>
    Unsupported,
    /// <summary>
    /// Records that break the format's rules but that tcpdump reads (a caplen above the snaplen, caplen 0, an invalid
    /// timestamp): every one was read. One per kind and file, with the count; <see cref="CaptureFileError.Offset"/> is the first.
    /// </summary>
    Irregular,
}

/// <summary>
/// A problem in a capture file: which file, where, and what. For damage, the packets before it were read; for the
/// warnings (<see cref="IsWarning"/>) every packet was.
/// </summary>
public sealed record CaptureFileError(string Path, long Offset, string Message, CaptureProblem Kind = CaptureProblem.Damaged)
{
    /// <summary>Nothing was left unread: an exit status of 0 is right after it.</summary>
    public bool IsWarning => Kind is CaptureProblem.Unsupported or CaptureProblem.Irregular;

    public override string ToString() => Kind switch
    {
        CaptureProblem.NotOpened => $"{Path}: {Message}",
        CaptureProblem.Irregular => $"{Path}: {Message}", // the message names the first offset after the count
        _ => $"{Path}: at byte {Offset}: {Message}",
    };
}

/// <summary>
/// Thrown only when a file cannot be opened as a capture at all (missing, unreadable, wrong magic); a reader of
/// several files reports every one that failed in <see cref="Errors"/>.
/// </summary>
public sealed class CaptureFileException(IReadOnlyList<CaptureFileError> errors) : Exception(errors[0].ToString())
{
    public CaptureFileException(CaptureFileError error)
        : this([error])
    {
    }

    /// <summary>The first problem.</summary>
    public CaptureFileError Error => Errors[0];

    public IReadOnlyList<CaptureFileError> Errors { get; } = errors;
}
