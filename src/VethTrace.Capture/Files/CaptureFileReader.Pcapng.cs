using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VethTrace.Text;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

// pcapng: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html
public sealed partial class CaptureFileReader
{
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
            ReadOnlySpan<byte> head = Bytes(_start, 12);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(head); // the SHB type is a palindrome
            if (type == PcapngFormat.SectionHeader)
            {
                uint byteOrder = BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
                if (byteOrder == PcapngFormat.ByteOrderMagic)
                {
                    _bigEndian = false;
                }
                else if (byteOrder == BinaryPrimitives.ReverseEndianness(PcapngFormat.ByteOrderMagic))
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
            ReadOnlySpan<byte> block = Bytes(_start, (int)length);
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
                case PcapngFormat.SectionHeader:
                    problem = ReadSectionHeader(body);
                    isPacket = false;
                    break;
                case PcapngFormat.BlockType.InterfaceDescription:
                    problem = ReadInterfaceDescription(body, offset);
                    isPacket = false;
                    break;
                case PcapngFormat.BlockType.EnhancedPacket:
                    problem = ReadEnhancedPacket(body, offset, out record);
                    isPacket = problem is null;
                    break;
                case PcapngFormat.BlockType.SimplePacket:
                    problem = ReadSimplePacket(body, offset, out record);
                    isPacket = problem is null;
                    break;
                case PcapngFormat.BlockType.Packet:
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

    /// <summary>
    /// <see cref="TryReadPcapng"/> for the common block: an enhanced packet block whole in the buffer, with valid lengths,
    /// a declared interface and a caplen from 1 to the snaplen. It returns the record the general path returns for it, in
    /// one method instead of four, each with its own checks of the same lengths: the block's first 28 bytes read as three
    /// 64-bit words and one 32-bit one with one byte-order test, one span for the block and its data, and the interface's
    /// facts (its global id, link type, clock and caplen limit) from <see cref="_sectionFacts"/>, worked out at its
    /// interface description block. Any other block is left to <see cref="TryReadPcapng"/> (false, nothing read), which
    /// reads it or names its damage. Inlined into <see cref="TryReadNext"/>: one call per block fewer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryReadEnhancedPacketInBuffer(out CaptureRecord record)
    {
        // type (4), length (4); interface id (4), timestamp high (4), low (4), captured length (4), original length (4),
        // data, options; length (4).
        const int header = 8;
        const int fixedLength = 20;
        const int dataOffset = header + fixedLength;
        int start = _start;
        int available = _end - start;
        // (Not the file's first block either: no interface is declared before it, so the interface test declines it.)
        if (available < dataOffset + 4)
        {
            record = default;
            return false;
        }
        ReadOnlySpan<byte> block = Bytes(start, available);
        ulong typeAndLength = BinaryPrimitives.ReadUInt64LittleEndian(block);
        ulong interfaceAndHigh = BinaryPrimitives.ReadUInt64LittleEndian(block[8..]);
        ulong lowAndCaptured = BinaryPrimitives.ReadUInt64LittleEndian(block[16..]);
        uint type = (uint)typeAndLength, length = (uint)(typeAndLength >> 32);
        uint localInterface = (uint)interfaceAndHigh, high = (uint)(interfaceAndHigh >> 32);
        uint low = (uint)lowAndCaptured, captured = (uint)(lowAndCaptured >> 32);
        if (_bigEndian)
        {
            type = BinaryPrimitives.ReverseEndianness(type);
            length = BinaryPrimitives.ReverseEndianness(length);
            localInterface = BinaryPrimitives.ReverseEndianness(localInterface);
            high = BinaryPrimitives.ReverseEndianness(high);
            low = BinaryPrimitives.ReverseEndianness(low);
            captured = BinaryPrimitives.ReverseEndianness(captured);
        }
        ReadOnlySpan<SectionInterface> declaredInterfaces = CollectionsMarshal.AsSpan(_sectionFacts);
        if (type != PcapngFormat.BlockType.EnhancedPacket || length > (uint)available || length > MaxBlockLength
            || length < dataOffset + 4 || length % 4 != 0 || localInterface >= (uint)declaredInterfaces.Length)
        {
            record = default;
            return false;
        }
        block = block[..(int)length];
        ref readonly SectionInterface declared = ref declaredInterfaces[(int)localInterface];
        // caplen 0 and caplen above the snaplen are counted by the general path; more than the block holds is damage.
        // The limit is the snaplen when there is one, else the link type's maximum (never above it).
        uint padded = (captured + 3) & ~3u;
        if (U32(block[^4..]) != length
            || captured - 1 >= declared.CaptureLimit
            || dataOffset + 4 + padded > length)
        {
            record = default;
            return false;
        }
        var direction = PacketDirection.Unknown;
        if (dataOffset + 4 + padded < length)
        {
            direction = DirectionOf(block[(dataOffset + (int)padded)..^4]);
        }
        long timestampNs = declared.Clock.ToNanoseconds(((ulong)high << 32) | low);
        _lastTimestampNs = timestampNs;
        uint original = U32(block[24..]);
        record = new CaptureRecord(block.Slice(dataOffset, (int)captured), timestampNs, declared.Id, declared.LinkType,
            (int)Math.Min(original, int.MaxValue), direction, _bufferFileOffset + start);
        _start = start + (int)length;
        PacketsRead++;
        return true;
    }

    /// <summary>
    /// What <see cref="TryReadEnhancedPacketInBuffer"/> needs of a section's interface, by its id in the section: the
    /// global id, the link type, the clock, and the largest caplen it reads in one go (the snaplen when there is one,
    /// capped at the link type's maximum).
    /// </summary>
    private readonly struct SectionInterface(int id, LinkType linkType, uint captureLimit, InterfaceClock clock)
    {
        public readonly InterfaceClock Clock = clock;
        public readonly int Id = id;
        public readonly LinkType LinkType = linkType;
        public readonly uint CaptureLimit = captureLimit;
    }

    /// <summary>The direction a packet block's options give (epb_flags bits 0-1: 01 inbound, 10 outbound; the last such option wins).</summary>
    private PacketDirection DirectionOf(ReadOnlySpan<byte> optionBytes)
    {
        var direction = PacketDirection.Unknown;
        var options = new OptionReader(optionBytes, _bigEndian);
        while (options.TryRead(out ushort code, out ReadOnlySpan<byte> value))
        {
            if (code == PcapngFormat.OptionCode.EpbFlags && value.Length >= 4)
            {
                direction = (PacketDirection)(U32(value) & 0x3) switch
                {
                    PacketDirection.Inbound => PacketDirection.Inbound,
                    PacketDirection.Outbound => PacketDirection.Outbound,
                    _ => PacketDirection.Unknown,
                };
            }
        }
        return direction;
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
        _sectionFacts.Clear();
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
                case PcapngFormat.OptionCode.IfName:
                    name = LosslessUtf8.Decode(value).TrimEnd('\0');
                    break;
                case PcapngFormat.OptionCode.IfDescription:
                    description = LosslessUtf8.Decode(value).TrimEnd('\0');
                    break;
                case PcapngFormat.OptionCode.IfTsResol when value.Length >= 1:
                    // High bit set: a negative power of 2; clear: a negative power of 10.
                    powerOfTwo = (value[0] & 0x80) != 0;
                    resolution = value[0] & 0x7F;
                    break;
                case PcapngFormat.OptionCode.IfTsOffset when value.Length >= 8:
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
        var clock = new InterfaceClock(resolution, powerOfTwo, offsetSeconds);
        int maximum = MaxCaptureLengthFor(linkType);
        _facts.Add(new InterfaceFacts(linkType, snapLength, maximum, clock));
        _sectionInterfaces.Add(id);
        _sectionFacts.Add(new SectionInterface(id, linkType, (uint)(snapLength > 0 ? Math.Min(snapLength, maximum) : maximum), clock));
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
        int id = _sectionInterfaces[localInterface];
        ref readonly InterfaceFacts declared = ref CollectionsMarshal.AsSpan(_facts)[id];
        int maximum = declared.MaxCaptureLength;
        if (captured > maximum)
        {
            return $"packet caplen {captured} exceeds the maximum of {maximum}";
        }
        int padded = ((int)captured + 3) & ~3;
        if (fixedLength + padded > body.Length)
        {
            return $"packet caplen {captured} runs past the end of its block";
        }
        // Read as classic pcap's are: above the interface's snaplen, or empty, and counted.
        if (declared.SnapLength > 0 && captured > (uint)declared.SnapLength)
        {
            Note(Irregularity.CaplenAboveSnaplen, offset, captured, (ulong)declared.SnapLength);
        }
        if (captured == 0)
        {
            Note(Irregularity.Empty, offset, original, 0);
        }
        PacketDirection direction = DirectionOf(body[(fixedLength + padded)..]);
        long timestampNs = declared.Clock.ToNanoseconds(timestamp);
        _lastTimestampNs = timestampNs;
        int dataStart = _start + 8 + fixedLength;
        record = new CaptureRecord(Bytes(dataStart, (int)captured), timestampNs, id, declared.LinkType,
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
        int maximum = MaxCaptureLengthFor(_interfaces[id].LinkType);
        if (captured > maximum)
        {
            return $"packet length {captured} exceeds the maximum of {maximum}";
        }
        if (captured == 0)
        {
            Note(Irregularity.Empty, offset, original, 0);
        }
        // No timestamp: the previous packet's is the best estimate, and keeps a merge ordered.
        record = new CaptureRecord(Bytes(_start + 12, captured), _lastTimestampNs, id, _interfaces[id].LinkType,
            (int)Math.Min(original, int.MaxValue), PacketDirection.Unknown, offset);
        return null;
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
            if (code == PcapngFormat.OptionCode.EndOfOptions)
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

    /// <summary>What reading a packet needs of its interface, in one place (not the interface's record and a switch per packet).</summary>
    private readonly record struct InterfaceFacts(LinkType LinkType, int SnapLength, int MaxCaptureLength, InterfaceClock Clock);

    /// <summary>Turns an interface's timestamp units into Unix nanoseconds (if_tsresol, if_tsoffset).</summary>
    private readonly struct InterfaceClock
    {
        private readonly int _resolution;
        private readonly bool _powerOfTwo;
        private readonly long _offsetSeconds;
        /// <summary>For a power of ten of at most 9: nanoseconds per unit, and the most units that fit in a long once scaled.</summary>
        private readonly ulong _scale;
        private readonly ulong _maxScaled;

        public InterfaceClock(int resolution, bool powerOfTwo, long offsetSeconds)
        {
            _resolution = resolution;
            _powerOfTwo = powerOfTwo;
            _offsetSeconds = offsetSeconds;
            if (!powerOfTwo && resolution <= 9)
            {
                _scale = Pow10(9 - resolution);
                _maxScaled = long.MaxValue / _scale;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet: the common clock inline, the others called
        public long ToNanoseconds(ulong units) =>
            _scale != 0 && units <= _maxScaled ? (long)(units * _scale) + _offsetSeconds * 1_000_000_000L : ToNanosecondsOther(units);

        private long ToNanosecondsOther(ulong units)
        {
            long ns;
            if (_scale != 0)
            {
                // Worked out once per interface, not per packet: the 128-bit product only to saturate.
                ns = units <= _maxScaled ? (long)(units * _scale) : long.MaxValue;
            }
            else if (_powerOfTwo)
            {
                ns = Saturate(((UInt128)units * 1_000_000_000UL) >> _resolution);
            }
            else
            {
                ns = (long)Math.Min(units / Pow10(_resolution - 9), long.MaxValue);
            }
            return ns + _offsetSeconds * 1_000_000_000L;
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
