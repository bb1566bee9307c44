using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace VethTrace.Packets.Headers;

/// <summary>
/// A TCP header (RFC 9293 section 3.1) over a span. <see cref="TryCreate"/> checks the fixed 20 bytes
/// and a data offset of at least 5 words; options may be cut short by the snaplen (<see cref="IsCutShort"/>).
/// No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct TcpHeader
{
    public static class Field
    {
        public const int SourcePort = 0;
        public const int DestinationPort = SourcePort + 2;
        public const int Sequence = DestinationPort + 2;
        public const int Acknowledgment = Sequence + 4;
        public const int DataOffsetAndFlags = Acknowledgment + 4;
        public const int Window = DataOffsetAndFlags + 2;
        public const int Checksum = Window + 2;
        public const int UrgentPointer = Checksum + 2;
        public const int FixedLength = UrgentPointer + 2;
    }

    /// <summary>TCP option kinds (IANA "TCP Option Kind Numbers").</summary>
    public static class OptionKind
    {
        public const byte EndOfList = 0;
        public const byte NoOperation = 1;
        public const byte MaximumSegmentSize = 2;
        public const byte WindowScale = 3;
        public const byte SackPermitted = 4;
        public const byte Sack = 5;
        /// <summary>RFC 7323 section 3: kind 8, length 10, TSval and TSecr.</summary>
        public const byte Timestamps = 8;
    }

    private readonly ReadOnlySpan<byte> _data;

    private TcpHeader(ReadOnlySpan<byte> data) => _data = data;

    public static HeaderCheck TryCreate(ReadOnlySpan<byte> data, out TcpHeader header)
    {
        header = default;
        if (data.Length < Field.FixedLength)
        {
            return HeaderCheck.Truncated;
        }
        if (data[Field.DataOffsetAndFlags] >> 4 < 5)
        {
            return HeaderCheck.Malformed;
        }
        header = new TcpHeader(data);
        return HeaderCheck.Ok;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_data);

    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.DestinationPort..]);

    public uint Sequence => BinaryPrimitives.ReadUInt32BigEndian(_data[Field.Sequence..]);

    public uint Acknowledgment => BinaryPrimitives.ReadUInt32BigEndian(_data[Field.Acknowledgment..]);

    public int HeaderLength => (_data[Field.DataOffsetAndFlags] >> 4) * 4;

    public bool IsCutShort => _data.Length < HeaderLength;

    public TcpFlags Flags => (TcpFlags)(BinaryPrimitives.ReadUInt16BigEndian(_data[Field.DataOffsetAndFlags..]) & 0x01FF);

    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.Window..]);

    public ReadOnlySpan<byte> Options => _data[Field.FixedLength..Math.Min(HeaderLength, _data.Length)];

    /// <summary>Options of exactly NOP, NOP, Timestamps (kind 8, length 10): 12 bytes.</summary>
    public const int AlignedTimestampsLength = 12;

    /// <summary>NOP, NOP, kind 8, length 10: the first word of the recommended timestamp layout (RFC 7323 appendix A).</summary>
    public const uint AlignedTimestampsPrefix = 0x0101_080A;

    /// <summary>
    /// Reads TSval and TSecr when the options are exactly NOP, NOP, Timestamps, the layout Linux sends on every segment
    /// of an established connection. <paramref name="segment"/> starts at the TCP header; false when it is too short
    /// or the options are laid out otherwise (then <see cref="ReadOptions"/> walks them).
    /// </summary>
    public static bool TryReadAlignedTimestamps(ReadOnlySpan<byte> segment, out uint timestampValue, out uint timestampEcho)
    {
        const int options = Field.FixedLength;
        if (segment.Length < options + AlignedTimestampsLength
            || BinaryPrimitives.ReadUInt32BigEndian(segment[options..]) != AlignedTimestampsPrefix)
        {
            timestampValue = 0;
            timestampEcho = 0;
            return false;
        }
        timestampValue = BinaryPrimitives.ReadUInt32BigEndian(segment[(options + 4)..]);
        timestampEcho = BinaryPrimitives.ReadUInt32BigEndian(segment[(options + 8)..]);
        return true;
    }

    /// <summary>
    /// Walks the options for the ones the tracer keeps. The walk is bounded by the option bytes
    /// (at most 40) and stops at a malformed length, so a hostile header cannot loop.
    /// </summary>
    public TcpOptionSummary ReadOptions()
    {
        var summary = default(TcpOptionSummary);
        ReadOnlySpan<byte> options = Options;
        int i = 0;
        while ((uint)i < (uint)options.Length)
        {
            byte kind = options[i];
            if (kind == OptionKind.EndOfList)
            {
                break;
            }
            if (kind == OptionKind.NoOperation)
            {
                i++;
                continue;
            }
            // Every other option carries a length byte covering kind and length (RFC 9293 section 3.1).
            if ((uint)(i + 1) >= (uint)options.Length)
            {
                summary.Malformed = true;
                break;
            }
            int length = options[i + 1];
            if (length < 2 || i + length > options.Length)
            {
                summary.Malformed = true;
                break;
            }
            ReadOnlySpan<byte> value = options.Slice(i + 2, length - 2);
            switch (kind)
            {
                case OptionKind.MaximumSegmentSize when value.Length == 2:
                    summary.MaximumSegmentSize = BinaryPrimitives.ReadUInt16BigEndian(value);
                    break;
                case OptionKind.WindowScale when value.Length == 1:
                    summary.WindowScale = (sbyte)Math.Min(value[0], (byte)14);
                    summary.HasWindowScale = true;
                    break;
                case OptionKind.SackPermitted:
                    summary.SackPermitted = true;
                    break;
                case OptionKind.Timestamps when value.Length == 8:
                    summary.HasTimestamps = true;
                    summary.TimestampValue = BinaryPrimitives.ReadUInt32BigEndian(value);
                    summary.TimestampEcho = BinaryPrimitives.ReadUInt32BigEndian(value[4..]);
                    break;
            }
            i += length;
        }
        return summary;
    }
}

/// <summary>The TCP options a tracer uses; a plain copy that outlives the buffer.</summary>
public struct TcpOptionSummary
{
    public ushort MaximumSegmentSize;
    public sbyte WindowScale;
    public bool HasWindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TimestampValue;
    public uint TimestampEcho;
    /// <summary>An option's length ran past the header or was below 2.</summary>
    public bool Malformed;
}

/// <summary>A UDP header (RFC 768). No accessor can throw after a successful <see cref="TryCreate"/>.</summary>
public readonly ref struct UdpHeader
{
    public static class Field
    {
        public const int SourcePort = 0;
        public const int DestinationPort = SourcePort + 2;
        public const int Length = DestinationPort + 2;
        public const int Checksum = Length + 2;
        public const int HeaderLength = Checksum + 2;
    }

    private readonly ReadOnlySpan<byte> _data;

    private UdpHeader(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out UdpHeader header)
    {
        if (data.Length < Field.HeaderLength)
        {
            header = default;
            return false;
        }
        header = new UdpHeader(data);
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_data);

    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.DestinationPort..]);

    /// <summary>Header plus data, in bytes (RFC 768). Zero is legal for IPv6 jumbograms (RFC 2675 section 4).</summary>
    public ushort Length => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.Length..]);
}

/// <summary>
/// The first 8 bytes shared by ICMP (RFC 792) and ICMPv6 (RFC 4443 section 2.1): type, code, checksum
/// and the 4-byte "rest of header", which for echo is identifier and sequence.
/// No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct IcmpHeader
{
    public static class Field
    {
        public const int Type = 0;
        public const int Code = Type + 1;
        public const int Checksum = Code + 1;
        public const int Identifier = Checksum + 2;
        public const int Sequence = Identifier + 2;
        public const int HeaderLength = Sequence + 2;
    }

    public static class V4Type
    {
        public const byte EchoReply = 0;
        public const byte DestinationUnreachable = 3;
        public const byte SourceQuench = 4;
        public const byte Redirect = 5;
        public const byte EchoRequest = 8;
        public const byte TimeExceeded = 11;
        public const byte ParameterProblem = 12;
        public const byte Timestamp = 13;
        public const byte TimestampReply = 14;
    }

    public static class V6Type
    {
        public const byte DestinationUnreachable = 1;
        public const byte PacketTooBig = 2;
        public const byte TimeExceeded = 3;
        public const byte ParameterProblem = 4;
        public const byte EchoRequest = 128;
        public const byte EchoReply = 129;
    }

    private readonly ReadOnlySpan<byte> _data;

    private IcmpHeader(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out IcmpHeader header)
    {
        if (data.Length < Field.HeaderLength)
        {
            header = default;
            return false;
        }
        header = new IcmpHeader(data);
        return true;
    }

    public byte Type => _data[Field.Type];

    public byte Code => _data[Field.Code];

    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.Identifier..]);

    public ushort Sequence => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.Sequence..]);

    /// <summary>Echo and timestamp messages carry an identifier and a sequence number (RFC 792).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasIdentifier(bool v6, byte type) => v6
        ? type is V6Type.EchoRequest or V6Type.EchoReply
        : type is V4Type.EchoReply or V4Type.EchoRequest or V4Type.Timestamp or V4Type.TimestampReply;

    /// <summary>Error messages quote the offending packet's header after the first 8 bytes (RFC 792, RFC 4443 section 3).</summary>
    public static bool IsError(bool v6, byte type) => v6
        ? type is >= V6Type.DestinationUnreachable and <= V6Type.ParameterProblem
        : type is V4Type.DestinationUnreachable or V4Type.SourceQuench or V4Type.Redirect or V4Type.TimeExceeded or V4Type.ParameterProblem;
}

/// <summary>
/// A VXLAN header (RFC 7348 section 5): flags with the I bit, 24 reserved bits, the 24-bit VNI, 8 reserved bits.
/// No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct VxlanHeader
{
    public static class Field
    {
        public const int Flags = 0;
        public const int Vni = Flags + 4;
        public const int HeaderLength = Vni + 4;
    }

    /// <summary>RFC 7348: "I flag MUST be set to 1 for a valid VXLAN Network ID".</summary>
    private const byte ValidVniFlag = 0x08;

    private readonly ReadOnlySpan<byte> _data;

    private VxlanHeader(ReadOnlySpan<byte> data) => _data = data;

    public static HeaderCheck TryCreate(ReadOnlySpan<byte> data, out VxlanHeader header)
    {
        header = default;
        if (data.Length < Field.HeaderLength)
        {
            return HeaderCheck.Truncated;
        }
        if ((data[Field.Flags] & ValidVniFlag) == 0)
        {
            return HeaderCheck.Malformed;
        }
        header = new VxlanHeader(data);
        return HeaderCheck.Ok;
    }

    public uint Vni => BinaryPrimitives.ReadUInt32BigEndian(_data[Field.Vni..]) >> 8;
}
