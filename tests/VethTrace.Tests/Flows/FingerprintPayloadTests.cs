using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Parser;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Flows;

/// <summary>
/// The fingerprint's payload word (session 9 reads the first <see cref="PacketFingerprint.PayloadHashBytes"/> bytes
/// inline instead of through <c>StableHash.AddBytes</c>): for every payload length around the word, and payloads cut by
/// the snaplen, the value must be the one the earlier code gave, since fingerprints are shown (<c>vethtrace packets</c>)
/// and sampled on (<c>--sample</c>). The expected values were printed by main's build (3d0d368) from these frames.
/// </summary>
public sealed class FingerprintPayloadTests
{
    /// <summary>TCP and UDP with payloads of 0 to 9 and 20 bytes, then the 20-byte ones cut to 3 and to 0 payload bytes.</summary>
    internal static IEnumerable<(byte[] Frame, int OriginalLength)> Frames()
    {
        int[] lengths = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20];
        foreach (int length in lengths)
        {
            byte[] frame = EthernetIpv4Tcp(PacketBuilder.Payload(length, (byte)(0x30 + length)));
            yield return (frame, frame.Length);
        }
        foreach (int length in lengths)
        {
            byte[] frame = PacketBuilder.Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, PacketBuilder.Payload(length, (byte)(0x50 + length)))));
            yield return (frame, frame.Length);
        }
        byte[] tcp = EthernetIpv4Tcp(PacketBuilder.Payload(20, 0x44));
        byte[] udp = PacketBuilder.Ethernet(EtherIpv4, Ipv4(Container, Remote, SamplePackets.Udp, PacketBuilder.Udp(40000, 53, PacketBuilder.Payload(20, 0x66))));
        yield return (tcp[..^17], tcp.Length);
        yield return (tcp[..^20], tcp.Length);
        yield return (udp[..^17], udp.Length);
        yield return (udp[..^20], udp.Length);
    }

    /// <summary>`vethtrace packets` of these frames (written as a classic pcap) with main's build, in order.</summary>
    private static readonly ulong[] Expected =
    [
        0x65e6424f000aaa28UL,
        0x6f546a8ba103a61eUL,
        0xcbfbd96f37d94231UL,
        0x822cf85f19fa1c57UL,
        0xbad14d4105b747c0UL,
        0x68d3112e26b7058cUL,
        0xe939de1deeecb0eaUL,
        0xc8dd240ae62acb2eUL,
        0x84c9a11ed45d7fe5UL,
        0x6337574c7b608b9eUL,
        0x04a754b367ca3f30UL,
        0xcd313dbdf63271d7UL,
        0x10b66a7039335a7cUL,
        0x760b4ff914750853UL,
        0x04ab2398d97c575cUL,
        0x7b67bd55fff11e9bUL,
        0x10dc233f3fc321c7UL,
        0x30c4e82d711d92d6UL,
        0x68b1eb01526faa5aUL,
        0x7ab850144264c41dUL,
        0x2346e7c4887a13f6UL,
        0x3b3d03d01a36599fUL,
        0x0cfc861d02d1e93cUL,
        0xca51254fc7c66fc0UL,
        0x2353a39411489f64UL,
        0xefe5873cdc9a0db5UL,
    ];

    [Fact]
    public void Compute_PayloadsAroundTheWordAndCut_ValuesOfTheEarlierCode()
    {
        var frames = Frames().ToList();
        Assert.Equal(Expected.Length, frames.Count);
        for (int i = 0; i < frames.Count; i++)
        {
            var (frame, original) = frames[i];
            PacketParser.Parse(frame, LinkType.Ethernet, ParserOptions.Default, original, out ParsedPacket packet);
            ulong fingerprint = PacketFingerprint.Compute(in packet, frame);
            Assert.True(Expected[i] == fingerprint, $"frame {i}: expected 0x{Expected[i]:x16}, computed 0x{fingerprint:x16}");
        }
    }
}
