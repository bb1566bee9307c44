using System.Buffers.Binary;

namespace VethTrace.Packets.Headers;

/// <summary>
/// An IPv4 header (RFC 791 section 3.1) over a span. <see cref="TryCreate"/> checks that the fixed
/// 20 bytes are present and that the version and IHL are sane; the options may be cut short by the
/// snaplen (<see cref="IsCutShort"/>), and <see cref="Options"/> then returns only what was captured.
/// No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct Ipv4Header
{
    public static class Field
    {
        public const int VersionAndIhl = 0;
        public const int Tos = VersionAndIhl + 1;
        public const int TotalLength = Tos + 1;
        public const int Identification = TotalLength + 2;
        public const int FlagsAndFragmentOffset = Identification + 2;
        public const int Ttl = FlagsAndFragmentOffset + 2;
        public const int Protocol = Ttl + 1;
        public const int Checksum = Protocol + 1;
        public const int Source = Checksum + 2;
        public const int Destination = Source + 4;
        public const int FixedLength = Destination + 4;
        /// <summary>IHL is 4 bits of 32-bit words: 15 × 4.</summary>
        public const int MaxLength = 60;
    }

    private const ushort DontFragmentBit = 0x4000;
    private const ushort MoreFragmentsBit = 0x2000;
    private const ushort OffsetMask = 0x1FFF;

    private readonly ReadOnlySpan<byte> _data;

    private Ipv4Header(ReadOnlySpan<byte> data) => _data = data;

    public static HeaderCheck TryCreate(ReadOnlySpan<byte> data, out Ipv4Header header)
    {
        header = default;
        if (data.Length < Field.FixedLength)
        {
            return HeaderCheck.Truncated;
        }
        byte versionAndIhl = data[0];
        if (versionAndIhl >> 4 != 4 || (versionAndIhl & 0x0F) < 5)
        {
            return HeaderCheck.Malformed;
        }
        header = new Ipv4Header(data);
        return HeaderCheck.Ok;
    }

    public int HeaderLength => (_data[0] & 0x0F) * 4;

    /// <summary>True when the snaplen cut the options.</summary>
    public bool IsCutShort => _data.Length < HeaderLength;

    public byte Tos => _data[Field.Tos];

    public ushort TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.TotalLength..]);

    public ushort Identification => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.Identification..]);

    private ushort FlagsAndOffset => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.FlagsAndFragmentOffset..]);

    public bool DontFragment => (FlagsAndOffset & DontFragmentBit) != 0;

    public bool MoreFragments => (FlagsAndOffset & MoreFragmentsBit) != 0;

    /// <summary>The fragment offset in bytes (the field counts 8-byte units).</summary>
    public int FragmentOffset => (FlagsAndOffset & OffsetMask) * 8;

    public byte Ttl => _data[Field.Ttl];

    public IpProtocol Protocol => new(_data[Field.Protocol]);

    public IpAddress Source => IpAddress.ReadV4(_data[Field.Source..]);

    public IpAddress Destination => IpAddress.ReadV4(_data[Field.Destination..]);

    public ReadOnlySpan<byte> Options => _data[Field.FixedLength..Math.Min(HeaderLength, _data.Length)];
}

/// <summary>
/// The fixed IPv6 header (RFC 8200 section 3). Extension headers are walked by the parser with
/// <see cref="Ipv6ExtensionHeader"/>. No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct Ipv6Header
{
    public static class Field
    {
        public const int VersionClassLabel = 0;
        public const int PayloadLength = VersionClassLabel + 4;
        public const int NextHeader = PayloadLength + 2;
        public const int HopLimit = NextHeader + 1;
        public const int Source = HopLimit + 1;
        public const int Destination = Source + 16;
        public const int HeaderLength = Destination + 16;
    }

    private readonly ReadOnlySpan<byte> _data;

    private Ipv6Header(ReadOnlySpan<byte> data) => _data = data;

    public static HeaderCheck TryCreate(ReadOnlySpan<byte> data, out Ipv6Header header)
    {
        header = default;
        if (data.Length < Field.HeaderLength)
        {
            return HeaderCheck.Truncated;
        }
        if (data[0] >> 4 != 6)
        {
            return HeaderCheck.Malformed;
        }
        header = new Ipv6Header(data);
        return HeaderCheck.Ok;
    }

    private uint VersionClassLabel => BinaryPrimitives.ReadUInt32BigEndian(_data);

    public byte TrafficClass => (byte)(VersionClassLabel >> 20);

    public uint FlowLabel => VersionClassLabel & 0x000F_FFFF;

    public ushort PayloadLength => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.PayloadLength..]);

    public IpProtocol NextHeader => new(_data[Field.NextHeader]);

    public byte HopLimit => _data[Field.HopLimit];

    public IpAddress Source => IpAddress.ReadV6(_data[Field.Source..]);

    public IpAddress Destination => IpAddress.ReadV6(_data[Field.Destination..]);
}

/// <summary>
/// One IPv6 extension header (RFC 8200 section 4): hop-by-hop, routing, destination options and the
/// other "next header, length" shaped headers; the fragment header (section 4.5); and AH (RFC 4302
/// section 2.2, whose length counts 4-octet units). No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct Ipv6ExtensionHeader
{
    public static class Field
    {
        public const int NextHeader = 0;
        public const int Length = NextHeader + 1;
        public const int MinimumLength = 8;
        /// <summary>Fragment header: offset (13 bits), 2 reserved bits, M flag.</summary>
        public const int FragmentOffsetAndFlag = Length + 1;
        public const int FragmentIdentification = FragmentOffsetAndFlag + 2;
        public const int FragmentHeaderLength = FragmentIdentification + 4;
    }

    private readonly ReadOnlySpan<byte> _data;
    private readonly IpProtocol _kind;

    private Ipv6ExtensionHeader(ReadOnlySpan<byte> data, IpProtocol kind)
    {
        _data = data;
        _kind = kind;
    }

    /// <summary>True for the next-header numbers this type can walk over.</summary>
    public static bool IsExtension(IpProtocol protocol) => protocol.Value is 0 or 43 or 44 or 51 or 60 or 135 or 139 or 140;

    /// <summary>The declared length in bytes, or -1 when fewer than 2 bytes are present.</summary>
    public static int DeclaredLength(ReadOnlySpan<byte> data, IpProtocol kind)
    {
        if (data.Length < 2)
        {
            return -1;
        }
        if (kind == IpProtocol.Fragment)
        {
            return Field.FragmentHeaderLength;
        }
        return kind == IpProtocol.AuthenticationHeader ? (data[Field.Length] + 2) * 4 : (data[Field.Length] + 1) * 8;
    }

    public static HeaderCheck TryCreate(ReadOnlySpan<byte> data, IpProtocol kind, out Ipv6ExtensionHeader header)
    {
        header = default;
        int length = DeclaredLength(data, kind);
        if (length < 0 || data.Length < length || data.Length < Field.MinimumLength)
        {
            return HeaderCheck.Truncated;
        }
        header = new Ipv6ExtensionHeader(data[..length], kind);
        return HeaderCheck.Ok;
    }

    public IpProtocol Kind => _kind;

    public IpProtocol NextHeader => new(_data[Field.NextHeader]);

    public int Length => _data.Length;

    public bool IsFragment => _kind == IpProtocol.Fragment;

    /// <summary>Fragment header only: the offset in bytes.</summary>
    public int FragmentOffset => IsFragment ? BinaryPrimitives.ReadUInt16BigEndian(_data[Field.FragmentOffsetAndFlag..]) & 0xFFF8 : 0;

    /// <summary>Fragment header only: the M flag.</summary>
    public bool MoreFragments => IsFragment && (_data[Field.FragmentOffsetAndFlag + 1] & 1) != 0;

    /// <summary>Fragment header only: the identification.</summary>
    public uint FragmentIdentification => IsFragment ? BinaryPrimitives.ReadUInt32BigEndian(_data[Field.FragmentIdentification..]) : 0;
}

/// <summary>The outcome of a header view's length and sanity check.</summary>
public enum HeaderCheck : byte
{
    Ok,
    /// <summary>Fewer bytes than the header needs: usually the snaplen.</summary>
    Truncated,
    /// <summary>The header contradicts itself (wrong version, a length below the minimum).</summary>
    Malformed,
}
