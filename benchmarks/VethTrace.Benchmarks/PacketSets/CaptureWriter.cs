using VethTrace.Capture.Files;
using VethTrace.Cli.Bench;
using VethTrace.Packets;

namespace VethTrace.Benchmarks.PacketSets;

/// <summary>
/// Writes a <see cref="PacketSet"/> as a capture file in memory with the production writers
/// (<see cref="PcapWriter"/>, <see cref="PcapngWriter"/>), so reader benchmarks read the files
/// <c>vethtrace record</c> writes without touching the disk. Both keep nanosecond timestamps.
/// </summary>
public static class CaptureWriter
{
    private const int SnapLength = PcapngWriter.MaxPacketLength;

    /// <summary>Classic pcap (nanosecond magic). All packets must share one link type, as the format allows only one.</summary>
    public static byte[] WritePcap(PacketSet set)
    {
        IReadOnlyList<LinkType> linkTypes = set.DistinctLinkTypes();
        if (linkTypes.Count != 1)
        {
            throw new ArgumentException($"a pcap file holds one link type; packet set '{set.Name}' has {linkTypes.Count}", nameof(set));
        }
        var output = new MemoryStream(24 + set.Data.Length + 16 * set.Count);
        using (var writer = new PcapWriter(output, linkTypes[0], SnapLength, leaveOpen: true))
        {
            for (int i = 0; i < set.Count; i++)
            {
                writer.WritePacket(set.TimestampsNs[i], set.Frame(i), set.OriginalLengths[i]);
            }
        }
        return output.ToArray();
    }

    /// <summary>pcapng: one section, one interface per link type (named after it), one enhanced packet block per packet.</summary>
    public static byte[] WritePcapng(PacketSet set)
    {
        IReadOnlyList<LinkType> linkTypes = set.DistinctLinkTypes();
        var output = new MemoryStream(256 + set.Data.Length + 36 * set.Count);
        using (var writer = new PcapngWriter(output, leaveOpen: true))
        {
            // The writer numbers interfaces from 0 in the order they are added: the index in linkTypes.
            foreach (LinkType linkType in linkTypes)
            {
                writer.AddInterface(linkType.ToString(), $"benchmark packets of {set.Name}", linkType, SnapLength);
            }
            for (int i = 0; i < set.Count; i++)
            {
                writer.WritePacket(IndexOf(linkTypes, set.LinkTypes[i]), set.TimestampsNs[i], set.Frame(i), set.OriginalLengths[i], PacketDirection.Unknown);
            }
        }
        return output.ToArray();
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
