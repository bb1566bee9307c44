using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// Seeded random input: nothing may escape the parser or the fingerprint, and the payload bounds
/// must stay inside the frame. Seeds are fixed so a failure reproduces; the failing frame is dumped.
/// </summary>
public class RandomInputTests
{
    private const int FramesPerLinkType = 200_000;
    private const int MaxLength = 300;
    private const int MutationsPerSample = 20_000;

    public static TheoryData<uint> LinkTypes => new() { 0, 1, 9, 101, 108, 113, 228, 229, 276, 147 };

    [Theory]
    [MemberData(nameof(LinkTypes))]
    public void Parse_RandomFrames_NothingEscapesAndPayloadInsideFrame(uint linkTypeValue)
    {
        var linkType = new LinkType(linkTypeValue);
        var random = new Random(unchecked((int)(0x5EED0000 + linkTypeValue)));
        byte[] buffer = new byte[MaxLength];
        for (int i = 0; i < FramesPerLinkType; i++)
        {
            int length = random.Next(MaxLength + 1);
            Span<byte> frame = buffer.AsSpan(0, length);
            random.NextBytes(frame);
            // Half the frames get plausible type fields, so parsing reaches IP, extension headers, transport and VXLAN
            // instead of stopping at the first unknown number.
            if (random.Next(2) == 0)
            {
                MakePlausible(frame, linkType, random);
            }
            Check(frame, linkType, ParserOptions.Default, $"link type {linkTypeValue}, frame {i}", OriginalLength(frame.Length, random));
        }
    }

    [Theory]
    [MemberData(nameof(SamplePackets.Names), MemberType = typeof(SamplePackets))]
    public void Parse_BitFlippedSamples_NothingEscapesAndPayloadInsideFrame(string name)
    {
        var sample = SamplePackets.Get(name);
        var random = new Random(StableSeed(name));
        byte[] mutated = new byte[sample.Frame.Length];
        // Small bounds too, so the limit paths run on mutated input.
        var tight = new ParserOptions { MaxVlanTags = 1, MaxExtensionHeaders = 2, MaxTunnelDepth = 1 };
        for (int i = 0; i < MutationsPerSample; i++)
        {
            sample.Frame.CopyTo(mutated, 0);
            int flips = 1 + random.Next(8);
            for (int f = 0; f < flips; f++)
            {
                // Bias toward the headers, where a flipped bit changes the parse.
                int position = random.Next(2) == 0 ? random.Next(Math.Min(mutated.Length, 80)) : random.Next(mutated.Length);
                mutated[position] ^= (byte)(1 << random.Next(8));
            }
            int length = random.Next(4) == 0 ? random.Next(mutated.Length + 1) : mutated.Length;
            Check(mutated.AsSpan(0, length), sample.LinkType, i % 2 == 0 ? ParserOptions.Default : tight, $"{name}, mutation {i}",
                OriginalLength(length, random));
        }
    }

    /// <summary>
    /// The record's original length to parse with: unknown, the captured length (so any IP length beyond it is
    /// inconsistent), a little more (a snaplen cut), or a nonsense value below the captured length.
    /// </summary>
    private static int OriginalLength(int length, Random random) => random.Next(4) switch
    {
        0 => 0,
        1 => length,
        2 => length + random.Next(200),
        _ => random.Next(-5, length + 1),
    };

    private static void Check(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options, string what, int originalLength)
    {
        ParsedPacket packet;
        try
        {
            PacketParser.Parse(frame, linkType, options, originalLength, out packet);
            PacketFingerprint.Compute(in packet, frame);
            PacketFingerprint.CoversPayload(in packet);
            FlowKey.From(in packet);
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name}: {e.Message}\n{Hex.Dump(frame)}{e.StackTrace}");
            return;
        }
        string? violation = ParserInvariantRules.Violation(in packet, frame.Length);
        if (violation is not null)
        {
            Assert.Fail($"{what}, original length {originalLength}: {violation} ({packet})\n{Hex.Dump(frame)}");
        }
    }

    /// <summary>Writes type fields the parser knows at the offsets the link type puts them.</summary>
    private static void MakePlausible(Span<byte> frame, LinkType linkType, Random random)
    {
        ReadOnlySpan<ushort> etherTypes = [0x0800, 0x86DD, 0x8100, 0x88A8, 0x0806, 0x0800, 0x86DD, 0x8847, 0x8848];
        ushort etherType = etherTypes[random.Next(etherTypes.Length)];
        int network;
        switch (linkType.Value)
        {
            case 1:
                network = 14;
                Put16(frame, 12, etherType);
                break;
            case 113:
                network = 16;
                Put16(frame, 14, etherType);
                break;
            case 276:
                network = 20;
                Put16(frame, 0, etherType);
                break;
            case 9:
                network = 4;
                Put16(frame, 0, 0xFF03);
                Put16(frame, 2, etherType switch { 0x0800 => 0x0021, 0x86DD => 0x0057, 0x8847 => 0x0281, 0x8848 => 0x0283, _ => 0xC021 });
                break;
            case 0:
            case 108:
                network = 4;
                if (frame.Length >= 4)
                {
                    frame[..4].Clear();
                    frame[linkType.Value == 0 ? 0 : 3] = (byte)(random.Next(2) == 0 ? 2 : 30);
                }
                break;
            default:
                network = 0;
                break;
        }
        if (etherType is 0x8100 or 0x88A8 && network + 4 <= frame.Length)
        {
            Put16(frame, network + 2, random.Next(2) == 0 ? (ushort)0x0800 : (ushort)0x86DD);
            network += 4;
        }
        if (etherType is 0x8847 or 0x8848 && linkType.Value is 1 or 9 or 113 or 276)
        {
            // 1 to 3 label stack entries, the bottom-of-stack bit on the last (usually), then IP.
            int labels = 1 + random.Next(3);
            for (int l = 0; l < labels; l++)
            {
                bool bottom = l == labels - 1 && random.Next(8) != 0;
                Put8(frame, network + 2, (byte)(frame.Length > network + 2 ? (frame[network + 2] & 0xFE) | (bottom ? 1 : 0) : 0));
                network += 4;
            }
        }
        if (network >= frame.Length)
        {
            return;
        }
        ReadOnlySpan<byte> protocols = [6, 17, 1, 58, 0, 43, 44, 51, 60, 59, 50, 17, 6];
        byte protocol = protocols[random.Next(protocols.Length)];
        bool v6 = linkType.Value == 229 || linkType.Value != 228 && random.Next(2) == 0;
        int transport;
        if (v6)
        {
            frame[network] = (byte)(0x60 | frame[network] & 0x0F);
            Put8(frame, network + 6, protocol);
            Put16(frame, network + 4, (ushort)random.Next(MaxLength));
            transport = network + 40;
        }
        else
        {
            int ihl = random.Next(4) == 0 ? random.Next(16) : 5;
            frame[network] = (byte)(0x40 | ihl);
            Put16(frame, network + 2, (ushort)random.Next(MaxLength));
            Put16(frame, network + 6, random.Next(4) == 0 ? (ushort)random.Next(0x10000) : (ushort)0x4000);
            Put8(frame, network + 9, protocol);
            transport = network + ihl * 4;
        }
        if (protocol == 17 && random.Next(2) == 0)
        {
            Put16(frame, transport + 2, 4789);
            Put8(frame, transport + 8, 0x08);
        }
    }

    private static void Put8(Span<byte> frame, int offset, byte value)
    {
        if ((uint)offset < (uint)frame.Length)
        {
            frame[offset] = value;
        }
    }

    private static void Put16(Span<byte> frame, int offset, ushort value)
    {
        Put8(frame, offset, (byte)(value >> 8));
        Put8(frame, offset + 1, (byte)value);
    }

    /// <summary>string.GetHashCode is randomised per process; seeds must not be.</summary>
    private static int StableSeed(string text)
    {
        int seed = 17;
        foreach (char c in text)
        {
            seed = unchecked(seed * 31 + c);
        }
        return seed;
    }
}
