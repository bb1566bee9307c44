using System.Buffers.Binary;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// Keeps the journeys of some containers in a whole-host trace (<c>follow web db</c>, <c>--network NAME</c>): a frame
/// matches when its IP source or destination is one of <see cref="Set"/>'s addresses and the inner selector (the user's
/// <c>--filter</c>), if any, matches too. As with <c>--filter</c>, a journey is kept when any of its copies matches, so
/// the copies NAT rewrote stay with it. Reads the outermost IP header of an Ethernet or Linux cooked v2 frame without
/// allocating; the address set is replaced, never changed in place, so the capture threads need no lock.
/// </summary>
public sealed class AddressSelector(IPacketSelector? inner = null) : IPacketSelector
{
    private const int EthernetHeader = 14;
    private const int Sll2Header = 20;
    private volatile HashSet<IpAddress> _addresses = [];

    /// <summary>Replaces the addresses (the selected containers', as they become known).</summary>
    public void Set(IEnumerable<IpAddress> addresses) => _addresses = [.. addresses];

    public int Count => _addresses.Count;

    public bool Matches(ReadOnlySpan<byte> frame, int originalLength, LinkType linkType)
    {
        int offset;
        ushort etherType;
        if (linkType == LinkType.LinuxSll2 && frame.Length >= Sll2Header)
        {
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame);
            offset = Sll2Header;
        }
        else if (linkType == LinkType.Ethernet && frame.Length >= EthernetHeader)
        {
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
            offset = EthernetHeader;
        }
        else
        {
            return false;
        }
        HashSet<IpAddress> addresses = _addresses;
        bool selected;
        if (etherType == EtherType.Ipv4.Value && frame.Length >= offset + 20)
        {
            selected = addresses.Contains(IpAddress.ReadV4(frame.Slice(offset + 12, 4))) || addresses.Contains(IpAddress.ReadV4(frame.Slice(offset + 16, 4)));
        }
        else if (etherType == EtherType.Ipv6.Value && frame.Length >= offset + 40)
        {
            selected = addresses.Contains(IpAddress.ReadV6(frame.Slice(offset + 8, 16))) || addresses.Contains(IpAddress.ReadV6(frame.Slice(offset + 24, 16)));
        }
        else
        {
            return false;
        }
        return selected && (inner is null || inner.Matches(frame, originalLength, linkType));
    }
}
