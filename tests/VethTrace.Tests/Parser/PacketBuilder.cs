using System.Buffers.Binary;
using System.Net;
using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// Assembles test frames byte by byte, inside out: build the payload, wrap it in a transport header,
/// then in IP, then in a link header. Each method writes its header field by field in wire order, so
/// a vector can be checked against the RFC diagram it cites. IP builders fill in the length fields and
/// the IPv4, TCP, UDP, ICMP and ICMPv6 checksums unless a test overrides them.
/// </summary>
internal static class PacketBuilder
{
    public const string ContainerMac = "02:42:ac:11:00:02";
    public const string BridgeMac = "02:42:9e:5c:1a:01";

    /// <summary>A VLAN tag: the TPID that introduces it, the priority and the VLAN id (IEEE 802.1Q clause 9.6).</summary>
    public readonly record struct Tag(ushort Tpid, ushort VlanId, byte Priority = 0)
    {
        public static Tag Q(ushort vlanId) => new(0x8100, vlanId);

        public static Tag Ad(ushort vlanId) => new(0x88A8, vlanId);
    }

    // ---------------------------------------------------------------- link layers

    /// <summary>
    /// Ethernet II (IEEE 802.3 clause 3.2): destination, source, [TPID, TCI]*, type, payload.
    /// <paramref name="padTo60"/> pads the frame to the 60-byte minimum (without FCS), as a NIC does.
    /// </summary>
    public static byte[] Ethernet(ushort etherType, byte[] payload, Tag[]? tags = null, bool padTo60 = false,
        string destination = BridgeMac, string source = ContainerMac)
    {
        var w = new ByteWriter().Mac(destination).Mac(source);
        foreach (var tag in tags ?? [])
        {
            w.U16(tag.Tpid).U16(tag.Priority << 13 | tag.VlanId);
        }
        w.U16(etherType).Bytes(payload);
        while (padTo60 && w.Length < 60)
        {
            w.U8(0);
        }
        return w.ToArray();
    }

    /// <summary>Linux cooked v1, 16 bytes: packet type, ARPHRD type, address length, address (8), protocol.</summary>
    public static byte[] Sll(ushort protocol, byte[] payload, LinuxPacketType packetType = LinuxPacketType.Host, string address = ContainerMac) =>
        new ByteWriter()
            .U16((ushort)packetType)
            .U16(1) // ARPHRD_ETHER
            .U16(6)
            .Mac(address).U16(0) // the address field is 8 bytes; a MAC uses 6
            .U16(protocol)
            .Bytes(payload)
            .ToArray();

    /// <summary>Linux cooked v2, 20 bytes: protocol, reserved, interface index, ARPHRD type, packet type, address length, address (8).</summary>
    public static byte[] Sll2(ushort protocol, byte[] payload, int interfaceIndex, LinuxPacketType packetType = LinuxPacketType.Host, string address = ContainerMac) =>
        new ByteWriter()
            .U16(protocol)
            .U16(0)
            .U32((uint)interfaceIndex)
            .U16(1) // ARPHRD_ETHER
            .U8((byte)packetType)
            .U8(6)
            .Mac(address).U16(0)
            .Bytes(payload)
            .ToArray();

    /// <summary>LINKTYPE_NULL (host byte order, little-endian here) or, with <paramref name="bigEndian"/>, LINKTYPE_LOOP.</summary>
    public static byte[] Null(uint family, byte[] payload, bool bigEndian = false)
    {
        var w = new ByteWriter();
        if (bigEndian)
        {
            w.U32(family);
        }
        else
        {
            w.U32LittleEndian(family);
        }
        return w.Bytes(payload).ToArray();
    }

    // ---------------------------------------------------------------- network layers

    /// <summary>
    /// IPv4 (RFC 791 section 3.1). <paramref name="options"/> must be a multiple of 4 bytes; the IHL follows from it
    /// unless <paramref name="ihl"/> overrides it. The header checksum and (for an unfragmented packet) the
    /// transport checksum are computed.
    /// </summary>
    public static byte[] Ipv4(string source, string destination, byte protocol, byte[] payload,
        ushort identification = 0x1c46, byte ttl = 64, bool dontFragment = true, bool moreFragments = false,
        int fragmentOffset = 0, byte[]? options = null, int? totalLength = null, byte tos = 0, int? ihl = null, int version = 4)
    {
        options ??= [];
        if (options.Length % 4 != 0)
        {
            throw new ArgumentException("IPv4 options must fill whole 32-bit words.", nameof(options));
        }
        int headerLength = 20 + options.Length;
        byte[] segment = WithTransportChecksum(protocol, payload, Address(source), Address(destination),
            fill: !moreFragments && fragmentOffset == 0);
        var w = new ByteWriter()
            .U8(version << 4 | (ihl ?? headerLength / 4))
            .U8(tos)
            .U16(totalLength ?? headerLength + payload.Length)
            .U16(identification)
            .U16((dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0) | fragmentOffset / 8)
            .U8(ttl)
            .U8(protocol)
            .U16(0) // checksum, filled below
            .Address(source)
            .Address(destination)
            .Bytes(options);
        byte[] packet = w.Bytes(segment).ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), InternetChecksum(packet.AsSpan(0, headerLength)));
        return packet;
    }

    /// <summary>
    /// IPv6 (RFC 8200 section 3) with the given extension headers in order; their next-header fields are
    /// chained here, the last one pointing at <paramref name="nextHeader"/>.
    /// </summary>
    public static byte[] Ipv6(string source, string destination, byte nextHeader, byte[] payload,
        Extension[]? extensions = null, byte hopLimit = 64, uint flowLabel = 0xabcde, byte trafficClass = 0, int? payloadLength = null)
    {
        extensions ??= [];
        bool fragmented = extensions.Any(e => e.Kind == 44 && (e.Bytes[2] != 0 || (e.Bytes[3] & 0xF9) != 0));
        byte[] segment = WithTransportChecksum(nextHeader, payload, Address(source), Address(destination), fill: !fragmented);
        var chain = new ByteWriter();
        for (int i = 0; i < extensions.Length; i++)
        {
            byte[] header = (byte[])extensions[i].Bytes.Clone();
            header[0] = i + 1 < extensions.Length ? extensions[i + 1].Kind : nextHeader;
            chain.Bytes(header);
        }
        chain.Bytes(segment);
        byte[] rest = chain.ToArray();
        return new ByteWriter()
            .U32(6u << 28 | (uint)trafficClass << 20 | flowLabel & 0xFFFFF)
            .U16(payloadLength ?? rest.Length)
            .U8(extensions.Length > 0 ? extensions[0].Kind : nextHeader)
            .U8(hopLimit)
            .Address(source)
            .Address(destination)
            .Bytes(rest)
            .ToArray();
    }

    /// <summary>An IPv6 extension header; byte 0 (next header) is filled in by <see cref="Ipv6"/>.</summary>
    public readonly record struct Extension(byte Kind, byte[] Bytes)
    {
        /// <summary>Hop-by-hop options (RFC 8200 section 4.3), padded with a PadN option to <paramref name="length"/> bytes.</summary>
        public static Extension HopByHop(int length = 8) => new(0, Options(length));

        /// <summary>Destination options (RFC 8200 section 4.6).</summary>
        public static Extension DestinationOptions(int length = 8) => new(60, Options(length));

        /// <summary>A type 2 routing header (RFC 6275 section 6.4): one home address, 24 bytes.</summary>
        public static Extension Routing(string homeAddress = "fd00::99") => new(43, new ByteWriter()
            .U8(0).U8(2) // next header, length 2 (24 bytes)
            .U8(2).U8(1) // routing type 2, segments left 1
            .U32(0)
            .Address(homeAddress)
            .ToArray());

        /// <summary>The fragment header (RFC 8200 section 4.5): offset in bytes (a multiple of 8), M flag, identification.</summary>
        public static Extension Fragment(int offset, bool more, uint identification) => new(44, new ByteWriter()
            .U8(0).U8(0)
            .U16(offset & 0xFFF8 | (more ? 1 : 0))
            .U32(identification)
            .ToArray());

        /// <summary>AH (RFC 4302 section 2): its payload length counts 4-octet units minus 2.</summary>
        public static Extension AuthenticationHeader(int icvLength = 12)
        {
            int length = 12 + icvLength;
            var w = new ByteWriter().U8(0).U8(length / 4 - 2).U16(0).U32(0x1000).U32(1);
            for (int i = 0; i < icvLength; i++)
            {
                w.U8(0xA0 + i);
            }
            return new(51, w.ToArray());
        }

        /// <summary>A "next header, length in 8-octet units" header of any kind, e.g. to build hostile chains.</summary>
        public static Extension Generic(byte kind, int length = 8) => new(kind, Options(length));

        private static byte[] Options(int length)
        {
            if (length < 8 || length % 8 != 0 || length > 256)
            {
                throw new ArgumentOutOfRangeException(nameof(length));
            }
            // PadN (RFC 8200 section 4.2): type 1, then as many zero bytes as its length says.
            var w = new ByteWriter().U8(0).U8(length / 8 - 1).U8(1).U8(length - 4);
            while (w.Length < length)
            {
                w.U8(0);
            }
            return w.ToArray();
        }
    }

    // ---------------------------------------------------------------- transport layers

    /// <summary>
    /// TCP (RFC 9293 section 3.1). Options are padded with EOL to a whole word; <paramref name="dataOffsetWords"/>
    /// overrides the data offset the options imply. The checksum is filled by the IP builder.
    /// </summary>
    public static byte[] Tcp(ushort sourcePort, ushort destinationPort, uint sequence, uint acknowledgment, TcpFlags flags,
        ushort window = 64240, byte[]? options = null, byte[]? payload = null, int? dataOffsetWords = null, ushort urgentPointer = 0)
    {
        options ??= [];
        var paddedOptions = new ByteWriter().Bytes(options);
        while (paddedOptions.Length % 4 != 0)
        {
            paddedOptions.U8(TcpOption.EndOfList);
        }
        int dataOffset = dataOffsetWords ?? (20 + paddedOptions.Length) / 4;
        return new ByteWriter()
            .U16(sourcePort)
            .U16(destinationPort)
            .U32(sequence)
            .U32(acknowledgment)
            .U16(dataOffset << 12 | (int)flags & 0x1FF)
            .U16(window)
            .U16(0) // checksum
            .U16(urgentPointer)
            .Bytes(paddedOptions.ToArray())
            .Bytes(payload ?? [])
            .ToArray();
    }

    /// <summary>TCP options (IANA "TCP Option Kind Numbers").</summary>
    public static class TcpOption
    {
        public const byte EndOfList = 0;
        public const byte NoOperation = 1;

        public static byte[] Mss(ushort mss) => new ByteWriter().U8(2).U8(4).U16(mss).ToArray();

        public static byte[] WindowScale(byte shift) => [3, 3, shift];

        public static byte[] SackPermitted() => [4, 2];

        /// <summary>RFC 7323 section 3: kind 8, length 10, TSval, TSecr.</summary>
        public static byte[] Timestamps(uint value, uint echo) => new ByteWriter().U8(8).U8(10).U32(value).U32(echo).ToArray();

        public static byte[] Nop() => [NoOperation];

        /// <summary>What Linux puts in a SYN: MSS, SACK permitted, timestamps, NOP, window scale (20 bytes).</summary>
        public static byte[] LinuxSyn(uint tsValue, ushort mss = 1460, byte windowScale = 7) =>
            [.. Mss(mss), .. SackPermitted(), .. Timestamps(tsValue, 0), .. Nop(), .. WindowScale(windowScale)];

        /// <summary>What Linux puts in an established segment: NOP, NOP, timestamps (12 bytes).</summary>
        public static byte[] LinuxData(uint tsValue, uint tsEcho) => [.. Nop(), .. Nop(), .. Timestamps(tsValue, tsEcho)];
    }

    /// <summary>UDP (RFC 768): ports, length (header plus data unless overridden), checksum.</summary>
    public static byte[] Udp(ushort sourcePort, ushort destinationPort, byte[] payload, int? length = null) =>
        new ByteWriter()
            .U16(sourcePort)
            .U16(destinationPort)
            .U16(length ?? 8 + payload.Length)
            .U16(0) // checksum
            .Bytes(payload)
            .ToArray();

    /// <summary>ICMP or ICMPv6 (RFC 792, RFC 4443 section 2.1): type, code, checksum, the 4-byte rest of header, body.</summary>
    public static byte[] Icmp(byte type, byte code, uint restOfHeader, byte[] body) =>
        new ByteWriter().U8(type).U8(code).U16(0).U32(restOfHeader).Bytes(body).ToArray();

    /// <summary>An ICMP echo request (8) or reply (0): identifier and sequence in the rest of the header.</summary>
    public static byte[] IcmpEcho(bool request, ushort identifier, ushort sequence, byte[] data) =>
        Icmp(request ? (byte)8 : (byte)0, 0, (uint)identifier << 16 | sequence, data);

    /// <summary>An ICMPv6 echo request (128) or reply (129).</summary>
    public static byte[] Icmpv6Echo(bool request, ushort identifier, ushort sequence, byte[] data) =>
        Icmp(request ? (byte)128 : (byte)129, 0, (uint)identifier << 16 | sequence, data);

    /// <summary>VXLAN (RFC 7348 section 5): flags (I = 0x08), 24 reserved bits, the VNI, 8 reserved bits, then the inner frame.</summary>
    public static byte[] Vxlan(uint vni, byte[] innerFrame, byte flags = 0x08) =>
        new ByteWriter().U8(flags).U8(0).U16(0).U32(vni << 8).Bytes(innerFrame).ToArray();

    /// <summary>One MPLS label stack entry to build: label, traffic class, TTL.</summary>
    public readonly record struct Label(uint Value, byte TrafficClass = 0, byte Ttl = 64);

    /// <summary>
    /// An MPLS label stack (RFC 3032 section 2.1), top entry first: label (20 bits), traffic class (3), bottom of stack
    /// (1, set on the last entry unless <paramref name="noBottom"/>), TTL (8); then the labelled packet.
    /// </summary>
    public static byte[] Mpls(Label[] labels, byte[] payload, bool noBottom = false)
    {
        var w = new ByteWriter();
        for (int i = 0; i < labels.Length; i++)
        {
            bool bottom = i == labels.Length - 1 && !noBottom;
            w.U32(labels[i].Value << 12 | (uint)labels[i].TrafficClass << 9 | (bottom ? 1u << 8 : 0) | labels[i].Ttl);
        }
        return w.Bytes(payload).ToArray();
    }

    /// <summary>Bytes 0, 1, 2, … so payload prefixes are recognisable in a dump.</summary>
    public static byte[] Payload(int length, byte first = 0x61)
    {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++)
        {
            bytes[i] = (byte)(first + i);
        }
        return bytes;
    }

    // ---------------------------------------------------------------- checksums

    /// <summary>The 16-bit one's complement of the one's complement sum (RFC 1071).</summary>
    public static ushort InternetChecksum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        uint sum = initial;
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (data.Length % 2 == 1)
        {
            sum += (uint)data[^1] << 8;
        }
        while (sum > 0xFFFF)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    private static byte[] WithTransportChecksum(byte protocol, byte[] payload, byte[] source, byte[] destination, bool fill)
    {
        byte[] segment = (byte[])payload.Clone();
        int checksumOffset = protocol switch
        {
            6 => 16,
            17 => 6,
            1 or 58 => 2,
            _ => -1,
        };
        if (!fill || checksumOffset < 0 || segment.Length < checksumOffset + 2)
        {
            return segment;
        }
        uint pseudo = 0;
        if (protocol != 1)
        {
            // The pseudo-header: RFC 9293 section 3.1 (IPv4), RFC 8200 section 8.1 (IPv6).
            var w = new ByteWriter().Bytes(source).Bytes(destination);
            if (source.Length == 4)
            {
                w.U8(0).U8(protocol).U16(segment.Length);
            }
            else
            {
                w.U32((uint)segment.Length).U16(0).U8(0).U8(protocol);
            }
            pseudo = (uint)(ushort)~InternetChecksum(w.ToArray());
        }
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(checksumOffset), 0);
        ushort checksum = InternetChecksum(segment, pseudo);
        // UDP sends a computed 0 as 0xFFFF (RFC 768).
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(checksumOffset), protocol == 17 && checksum == 0 ? (ushort)0xFFFF : checksum);
        return segment;
    }

    private static byte[] Address(string text) => IPAddress.Parse(text).GetAddressBytes();

    /// <summary>Appends big-endian fields to a growing buffer.</summary>
    public sealed class ByteWriter
    {
        private readonly List<byte> _bytes = [];

        public int Length => _bytes.Count;

        public ByteWriter U8(int value)
        {
            _bytes.Add((byte)value);
            return this;
        }

        public ByteWriter U16(int value)
        {
            _bytes.Add((byte)(value >> 8));
            _bytes.Add((byte)value);
            return this;
        }

        public ByteWriter U32(uint value)
        {
            U16((int)(value >> 16));
            return U16((int)(value & 0xFFFF));
        }

        public ByteWriter U32LittleEndian(uint value)
        {
            for (int i = 0; i < 4; i++)
            {
                _bytes.Add((byte)(value >> 8 * i));
            }
            return this;
        }

        public ByteWriter Bytes(ReadOnlySpan<byte> bytes)
        {
            foreach (byte b in bytes)
            {
                _bytes.Add(b);
            }
            return this;
        }

        public ByteWriter Address(string ip) => Bytes(IPAddress.Parse(ip).GetAddressBytes());

        public ByteWriter Mac(string mac)
        {
            foreach (string part in mac.Split(':'))
            {
                _bytes.Add(Convert.ToByte(part, 16));
            }
            return this;
        }

        public byte[] ToArray() => [.. _bytes];
    }
}
