using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text;
using VethTrace.Packets;
using VethTrace.Text;

namespace VethTrace.Capture.Files;

/// <summary>
/// Writes a little-endian pcapng file (draft-ietf-opsawg-pcapng-03) with one section, any number of
/// interfaces, and one Enhanced Packet Block per packet: what <c>vethtrace record</c> writes, one interface
/// per hop, and what <see cref="CaptureFileReader"/>, Wireshark and tcpdump read back.
/// <list type="bullet">
/// <item>Every interface has if_tsresol 9, so timestamps keep their nanoseconds.</item>
/// <item>A packet's direction goes in epb_flags; <see cref="PacketDirection.Unknown"/> writes no option.</item>
/// <item>Thread-safe: capture threads may share one writer; each call writes whole blocks, never interleaved.</item>
/// <item><see cref="WritePacket"/> allocates nothing: blocks are laid out in one reused 1 MiB buffer,
/// which goes to the stream when full, on <see cref="Flush"/> and on <see cref="Dispose"/>; only whole blocks
/// ever do, so a file flushed and then abandoned (the process killed) reads to its last block.</item>
/// </list>
/// Arguments a correct caller never passes (an unknown interface, data longer than the snap length) throw
/// <see cref="ArgumentException"/>s and write nothing. An I/O error from the stream (a full disk) propagates as an
/// <see cref="IOException"/>, after the stream is cut back to the last whole block that reached it; the writer is
/// then failed (<see cref="Failure"/>): every later write throws, and <see cref="Dispose"/> only closes the stream.
/// </summary>
public sealed class PcapngWriter : IDisposable
{
    /// <summary>The longest packet data accepted: <see cref="CaptureFileReader.MaxCaptureLength"/>, so every file written can be read back.</summary>
    public const int MaxPacketLength = CaptureFileReader.MaxCaptureLength;

    /// <summary>The shb_userappl of every file written.</summary>
    public const string UserApplication = "vethtrace";

    /// <summary>if_tsresol 9: a negative power of ten (high bit clear), so timestamp units are nanoseconds (pcapng section 4.2).</summary>
    public const int TimestampResolution = 9;

    private const uint ByteOrderMagic = 0x1A2B3C4D;

    /// <summary>Block types (pcapng section 10.1).</summary>
    private static class BlockType
    {
        public const uint SectionHeader = 0x0A0D0D0A;
        public const uint InterfaceDescription = 1;
        public const uint EnhancedPacket = 6;
    }

    /// <summary>Option codes (pcapng sections 3.5, 4.1, 4.2, 4.3); each block type has its own code space.</summary>
    private static class OptionCode
    {
        public const ushort EndOfOptions = 0;
        public const ushort ShbOs = 3;
        public const ushort ShbUserApplication = 4;
        public const ushort IfName = 2;
        public const ushort IfDescription = 3;
        public const ushort IfTsResol = 9;
        public const ushort EpbFlags = 2;
    }

    /// <summary>Every block: type, total length, body, total length again (pcapng section 3.1).</summary>
    private static class BlockField
    {
        public const int Type = 0;
        public const int TotalLength = Type + 4;
        public const int Body = TotalLength + 4;
        public const int TrailerLength = 4;
        public const int Overhead = Body + TrailerLength;
    }

    /// <summary>Section Header Block (pcapng section 4.1).</summary>
    private static class SectionHeaderField
    {
        public const int ByteOrderMagic = BlockField.Body;
        public const int MajorVersion = ByteOrderMagic + 4;
        public const int MinorVersion = MajorVersion + 2;
        public const int SectionLength = MinorVersion + 2;
        public const int Options = SectionLength + 8;
    }

    /// <summary>Interface Description Block (pcapng section 4.2).</summary>
    private static class InterfaceDescriptionField
    {
        public const int LinkType = BlockField.Body;
        public const int Reserved = LinkType + 2;
        public const int SnapLength = Reserved + 2;
        public const int Options = SnapLength + 4;
    }

    /// <summary>Enhanced Packet Block (pcapng section 4.3).</summary>
    private static class EnhancedPacketField
    {
        public const int InterfaceId = BlockField.Body;
        public const int TimestampHigh = InterfaceId + 4;
        public const int TimestampLow = TimestampHigh + 4;
        public const int CapturedLength = TimestampLow + 4;
        public const int OriginalLength = CapturedLength + 4;
        public const int Data = OriginalLength + 4;
    }

    /// <summary>An option: code (2), value length (2), value padded to 32 bits (pcapng section 3.5).</summary>
    private const int OptionHeaderLength = 4;

    /// <summary>epb_flags (a 32-bit value) then opt_endofopt.</summary>
    private const int DirectionOptionsLength = OptionHeaderLength + 4 + OptionHeaderLength;

    private readonly Lock _lock = new();
    private readonly CaptureOutput _output;
    // Per interface id, its snap length (0: no limit): all WritePacket needs to check a packet against it.
    private readonly List<int> _snapLengths = [];
    private long _packetsWritten;

    /// <summary>Writes the section header to <paramref name="stream"/> (buffered: see <see cref="Flush"/>).</summary>
    /// <param name="leaveOpen">Keep the stream open after <see cref="Dispose"/>.</param>
    public PcapngWriter(Stream stream, bool leaveOpen = false)
    {
        _output = new CaptureOutput(stream, leaveOpen, BlockLengthAt);
        WriteSectionHeader();
    }

    /// <summary>The number of interfaces added; the next one gets this id.</summary>
    public int InterfaceCount
    {
        get
        {
            lock (_lock)
            {
                return _snapLengths.Count;
            }
        }
    }

    /// <summary>The file's length so far: the blocks in the stream and those still buffered.</summary>
    public long Length
    {
        get
        {
            lock (_lock)
            {
                return _output.Length;
            }
        }
    }

    /// <summary>The I/O error that failed a write (see the class summary), or null.</summary>
    public IOException? Failure
    {
        get
        {
            lock (_lock)
            {
                return _output.Failure;
            }
        }
    }

    /// <summary>The bytes <see cref="WritePacket"/> adds to the file for a packet of <paramref name="dataLength"/> bytes.</summary>
    public static int PacketBlockLength(int dataLength, PacketDirection direction) =>
        EnhancedPacketField.Data + ((dataLength + 3) & ~3) + (direction == PacketDirection.Unknown ? 0 : DirectionOptionsLength) + BlockField.TrailerLength;

    /// <summary>
    /// The packets the stream holds: those of <see cref="PacketsWritten"/> not still in the buffer, or, after a failed
    /// write, those that reached the file whole.
    /// </summary>
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

    /// <summary>Creates (or truncates) <paramref name="path"/> and writes the section header.</summary>
    public static PcapngWriter Create(string path)
    {
        FileStream file = CaptureOutput.CreateFile(path);
        try
        {
            return new PcapngWriter(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Declares an interface (an Interface Description Block) and returns its id for <see cref="WritePacket"/>.
    /// For a hop, <paramref name="name"/> is the interface's name (<c>veth1eae2a7</c>, <c>eth0</c>) and
    /// <paramref name="description"/> says what it is to the trace, such as its role and the container it belongs to.
    /// </summary>
    /// <param name="snapLength">The longest packet data the interface keeps; 0 for no limit (pcapng section 4.2).</param>
    public int AddInterface(string name, string? description, LinkType linkType, int snapLength)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        // The IDB's LinkType field is 16 bits (pcapng section 4.2), narrower than pcap's 32.
        if (linkType.Value > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(linkType), linkType, "pcapng link types are 16 bits");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(snapLength);
        // Strings are UTF-8 and not zero-terminated (pcapng section 3.5).
        byte[] nameBytes = OptionValue(name, nameof(name));
        byte[] descriptionBytes = string.IsNullOrEmpty(description) ? [] : OptionValue(description, nameof(description));

        int length = InterfaceDescriptionField.Options
            + OptionLength(nameBytes.Length)
            + (descriptionBytes.Length > 0 ? OptionLength(descriptionBytes.Length) : 0)
            + OptionLength(1)
            + OptionHeaderLength
            + BlockField.TrailerLength;
        lock (_lock)
        {
            Span<byte> block = _output.Reserve(length);
            WriteBlockFrame(block, BlockType.InterfaceDescription);
            BinaryPrimitives.WriteUInt16LittleEndian(block[InterfaceDescriptionField.LinkType..], (ushort)linkType.Value);
            BinaryPrimitives.WriteUInt16LittleEndian(block[InterfaceDescriptionField.Reserved..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(block[InterfaceDescriptionField.SnapLength..], (uint)snapLength);
            int at = InterfaceDescriptionField.Options;
            at += WriteOption(block[at..], OptionCode.IfName, nameBytes);
            if (descriptionBytes.Length > 0)
            {
                at += WriteOption(block[at..], OptionCode.IfDescription, descriptionBytes);
            }
            at += WriteOption(block[at..], OptionCode.IfTsResol, [TimestampResolution]);
            at += WriteOption(block[at..], OptionCode.EndOfOptions, []);
            _output.Commit(length);
            _snapLengths.Add(snapLength);
            return _snapLengths.Count - 1;
        }
    }

    /// <summary>
    /// Writes one packet (an Enhanced Packet Block). <paramref name="data"/> is copied before the call
    /// returns, so it may point into a capture library's buffer.
    /// </summary>
    /// <param name="interfaceId">An id from <see cref="AddInterface"/>.</param>
    /// <param name="timestampNs">Nanoseconds since the Unix epoch (UTC); not negative, as pcapng timestamps are unsigned.</param>
    /// <param name="data">The captured bytes: no longer than the interface's snap length and <see cref="MaxPacketLength"/>.</param>
    /// <param name="originalLength">The length on the wire: at least <paramref name="data"/>'s.</param>
    public void WritePacket(int interfaceId, long timestampNs, ReadOnlySpan<byte> data, int originalLength, PacketDirection direction)
    {
        if (timestampNs < 0)
        {
            ThrowArgumentOutOfRange(nameof(timestampNs), "timestamps before 1970 cannot be written");
        }
        if (data.Length > MaxPacketLength)
        {
            ThrowArgumentOutOfRange(nameof(data), "packet data is longer than the largest packet a reader accepts");
        }
        if (originalLength < data.Length)
        {
            ThrowArgumentOutOfRange(nameof(originalLength), "the original length is shorter than the captured data");
        }
        if (direction is not (PacketDirection.Unknown or PacketDirection.Inbound or PacketDirection.Outbound))
        {
            ThrowArgumentOutOfRange(nameof(direction), "not a packet direction");
        }
        int padded = (data.Length + 3) & ~3;
        int length = PacketBlockLength(data.Length, direction);
        lock (_lock)
        {
            // One unsigned compare covers negative ids too.
            if ((uint)interfaceId >= (uint)_snapLengths.Count)
            {
                ThrowArgumentOutOfRange(nameof(interfaceId), "no interface has this id");
            }
            int snapLength = _snapLengths[interfaceId];
            if (snapLength > 0 && data.Length > snapLength)
            {
                ThrowArgumentOutOfRange(nameof(data), "packet data is longer than the interface's snap length");
            }
            Span<byte> block = _output.Reserve(length);
            WriteBlockFrame(block, BlockType.EnhancedPacket);
            ulong units = (ulong)timestampNs; // if_tsresol 9: one unit per nanosecond
            BinaryPrimitives.WriteUInt32LittleEndian(block[EnhancedPacketField.InterfaceId..], (uint)interfaceId);
            BinaryPrimitives.WriteUInt32LittleEndian(block[EnhancedPacketField.TimestampHigh..], (uint)(units >> 32));
            BinaryPrimitives.WriteUInt32LittleEndian(block[EnhancedPacketField.TimestampLow..], (uint)units);
            BinaryPrimitives.WriteUInt32LittleEndian(block[EnhancedPacketField.CapturedLength..], (uint)data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(block[EnhancedPacketField.OriginalLength..], (uint)originalLength);
            data.CopyTo(block[EnhancedPacketField.Data..]);
            int at = EnhancedPacketField.Data + data.Length;
            // The reused buffer holds an earlier block's bytes: the padding must be zeroed (section 3.1).
            block[at..(EnhancedPacketField.Data + padded)].Clear();
            at = EnhancedPacketField.Data + padded;
            if (direction != PacketDirection.Unknown)
            {
                // epb_flags bits 0-1: 01 inbound, 10 outbound (pcapng section 4.3.1), the enum's own values.
                BinaryPrimitives.WriteUInt16LittleEndian(block[at..], OptionCode.EpbFlags);
                BinaryPrimitives.WriteUInt16LittleEndian(block[(at + 2)..], 4);
                BinaryPrimitives.WriteUInt32LittleEndian(block[(at + 4)..], (uint)direction);
                at += OptionHeaderLength + 4;
                BinaryPrimitives.WriteUInt32LittleEndian(block[at..], OptionCode.EndOfOptions); // code 0, length 0
            }
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

    private void WriteSectionHeader()
    {
        byte[] application = Encoding.UTF8.GetBytes(UserApplication);
        byte[] os = OptionValue(RuntimeInformation.OSDescription, "shb_os");
        int length = SectionHeaderField.Options
            + OptionLength(application.Length)
            + (os.Length > 0 ? OptionLength(os.Length) : 0)
            + OptionHeaderLength
            + BlockField.TrailerLength;
        Span<byte> block = _output.Reserve(length);
        WriteBlockFrame(block, BlockType.SectionHeader);
        BinaryPrimitives.WriteUInt32LittleEndian(block[SectionHeaderField.ByteOrderMagic..], ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(block[SectionHeaderField.MajorVersion..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(block[SectionHeaderField.MinorVersion..], 0);
        // -1: the section's length is not known up front, and the writer does not seek back (section 4.1).
        BinaryPrimitives.WriteInt64LittleEndian(block[SectionHeaderField.SectionLength..], -1);
        int at = SectionHeaderField.Options;
        if (os.Length > 0)
        {
            at += WriteOption(block[at..], OptionCode.ShbOs, os);
        }
        at += WriteOption(block[at..], OptionCode.ShbUserApplication, application);
        WriteOption(block[at..], OptionCode.EndOfOptions, []);
        _output.Commit(length);
    }

    /// <summary>Every block starts with its type and its total length (section 3.1), whatever the type.</summary>
    private static int BlockLengthAt(ReadOnlySpan<byte> block, long fileOffset, out bool packet)
    {
        packet = BinaryPrimitives.ReadUInt32LittleEndian(block[BlockField.Type..]) == BlockType.EnhancedPacket;
        return (int)BinaryPrimitives.ReadUInt32LittleEndian(block[BlockField.TotalLength..]);
    }

    /// <summary>Writes the block type and its total length at both ends; the block is the whole span.</summary>
    private static void WriteBlockFrame(Span<byte> block, uint type)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(block[BlockField.Type..], type);
        BinaryPrimitives.WriteUInt32LittleEndian(block[BlockField.TotalLength..], (uint)block.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(block[^BlockField.TrailerLength..], (uint)block.Length);
    }

    private static int OptionLength(int valueLength) => OptionHeaderLength + ((valueLength + 3) & ~3);

    /// <summary>Writes one option with its value zero-padded to 32 bits; returns the bytes written.</summary>
    private static int WriteOption(Span<byte> destination, ushort code, ReadOnlySpan<byte> value)
    {
        int length = OptionLength(value.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(destination, code);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], (ushort)value.Length);
        value.CopyTo(destination[OptionHeaderLength..]);
        destination[(OptionHeaderLength + value.Length)..length].Clear();
        return length;
    }

    private static byte[] OptionValue(string text, string parameterName)
    {
        // A name's bytes as the kernel gave them: a byte that is not UTF-8 was kept by LosslessUtf8 and goes back as it was.
        byte[] bytes = LosslessUtf8.Encode(text);
        // An option's length field is 16 bits (pcapng section 3.5).
        if (bytes.Length > ushort.MaxValue)
        {
            throw new ArgumentException($"longer than an option can hold ({bytes.Length} UTF-8 bytes, at most {ushort.MaxValue})", parameterName);
        }
        return bytes;
    }

    [DoesNotReturn]
    private static void ThrowArgumentOutOfRange(string parameterName, string message) =>
        throw new ArgumentOutOfRangeException(parameterName, message);
}
