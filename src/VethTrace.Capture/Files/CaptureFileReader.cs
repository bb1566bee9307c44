using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using VethTrace.Packets;
using VethTrace.Text;

namespace VethTrace.Capture.Files;

/// <summary>
/// Reads classic pcap (both byte orders, microsecond and nanosecond magic) and pcapng (several sections in
/// either byte order, several interfaces, EPB, SPB and the obsolete PB; unknown blocks are skipped),
/// plain or gzip-compressed, with one reusable buffer: memory stays flat whatever the file's length and
/// no read allocates. Each <see cref="TryReadNext"/> invalidates the record the previous one returned.
/// Damage stops the reading: <see cref="TryReadNext"/> returns false and <see cref="Error"/> names the
/// byte offset and the problem; every packet before it was returned.
/// </summary>
public sealed class CaptureFileReader : IDisposable
{
    /// <summary>The largest packet accepted (libpcap's MAXIMUM_SNAPLEN): beyond it a length field is damage, not data.</summary>
    public const int MaxCaptureLength = 262_144;

    /// <summary>The largest pcapng block accepted; bounds memory against a hostile length field.</summary>
    public const int MaxBlockLength = 16 * 1024 * 1024;

    private const uint PcapMagicMicroseconds = 0xA1B2C3D4;
    private const uint PcapMagicNanoseconds = 0xA1B23C4D;
    private const uint PcapngSectionHeader = 0x0A0D0D0A;
    private const uint PcapngByteOrderMagic = 0x1A2B3C4D;
    private const int PcapFileHeaderLength = 24;
    private const int PcapRecordHeaderLength = 16;
    private const int PcapSnapLengthOffset = 16;
    private const int PcapLinkTypeOffset = PcapSnapLengthOffset + 4;

    private static class BlockType
    {
        public const uint InterfaceDescription = 1;
        public const uint Packet = 2; // obsolete, still written by old tools
        public const uint SimplePacket = 3;
        public const uint EnhancedPacket = 6;
    }

    private static class OptionCode
    {
        public const ushort EndOfOptions = 0;
        public const ushort Comment = 1;
        public const ushort IfName = 2;
        public const ushort IfDescription = 3;
        public const ushort IfTsResol = 9;
        public const ushort IfTsOffset = 14;
        public const ushort EpbFlags = 2;
    }

    private readonly Stream _stream;
    private readonly string _path;
    private readonly string _baseName;
    private readonly bool _isPcapng;
    private readonly List<CaptureInterface> _interfaces = [];
    private readonly List<InterfaceClock> _clocks = [];
    // pcapng interface ids are per section: this maps the current section's ids to global ones.
    private readonly List<int> _sectionInterfaces = [];
    private readonly List<CaptureFileError> _warnings = [];

    // Rented, not allocated: a 1 MiB array lands on the large-object heap, and opening many files
    // (a merge, a test suite) would otherwise cost a full collection now and then.
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
    private int _start;
    private int _end;
    private long _bufferFileOffset; // file offset of _buffer[0]
    private bool _endOfStream;
    private bool _bigEndian;
    private bool _pcapNanoseconds;
    private long _lastTimestampNs;

    private CaptureFileReader(Stream stream, string path, bool compressed)
    {
        _stream = stream;
        _path = path;
        _baseName = System.IO.Path.GetFileNameWithoutExtension(StripCompressionSuffix(System.IO.Path.GetFileName(path)));
        IsCompressed = compressed;
        try
        {
            if (!Ensure(4))
            {
                throw new CaptureFileException(new CaptureFileError(path, 0, _end == 0 ? "empty file" : "file too short for a capture header"));
            }
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(_buffer);
            _isPcapng = magic == PcapngSectionHeader;
            if (!_isPcapng)
            {
                ReadPcapHeader(magic);
            }
        }
        // The first reads can fail as later ones do (a damaged gzip header or first deflate block throws
        // InvalidDataException); Open promises CaptureFileException only.
        catch (IOException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, _end, $"read error: {e.Message}"));
        }
        catch (InvalidDataException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, _end, $"compressed data damaged: {e.Message}"));
        }
    }

    /// <summary>The interfaces seen so far (pcapng declares them as it goes).</summary>
    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    public string Path => _path;

    public bool IsPcapng => _isPcapng;

    public bool IsCompressed { get; }

    /// <summary>The damage that stopped reading, or null after a clean end of file.</summary>
    public CaptureFileError? Error { get; private set; }

    /// <summary>
    /// Problems that did not stop the reading (<see cref="CaptureProblem.Unsupported"/>): an interface whose link type
    /// the parser does not decode, named at its declaration. Its packets are still returned.
    /// </summary>
    public IReadOnlyList<CaptureFileError> Warnings => _warnings;

    public long PacketsRead { get; private set; }

    /// <summary>The read buffer's size: what the reader holds in memory, for the tests that bound it.</summary>
    internal int BufferCapacity => _buffer.Length;

    /// <summary>Opens a file; throws <see cref="CaptureFileException"/> with a one-line reason when it is not a readable capture.</summary>
    public static CaptureFileReader Open(string path)
    {
        if (Directory.Exists(path))
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "is a directory, not a capture file", CaptureProblem.NotOpened));
        }
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "no such file", CaptureProblem.NotOpened));
        }
        catch (DirectoryNotFoundException)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "no such file", CaptureProblem.NotOpened));
        }
        catch (UnauthorizedAccessException)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "permission denied", CaptureProblem.NotOpened));
        }
        catch (IOException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, e.Message, CaptureProblem.NotOpened));
        }
        try
        {
            return Open(file, path);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads a capture from a stream; <paramref name="path"/> names it in errors and interface names.</summary>
    public static CaptureFileReader Open(Stream stream, string path)
    {
        // gzip (RFC 1952 magic 1f 8b) is read transparently, as Wireshark does; offsets in errors
        // then count decompressed bytes.
        byte[] head = new byte[2];
        int n;
        bool seekable = stream.CanSeek;
        try
        {
            n = stream.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        }
        catch (IOException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, $"read error: {e.Message}"));
        }
        if (seekable)
        {
            stream.Seek(-n, SeekOrigin.Current);
        }
        else
        {
            // A pipe (/dev/stdin, a process substitution) cannot be rewound: the two bytes are put back in front.
            stream = new PrefixedStream(head.AsSpan(0, n).ToArray(), stream);
        }
        if (n == 2 && head[0] == 0x1F && head[1] == 0x8B)
        {
            return new CaptureFileReader(new GZipStream(stream, CompressionMode.Decompress), path, compressed: true) { IsSeekable = seekable };
        }
        return new CaptureFileReader(stream, path, compressed: false) { IsSeekable = seekable };
    }

    /// <summary>
    /// Whether the capture comes from a seekable stream (a regular file, not a pipe such as <c>/dev/stdin</c>), which
    /// can be opened and read again from its start.
    /// </summary>
    public bool IsSeekable { get; private init; }

    /// <summary>
    /// Reads the next packet. Returns false at the end of the file or at damage (<see cref="Error"/>).
    /// The record's data is valid until the next call.
    /// </summary>
    public bool TryReadNext(out CaptureRecord record)
    {
        record = default;
        if (Error is not null)
        {
            return false;
        }
        try
        {
            return _isPcapng ? TryReadPcapng(out record) : TryReadPcap(out record);
        }
        catch (IOException e)
        {
            return Fail(_bufferFileOffset + _start, $"read error: {e.Message}");
        }
        catch (InvalidDataException e)
        {
            return Fail(_bufferFileOffset + _start, $"compressed data damaged: {e.Message}");
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        byte[] buffer = _buffer;
        _buffer = [];
        _start = _end = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // ---- classic pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html) ----

    private void ReadPcapHeader(uint magic)
    {
        switch (magic)
        {
            case PcapMagicMicroseconds: break;
            case PcapMagicNanoseconds: _pcapNanoseconds = true; break;
            default:
                uint swapped = BinaryPrimitives.ReverseEndianness(magic);
                if (swapped is not (PcapMagicMicroseconds or PcapMagicNanoseconds))
                {
                    // The first four bytes as they stand in the file, so the user can compare with `xxd`.
                    throw new CaptureFileException(new CaptureFileError(_path, 0, $"not a pcap or pcapng file (magic 0x{BinaryPrimitives.ReverseEndianness(magic):x8})"));
                }
                _bigEndian = true;
                _pcapNanoseconds = swapped == PcapMagicNanoseconds;
                break;
        }
        if (!Ensure(PcapFileHeaderLength))
        {
            throw new CaptureFileException(new CaptureFileError(_path, _end, $"pcap file header cut short: {_end} of {PcapFileHeaderLength} bytes"));
        }
        ReadOnlySpan<byte> header = _buffer.AsSpan(0, PcapFileHeaderLength);
        int snapLength = (int)Math.Min(U32(header[PcapSnapLengthOffset..]), int.MaxValue);
        // The upper bits of the link type field carry the FCS length (pcap draft section 4).
        var linkType = new LinkType(U32(header[PcapLinkTypeOffset..]) & 0x03FF_FFFF);
        WarnIfNotDecoded(linkType, PcapLinkTypeOffset, _baseName);
        _interfaces.Add(new CaptureInterface(0, _baseName, null, linkType, snapLength, _pcapNanoseconds ? 9 : 6));
        _clocks.Add(new InterfaceClock(_pcapNanoseconds ? 9 : 6, powerOfTwo: false, offsetSeconds: 0));
        _start = PcapFileHeaderLength;
    }

    private bool TryReadPcap(out CaptureRecord record)
    {
        record = default;
        long offset = _bufferFileOffset + _start;
        if (!Ensure(PcapRecordHeaderLength))
        {
            int left = _end - _start;
            return left == 0 ? false : Fail(offset, $"record header cut short: {left} of {PcapRecordHeaderLength} bytes");
        }
        ReadOnlySpan<byte> header = _buffer.AsSpan(_start, PcapRecordHeaderLength);
        uint seconds = U32(header);
        uint fraction = U32(header[4..]);
        uint captured = U32(header[8..]);
        uint original = U32(header[12..]);
        if (captured > MaxCaptureLength)
        {
            return Fail(offset, $"record caplen {captured} exceeds the maximum of {MaxCaptureLength}");
        }
        if (CheckCapturedLength(captured, original, _interfaces[0].SnapLength, "record") is { } problem)
        {
            return Fail(offset, problem);
        }
        if (!Ensure(PcapRecordHeaderLength + (int)captured))
        {
            int left = _end - _start - PcapRecordHeaderLength;
            return Fail(offset, $"record data cut short: {left} of {captured} bytes");
        }
        long timestamp = seconds * 1_000_000_000L + (_pcapNanoseconds ? fraction : fraction * 1000L);
        CaptureInterface only = _interfaces[0];
        record = new CaptureRecord(_buffer.AsSpan(_start + PcapRecordHeaderLength, (int)captured), timestamp, 0, only.LinkType,
            (int)Math.Min(original, int.MaxValue), PacketDirection.Unknown, offset);
        _start += PcapRecordHeaderLength + (int)captured;
        PacketsRead++;
        return true;
    }

    // ---- pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html) ----

    private bool TryReadPcapng(out CaptureRecord record)
    {
        record = default;
        while (true)
        {
            long offset = _bufferFileOffset + _start;
            if (!Ensure(12))
            {
                int left = _end - _start;
                return left == 0 ? false : Fail(offset, $"block header cut short: {left} of 12 bytes");
            }
            ReadOnlySpan<byte> head = _buffer.AsSpan(_start, 12);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(head); // the SHB type is a palindrome
            if (type == PcapngSectionHeader)
            {
                uint byteOrder = BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
                if (byteOrder == PcapngByteOrderMagic)
                {
                    _bigEndian = false;
                }
                else if (byteOrder == BinaryPrimitives.ReverseEndianness(PcapngByteOrderMagic))
                {
                    _bigEndian = true;
                }
                else
                {
                    return Fail(offset, $"section header has a bad byte-order magic 0x{byteOrder:x8}");
                }
            }
            else
            {
                type = U32(head);
                if (offset == 0)
                {
                    return Fail(0, "pcapng file does not start with a section header block");
                }
            }
            uint length = U32(head[4..]);
            if (length < 12 || length % 4 != 0)
            {
                return Fail(offset, $"block length {length} is {(length < 12 ? "below the minimum of 12" : "not a multiple of 4")}");
            }
            if (length > MaxBlockLength)
            {
                return Fail(offset, $"block length {length} exceeds the maximum of {MaxBlockLength}");
            }
            if (!Ensure((int)length))
            {
                return Fail(offset, $"block cut short: {_end - _start} of {length} bytes");
            }
            ReadOnlySpan<byte> block = _buffer.AsSpan(_start, (int)length);
            uint trailer = U32(block[^4..]);
            if (trailer != length)
            {
                return Fail(offset, $"block length mismatch: {length} at the start, {trailer} at the end");
            }
            ReadOnlySpan<byte> body = block[8..^4];
            bool isPacket;
            string? problem;
            switch (type)
            {
                case PcapngSectionHeader:
                    problem = ReadSectionHeader(body);
                    isPacket = false;
                    break;
                case BlockType.InterfaceDescription:
                    problem = ReadInterfaceDescription(body, offset);
                    isPacket = false;
                    break;
                case BlockType.EnhancedPacket:
                    problem = ReadEnhancedPacket(body, offset, out record);
                    isPacket = problem is null;
                    break;
                case BlockType.SimplePacket:
                    problem = ReadSimplePacket(body, offset, out record);
                    isPacket = problem is null;
                    break;
                case BlockType.Packet:
                    problem = ReadObsoletePacket(body, offset, out record);
                    isPacket = problem is null;
                    break;
                default:
                    // Statistics, name resolution, decryption secrets, custom blocks: not needed to trace.
                    problem = null;
                    isPacket = false;
                    break;
            }
            if (problem is not null)
            {
                return Fail(offset, problem);
            }
            _start += (int)length;
            if (isPacket)
            {
                PacketsRead++;
                return true;
            }
        }
    }

    private string? ReadSectionHeader(ReadOnlySpan<byte> body)
    {
        // byte-order magic (4), major (2), minor (2), section length (8), options.
        if (body.Length < 16)
        {
            return $"section header body is {body.Length} bytes, needs 16";
        }
        ushort major = U16(body[4..]);
        if (major != 1)
        {
            return $"unsupported pcapng version {major}.{U16(body[6..])}";
        }
        _sectionInterfaces.Clear();
        return null;
    }

    private string? ReadInterfaceDescription(ReadOnlySpan<byte> body, long offset)
    {
        // link type (2), reserved (2), snaplen (4), options.
        if (body.Length < 8)
        {
            return $"interface description body is {body.Length} bytes, needs 8";
        }
        var linkType = new LinkType(U16(body));
        int snapLength = (int)Math.Min(U32(body[4..]), int.MaxValue);
        string? name = null;
        string? description = null;
        int resolution = 6;
        bool powerOfTwo = false;
        long offsetSeconds = 0;
        var options = new OptionReader(body[8..], _bigEndian);
        while (options.TryRead(out ushort code, out ReadOnlySpan<byte> value))
        {
            switch (code)
            {
                // UTF-8 by the format, but unchecked: a stray byte is kept (LosslessUtf8), to be shown as \xNN.
                case OptionCode.IfName:
                    name = LosslessUtf8.Decode(value).TrimEnd('\0');
                    break;
                case OptionCode.IfDescription:
                    description = LosslessUtf8.Decode(value).TrimEnd('\0');
                    break;
                case OptionCode.IfTsResol when value.Length >= 1:
                    // High bit set: a negative power of 2; clear: a negative power of 10.
                    powerOfTwo = (value[0] & 0x80) != 0;
                    resolution = value[0] & 0x7F;
                    break;
                case OptionCode.IfTsOffset when value.Length >= 8:
                    offsetSeconds = _bigEndian ? BinaryPrimitives.ReadInt64BigEndian(value) : BinaryPrimitives.ReadInt64LittleEndian(value);
                    break;
            }
        }
        if (options.Malformed)
        {
            return "interface description options run past the block";
        }
        if (!powerOfTwo && resolution > 18 || powerOfTwo && resolution > 63)
        {
            return $"interface timestamp resolution {(powerOfTwo ? "2^-" : "10^-")}{resolution} is out of range";
        }
        int id = _interfaces.Count;
        string interfaceName = string.IsNullOrEmpty(name) ? $"{_baseName}:{_sectionInterfaces.Count}" : name;
        WarnIfNotDecoded(linkType, offset, interfaceName);
        _interfaces.Add(new CaptureInterface(id, interfaceName, string.IsNullOrEmpty(description) ? null : description,
            linkType, snapLength, powerOfTwo ? -resolution : resolution));
        _clocks.Add(new InterfaceClock(resolution, powerOfTwo, offsetSeconds));
        _sectionInterfaces.Add(id);
        return null;
    }

    private string? ReadEnhancedPacket(ReadOnlySpan<byte> body, long offset, out CaptureRecord record)
    {
        record = default;
        // interface id (4), timestamp high (4), low (4), captured length (4), original length (4), data, options.
        const int fixedLength = 20;
        if (body.Length < fixedLength)
        {
            return $"enhanced packet block body is {body.Length} bytes, needs {fixedLength}";
        }
        return ReadPacket(body, offset, (int)Math.Min(U32(body), int.MaxValue), ((ulong)U32(body[4..]) << 32) | U32(body[8..]), U32(body[12..]), U32(body[16..]), fixedLength, out record);
    }

    private string? ReadObsoletePacket(ReadOnlySpan<byte> body, long offset, out CaptureRecord record)
    {
        record = default;
        // interface id (2), drops count (2), timestamp high (4), low (4), captured length (4), original length (4), data, options.
        const int fixedLength = 20;
        if (body.Length < fixedLength)
        {
            return $"packet block body is {body.Length} bytes, needs {fixedLength}";
        }
        return ReadPacket(body, offset, U16(body), ((ulong)U32(body[4..]) << 32) | U32(body[8..]), U32(body[12..]), U32(body[16..]), fixedLength, out record);
    }

    private string? ReadPacket(ReadOnlySpan<byte> body, long offset, int localInterface, ulong timestamp, uint captured, uint original, int fixedLength, out CaptureRecord record)
    {
        record = default;
        if ((uint)localInterface >= (uint)_sectionInterfaces.Count)
        {
            return $"packet refers to interface {localInterface}, but the section declares {_sectionInterfaces.Count}";
        }
        if (captured > MaxCaptureLength)
        {
            return $"packet caplen {captured} exceeds the maximum of {MaxCaptureLength}";
        }
        int id = _sectionInterfaces[localInterface];
        if (CheckCapturedLength(captured, original, _interfaces[id].SnapLength, "packet") is { } problem)
        {
            return problem;
        }
        int padded = ((int)captured + 3) & ~3;
        if (fixedLength + padded > body.Length)
        {
            return $"packet caplen {captured} runs past the end of its block";
        }
        var direction = PacketDirection.Unknown;
        var options = new OptionReader(body[(fixedLength + padded)..], _bigEndian);
        while (options.TryRead(out ushort code, out ReadOnlySpan<byte> value))
        {
            if (code == OptionCode.EpbFlags && value.Length >= 4)
            {
                // epb_flags bits 0-1: 01 inbound, 10 outbound.
                direction = (PacketDirection)(U32(value) & 0x3) switch
                {
                    PacketDirection.Inbound => PacketDirection.Inbound,
                    PacketDirection.Outbound => PacketDirection.Outbound,
                    _ => PacketDirection.Unknown,
                };
            }
        }
        long timestampNs = _clocks[id].ToNanoseconds(timestamp);
        _lastTimestampNs = timestampNs;
        int dataStart = _start + 8 + fixedLength;
        record = new CaptureRecord(_buffer.AsSpan(dataStart, (int)captured), timestampNs, id, _interfaces[id].LinkType,
            (int)Math.Min(original, int.MaxValue), direction, offset);
        return null;
    }

    private string? ReadSimplePacket(ReadOnlySpan<byte> body, long offset, out CaptureRecord record)
    {
        record = default;
        // original length (4), data. It belongs to the section's first interface and has no timestamp.
        if (body.Length < 4)
        {
            return $"simple packet block body is {body.Length} bytes, needs 4";
        }
        if (_sectionInterfaces.Count == 0)
        {
            return "simple packet block before any interface description";
        }
        int id = _sectionInterfaces[0];
        uint original = U32(body);
        int snap = _interfaces[id].SnapLength;
        int captured = (int)Math.Min(Math.Min(original, (uint)(body.Length - 4)), snap > 0 ? (uint)snap : uint.MaxValue);
        if (captured > MaxCaptureLength)
        {
            return $"packet length {captured} exceeds the maximum of {MaxCaptureLength}";
        }
        if (CheckCapturedLength((uint)captured, original, snapLength: 0, "simple packet") is { } problem)
        {
            return problem;
        }
        // No timestamp: the previous packet's is the best estimate, and keeps a merge ordered.
        record = new CaptureRecord(_buffer.AsSpan(_start + 12, captured), _lastTimestampNs, id, _interfaces[id].LinkType,
            (int)Math.Min(original, int.MaxValue), PacketDirection.Unknown, offset);
        return null;
    }

    /// <summary>
    /// The checks a packet's two lengths must pass besides fitting in the file. A caplen above the snaplen the file
    /// declares (0: none declared) cannot come from a capture: libpcap never hands over more than the snaplen.
    /// A record whose caplen and length are both 0 describes no packet at all: it is what a zeroed or overwritten
    /// stretch of a file reads as (16 zero bytes are a "valid" pcap record), and reading on would return one empty
    /// packet at time 0 per 16 bytes.
    /// </summary>
    private static string? CheckCapturedLength(uint captured, uint original, int snapLength, string what)
    {
        if (snapLength > 0 && captured > (uint)snapLength)
        {
            return $"{what} caplen {captured} exceeds the snaplen of {snapLength}";
        }
        if (captured == 0 && original == 0)
        {
            return $"zero-length {what} (caplen 0, length 0): zeroed or overwritten data";
        }
        return null;
    }

    private void WarnIfNotDecoded(LinkType linkType, long offset, string interfaceName)
    {
        if (!PacketParser.Decodes(linkType))
        {
            _warnings.Add(new CaptureFileError(_path, offset,
                $"interface {interfaceName} has link type {linkType.Value}, which VethTrace does not decode: its packets are counted, not traced",
                CaptureProblem.Unsupported));
        }
    }

    // ---- buffer ----

    /// <summary>Makes <paramref name="count"/> bytes available from <see cref="_start"/>; false at end of stream.</summary>
    private bool Ensure(int count)
    {
        if (_end - _start >= count)
        {
            return true;
        }
        if (_start > 0)
        {
            // Compact: the caller's previous record is invalidated here, as documented.
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _bufferFileOffset += _start;
            _end -= _start;
            _start = 0;
        }
        while (_end < count && !_endOfStream)
        {
            if (_end == _buffer.Length)
            {
                // Grow only as the data arrives, doubling: a length field that claims more than the file holds
                // (a hostile 16 MiB pcapng block in a 100-byte file) costs no more memory than the file's bytes.
                byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Min(count, _buffer.Length * 2));
                Buffer.BlockCopy(_buffer, 0, larger, 0, _end);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = larger;
            }
            int read = _stream.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
            {
                _endOfStream = true;
            }
            _end += read;
        }
        return _end >= count;
    }

    private bool Fail(long offset, string message)
    {
        Error = new CaptureFileError(_path, offset, message);
        return false;
    }

    private ushort U16(ReadOnlySpan<byte> data) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(data) : BinaryPrimitives.ReadUInt16LittleEndian(data);

    private uint U32(ReadOnlySpan<byte> data) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data) : BinaryPrimitives.ReadUInt32LittleEndian(data);

    private static string StripCompressionSuffix(string name) =>
        name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? name[..^3] : name;

    /// <summary>A read-only stream that returns <paramref name="prefix"/>, then the rest of <paramref name="inner"/>.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream inner) : ForwardReadStream
    {
        private int _used;

        public override int Read(Span<byte> buffer)
        {
            if (_used < prefix.Length)
            {
                int n = Math.Min(buffer.Length, prefix.Length - _used);
                prefix.AsSpan(_used, n).CopyTo(buffer);
                _used += n;
                return n;
            }
            return inner.Read(buffer);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>Walks pcapng options (code, length, value padded to 4), bounded by the span.</summary>
    private ref struct OptionReader(ReadOnlySpan<byte> options, bool bigEndian)
    {
        private ReadOnlySpan<byte> _rest = options;

        public bool Malformed { get; private set; }

        public bool TryRead(out ushort code, out ReadOnlySpan<byte> value)
        {
            value = default;
            code = 0;
            if (_rest.Length < 4)
            {
                return false;
            }
            code = bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(_rest) : BinaryPrimitives.ReadUInt16LittleEndian(_rest);
            int length = bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(_rest[2..]) : BinaryPrimitives.ReadUInt16LittleEndian(_rest[2..]);
            if (code == OptionCode.EndOfOptions)
            {
                return false;
            }
            int padded = (length + 3) & ~3;
            if (4 + padded > _rest.Length)
            {
                Malformed = true;
                return false;
            }
            value = _rest.Slice(4, length);
            _rest = _rest[(4 + padded)..];
            return true;
        }
    }

    /// <summary>Turns an interface's timestamp units into Unix nanoseconds (if_tsresol, if_tsoffset).</summary>
    private readonly struct InterfaceClock(int resolution, bool powerOfTwo, long offsetSeconds)
    {
        public long ToNanoseconds(ulong units)
        {
            long ns;
            if (powerOfTwo)
            {
                ns = Saturate(((UInt128)units * 1_000_000_000UL) >> resolution);
            }
            else if (resolution <= 9)
            {
                ulong scale = Pow10(9 - resolution);
                ns = Saturate((UInt128)units * scale);
            }
            else
            {
                ns = (long)Math.Min(units / Pow10(resolution - 9), long.MaxValue);
            }
            return ns + offsetSeconds * 1_000_000_000L;
        }

        private static long Saturate(UInt128 value) => value > long.MaxValue ? long.MaxValue : (long)value;

        private static ulong Pow10(int exponent)
        {
            ulong value = 1;
            for (int i = 0; i < exponent; i++)
            {
                value *= 10;
            }
            return value;
        }
    }
}
