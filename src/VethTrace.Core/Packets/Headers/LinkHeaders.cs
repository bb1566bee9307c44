using System.Buffers.Binary;

namespace VethTrace.Packets.Headers;

/// <summary>
/// An Ethernet II header (IEEE 802.3 clause 3.2) over a span: destination, source, type.
/// Once <see cref="TryCreate"/> succeeds no accessor can throw.
/// </summary>
public readonly ref struct EthernetHeader
{
    public static class Field
    {
        public const int Destination = 0;
        public const int Source = Destination + 6;
        public const int EtherType = Source + 6;
        public const int HeaderLength = EtherType + 2;
    }

    private readonly ReadOnlySpan<byte> _data;

    private EthernetHeader(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out EthernetHeader header)
    {
        if (data.Length < Field.HeaderLength)
        {
            header = default;
            return false;
        }
        header = new EthernetHeader(data);
        return true;
    }

    public ReadOnlySpan<byte> Destination => _data.Slice(Field.Destination, 6);

    public ReadOnlySpan<byte> Source => _data.Slice(Field.Source, 6);

    public EtherType EtherType => new(BinaryPrimitives.ReadUInt16BigEndian(_data[Field.EtherType..]));
}

/// <summary>
/// The 4 bytes that follow a VLAN TPID (IEEE 802.1Q clause 9.6): the tag control information
/// (priority, drop eligible, VLAN id) and the next EtherType. The TPID itself is the previous type field.
/// </summary>
public readonly ref struct VlanTag
{
    public static class Field
    {
        public const int TagControl = 0;
        public const int EtherType = TagControl + 2;
        public const int HeaderLength = EtherType + 2;
    }

    private readonly ReadOnlySpan<byte> _data;

    private VlanTag(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out VlanTag tag)
    {
        if (data.Length < Field.HeaderLength)
        {
            tag = default;
            return false;
        }
        tag = new VlanTag(data);
        return true;
    }

    private ushort TagControl => BinaryPrimitives.ReadUInt16BigEndian(_data);

    public ushort VlanId => (ushort)(TagControl & 0x0FFF);

    public byte Priority => (byte)(TagControl >> 13);

    public EtherType EtherType => new(BinaryPrimitives.ReadUInt16BigEndian(_data[Field.EtherType..]));
}

/// <summary>
/// Linux cooked capture v1 (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html), 16 bytes.
/// </summary>
public readonly ref struct LinuxSllHeader
{
    public static class Field
    {
        public const int PacketType = 0;
        public const int ArpHardwareType = PacketType + 2;
        public const int AddressLength = ArpHardwareType + 2;
        public const int Address = AddressLength + 2;
        public const int Protocol = Address + 8;
        public const int HeaderLength = Protocol + 2;
    }

    private readonly ReadOnlySpan<byte> _data;

    private LinuxSllHeader(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out LinuxSllHeader header)
    {
        if (data.Length < Field.HeaderLength)
        {
            header = default;
            return false;
        }
        header = new LinuxSllHeader(data);
        return true;
    }

    public LinuxPacketType PacketType => (LinuxPacketType)BinaryPrimitives.ReadUInt16BigEndian(_data);

    public ushort ArpHardwareType => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.ArpHardwareType..]);

    /// <summary>An EtherType for most devices; small values mean 802.3 or 802.2 frames (see the link above).</summary>
    public EtherType Protocol => new(BinaryPrimitives.ReadUInt16BigEndian(_data[Field.Protocol..]));
}

/// <summary>
/// Linux cooked capture v2 (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html), 20 bytes,
/// written by <c>tcpdump -i any</c> since libpcap 1.10. It adds the interface index.
/// </summary>
public readonly ref struct LinuxSll2Header
{
    public static class Field
    {
        public const int Protocol = 0;
        public const int Reserved = Protocol + 2;
        public const int InterfaceIndex = Reserved + 2;
        public const int ArpHardwareType = InterfaceIndex + 4;
        public const int PacketType = ArpHardwareType + 2;
        public const int AddressLength = PacketType + 1;
        public const int Address = AddressLength + 1;
        public const int HeaderLength = Address + 8;
    }

    private readonly ReadOnlySpan<byte> _data;

    private LinuxSll2Header(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out LinuxSll2Header header)
    {
        if (data.Length < Field.HeaderLength)
        {
            header = default;
            return false;
        }
        header = new LinuxSll2Header(data);
        return true;
    }

    public EtherType Protocol => new(BinaryPrimitives.ReadUInt16BigEndian(_data));

    public int InterfaceIndex => BinaryPrimitives.ReadInt32BigEndian(_data[Field.InterfaceIndex..]);

    public ushort ArpHardwareType => BinaryPrimitives.ReadUInt16BigEndian(_data[Field.ArpHardwareType..]);

    public LinuxPacketType PacketType => (LinuxPacketType)_data[Field.PacketType];
}

/// <summary>
/// The PPP header of LINKTYPE_PPP (https://www.tcpdump.org/linktypes/LINKTYPE_PPP.html): the RFC 1662 HDLC-like
/// address and control bytes (0xff 0x03) when present, then the protocol (RFC 1661 section 2), one byte when
/// compressed (RFC 1661 section 6.5: an odd first byte ends the field).
/// </summary>
public static class PppHeader
{
    public const byte AllStationsAddress = 0xFF;
    public const byte UnnumberedInformation = 0x03;

    // PPP DLL protocol numbers (IANA "PPP DLL Protocol Numbers").
    public const ushort Ipv4 = 0x0021;
    public const ushort Ipv6 = 0x0057;
    public const ushort MplsUnicast = 0x0281;
    public const ushort MplsMulticast = 0x0283;

    /// <summary>
    /// Reads the protocol and the header's length. False when the data ends inside the header; <paramref name="headerLength"/>
    /// is then the length it needs. A protocol field never starts with 0xff (its first byte is even, RFC 1661 section 2),
    /// so 0xff can only be the address.
    /// </summary>
    public static bool TryReadProtocol(ReadOnlySpan<byte> data, out ushort protocol, out int headerLength)
    {
        protocol = 0;
        int start = !data.IsEmpty && data[0] == AllStationsAddress ? 2 : 0;
        headerLength = start + 1;
        if (data.Length < headerLength)
        {
            return false;
        }
        byte first = data[start];
        if ((first & 1) != 0)
        {
            protocol = first;
            return true;
        }
        headerLength = start + 2;
        if (data.Length < headerLength)
        {
            return false;
        }
        protocol = (ushort)(first << 8 | data[start + 1]);
        return true;
    }

    /// <summary>The EtherType of what a PPP protocol carries, or 0 for one VethTrace does not dissect (LCP, IPCP, …).</summary>
    public static EtherType ToEtherType(ushort protocol) => protocol switch
    {
        Ipv4 => EtherType.Ipv4,
        Ipv6 => EtherType.Ipv6,
        MplsUnicast => EtherType.MplsUnicast,
        MplsMulticast => EtherType.MplsMulticast,
        _ => new EtherType(0),
    };
}

/// <summary>
/// BSD loopback (LINKTYPE_NULL): a 4-byte address family in the byte order of the host that captured.
/// LINKTYPE_LOOP is the same, always big-endian.
/// </summary>
public static class NullHeader
{
    public const int HeaderLength = 4;

    // AF_INET is 2 everywhere; AF_INET6 differs by OS (https://www.tcpdump.org/linktypes/LINKTYPE_NULL.html).
    private const uint AfInet = 2;
    private const uint AfInet6Linux = 10;
    private const uint AfInet6NetBsdOpenBsd = 24;
    private const uint AfInet6FreeBsd = 28;
    private const uint AfInet6Darwin = 30;

    /// <summary>
    /// Reads the family. The writer's byte order is unknown, so a value that only makes sense
    /// byte-swapped (families are small numbers) is swapped.
    /// </summary>
    public static bool TryReadEtherType(ReadOnlySpan<byte> data, bool alwaysBigEndian, out EtherType etherType)
    {
        etherType = default;
        if (data.Length < HeaderLength)
        {
            return false;
        }
        uint family = alwaysBigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data) : BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (family > 0xFFFF)
        {
            family = BinaryPrimitives.ReverseEndianness(family);
        }
        etherType = family switch
        {
            AfInet => EtherType.Ipv4,
            AfInet6Linux or AfInet6NetBsdOpenBsd or AfInet6FreeBsd or AfInet6Darwin => EtherType.Ipv6,
            _ => new EtherType(0),
        };
        return true;
    }
}
