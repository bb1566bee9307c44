using System.Buffers.Binary;
using System.Net;

namespace VethTrace.Packets;

/// <summary>
/// An IPv4 or IPv6 address held by value (no allocation), so it can live in a parsed packet,
/// a flow key or an observation. IPv4 addresses keep their own family: they are not folded into
/// IPv4-mapped IPv6, because a report must print them as the wire carried them.
/// </summary>
public readonly struct IpAddress : IEquatable<IpAddress>, IComparable<IpAddress>
{
    // The address as a 128-bit big-endian number in two halves; IPv4 uses the low 32 bits. Two ulongs, not a
    // UInt128: UInt128 is 16-byte aligned, which made this struct 32 bytes and padded every flow key and observation
    // that holds two of them (24 bytes now).
    private readonly ulong _high;
    private readonly ulong _low;
    private readonly byte _version;

    private IpAddress(ulong high, ulong low, byte version)
    {
        _high = high;
        _low = low;
        _version = version;
    }

    /// <summary>4, 6, or 0 for "no address".</summary>
    public int Version => _version;

    public bool IsNone => _version == 0;

    /// <summary>
    /// A link-local address (IPv6 fe80::/10, IPv4 169.254.0.0/16, RFC 4291 2.5.6, RFC 3927): never routed, never NATed.
    /// </summary>
    public bool IsLinkLocal => _version == 6 ? _high >> 54 == 0x3FA : _version == 4 && (uint)_low >> 16 == 0xA9FE;

    /// <summary>
    /// Multicast a router never forwards: IPv6 interface- and link-local scope (ff01::/16, ff02::/16, RFC 4291 2.7),
    /// IPv4 224.0.0.0/24 (the Local Network Control Block, RFC 5771).
    /// </summary>
    public bool IsLinkScopedMulticast => _version == 6 ? _high >> 48 is 0xFF01 or 0xFF02 : _version == 4 && (uint)_low >> 8 == 0xE00000;

    /// <summary>The IPv4 address as a host-order number (only meaningful when <see cref="Version"/> is 4).</summary>
    public uint V4 => (uint)_low;

    public UInt128 Value => new(_high, _low);

    public static IpAddress FromV4(uint hostOrder) => new(0, hostOrder, 4);

    /// <summary>An address from its family (4, 6, or 0 for none) and its two halves as <see cref="Value"/> holds them.</summary>
    internal static IpAddress FromHalves(byte version, ulong high, ulong low) => new(high, low, version);

    /// <summary>An IPv6 address from its two 64-bit halves, each a host-order number (the network-order bytes read big-endian).</summary>
    public static IpAddress FromV6(ulong high, ulong low) => new(high, low, 6);

    /// <summary>Reads 4 bytes in network order. The caller guarantees the length.</summary>
    public static IpAddress ReadV4(ReadOnlySpan<byte> fourBytes) => new(0, BinaryPrimitives.ReadUInt32BigEndian(fourBytes), 4);

    /// <summary>Reads 16 bytes in network order. The caller guarantees the length.</summary>
    public static IpAddress ReadV6(ReadOnlySpan<byte> sixteenBytes) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(sixteenBytes), BinaryPrimitives.ReadUInt64BigEndian(sixteenBytes[8..]), 6);

    public static IpAddress Parse(string text)
    {
        var address = IPAddress.Parse(text);
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int written);
        return written == 4 ? ReadV4(bytes) : ReadV6(bytes);
    }

    public IPAddress ToIPAddress()
    {
        Span<byte> bytes = stackalloc byte[16];
        if (_version == 4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)_low);
            return new IPAddress(bytes[..4]);
        }
        BinaryPrimitives.WriteUInt64BigEndian(bytes, _high);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], _low);
        return new IPAddress(bytes);
    }

    public bool Equals(IpAddress other) => _low == other._low && _high == other._high && _version == other._version;

    public override bool Equals(object? obj) => obj is IpAddress other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_high, _low, _version);

    /// <summary>Orders by family, then numerically; used to make flow keys canonical.</summary>
    public int CompareTo(IpAddress other)
    {
        int byVersion = _version.CompareTo(other._version);
        if (byVersion != 0)
        {
            return byVersion;
        }
        int byHigh = _high.CompareTo(other._high);
        return byHigh != 0 ? byHigh : _low.CompareTo(other._low);
    }

    public static bool operator ==(IpAddress left, IpAddress right) => left.Equals(right);

    public static bool operator !=(IpAddress left, IpAddress right) => !left.Equals(right);

    public static bool operator <(IpAddress left, IpAddress right) => left.CompareTo(right) < 0;

    public static bool operator >(IpAddress left, IpAddress right) => left.CompareTo(right) > 0;

    public override string ToString() => _version == 0 ? "-" : ToIPAddress().ToString();

    /// <summary>Formats an endpoint as the report contract wants (docs/DESIGN.md, "The report"): <c>ip:port</c>, <c>[v6]:port</c>, or a bare address.</summary>
    public string ToEndpointString(int? port) => port is null
        ? ToString()
        : _version == 6 ? $"[{this}]:{port}" : $"{this}:{port}";
}
