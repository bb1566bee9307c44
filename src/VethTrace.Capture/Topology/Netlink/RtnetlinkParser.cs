using System.Net;
using System.Text;
using VethTrace.Text;

namespace VethTrace.Capture.Topology.Netlink;

/// <summary>IF_OPER_* (RFC 2863 operational status, as rtnetlink reports it in IFLA_OPERSTATE).</summary>
public enum LinkOperationalState : byte
{
    Unknown = 0,
    NotPresent = 1,
    Down = 2,
    LowerLayerDown = 3,
    Testing = 4,
    Dormant = 5,
    Up = 6,
}

/// <summary>One link of a namespace, as RTM_NEWLINK described it.</summary>
/// <param name="LinkIndex">IFLA_LINK: a veth's peer ifindex (in the peer's namespace), or a macvlan/vlan's parent.</param>
/// <param name="LinkNetnsId">IFLA_LINK_NETNSID: set when <paramref name="LinkIndex"/> lives in another namespace.</param>
public sealed record NetlinkLink(
    int Index,
    string Name,
    string? Kind,
    int? LinkIndex,
    int? LinkNetnsId,
    int? MasterIndex,
    LinkOperationalState OperationalState,
    uint Flags,
    int Mtu,
    string? HardwareAddress)
{
    public bool IsLoopback => (Flags & InterfaceInfoMessage.InterfaceFlags.Loopback) != 0;

    public bool IsUp => (Flags & InterfaceInfoMessage.InterfaceFlags.Up) != 0;
}

/// <summary>One address (RTM_NEWADDR): IFA_LOCAL when present, else IFA_ADDRESS.</summary>
public sealed record NetlinkAddress(int Index, IPAddress Address, int PrefixLength, string? Label)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

/// <summary>One route (RTM_NEWROUTE).</summary>
public sealed record NetlinkRoute(
    byte Family,
    int DestinationLength,
    IPAddress? Destination,
    IPAddress? Gateway,
    int? OutputIndex,
    uint Table,
    byte Type,
    uint Priority)
{
    public bool IsDefault => DestinationLength == 0;
}

/// <summary>How far one datagram of a dump got.</summary>
public enum NetlinkDumpStatus : byte
{
    /// <summary>Parsed; the dump continues in the next datagram.</summary>
    More = 0,
    /// <summary>NLMSG_DONE seen.</summary>
    Done = 1,
    /// <summary>NLMSG_ERROR with a non-zero code (<see cref="NetlinkDatagramResult.Errno"/>).</summary>
    Error = 2,
    /// <summary>A message header did not fit or lied about its length; the rest of the datagram was skipped.</summary>
    Malformed = 3,
}

public readonly record struct NetlinkDatagramResult(NetlinkDumpStatus Status, int Errno, int Messages);

/// <summary>What a set of rtnetlink dumps returned, plus what could not be parsed (lax: good records are kept).</summary>
public sealed class NetlinkDump
{
    public List<NetlinkLink> Links { get; } = [];

    public List<NetlinkAddress> Addresses { get; } = [];

    public List<NetlinkRoute> Routes { get; } = [];

    /// <summary>Messages that were cut short or malformed, one line each.</summary>
    public List<string> Problems { get; } = [];
}

/// <summary>
/// Parses rtnetlink dump replies (RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE) into records. Never throws on bad input:
/// a malformed message is recorded in <see cref="NetlinkDump.Problems"/> and skipped, and every loop advances
/// at least one header per step, so no input can make it hang.
/// </summary>
public static class RtnetlinkParser
{
    /// <summary>The first member of NLMSG_ERROR's payload: a negative errno, or 0 for an ACK.</summary>
    private const int ErrorCodeLength = 4;

    private const byte FamilyInet = 2;
    private const byte FamilyInet6 = 10;

    /// <summary>Parses one datagram of a dump; messages whose sequence differs from <paramref name="sequence"/> are ignored.</summary>
    public static NetlinkDatagramResult ParseDatagram(ReadOnlySpan<byte> datagram, uint? sequence, NetlinkDump into)
    {
        var reader = new NetlinkMessageReader(datagram);
        int messages = 0;
        while (reader.BytesRemaining > 0)
        {
            NetlinkCheck check = reader.TryRead(out NetlinkMessageHeader message);
            if (check != NetlinkCheck.Ok)
            {
                into.Problems.Add($"netlink message header {check.ToString().ToLowerInvariant()} with {reader.BytesRemaining} bytes left in the datagram");
                return new NetlinkDatagramResult(NetlinkDumpStatus.Malformed, 0, messages);
            }
            messages++;
            if (sequence is uint expected && message.Sequence != expected)
            {
                continue;
            }
            switch (message.Type)
            {
                case NetlinkMessageType.Done:
                    return new NetlinkDatagramResult(NetlinkDumpStatus.Done, 0, messages);
                case NetlinkMessageType.Error:
                    int errno = message.Payload.Length >= ErrorCodeLength ? -HostOrder.ReadInt32(message.Payload) : 0;
                    if (message.Payload.Length < ErrorCodeLength)
                    {
                        into.Problems.Add("NLMSG_ERROR without an error code");
                        return new NetlinkDatagramResult(NetlinkDumpStatus.Malformed, 0, messages);
                    }
                    // An error code of 0 is an acknowledgment, not a failure.
                    return errno == 0
                        ? new NetlinkDatagramResult(NetlinkDumpStatus.Done, 0, messages)
                        : new NetlinkDatagramResult(NetlinkDumpStatus.Error, errno, messages);
                case NetlinkMessageType.NewLink:
                    if (TryParseLink(message.Payload, out NetlinkLink? link, out string? linkProblem))
                    {
                        into.Links.Add(link);
                    }
                    AddProblem(into, linkProblem);
                    break;
                case NetlinkMessageType.NewAddress:
                    if (TryParseAddress(message.Payload, out NetlinkAddress? address, out string? addressProblem))
                    {
                        into.Addresses.Add(address);
                    }
                    AddProblem(into, addressProblem);
                    break;
                case NetlinkMessageType.NewRoute:
                    if (TryParseRoute(message.Payload, out NetlinkRoute? route, out string? routeProblem))
                    {
                        into.Routes.Add(route);
                    }
                    AddProblem(into, routeProblem);
                    break;
                default:
                    // NLMSG_NOOP, NLMSG_OVERRUN and other families' messages carry nothing we use.
                    break;
            }
        }
        return new NetlinkDatagramResult(NetlinkDumpStatus.More, 0, messages);
    }

    /// <summary>
    /// Parses an RTM_NEWLINK payload. Lax: attributes after a malformed one are lost, but the link is kept
    /// (with <paramref name="problem"/> set) as long as its ifinfomsg is whole.
    /// </summary>
    public static bool TryParseLink(ReadOnlySpan<byte> payload, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out NetlinkLink? link, out string? problem)
    {
        link = null;
        problem = null;
        if (InterfaceInfoMessage.TryCreate(payload, out InterfaceInfoMessage info) != NetlinkCheck.Ok)
        {
            problem = $"RTM_NEWLINK: ifinfomsg truncated ({payload.Length} of {InterfaceInfoMessage.Field.HeaderLength} bytes)";
            return false;
        }
        string? name = null, kind = null, hardware = null;
        int? linkIndex = null, linkNetnsId = null, master = null;
        int mtu = 0;
        var state = LinkOperationalState.Unknown;
        var attributes = new RouteAttributeReader(info.Attributes);
        while (attributes.BytesRemaining > 0)
        {
            NetlinkCheck check = attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value);
            if (check != NetlinkCheck.Ok)
            {
                problem = $"RTM_NEWLINK ifindex {info.Index}: attribute {check.ToString().ToLowerInvariant()}";
                break;
            }
            switch (type)
            {
                case InterfaceInfoMessage.Attribute.IfName:
                    name = ReadString(value);
                    break;
                case InterfaceInfoMessage.Attribute.Address:
                    hardware = value.Length > 0 ? FormatMac(Convert.ToHexStringLower(value)) : null;
                    break;
                case InterfaceInfoMessage.Attribute.Mtu when value.Length >= 4:
                    mtu = HostOrder.ReadInt32(value);
                    break;
                case InterfaceInfoMessage.Attribute.Link when value.Length >= 4:
                    linkIndex = HostOrder.ReadInt32(value);
                    break;
                case InterfaceInfoMessage.Attribute.LinkNetnsId when value.Length >= 4:
                    linkNetnsId = HostOrder.ReadInt32(value);
                    break;
                case InterfaceInfoMessage.Attribute.Master when value.Length >= 4:
                    master = HostOrder.ReadInt32(value);
                    break;
                case InterfaceInfoMessage.Attribute.OperState when value.Length >= 1:
                    state = (LinkOperationalState)value[0];
                    break;
                case InterfaceInfoMessage.Attribute.LinkInfo:
                    kind = ReadLinkKind(value);
                    break;
            }
        }
        link = new NetlinkLink(info.Index, name ?? $"if{info.Index}", kind, linkIndex, linkNetnsId, master, state, info.Flags, mtu, hardware);
        return true;
    }

    /// <summary>Parses an RTM_NEWADDR payload; false when the header is cut or no address attribute is whole.</summary>
    public static bool TryParseAddress(ReadOnlySpan<byte> payload, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out NetlinkAddress? address, out string? problem)
    {
        address = null;
        problem = null;
        if (AddressMessage.TryCreate(payload, out AddressMessage message) != NetlinkCheck.Ok)
        {
            problem = $"RTM_NEWADDR: ifaddrmsg truncated ({payload.Length} of {AddressMessage.Field.HeaderLength} bytes)";
            return false;
        }
        IPAddress? local = null, peer = null;
        string? label = null;
        var attributes = new RouteAttributeReader(message.Attributes);
        while (attributes.BytesRemaining > 0)
        {
            NetlinkCheck check = attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value);
            if (check != NetlinkCheck.Ok)
            {
                problem = $"RTM_NEWADDR ifindex {message.Index}: attribute {check.ToString().ToLowerInvariant()}";
                break;
            }
            switch (type)
            {
                case AddressMessage.Attribute.Local:
                    local = ReadAddress(message.Family, value);
                    break;
                case AddressMessage.Attribute.Address:
                    peer = ReadAddress(message.Family, value);
                    break;
                case AddressMessage.Attribute.Label:
                    label = ReadString(value);
                    break;
            }
        }
        // if_addr.h: on a point-to-point link IFA_ADDRESS is the far end; IFA_LOCAL is always ours.
        IPAddress? chosen = local ?? peer;
        if (chosen is null)
        {
            problem ??= $"RTM_NEWADDR ifindex {message.Index}: no address";
            return false;
        }
        address = new NetlinkAddress(message.Index, chosen, message.PrefixLength, label);
        return true;
    }

    /// <summary>Parses an RTM_NEWROUTE payload; false only when the rtmsg header is cut.</summary>
    public static bool TryParseRoute(ReadOnlySpan<byte> payload, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out NetlinkRoute? route, out string? problem)
    {
        route = null;
        problem = null;
        if (RouteMessage.TryCreate(payload, out RouteMessage message) != NetlinkCheck.Ok)
        {
            problem = $"RTM_NEWROUTE: rtmsg truncated ({payload.Length} of {RouteMessage.Field.HeaderLength} bytes)";
            return false;
        }
        IPAddress? destination = null, gateway = null;
        int? output = null;
        uint table = message.Table, priority = 0;
        var attributes = new RouteAttributeReader(message.Attributes);
        while (attributes.BytesRemaining > 0)
        {
            NetlinkCheck check = attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value);
            if (check != NetlinkCheck.Ok)
            {
                problem = $"RTM_NEWROUTE: attribute {check.ToString().ToLowerInvariant()}";
                break;
            }
            switch (type)
            {
                case RouteMessage.Attribute.Destination:
                    destination = ReadAddress(message.Family, value);
                    break;
                case RouteMessage.Attribute.Gateway:
                    gateway = ReadAddress(message.Family, value);
                    break;
                case RouteMessage.Attribute.OutputInterface when value.Length >= 4:
                    output = HostOrder.ReadInt32(value);
                    break;
                case RouteMessage.Attribute.Priority when value.Length >= 4:
                    priority = HostOrder.ReadUInt32(value);
                    break;
                case RouteMessage.Attribute.Table when value.Length >= 4:
                    table = HostOrder.ReadUInt32(value);
                    break;
            }
        }
        route = new NetlinkRoute(message.Family, message.DestinationLength, destination, gateway, output, table, message.Type, priority);
        return true;
    }

    /// <summary>IFLA_INFO_KIND inside IFLA_LINKINFO; null when absent (a physical device has none).</summary>
    private static string? ReadLinkKind(ReadOnlySpan<byte> linkInfo)
    {
        var nested = new RouteAttributeReader(linkInfo);
        while (nested.BytesRemaining > 0)
        {
            if (nested.TryRead(out ushort type, out ReadOnlySpan<byte> value) != NetlinkCheck.Ok)
            {
                return null;
            }
            if (type == InterfaceInfoMessage.LinkInfoAttribute.Kind)
            {
                return ReadString(value);
            }
        }
        return null;
    }

    private static IPAddress? ReadAddress(byte family, ReadOnlySpan<byte> value) => family switch
    {
        FamilyInet when value.Length == 4 => new IPAddress(value),
        FamilyInet6 when value.Length == 16 => new IPAddress(value),
        _ => null,
    };

    /// <summary>
    /// Netlink strings are NUL-terminated inside the attribute; tolerate a missing terminator. An interface name is
    /// bytes, not checked UTF-8: decoded so that a stray byte is kept (and printed as \xNN), not replaced.
    /// </summary>
    private static string ReadString(ReadOnlySpan<byte> value)
    {
        int end = value.IndexOf((byte)0);
        return LosslessUtf8.Decode(end < 0 ? value : value[..end]);
    }

    private static string FormatMac(string hex)
    {
        var builder = new StringBuilder(hex.Length + hex.Length / 2);
        for (int i = 0; i + 1 < hex.Length; i += 2)
        {
            if (i > 0)
            {
                builder.Append(':');
            }
            builder.Append(hex, i, 2);
        }
        return builder.ToString();
    }

    private static void AddProblem(NetlinkDump into, string? problem)
    {
        if (problem is not null)
        {
            into.Problems.Add(problem);
        }
    }
}
