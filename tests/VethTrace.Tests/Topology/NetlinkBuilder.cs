using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Tests.Topology;

/// <summary>
/// Builds rtnetlink messages byte by byte, in host byte order as the kernel sends them (netlink(7)),
/// so the parser can be tested on exact layouts, and on every truncation of them.
/// </summary>
internal static class NetlinkBuilder
{
    public static byte[] Message(ushort type, uint sequence, byte[] payload, ushort flags = NetlinkFlags.Multi)
    {
        int length = 16 + payload.Length;
        var message = new byte[Align(length)];
        Put32(message, 0, (uint)length);
        Put16(message, 4, type);
        Put16(message, 6, flags);
        Put32(message, 8, sequence);
        Put32(message, 12, 4242);
        payload.CopyTo(message, 16);
        return message;
    }

    public static byte[] Done(uint sequence) => Message(NetlinkMessageType.Done, sequence, [0, 0, 0, 0]);

    public static byte[] Error(uint sequence, int errno)
    {
        var payload = new byte[20];
        Put32(payload, 0, (uint)-errno);
        return Message(NetlinkMessageType.Error, sequence, payload, 0);
    }

    /// <summary>struct ifinfomsg (16 bytes) followed by the attributes.</summary>
    public static byte[] Link(int index, uint flags, params byte[][] attributes)
    {
        var header = new byte[16];
        Put16(header, 2, 1); // ARPHRD_ETHER
        Put32(header, 4, (uint)index);
        Put32(header, 8, flags);
        return Concat([header, .. attributes]);
    }

    /// <summary>struct ifaddrmsg (8 bytes) followed by the attributes.</summary>
    public static byte[] Address(byte family, byte prefixLength, int index, params byte[][] attributes)
    {
        var header = new byte[8];
        header[0] = family;
        header[1] = prefixLength;
        Put32(header, 4, (uint)index);
        return Concat([header, .. attributes]);
    }

    /// <summary>struct rtmsg (12 bytes) followed by the attributes.</summary>
    public static byte[] Route(byte family, byte destinationLength, byte table, byte type, params byte[][] attributes)
    {
        var header = new byte[12];
        header[0] = family;
        header[1] = destinationLength;
        header[4] = table;
        header[7] = type;
        return Concat([header, .. attributes]);
    }

    public static byte[] Attribute(ushort type, byte[] value)
    {
        int length = 4 + value.Length;
        var attribute = new byte[Align(length)];
        Put16(attribute, 0, (ushort)length);
        Put16(attribute, 2, type);
        value.CopyTo(attribute, 4);
        return attribute;
    }

    public static byte[] String(ushort type, string text) => Attribute(type, [.. Encoding.ASCII.GetBytes(text), 0]);

    public static byte[] Int32(ushort type, int value)
    {
        var bytes = new byte[4];
        Put32(bytes, 0, (uint)value);
        return Attribute(type, bytes);
    }

    public static byte[] Ip(ushort type, string address) => Attribute(type, IPAddress.Parse(address).GetAddressBytes());

    /// <summary>IFLA_LINKINFO { IFLA_INFO_KIND kind }, with NLA_F_NESTED set as newer kernels do.</summary>
    public static byte[] LinkInfo(string kind) => Attribute(
        InterfaceInfoMessage.Attribute.LinkInfo | 0x8000,
        String(InterfaceInfoMessage.LinkInfoAttribute.Kind, kind));

    /// <summary>A veth RTM_NEWLINK as the kernel sends it for a host veth (peer in another namespace).</summary>
    public static byte[] VethLink(uint sequence, int index, string name, int peer, int? master, int? peerNetnsId = 0) => Message(
        NetlinkMessageType.NewLink, sequence, Link(index, 0x11043,
            [String(InterfaceInfoMessage.Attribute.IfName, name),
             Int32(InterfaceInfoMessage.Attribute.Mtu, 1500),
             Int32(InterfaceInfoMessage.Attribute.Link, peer),
             .. master is int m ? new[] { Int32(InterfaceInfoMessage.Attribute.Master, m) } : [],
             Attribute(InterfaceInfoMessage.Attribute.OperState, [6]),
             LinkInfo("veth"),
             .. peerNetnsId is int id ? new[] { Int32(InterfaceInfoMessage.Attribute.LinkNetnsId, id) } : []]));

    public static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(part => part)];

    private static int Align(int length) => (length + 3) & ~3;

    private static void Put16(byte[] buffer, int offset, ushort value) => MemoryMarshal.Write(buffer.AsSpan(offset), in value);

    private static void Put32(byte[] buffer, int offset, uint value) => MemoryMarshal.Write(buffer.AsSpan(offset), in value);
}
