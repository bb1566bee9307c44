using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>
/// Writes a little-endian classic pcap file (draft-ietf-opsawg-pcap-04) with the nanosecond magic
/// 0xa1b23c4d, so timestamps keep their nanoseconds. The format has one link type and no interface names
/// or directions: for several hops use <see cref="PcapngWriter"/>. Thread-safe, and
/// <see cref="WritePacket"/> allocates nothing, as <see cref="PcapngWriter"/>; an I/O error leaves the file cut back
/// to its last whole record, as there.
/// </summary>
public sealed class PcapWriter : IDisposable
{
    /// <summary>The longest packet data accepted: <see cref="CaptureFileReader.MaxCaptureLength"/>, so every file written can be read back.</summary>
    public const int MaxPacketLength = CaptureFileReader.MaxCaptureLength;

    private const uint MagicNanoseconds = 0xA1B23C4D;

    /// <summary>The file header (pcap draft section 4).</summary>
    private static class FileHeaderField
    {
        public const int Magic = 0;
        public const int MajorVersion = Magic + 4;
        public const int MinorVersion = MajorVersion + 2;
        public const int Reserved1 = MinorVersion + 2; // "thiszone" in older documents; always 0
        public const int Reserved2 = Reserved1 + 4; // "sigfigs"; always 0
        public const int SnapLength = Reserved2 + 4;
        public const int LinkType = SnapLength + 4;
        public const int Length = LinkType + 4;
    }

    /// <summary>A packet record's header (pcap draft section 5).</summary>
    private static class RecordField
    {
        public const int Seconds = 0;
        public const int Nanoseconds = Seconds + 4;
        public const int CapturedLength = Nanoseconds + 4;
        public const int OriginalLength = CapturedLength + 4;
        public const int Data = OriginalLength + 4;
    }

    // The seconds field is unsigned 32 bits: the last second it holds is in 2106.
    private const long MaxTimestampNs = (uint.MaxValue + 1L) * 1_000_000_000L - 1;

    private readonly Lock _lock = new();
    private readonly CaptureOutput _output;
    private long _packetsWritten;

    /// <summary>Writes the file header to <paramref name="stream"/> (buffered: see <see cref="Flush"/>).</summary>
    /// <param name="snapLength">The longest packet data the file keeps; positive (the pcap draft gives 0 no meaning).</param>
    /// <param name="leaveOpen">Keep the stream open after <see cref="Dispose"/>.</param>
    public PcapWriter(Stream stream, LinkType linkType, int snapLength, bool leaveOpen = false)
    {
        // The upper bits of the link type field carry the FCS length (pcap draft section 4).
        if (linkType.Value > 0x03FF_FFFF)
        {
            throw new ArgumentOutOfRangeException(nameof(linkType), linkType, "pcap link types are 26 bits");
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(snapLength);
        LinkType = linkType;
        SnapLength = snapLength;
        _output = new CaptureOutput(stream, leaveOpen, RecordLengthAt);
        Span<byte> header = _output.Reserve(FileHeaderField.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FileHeaderField.Magic..], MagicNanoseconds);
        BinaryPrimitives.WriteUInt16LittleEndian(header[FileHeaderField.MajorVersion..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[FileHeaderField.MinorVersion..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FileHeaderField.Reserved1..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FileHeaderField.Reserved2..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FileHeaderField.SnapLength..], (uint)snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FileHeaderField.LinkType..], linkType.Value);
        _output.Commit(FileHeaderField.Length);
    }

    public LinkType LinkType { get; }

    public int SnapLength { get; }

    /// <summary>The packets the stream holds: those written and flushed, or after a failed write those that reached it whole.</summary>
    public long PacketsInStream
    {
        get
        {
            lock (_lock)
            {
                return _output.PacketsWritten;
            }
        }
    }

    /// <summary>The packets accepted by <see cref="WritePacket"/>, in the stream or still buffered.</summary>
    public long PacketsWritten
    {
        get
        {
            lock (_lock)
            {
                return _packetsWritten;
            }
        }
    }

    /// <summary>Creates (or truncates) <paramref name="path"/> and writes the file header.</summary>
    public static PcapWriter Create(string path, LinkType linkType, int snapLength)
    {
        FileStream file = CaptureOutput.CreateFile(path);
        try
        {
            return new PcapWriter(file, linkType, snapLength);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Writes one packet record; <paramref name="data"/> is copied before the call returns.</summary>
    /// <param name="timestampNs">Nanoseconds since the Unix epoch (UTC), from 1970 to 2106.</param>
    /// <param name="data">The captured bytes: no longer than <see cref="SnapLength"/> and <see cref="MaxPacketLength"/>.</param>
    /// <param name="originalLength">The length on the wire: at least <paramref name="data"/>'s.</param>
    public void WritePacket(long timestampNs, ReadOnlySpan<byte> data, int originalLength)
    {
        if ((ulong)timestampNs > MaxTimestampNs) // unsigned: a negative timestamp fails here too
        {
            ThrowArgumentOutOfRange(nameof(timestampNs), "a pcap timestamp holds 1970 to 2106");
        }
        if (data.Length > SnapLength || data.Length > MaxPacketLength)
        {
            ThrowArgumentOutOfRange(nameof(data), "packet data is longer than the snap length");
        }
        if (originalLength < data.Length)
        {
            ThrowArgumentOutOfRange(nameof(originalLength), "the original length is shorter than the captured data");
        }
        int length = RecordField.Data + data.Length;
        lock (_lock)
        {
            Span<byte> record = _output.Reserve(length);
            BinaryPrimitives.WriteUInt32LittleEndian(record[RecordField.Seconds..], (uint)(timestampNs / 1_000_000_000L));
            BinaryPrimitives.WriteUInt32LittleEndian(record[RecordField.Nanoseconds..], (uint)(timestampNs % 1_000_000_000L));
            BinaryPrimitives.WriteUInt32LittleEndian(record[RecordField.CapturedLength..], (uint)data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(record[RecordField.OriginalLength..], (uint)originalLength);
            data.CopyTo(record[RecordField.Data..]);
            _output.Commit(length, packet: true);
            _packetsWritten++;
        }
    }

    /// <summary>Hands everything written so far to the stream, and flushes the stream.</summary>
    public void Flush()
    {
        lock (_lock)
        {
            _output.Flush();
        }
    }

    /// <summary>Flushes, then closes the stream unless the writer was made with leaveOpen. A second call does nothing.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _output.Dispose();
        }
    }

    /// <summary>The file header at offset 0, then records: a header and caplen bytes of data (pcap draft sections 4, 5).</summary>
    private static int RecordLengthAt(ReadOnlySpan<byte> record, long fileOffset, out bool packet)
    {
        packet = fileOffset != 0;
        return packet ? RecordField.Data + (int)BinaryPrimitives.ReadUInt32LittleEndian(record[RecordField.CapturedLength..]) : FileHeaderField.Length;
    }

    [DoesNotReturn]
    private static void ThrowArgumentOutOfRange(string parameterName, string message) =>
        throw new ArgumentOutOfRangeException(parameterName, message);
}
