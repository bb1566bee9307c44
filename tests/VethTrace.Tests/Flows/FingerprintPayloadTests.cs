using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Parser;
using static VethTrace.Tests.Parser.PacketBuilder;
using static VethTrace.Tests.Parser.SamplePackets;

namespace VethTrace.Tests.Flows;

/// <summary>
/// The fingerprint's payload word: the first <see cref="PacketFingerprint.PayloadHashBytes"/> captured payload bytes,
/// zero-padded, and their count, for every payload length around the word and payloads cut by the snaplen. The values
/// are fixed, since fingerprints are shown (<c>vethtrace packets</c>) and sampled on (<c>--sample</c>); they were printed
/// by the session-15 hash (fp20: three 128-bit products and an avalanche), which replaced the xxHash64 chain and with it
/// every earlier value.
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

    /// <summary>The fingerprints of these frames, in order (session 15's hash).</summary>
    private static readonly ulong[] Expected =
    [
        0xbb84ff84fc58051dUL,
        0x09184dfd4c66071aUL,
        0x6c5a9f883903fbd4UL,
        0x5d2c3b4fe601ce4eUL,
        0xe8f99085efe4944fUL,
        0x6e94f6f324f4ed3dUL,
        0xf3eae3566d94726aUL,
        0x7f7cd181b246e9a6UL,
        0x695b704dcb5f8de7UL,
        0x8307f021f4fb6288UL,
        0x209431abc89ef5a3UL,
        0x4ccb4fc566e6a022UL,
        0x1e3bbfe42090bad3UL,
        0x3ea2bca7b6b1cc94UL,
        0x4017de4d35ea9f32UL,
        0x7d7742fb7c3f5d3eUL,
        0xfe0ea5e280d289e9UL,
        0x0e3054aa95ff5633UL,
        0x6e79d0d868b8239cUL,
        0x4936c137f3c41ce8UL,
        0x81692491d342126aUL,
        0x5eea4290c812c54fUL,
        0x4b271b69c6252067UL,
        0xa9cee270e05e2533UL,
        0x59b78e75045a149dUL,
        0x7c3495f43c019aaeUL,
    ];

    [Fact]
    public void Compute_PayloadsAroundTheWordAndCut_FixedValues()
    {
        var frames = Frames().ToList();
        Assert.Equal(Expected.Length, frames.Count);
        var computed = new ulong[frames.Count];
        for (int i = 0; i < frames.Count; i++)
        {
            var (frame, original) = frames[i];
            PacketParser.Parse(frame, LinkType.Ethernet, ParserOptions.Default, original, out ParsedPacket packet);
            computed[i] = PacketFingerprint.Compute(in packet, frame);
        }
        Assert.True(Expected.SequenceEqual(computed), "computed:\n" + string.Join("\n", computed.Select(value => $"        0x{value:x16}UL,")));
    }

    [Fact]
    public void Gather_PayloadWord_TheFirstCapturedBytesAndTheirCount()
    {
        foreach (var (frame, original) in Frames())
        {
            PacketParser.Parse(frame, LinkType.Ethernet, ParserOptions.Default, original, out ParsedPacket packet);
            PacketFingerprint.Gather(in packet, frame, out PacketFingerprint.Words words);
            ref readonly PacketLayers layers = ref packet.Innermost;
            int count = Math.Min(layers.CapturedPayloadLength, PacketFingerprint.PayloadHashBytes);
            ulong word = 0;
            for (int i = 0; i < count; i++)
            {
                word |= (ulong)frame[layers.PayloadOffset + i] << (8 * i);
            }
            Assert.Equal(word, words.Payload);
            Assert.Equal((ulong)count, words.Transport >> 48 & 0xF);
        }
    }
}
