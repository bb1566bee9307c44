using System.Runtime.InteropServices;

namespace VethTrace.Capture.Topology.Netlink;

/// <summary>The outcome of checking a netlink header or attribute against the bytes that hold it.</summary>
public enum NetlinkCheck : byte
{
    Ok = 0,
    /// <summary>Fewer bytes than the header, or than its own length field, claims.</summary>
    Truncated = 1,
    /// <summary>A length field smaller than the fixed header it belongs to.</summary>
    Malformed = 2,
}

/// <summary>
/// Netlink fields are in host byte order (netlink(7)); every .NET Linux target this tool supports is
/// little-endian, but reading natively keeps the parser honest on big-endian hosts too.
/// </summary>
internal static class HostOrder
{
    public static ushort ReadUInt16(ReadOnlySpan<byte> data) => MemoryMarshal.Read<ushort>(data);

    public static uint ReadUInt32(ReadOnlySpan<byte> data) => MemoryMarshal.Read<uint>(data);

    public static int ReadInt32(ReadOnlySpan<byte> data) => MemoryMarshal.Read<int>(data);

    public static void Write(Span<byte> data, ushort value) => MemoryMarshal.Write(data, in value);

    public static void Write(Span<byte> data, uint value) => MemoryMarshal.Write(data, in value);

    /// <summary>NLMSG_ALIGN / RTA_ALIGN: netlink messages and attributes are padded to 4 bytes.</summary>
    public static int Align4(int length) => (length + 3) & ~3;
}

/// <summary>Message types and flags of the netlink(7) / rtnetlink(7) protocol used here.</summary>
public static class NetlinkMessageType
{
    public const ushort Noop = 1;
    public const ushort Error = 2;
    public const ushort Done = 3;
    public const ushort Overrun = 4;
    public const ushort NewLink = 16;
    /// <summary>RTM_DELLINK: sent to RTNLGRP_LINK when a link is deleted or leaves the namespace.</summary>
    public const ushort DeleteLink = 17;
    public const ushort GetLink = 18;
    public const ushort NewAddress = 20;
    public const ushort GetAddress = 22;
    public const ushort NewRoute = 24;
    public const ushort GetRoute = 26;
}

public static class NetlinkFlags
{
    public const ushort Request = 0x1;
    public const ushort Multi = 0x2;
    public const ushort Ack = 0x4;
    /// <summary>NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH.</summary>
    public const ushort Dump = 0x300;
    /// <summary>NLMSG_ERROR carries only the header of the failed request (NLM_F_CAPPED).</summary>
    public const ushort Capped = 0x100;
}

/// <summary>
/// A <c>struct nlmsghdr</c> over a span (include/uapi/linux/netlink.h). <see cref="TryCreate"/> checks the
/// 16 fixed bytes and that <c>nlmsg_len</c> covers the header and fits in the span; after that no accessor can throw.
/// </summary>
public readonly ref struct NetlinkMessageHeader
{
    public static class Field
    {
        public const int Length = 0;
        public const int Type = Length + 4;
        public const int Flags = Type + 2;
        public const int Sequence = Flags + 2;
        public const int PortId = Sequence + 4;
        public const int HeaderLength = PortId + 4;
    }

    private readonly ReadOnlySpan<byte> _data;

    private NetlinkMessageHeader(ReadOnlySpan<byte> data) => _data = data;

    /// <summary>Checks one message at the start of <paramref name="data"/>; the view covers exactly <c>nlmsg_len</c> bytes.</summary>
    public static NetlinkCheck TryCreate(ReadOnlySpan<byte> data, out NetlinkMessageHeader header)
    {
        header = default;
        if (data.Length < Field.HeaderLength)
        {
            return NetlinkCheck.Truncated;
        }
        uint length = HostOrder.ReadUInt32(data);
        if (length < Field.HeaderLength)
        {
            return NetlinkCheck.Malformed;
        }
        if (length > (uint)data.Length)
        {
            return NetlinkCheck.Truncated;
        }
        header = new NetlinkMessageHeader(data[..(int)length]);
        return NetlinkCheck.Ok;
    }

    public int Length => _data.Length;

    public ushort Type => HostOrder.ReadUInt16(_data[Field.Type..]);

    public ushort Flags => HostOrder.ReadUInt16(_data[Field.Flags..]);

    public uint Sequence => HostOrder.ReadUInt32(_data[Field.Sequence..]);

    public uint PortId => HostOrder.ReadUInt32(_data[Field.PortId..]);

    public ReadOnlySpan<byte> Payload => _data[Field.HeaderLength..];
}

/// <summary>
/// Walks the messages of one netlink datagram. Peek, then advance: <see cref="TryRead"/> moves the cursor only
/// when it returns <see cref="NetlinkCheck.Ok"/>. Each successful read advances at least 16 bytes, so the walk ends.
/// </summary>
public ref struct NetlinkMessageReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _offset;

    public NetlinkMessageReader(ReadOnlySpan<byte> data) => _data = data;

    public readonly int BytesRemaining => _data.Length - _offset;

    public NetlinkCheck TryRead(out NetlinkMessageHeader message)
    {
        NetlinkCheck check = NetlinkMessageHeader.TryCreate(_data[_offset..], out message);
        if (check == NetlinkCheck.Ok)
        {
            // The last message of a datagram may omit its trailing padding: clamp the aligned length.
            _offset += Math.Min(HostOrder.Align4(message.Length), BytesRemaining);
        }
        return check;
    }
}

/// <summary>
/// Walks <c>struct rtattr</c> / <c>struct nlattr</c> TLVs (4-byte header: length, type). Peek, then advance;
/// each successful read advances at least 4 bytes, so a hostile run of attributes cannot loop.
/// </summary>
public ref struct RouteAttributeReader
{
    public static class Field
    {
        public const int Length = 0;
        public const int Type = Length + 2;
        public const int HeaderLength = Type + 2;
    }

    /// <summary>NLA_F_NESTED and NLA_F_NET_BYTEORDER share the type field's top two bits.</summary>
    public const ushort TypeMask = 0x3FFF;

    private readonly ReadOnlySpan<byte> _data;
    private int _offset;

    public RouteAttributeReader(ReadOnlySpan<byte> data) => _data = data;

    public readonly int BytesRemaining => _data.Length - _offset;

    /// <summary>Reads the next attribute; <paramref name="type"/> has the flag bits masked off.</summary>
    public NetlinkCheck TryRead(out ushort type, out ReadOnlySpan<byte> value)
    {
        type = 0;
        value = default;
        ReadOnlySpan<byte> rest = _data[_offset..];
        if (rest.Length < Field.HeaderLength)
        {
            return NetlinkCheck.Truncated;
        }
        ushort length = HostOrder.ReadUInt16(rest);
        if (length < Field.HeaderLength)
        {
            return NetlinkCheck.Malformed;
        }
        if (length > rest.Length)
        {
            return NetlinkCheck.Truncated;
        }
        type = (ushort)(HostOrder.ReadUInt16(rest[Field.Type..]) & TypeMask);
        value = rest[Field.HeaderLength..length];
        _offset += Math.Min(HostOrder.Align4(length), rest.Length);
        return NetlinkCheck.Ok;
    }
}

/// <summary>
/// <c>struct ifinfomsg</c> (include/uapi/linux/rtnetlink.h), the fixed part of RTM_NEWLINK, followed by IFLA_* attributes.
/// No accessor can throw after a successful <see cref="TryCreate"/>.
/// </summary>
public readonly ref struct InterfaceInfoMessage
{
    public static class Field
    {
        public const int Family = 0;
        public const int Padding = Family + 1;
        public const int DeviceType = Padding + 1;
        public const int Index = DeviceType + 2;
        public const int Flags = Index + 4;
        public const int Change = Flags + 4;
        public const int HeaderLength = Change + 4;
    }

    /// <summary>IFLA_* attribute types (include/uapi/linux/if_link.h).</summary>
    public static class Attribute
    {
        public const ushort Address = 1;
        public const ushort IfName = 3;
        public const ushort Mtu = 4;
        /// <summary>For a veth: the peer's ifindex, in the peer's namespace; for macvlan: the parent.</summary>
        public const ushort Link = 5;
        public const ushort Master = 10;
        public const ushort OperState = 16;
        public const ushort LinkInfo = 18;
        /// <summary>Present when IFLA_LINK lives in another namespace (the peer's netnsid as seen from here).</summary>
        public const ushort LinkNetnsId = 37;
    }

    /// <summary>IFLA_INFO_* attributes nested in IFLA_LINKINFO.</summary>
    public static class LinkInfoAttribute
    {
        public const ushort Kind = 1;
        public const ushort Data = 2;
        public const ushort SlaveKind = 4;
    }

    /// <summary>IFF_* bits of ifi_flags (include/uapi/linux/if.h).</summary>
    public static class InterfaceFlags
    {
        public const uint Up = 0x1;
        public const uint Loopback = 0x8;
        public const uint Promiscuous = 0x100;
        public const uint LowerUp = 0x10000;
    }

    private readonly ReadOnlySpan<byte> _data;

    private InterfaceInfoMessage(ReadOnlySpan<byte> data) => _data = data;

    public static NetlinkCheck TryCreate(ReadOnlySpan<byte> payload, out InterfaceInfoMessage message)
    {
        message = default;
        if (payload.Length < Field.HeaderLength)
        {
            return NetlinkCheck.Truncated;
        }
        message = new InterfaceInfoMessage(payload);
        return NetlinkCheck.Ok;
    }

    public byte Family => _data[Field.Family];

    public ushort DeviceType => HostOrder.ReadUInt16(_data[Field.DeviceType..]);

    public int Index => HostOrder.ReadInt32(_data[Field.Index..]);

    public uint Flags => HostOrder.ReadUInt32(_data[Field.Flags..]);

    /// <summary>The IFLA_* attributes; the fixed header is already 4-byte aligned.</summary>
    public ReadOnlySpan<byte> Attributes => _data[Field.HeaderLength..];
}

/// <summary><c>struct ifaddrmsg</c> (include/uapi/linux/if_addr.h), the fixed part of RTM_NEWADDR, followed by IFA_* attributes.</summary>
public readonly ref struct AddressMessage
{
    public static class Field
    {
        public const int Family = 0;
        public const int PrefixLength = Family + 1;
        public const int Flags = PrefixLength + 1;
        public const int Scope = Flags + 1;
        public const int Index = Scope + 1;
        public const int HeaderLength = Index + 4;
    }

    public static class Attribute
    {
        /// <summary>The peer address on point-to-point links, else the local address.</summary>
        public const ushort Address = 1;
        public const ushort Local = 2;
        public const ushort Label = 3;
    }

    private readonly ReadOnlySpan<byte> _data;

    private AddressMessage(ReadOnlySpan<byte> data) => _data = data;

    public static NetlinkCheck TryCreate(ReadOnlySpan<byte> payload, out AddressMessage message)
    {
        message = default;
        if (payload.Length < Field.HeaderLength)
        {
            return NetlinkCheck.Truncated;
        }
        message = new AddressMessage(payload);
        return NetlinkCheck.Ok;
    }

    public byte Family => _data[Field.Family];

    public byte PrefixLength => _data[Field.PrefixLength];

    public byte Scope => _data[Field.Scope];

    public int Index => HostOrder.ReadInt32(_data[Field.Index..]);

    public ReadOnlySpan<byte> Attributes => _data[Field.HeaderLength..];
}

/// <summary><c>struct rtmsg</c> (include/uapi/linux/rtnetlink.h), the fixed part of RTM_NEWROUTE, followed by RTA_* attributes.</summary>
public readonly ref struct RouteMessage
{
    public static class Field
    {
        public const int Family = 0;
        public const int DestinationLength = Family + 1;
        public const int SourceLength = DestinationLength + 1;
        public const int Tos = SourceLength + 1;
        public const int Table = Tos + 1;
        public const int Protocol = Table + 1;
        public const int Scope = Protocol + 1;
        public const int Type = Scope + 1;
        public const int Flags = Type + 1;
        public const int HeaderLength = Flags + 4;
    }

    public static class Attribute
    {
        public const ushort Destination = 1;
        public const ushort OutputInterface = 4;
        public const ushort Gateway = 5;
        public const ushort Priority = 6;
        /// <summary>The full table id; rtm_table holds only its low 8 bits (RT_TABLE_COMPAT above 255).</summary>
        public const ushort Table = 15;
    }

    /// <summary>RT_TABLE_MAIN.</summary>
    public const uint MainTable = 254;

    /// <summary>RTN_UNICAST.</summary>
    public const byte UnicastType = 1;

    /// <summary>AF_INET and AF_INET6, as rtm_family.</summary>
    public const byte FamilyInet = 2;
    public const byte FamilyInet6 = 10;

    private readonly ReadOnlySpan<byte> _data;

    private RouteMessage(ReadOnlySpan<byte> data) => _data = data;

    public static NetlinkCheck TryCreate(ReadOnlySpan<byte> payload, out RouteMessage message)
    {
        message = default;
        if (payload.Length < Field.HeaderLength)
        {
            return NetlinkCheck.Truncated;
        }
        message = new RouteMessage(payload);
        return NetlinkCheck.Ok;
    }

    public byte Family => _data[Field.Family];

    public byte DestinationLength => _data[Field.DestinationLength];

    public byte Table => _data[Field.Table];

    public byte Type => _data[Field.Type];

    public ReadOnlySpan<byte> Attributes => _data[Field.HeaderLength..];
}
