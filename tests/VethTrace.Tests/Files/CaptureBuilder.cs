using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace VethTrace.Tests.Files;

/// <summary>
/// Assembles classic pcap and pcapng files byte by byte, in either byte order, so the reader's tests
/// own every field, including the damaged ones. Layouts follow draft-ietf-opsawg-pcap-04 and
/// draft-ietf-opsawg-pcapng-03; <c>capinfos</c> and <c>tshark</c> accept what this writes.
/// Every write records where it started (<see cref="RecordOffsets"/>, <see cref="BlockOffsets"/>), so a test
/// can assert <c>FileOffset</c> and error offsets without counting bytes by hand.
/// </summary>
internal sealed class CaptureBuilder
{
    public const uint PcapMagicMicroseconds = 0xA1B2C3D4;
    public const uint PcapMagicNanoseconds = 0xA1B23C4D;
    public const uint SectionHeaderType = 0x0A0D0D0A;
    public const uint ByteOrderMagic = 0x1A2B3C4D;
    public const int PcapFileHeaderLength = 24;
    public const int PcapRecordHeaderLength = 16;

    /// <summary>pcapng block types (pcapng draft section 10.1).</summary>
    public static class BlockType
    {
        public const uint InterfaceDescription = 1;
        public const uint Packet = 2;
        public const uint SimplePacket = 3;
        public const uint NameResolution = 4;
        public const uint InterfaceStatistics = 5;
        public const uint EnhancedPacket = 6;
    }

    /// <summary>pcapng option codes used here (pcapng draft sections 3.5, 4.2, 4.3).</summary>
    public static class OptionCode
    {
        public const ushort EndOfOptions = 0;
        public const ushort Comment = 1;
        public const ushort IfName = 2;
        public const ushort IfDescription = 3;
        public const ushort IfTsResol = 9;
        public const ushort IfTsOffset = 14;
        public const ushort EpbFlags = 2;
    }

    private readonly List<byte> _bytes = [];

    private CaptureBuilder(bool bigEndian) => BigEndian = bigEndian;

    /// <summary>The byte order of what is written next; a pcapng section header changes it.</summary>
    public bool BigEndian { get; private set; }

    public int Length => _bytes.Count;

    /// <summary>Where each pcap record or pcapng packet block (EPB, SPB, PB) starts.</summary>
    public List<long> RecordOffsets { get; } = [];

    /// <summary>Where each pcapng block (of any type) starts.</summary>
    public List<long> BlockOffsets { get; } = [];

    public byte[] ToArray() => [.. _bytes];

    public static byte[] Gzip(byte[] data)
    {
        var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(data);
        }
        return compressed.ToArray();
    }

    // ---- classic pcap ----

    /// <summary>Starts a classic pcap file: magic, version 2.4, thiszone 0, sigfigs 0, snaplen, link type.</summary>
    public static CaptureBuilder Pcap(bool bigEndian = false, bool nanoseconds = false, uint snapLength = 262_144, uint linkType = 1)
    {
        var builder = new CaptureBuilder(bigEndian);
        builder.U32(nanoseconds ? PcapMagicNanoseconds : PcapMagicMicroseconds);
        builder.U16(2);
        builder.U16(4);
        builder.U32(0); // thiszone
        builder.U32(0); // sigfigs
        builder.U32(snapLength);
        builder.U32(linkType);
        return builder;
    }

    /// <summary>A pcap record; <paramref name="capturedLength"/> overrides the caplen field (for damage).</summary>
    public CaptureBuilder PcapRecord(uint seconds, uint fraction, ReadOnlySpan<byte> data, uint? originalLength = null, uint? capturedLength = null)
    {
        RecordOffsets.Add(Length);
        U32(seconds);
        U32(fraction);
        U32(capturedLength ?? (uint)data.Length);
        U32(originalLength ?? (uint)data.Length);
        Bytes(data);
        return this;
    }

    // ---- pcapng ----

    /// <summary>Starts a pcapng file with a section header block.</summary>
    public static CaptureBuilder Pcapng(bool bigEndian = false) => new CaptureBuilder(bigEndian).SectionHeader(bigEndian);

    /// <summary>
    /// A section header block: byte-order magic, version, section length -1 (unknown), no options.
    /// It switches the byte order of everything after it. <paramref name="byteOrderMagic"/> and
    /// <paramref name="majorVersion"/> override the fields (for damage).
    /// </summary>
    public CaptureBuilder SectionHeader(bool bigEndian, uint byteOrderMagic = ByteOrderMagic, ushort majorVersion = 1)
    {
        BigEndian = bigEndian;
        return Block(SectionHeaderType, body =>
        {
            body.U32(byteOrderMagic);
            body.U16(majorVersion);
            body.U16(0);
            body.U64(ulong.MaxValue);
        });
    }

    /// <summary>
    /// An interface description block. <paramref name="tsResol"/> is the raw if_tsresol byte
    /// (high bit: power of 2); <paramref name="tsOffset"/> is if_tsoffset in seconds.
    /// </summary>
    public CaptureBuilder InterfaceDescription(ushort linkType = 1, uint snapLength = 0, string? name = null, string? description = null,
        byte? tsResol = null, long? tsOffset = null)
    {
        return Block(BlockType.InterfaceDescription, body =>
        {
            body.U16(linkType);
            body.U16(0); // reserved
            body.U32(snapLength);
            bool any = false;
            if (name is not null)
            {
                body.Option(OptionCode.IfName, Encoding.UTF8.GetBytes(name));
                any = true;
            }
            if (description is not null)
            {
                body.Option(OptionCode.IfDescription, Encoding.UTF8.GetBytes(description));
                any = true;
            }
            if (tsResol is byte resolution)
            {
                body.Option(OptionCode.IfTsResol, [resolution]);
                any = true;
            }
            if (tsOffset is long offset)
            {
                body.Option(OptionCode.IfTsOffset, body.Int64Bytes(offset));
                any = true;
            }
            if (any)
            {
                body.U32(0); // opt_endofopt
            }
        });
    }

    /// <summary>
    /// An interface description block whose if_name and if_description are the given bytes, not checked or encoded:
    /// what a hostile or broken writer can put there (escape sequences, bytes that are not UTF-8).
    /// </summary>
    public CaptureBuilder InterfaceDescriptionBytes(byte[] name, byte[]? description = null, ushort linkType = 1)
    {
        return Block(BlockType.InterfaceDescription, body =>
        {
            body.U16(linkType);
            body.U16(0); // reserved
            body.U32(0); // snaplen
            body.Option(OptionCode.IfName, name);
            if (description is not null)
            {
                body.Option(OptionCode.IfDescription, description);
            }
            body.U32(0); // opt_endofopt
        });
    }

    /// <summary>An enhanced packet block; <paramref name="flags"/> adds epb_flags, <paramref name="capturedLength"/> overrides caplen.</summary>
    public CaptureBuilder EnhancedPacket(uint interfaceId, ulong timestamp, ReadOnlySpan<byte> data, uint? originalLength = null, uint? flags = null,
        uint? capturedLength = null)
    {
        byte[] copy = data.ToArray();
        RecordOffsets.Add(Length);
        return Block(BlockType.EnhancedPacket, body =>
        {
            body.U32(interfaceId);
            body.U32((uint)(timestamp >> 32));
            body.U32((uint)timestamp);
            body.U32(capturedLength ?? (uint)copy.Length);
            body.U32(originalLength ?? (uint)copy.Length);
            body.Padded(copy);
            if (flags is uint value)
            {
                body.Option(OptionCode.EpbFlags, body.UInt32Bytes(value));
                body.U32(0);
            }
        });
    }

    /// <summary>A simple packet block: original length and data, padded; no interface id, no timestamp.</summary>
    public CaptureBuilder SimplePacket(ReadOnlySpan<byte> data, uint? originalLength = null)
    {
        byte[] copy = data.ToArray();
        RecordOffsets.Add(Length);
        return Block(BlockType.SimplePacket, body =>
        {
            body.U32(originalLength ?? (uint)copy.Length);
            body.Padded(copy);
        });
    }

    /// <summary>The obsolete packet block (type 2): a 16-bit interface id and a drops count before the timestamp.</summary>
    public CaptureBuilder ObsoletePacket(ushort interfaceId, ulong timestamp, ReadOnlySpan<byte> data, uint? originalLength = null, uint? flags = null)
    {
        byte[] copy = data.ToArray();
        RecordOffsets.Add(Length);
        return Block(BlockType.Packet, body =>
        {
            body.U16(interfaceId);
            body.U16(0); // drops count
            body.U32((uint)(timestamp >> 32));
            body.U32((uint)timestamp);
            body.U32((uint)copy.Length);
            body.U32(originalLength ?? (uint)copy.Length);
            body.Padded(copy);
            if (flags is uint value)
            {
                body.Option(OptionCode.EpbFlags, body.UInt32Bytes(value)); // pack_flags shares epb_flags' code
                body.U32(0);
            }
        });
    }

    /// <summary>A block of any type with an opaque body (padded to 4).</summary>
    public CaptureBuilder OpaqueBlock(uint type, ReadOnlySpan<byte> body)
    {
        byte[] copy = body.ToArray();
        return Block(type, writer => writer.Padded(copy));
    }

    /// <summary>
    /// Writes type, length, the body <paramref name="writeBody"/> appends, and the trailing length.
    /// <paramref name="length"/> and <paramref name="trailerLength"/> override the two length fields (for damage).
    /// </summary>
    public CaptureBuilder Block(uint type, Action<CaptureBuilder> writeBody, uint? length = null, uint? trailerLength = null)
    {
        int start = Length;
        BlockOffsets.Add(start);
        U32(type);
        U32(0); // patched below
        writeBody(this);
        uint actual = (uint)(Length - start + 4);
        Patch(start + 4, length ?? actual);
        U32(trailerLength ?? actual);
        return this;
    }

    // ---- fields ----

    public CaptureBuilder Bytes(ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            _bytes.Add(b);
        }
        return this;
    }

    /// <summary>Data then zero bytes up to a multiple of 4 (pcapng draft section 3.1).</summary>
    public CaptureBuilder Padded(ReadOnlySpan<byte> data)
    {
        Bytes(data);
        for (int i = data.Length; i % 4 != 0; i++)
        {
            _bytes.Add(0);
        }
        return this;
    }

    /// <summary>An option: code, length, value padded to 4 (pcapng draft section 3.5).</summary>
    public CaptureBuilder Option(ushort code, ReadOnlySpan<byte> value)
    {
        U16(code);
        U16((ushort)value.Length);
        return Padded(value);
    }

    public CaptureBuilder U16(ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        if (BigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        }
        return Bytes(bytes);
    }

    public CaptureBuilder U32(uint value) => Bytes(UInt32Bytes(value));

    public CaptureBuilder U64(ulong value)
    {
        return BigEndian
            ? U32((uint)(value >> 32)).U32((uint)value)
            : U32((uint)value).U32((uint)(value >> 32));
    }

    public byte[] UInt32Bytes(uint value)
    {
        byte[] bytes = new byte[4];
        if (BigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        }
        return bytes;
    }

    public byte[] Int64Bytes(long value)
    {
        byte[] bytes = new byte[8];
        if (BigEndian)
        {
            BinaryPrimitives.WriteInt64BigEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
        }
        return bytes;
    }

    private void Patch(int offset, uint value)
    {
        Span<byte> target = CollectionsMarshal.AsSpan(_bytes).Slice(offset, 4);
        if (BigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(target, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(target, value);
        }
    }
}
