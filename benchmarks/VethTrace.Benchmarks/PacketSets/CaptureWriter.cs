using System.Buffers;
using System.Buffers.Binary;
using VethTrace.Packets;

namespace VethTrace.Benchmarks.PacketSets;

/// <summary>
/// Writes a <see cref="PacketSet"/> as a little-endian capture file in memory, so reader benchmarks read
/// realistic files without touching the disk. Timestamps are written in microseconds, as tcpdump does.
/// </summary>
public static class CaptureWriter
{
    private const uint PcapMagicMicroseconds = 0xA1B2C3D4;
    private const int PcapSnapLength = 262_144;

    /// <summary>pcapng block types and fixed lengths (draft-ietf-opsawg-pcapng section 4).</summary>
    private static class Pcapng
    {
        public const uint SectionHeaderBlock = 0x0A0D0D0A;
        public const uint InterfaceDescriptionBlock = 1;
        public const uint EnhancedPacketBlock = 6;
        public const uint ByteOrderMagic = 0x1A2B3C4D;
        // type, length, byte-order magic, major, minor, section length (-1: unknown), length again.
        public const int SectionHeaderLength = 4 + 4 + 4 + 2 + 2 + 8 + 4;
        // type, length, link type, reserved, snaplen, length again.
        public const int InterfaceDescriptionLength = 4 + 4 + 2 + 2 + 4 + 4;
        // type, length, interface, timestamp high, low, captured, original, (data), length again.
        public const int EnhancedPacketOverhead = 4 + 4 + 4 + 4 + 4 + 4 + 4 + 4;
    }

    /// <summary>Classic pcap (microsecond magic). All packets must share one link type, as the format allows only one.</summary>
    public static byte[] WritePcap(PacketSet set)
    {
        IReadOnlyList<LinkType> linkTypes = set.DistinctLinkTypes();
        if (linkTypes.Count != 1)
        {
            throw new ArgumentException($"a pcap file holds one link type; packet set '{set.Name}' has {linkTypes.Count}", nameof(set));
        }
        var output = new ArrayBufferWriter<byte>(24 + set.Data.Length + 16 * set.Count);
        Span<byte> header = output.GetSpan(24);
        BinaryPrimitives.WriteUInt32LittleEndian(header, PcapMagicMicroseconds);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2); // version 2.4
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], 0); // thiszone
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 0); // sigfigs
        BinaryPrimitives.WriteInt32LittleEndian(header[16..], PcapSnapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], linkTypes[0].Value);
        output.Advance(24);
        for (int i = 0; i < set.Count; i++)
        {
            ReadOnlySpan<byte> frame = set.Frame(i);
            Span<byte> record = output.GetSpan(16 + frame.Length);
            long microseconds = set.TimestampsNs[i] / 1000;
            BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)(microseconds / 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(record[4..], (uint)(microseconds % 1_000_000));
            BinaryPrimitives.WriteInt32LittleEndian(record[8..], frame.Length);
            BinaryPrimitives.WriteInt32LittleEndian(record[12..], set.OriginalLengths[i]);
            frame.CopyTo(record[16..]);
            output.Advance(16 + frame.Length);
        }
        return output.WrittenSpan.ToArray();
    }

    /// <summary>pcapng: one section, one interface per link type, one enhanced packet block per packet.</summary>
    public static byte[] WritePcapng(PacketSet set)
    {
        IReadOnlyList<LinkType> linkTypes = set.DistinctLinkTypes();
        var output = new ArrayBufferWriter<byte>(64 + set.Data.Length + 36 * set.Count);

        Span<byte> section = output.GetSpan(Pcapng.SectionHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(section, Pcapng.SectionHeaderBlock);
        BinaryPrimitives.WriteInt32LittleEndian(section[4..], Pcapng.SectionHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(section[8..], Pcapng.ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(section[12..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(section[14..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(section[16..], -1);
        BinaryPrimitives.WriteInt32LittleEndian(section[24..], Pcapng.SectionHeaderLength);
        output.Advance(Pcapng.SectionHeaderLength);

        foreach (LinkType linkType in linkTypes)
        {
            Span<byte> block = output.GetSpan(Pcapng.InterfaceDescriptionLength);
            BinaryPrimitives.WriteUInt32LittleEndian(block, Pcapng.InterfaceDescriptionBlock);
            BinaryPrimitives.WriteInt32LittleEndian(block[4..], Pcapng.InterfaceDescriptionLength);
            BinaryPrimitives.WriteUInt16LittleEndian(block[8..], (ushort)linkType.Value);
            BinaryPrimitives.WriteUInt16LittleEndian(block[10..], 0);
            BinaryPrimitives.WriteInt32LittleEndian(block[12..], PcapSnapLength);
            BinaryPrimitives.WriteInt32LittleEndian(block[16..], Pcapng.InterfaceDescriptionLength);
            output.Advance(Pcapng.InterfaceDescriptionLength);
        }

        for (int i = 0; i < set.Count; i++)
        {
            ReadOnlySpan<byte> frame = set.Frame(i);
            int padded = (frame.Length + 3) & ~3;
            int length = Pcapng.EnhancedPacketOverhead + padded;
            Span<byte> block = output.GetSpan(length)[..length];
            block.Clear(); // the padding
            // No if_tsresol option: the default resolution is microseconds.
            ulong microseconds = (ulong)(set.TimestampsNs[i] / 1000);
            BinaryPrimitives.WriteUInt32LittleEndian(block, Pcapng.EnhancedPacketBlock);
            BinaryPrimitives.WriteInt32LittleEndian(block[4..], length);
            BinaryPrimitives.WriteInt32LittleEndian(block[8..], IndexOf(linkTypes, set.LinkTypes[i]));
            BinaryPrimitives.WriteUInt32LittleEndian(block[12..], (uint)(microseconds >> 32));
            BinaryPrimitives.WriteUInt32LittleEndian(block[16..], (uint)microseconds);
            BinaryPrimitives.WriteInt32LittleEndian(block[20..], frame.Length);
            BinaryPrimitives.WriteInt32LittleEndian(block[24..], set.OriginalLengths[i]);
            frame.CopyTo(block[28..]);
            BinaryPrimitives.WriteInt32LittleEndian(block[(length - 4)..], length);
            output.Advance(length);
        }
        return output.WrittenSpan.ToArray();
    }

    private static int IndexOf(IReadOnlyList<LinkType> linkTypes, LinkType linkType)
    {
        for (int i = 0; i < linkTypes.Count; i++)
        {
            if (linkTypes[i] == linkType)
            {
                return i;
            }
        }
        throw new ArgumentException($"link type {linkType} has no interface", nameof(linkType));
    }
}
