using VethTrace.Flows;
using VethTrace.Packets;
using static VethTrace.Tests.Parser.ParserInvariants;
using static VethTrace.Tests.Parser.ParserInvariantRules;

namespace VethTrace.Tests.Parser;

/// <summary>
/// Parses every prefix 0..N of every sample packet, as a snaplen of that length would capture it, and
/// checks that the parse degrades laxly: no exception, a layer only when its header fit, a truncation
/// that says how much it needed, and, once every header fits, exactly the full packet's layers.
/// </summary>
public class TruncationTests
{
    [Theory]
    [MemberData(nameof(SamplePackets.Names), MemberType = typeof(SamplePackets))]
    public void Parse_EveryPrefix_DegradesLaxly(string name)
    {
        var sample = SamplePackets.Get(name);
        byte[] frame = sample.Frame;
        var full = Parse(frame, sample.LinkType);
        Assert.True(full.Outcome is ParseOutcome.Complete or ParseOutcome.NonFirstFragment or ParseOutcome.UnsupportedProtocol,
            $"{name} does not parse fully: {full}");
        ulong fullFingerprint = PacketFingerprint.Compute(in full, frame);
        int headersEnd = full.Innermost.PayloadOffset;
        Assert.True(headersEnd > 0);

        for (int length = 0; length <= frame.Length; length++)
        {
            ReadOnlySpan<byte> prefix = frame.AsSpan(0, length);
            PacketParser.Parse(prefix, sample.LinkType, out var packet);
            string at = $"{name}, prefix {length}: {packet} Required {packet.Required} Available {packet.Available}";

            ulong fingerprint = PacketFingerprint.Compute(in packet, prefix);
            Assert.True(Violation(in packet, length) is null, $"{at}: {Violation(in packet, length)}");
            AssertLayersFit(in packet.Outer, in full.Outer, length, at);
            if (full.TunnelDepth == 1 && packet.TunnelDepth == 1)
            {
                AssertLayersFit(in packet.Inner, in full.Inner, length, at);
            }

            if (length < headersEnd)
            {
                // Some header is cut: the parse must say so, and how much it needed.
                Assert.True(packet.Outcome == ParseOutcome.Truncated, $"{at}: expected Truncated");
                Assert.True(packet.Required > packet.Available, at);
                continue;
            }

            // Every header fits: the parse equals the full one, only the captured payload differs.
            Assert.True(packet.Outcome == full.Outcome && packet.StoppedAt == full.StoppedAt, $"{at}: expected {full.Outcome} at {full.StoppedAt}");
            Assert.Equal(full.TunnelDepth, packet.TunnelDepth);
            Assert.Equal(full.Vni, packet.Vni);
            Assert.Equal(full.Outer.Layers, packet.Outer.Layers);
            Assert.Equal(full.Innermost.Layers, packet.Innermost.Layers);
            Assert.Equal(full.Innermost.PayloadOffset, packet.Innermost.PayloadOffset);
            Assert.Equal(full.Innermost.PayloadLength, packet.Innermost.PayloadLength);
            Assert.Equal(Math.Min(full.Innermost.CapturedPayloadLength, length - headersEnd), packet.Innermost.CapturedPayloadLength);
            Assert.Equal(full.Innermost.IpTotalLength, packet.Innermost.IpTotalLength);
            int ipEnd = full.Innermost.NetworkOffset + full.Innermost.IpTotalLength;
            Assert.Equal(length < ipEnd, packet.Innermost.Flags.HasFlag(PacketFlags.IpLengthBeyondCapture));

            // A copy cut by a smaller snaplen still matches once the hashed payload bytes were captured
            // (ICMP errors hash the quoted packet, so they need all of it).
            bool hashedBytesCaptured = full.Innermost.IsIcmpError
                ? length == frame.Length
                : length >= headersEnd + Math.Min(PacketFingerprint.PayloadHashBytes, full.Innermost.PayloadLength);
            if (hashedBytesCaptured)
            {
                Assert.True(PacketFingerprint.CoversPayload(in packet), at);
                Assert.True(fullFingerprint == fingerprint, $"{at}: fingerprint differs from the full packet's");
            }
        }
    }

    /// <summary>Each reported layer's minimal header lies inside the prefix; and when it does, the layer is reported.</summary>
    private static void AssertLayersFit(in PacketLayers cut, in PacketLayers full, int length, string at)
    {
        int linkEnd = full.LinkOffset + LinkHeaderLength(full.LinkType);
        Assert.True(cut.Has(LayerSet.Link) == length >= linkEnd, $"{at}: Link layer vs link header end {linkEnd}");
        if (full.Has(LayerSet.Vlan))
        {
            int firstTagEnd = linkEnd + 4;
            Assert.True(cut.Has(LayerSet.Vlan) == length >= firstTagEnd, $"{at}: Vlan layer vs first tag end {firstTagEnd}");
        }
        if (full.Has(LayerSet.Mpls))
        {
            int firstLabelEnd = full.NetworkOffset - 4 * full.MplsCount + 4;
            Assert.True(cut.Has(LayerSet.Mpls) == length >= firstLabelEnd, $"{at}: Mpls layer vs first label end {firstLabelEnd}");
            Assert.True(full.MplsLabels[..cut.MplsCount].SequenceEqual(cut.MplsLabels), $"{at}: the labels read differ from the full packet's");
        }
        if (full.Has(LayerSet.Network))
        {
            int networkEnd = full.NetworkOffset + (full.IpVersion == 4 ? 20 : 40);
            Assert.True(cut.Has(LayerSet.Network) == length >= networkEnd, $"{at}: Network layer vs fixed IP header end {networkEnd}");
            if (cut.Has(LayerSet.Network))
            {
                Assert.Equal(full.NetworkOffset, cut.NetworkOffset);
                Assert.Equal(full.Source, cut.Source);
                Assert.Equal(full.Destination, cut.Destination);
            }
        }
        else
        {
            Assert.False(cut.Has(LayerSet.Network), at);
        }
        if (full.Has(LayerSet.Transport))
        {
            int minimal = full.Protocol == IpProtocol.Tcp ? 20 : 8;
            int transportEnd = full.TransportOffset + minimal;
            Assert.True(cut.Has(LayerSet.Transport) == length >= transportEnd, $"{at}: Transport layer vs minimal header end {transportEnd}");
            if (cut.Has(LayerSet.Transport))
            {
                Assert.Equal(full.TransportOffset, cut.TransportOffset);
                Assert.Equal(full.SourcePort, cut.SourcePort);
                Assert.Equal(full.DestinationPort, cut.DestinationPort);
                Assert.Equal(full.TcpSequence, cut.TcpSequence);
                Assert.Equal(full.IcmpSequence, cut.IcmpSequence);
            }
        }
        else
        {
            Assert.False(cut.Has(LayerSet.Transport), at);
        }
        if (full.Has(LayerSet.Tunnel))
        {
            int vxlanEnd = full.PayloadOffset + 8;
            Assert.True(cut.Has(LayerSet.Tunnel) == length >= vxlanEnd, $"{at}: Tunnel layer vs VXLAN header end {vxlanEnd}");
        }
    }

    private static int LinkHeaderLength(LinkType linkType) => linkType.Value switch
    {
        1 => 14,
        9 => 4, // PPP with the address and control bytes, as the sample has them
        113 => 16,
        276 => 20,
        0 or 108 => 4,
        101 => 1, // raw IP needs the version nibble
        _ => 0,   // LINKTYPE_IPV4 / IPV6: no link header
    };
}
