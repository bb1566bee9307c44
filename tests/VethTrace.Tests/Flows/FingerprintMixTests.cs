using System.Numerics;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using VethTrace.Tracing;

namespace VethTrace.Tests.Flows;

/// <summary>
/// The fingerprint's hash (session 15): the invariant fields packed into six words, mixed in three independent
/// 128-bit multiplies and one avalanche (<see cref="PacketFingerprint.Mix"/>) instead of a chain of xxHash64 rounds.
/// It must be no weaker: every input bit moves about half the output bits, no two packets of the shipped captures
/// with different invariant fields share a fingerprint, and a product never loses a word to a zero factor.
/// </summary>
public sealed class FingerprintMixTests
{
    private static IEnumerable<(CorpusPacket Packet, PacketFingerprint.Words Words, ulong Fingerprint)> Gathered(string name)
    {
        foreach (CorpusPacket corpusPacket in CaptureCorpus.Read(name))
        {
            PacketParser.Parse(corpusPacket.Data, corpusPacket.LinkType, out ParsedPacket packet);
            PacketFingerprint.Gather(in packet, corpusPacket.Data, out PacketFingerprint.Words words);
            yield return (corpusPacket, words, PacketFingerprint.Compute(in packet, corpusPacket.Data));
        }
    }

    [Fact]
    public void Keys_DerivedFromTheSeed()
    {
        ulong[] keys = [PacketFingerprint.Key0, PacketFingerprint.Key1, PacketFingerprint.Key2, PacketFingerprint.Key3, PacketFingerprint.Key4, PacketFingerprint.Key5];
        for (int i = 0; i < keys.Length; i++)
        {
            Assert.Equal(StableHash.Finish(StableHash.Add(StableHash.Seed, (ulong)i)), keys[i]);
        }
    }

    [Fact]
    public void SegmentKey_OneProductOfItsTwoWordsWithKeysFromTheSeed()
    {
        var layers = new PacketLayers
        {
            TcpAcknowledgment = 0x89ABCDEF,
            TcpFlags = TcpFlags.Ack | TcpFlags.Psh,
            TcpTsVal = 0x01020304,
            TcpTsEcr = 0xA0B0C0D0,
        };
        ulong first = (ulong)0x89ABCDEF << 16 | (ushort)TcpFlags.Ack;
        ulong second = 0x01020304UL << 32 | 0xA0B0C0D0;
        ulong expected = StableHash.Finish(PacketFingerprint.Fold(first ^ StableHash.Finish(StableHash.Add(StableHash.Seed, 6)),
            second ^ StableHash.Finish(StableHash.Add(StableHash.Seed, 7)))) | 1;
        Assert.Equal(expected, Observation.SegmentKeyOf(in layers));
    }

    [Theory]
    [InlineData("masquerade-multi.pcapng")]
    [InlineData("replay/gro-iperf3.pcapng")]
    [InlineData("replay/overlay-vxlan.pcapng")]
    [InlineData("ipv6-frag.pcap")]
    [InlineData("ipv4-frag.pcap")]
    public void FirstWordOfEveryIpPair_NeverEqualsItsKey(string name)
    {
        // A product is zero, and loses its other word, only when a word equals its key. The first word of each IP pair
        // has a top byte its key never has, so the payload, sequence and timestamp words always count in full.
        Assert.DoesNotContain(PacketFingerprint.Key0 >> 56, new ulong[] { 0x00, 0x04, 0x06 });
        Assert.True(PacketFingerprint.Key2 >> 56 > PacketFingerprint.KindNotIp);
        Assert.DoesNotContain(PacketFingerprint.Key4 >> 56, new ulong[] { 0x00, 0x80 });
        int ip = 0;
        foreach (var (_, words, _) in Gathered(name))
        {
            if (words.Transport >> 56 == PacketFingerprint.KindNotIp)
            {
                continue;
            }
            ip++;
            Assert.Contains(words.Network >> 56, new ulong[] { 0x04, 0x06 });
            Assert.True(words.Transport >> 56 <= PacketFingerprint.KindIcmpError);
            Assert.Contains(words.Fragment >> 56, new ulong[] { 0x00, 0x80 });
        }
        Assert.True(ip > 0);
    }

    [Fact]
    public void Avalanche_EveryInputBitChangesAboutHalfTheOutputBits()
    {
        // The packets of real captures (ICMP, TCP, UDP through NAT; TCP with timestamps), each of the 384 bits of its six words flipped in turn.
        var packets = Gathered("masquerade-multi.pcapng").Concat(Gathered("replay/gro-iperf3.pcapng").Take(1000)).ToList();
        Assert.True(packets.Count >= 1000, $"{packets.Count} packets");
        var changed = new long[6 * 64];
        long total = 0;
        foreach (var (_, words, fingerprint) in packets)
        {
            Assert.Equal(fingerprint, PacketFingerprint.Mix(in words));
            for (int bit = 0; bit < changed.Length; bit++)
            {
                PacketFingerprint.Words flipped = words;
                ulong mask = 1UL << (bit & 63);
                switch (bit >> 6)
                {
                    case 0: flipped.Network ^= mask; break;
                    case 1: flipped.Payload ^= mask; break;
                    case 2: flipped.Transport ^= mask; break;
                    case 3: flipped.Sequence ^= mask; break;
                    case 4: flipped.Fragment ^= mask; break;
                    default: flipped.Timestamps ^= mask; break;
                }
                int distance = BitOperations.PopCount(PacketFingerprint.Mix(in flipped) ^ fingerprint);
                Assert.True(distance > 0, $"bit {bit} of packet {words.Network:x16} left the fingerprint unchanged");
                changed[bit] += distance;
                total += distance;
            }
        }
        double mean = (double)total / (packets.Count * changed.Length);
        Assert.InRange(mean, 31.5, 32.5);
        // Each input bit on its own: its mean over the packets (standard deviation 4 / sqrt(count)) near 32.
        double spread = 6 * 4 / Math.Sqrt(packets.Count);
        for (int bit = 0; bit < changed.Length; bit++)
        {
            Assert.InRange((double)changed[bit] / packets.Count, 32 - spread, 32 + spread);
        }
    }

    [Theory]
    [MemberData(nameof(CaptureCorpus.FileNames), MemberType = typeof(CaptureCorpus))]
    public void Captures_NoFingerprintSharedByDifferentInvariantFields(string name)
    {
        // Stricter than the correlator needs (a window of about a second): over the whole file. The words are the
        // invariant fields packed without loss, so different words are different packets, whatever the hops did.
        var seen = new Dictionary<ulong, PacketFingerprint.Words>();
        foreach (var (packet, words, fingerprint) in Gathered(name))
        {
            if (seen.TryGetValue(fingerprint, out var earlier))
            {
                Assert.True(earlier.Equals(words), $"{name} frame {packet.FrameNumber}: fingerprint {fingerprint:x16} shared with different invariant fields");
            }
            else
            {
                seen[fingerprint] = words;
            }
        }
    }
}
