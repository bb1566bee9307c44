using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

// Classic pcap: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html
public sealed partial class CaptureFileReader
{
    private void ReadPcapHeader(uint magic)
    {
        switch (magic)
        {
            case PcapFormat.MagicMicroseconds: break;
            case PcapFormat.MagicNanoseconds: _pcapNanoseconds = true; break;
            default:
                uint swapped = BinaryPrimitives.ReverseEndianness(magic);
                if (swapped is not (PcapFormat.MagicMicroseconds or PcapFormat.MagicNanoseconds))
                {
                    // The first four bytes as they stand in the file, so the user can compare with `xxd`.
                    throw new CaptureFileException(new CaptureFileError(_path, 0, $"not a pcap or pcapng file (magic 0x{BinaryPrimitives.ReverseEndianness(magic):x8})"));
                }
                _bigEndian = true;
                _pcapNanoseconds = swapped == PcapFormat.MagicNanoseconds;
                break;
        }
        if (!Ensure(PcapFormat.FileHeaderLength))
        {
            throw new CaptureFileException(new CaptureFileError(_path, _end, $"pcap file header cut short: {_end} of {PcapFormat.FileHeaderLength} bytes"));
        }
        ReadOnlySpan<byte> header = Bytes(0, PcapFormat.FileHeaderLength);
        int snapLength = (int)Math.Min(U32(header[PcapFormat.SnapLengthOffset..]), int.MaxValue);
        // The upper bits of the link type field carry the FCS length (pcap draft section 4).
        var linkType = new LinkType(U32(header[PcapFormat.LinkTypeOffset..]) & 0x03FF_FFFF);
        WarnIfNotDecoded(linkType, PcapFormat.LinkTypeOffset, _baseName);
        _interfaces.Add(new CaptureInterface(0, _baseName, null, linkType, snapLength, _pcapNanoseconds ? 9 : 6));
        _facts.Add(new InterfaceFacts(linkType, snapLength, MaxCaptureLengthFor(linkType), new InterfaceClock(_pcapNanoseconds ? 9 : 6, powerOfTwo: false, offsetSeconds: 0)));
        // What TryReadPcapInBuffer tests every record against, worked out once: the caplen's limit (the link type's maximum,
        // and the snaplen when there is one), the fraction's limit, and the fraction's unit in nanoseconds.
        int maximum = MaxCaptureLengthFor(linkType);
        _pcapLinkType = linkType;
        _pcapCaptureLimit = (uint)(snapLength > 0 ? Math.Min(snapLength, maximum) : maximum);
        _pcapFractionLimit = _pcapNanoseconds ? 1_000_000_000u : 1_000_000u;
        _pcapFractionUnit = _pcapNanoseconds ? 1 : 1000;
        _start = PcapFormat.FileHeaderLength;
    }

    /// <summary>
    /// <see cref="TryReadPcap"/> for a record that is whole in the buffer, with a caplen from 1 to the snaplen and a
    /// valid time: the same record, with the interface's facts worked out at the header instead of per record (in fields
    /// of their own, not read through the interface list). Any other record is left to <see cref="TryReadPcap"/> (false,
    /// nothing read). Inlined into <see cref="TryReadNext"/>: one call per record fewer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryReadPcapInBuffer(out CaptureRecord record)
    {
        int start = _start;
        int available = _end - start;
        if (available < PcapFormat.RecordHeaderLength)
        {
            record = default;
            return false;
        }
        // The record's header and whatever follows it in the buffer, as one span: one test of mapped or read, one bounds check.
        ReadOnlySpan<byte> rest = Bytes(start, available);
        ulong time = BinaryPrimitives.ReadUInt64LittleEndian(rest);
        ulong lengths = BinaryPrimitives.ReadUInt64LittleEndian(rest[8..]);
        uint seconds = (uint)time, fraction = (uint)(time >> 32);
        uint captured = (uint)lengths, original = (uint)(lengths >> 32);
        if (_bigEndian)
        {
            seconds = BinaryPrimitives.ReverseEndianness(seconds);
            fraction = BinaryPrimitives.ReverseEndianness(fraction);
            captured = BinaryPrimitives.ReverseEndianness(captured);
            original = BinaryPrimitives.ReverseEndianness(original);
        }
        if (captured - 1 >= (uint)(available - PcapFormat.RecordHeaderLength) // 0, or not all here yet
            || captured > _pcapCaptureLimit
            || fraction >= _pcapFractionLimit)
        {
            record = default;
            return false;
        }
        long timestamp = seconds * 1_000_000_000L + fraction * (long)_pcapFractionUnit;
        _lastTimestampNs = timestamp;
        record = new CaptureRecord(rest.Slice(PcapFormat.RecordHeaderLength, (int)captured), timestamp, 0, _pcapLinkType,
            (int)Math.Min(original, int.MaxValue), PacketDirection.Unknown, _bufferFileOffset + start, false);
        _start = start + PcapFormat.RecordHeaderLength + (int)captured;
        PacketsRead++;
        return true;
    }

    private bool TryReadPcap(out CaptureRecord record)
    {
        record = default;
        long offset = _bufferFileOffset + _start;
        if (!Ensure(PcapFormat.RecordHeaderLength))
        {
            int left = _end - _start;
            return left == 0 ? false : Fail(offset, $"record header cut short: {left} of {PcapFormat.RecordHeaderLength} bytes");
        }
        ReadOnlySpan<byte> header = Bytes(_start, PcapFormat.RecordHeaderLength);
        uint seconds = U32(header);
        uint fraction = U32(header[4..]);
        uint captured = U32(header[8..]);
        uint original = U32(header[12..]);
        CaptureInterface only = _interfaces[0];
        // Beyond libpcap's maximum for the link type a caplen cannot be real, and what follows cannot be found: libpcap
        // stops there too. Below it, a caplen above the snaplen is read (libpcap's sf-pcap.c does, for old Solaris
        // files and fuzzed ones alike), and so is caplen 0, a record of no bytes that tcpdump counts.
        int maximum = MaxCaptureLengthFor(only.LinkType);
        if (captured > maximum)
        {
            return Fail(offset, $"record caplen {captured} exceeds the maximum of {maximum}");
        }
        if (!Ensure(PcapFormat.RecordHeaderLength + (int)captured))
        {
            int left = _end - _start - PcapFormat.RecordHeaderLength;
            return Fail(offset, $"record data cut short: {left} of {captured} bytes");
        }
        if (only.SnapLength > 0 && captured > (uint)only.SnapLength)
        {
            Note(Irregularity.CaplenAboveSnaplen, offset, captured, (ulong)only.SnapLength);
        }
        if (captured == 0)
        {
            Note(Irregularity.Empty, offset, original, 0);
        }
        // A fraction of a second of a million microseconds or more (a billion nanoseconds) is no time at all: tcpdump
        // prints it raw with "(invalid us)". Taken at face value, 2^31 µs would put the packet 36 minutes late.
        bool invalid = fraction >= (_pcapNanoseconds ? 1_000_000_000u : 1_000_000u);
        long timestamp;
        if (invalid)
        {
            Note(Irregularity.InvalidTimestamp, offset, fraction, 0);
            timestamp = PacketsRead > 0 ? _lastTimestampNs : seconds * 1_000_000_000L;
        }
        else
        {
            timestamp = seconds * 1_000_000_000L + (_pcapNanoseconds ? fraction : fraction * 1000L);
        }
        _lastTimestampNs = timestamp;
        record = new CaptureRecord(Bytes(_start + PcapFormat.RecordHeaderLength, (int)captured), timestamp, 0, only.LinkType,
            (int)Math.Min(original, int.MaxValue), PacketDirection.Unknown, offset, invalid);
        _start += PcapFormat.RecordHeaderLength + (int)captured;
        PacketsRead++;
        return true;
    }
}
