using VethTrace.Capture.Files;

namespace VethTrace.Tests.Files;

/// <summary>
/// Random damage: whatever the bytes, Open either succeeds or throws
/// <see cref="CaptureFileException"/>, and reading ends, by a clean end or an <see cref="CaptureFileReader.Error"/>
/// inside the file, without any other exception escaping. Seeds are fixed so a failure reproduces.
/// </summary>
public sealed class CaptureFuzzTests
{
    private const int Rounds = 400;

    [Fact]
    public void TryReadNext_MutatedPcap_NeverThrows()
    {
        var builder = CaptureBuilder.Pcap(nanoseconds: true);
        for (int i = 0; i < 12; i++)
        {
            builder.PcapRecord((uint)i, (uint)i, CaptureReading.Payload(i * 9, i));
        }
        Fuzz(builder.ToArray(), "fuzz.pcap", seed: 1);
    }

    [Fact]
    public void TryReadNext_MutatedPcapng_NeverThrows()
    {
        var builder = CaptureBuilder.Pcapng()
            .InterfaceDescription(name: "eth0", description: "d", tsResol: 9, tsOffset: 5)
            .InterfaceDescription(linkType: 113, snapLength: 20, tsResol: 0x80 | 20)
            .EnhancedPacket(1, 7, CaptureReading.Payload(30, 1), flags: 1)
            .SimplePacket(CaptureReading.Payload(25, 2))
            .OpaqueBlock(CaptureBuilder.BlockType.InterfaceStatistics, new byte[16])
            .SectionHeader(bigEndian: true)
            .InterfaceDescription(name: "veth0")
            .ObsoletePacket(0, 9, CaptureReading.Payload(11, 3), flags: 2)
            .EnhancedPacket(0, 10, CaptureReading.Payload(3, 4));
        Fuzz(builder.ToArray(), "fuzz.pcapng", seed: 2);
    }

    [Fact]
    public void TryReadNext_RandomBytesAfterMagic_NeverThrows()
    {
        var random = new Random(3);
        byte[][] magics = [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d], [0x0a, 0x0d, 0x0d, 0x0a]];
        for (int round = 0; round < Rounds; round++)
        {
            byte[] file = new byte[random.Next(4, 600)];
            random.NextBytes(file);
            magics[round % magics.Length].CopyTo(file, 0);
            if (round % 2 == 0 && file.Length >= 12)
            {
                // A valid byte-order magic gets a pcapng past its first check more often.
                new byte[] { 0x4d, 0x3c, 0x2b, 0x1a }.CopyTo(file, 8);
            }
            ReadWithoutEscape(file, "random.pcapng", round);
        }
    }

    private static void Fuzz(byte[] original, string name, int seed)
    {
        var random = new Random(seed);
        for (int round = 0; round < Rounds; round++)
        {
            byte[] file = CaptureReading.Mutated(original, random, maxMutations: 6);
            ReadWithoutEscape(file, name, round);
        }
    }

    private static void ReadWithoutEscape(byte[] file, string name, int round)
    {
        CaptureFileReader reader;
        try
        {
            reader = CaptureFileReader.Open(new MemoryStream(file), name);
        }
        catch (CaptureFileException e)
        {
            Assert.InRange(e.Error.Offset, 0, file.Length);
            return;
        }
        catch (Exception e)
        {
            Assert.Fail($"round {round}: Open threw {e.GetType().Name}: {e.Message}\n{Convert.ToHexString(file)}");
            return;
        }
        using (reader)
        {
            long calls = 0;
            try
            {
                while (reader.TryReadNext(out CaptureRecord record))
                {
                    Assert.InRange(record.FileOffset, 0, file.Length - 1);
                    Assert.InRange(record.Data.Length, 0, CaptureFileReader.MaxCaptureLengthFor(record.LinkType));
                    Assert.True(++calls <= file.Length, "more packets than bytes: the reader is not advancing");
                }
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Assert.Fail($"round {round}: TryReadNext threw {e.GetType().Name}: {e.Message}\n{Convert.ToHexString(file)}");
            }
            Assert.Equal(calls, reader.PacketsRead);
            if (reader.Error is { } error)
            {
                Assert.InRange(error.Offset, 0, file.Length);
                Assert.False(string.IsNullOrWhiteSpace(error.Message));
            }
        }
    }
}
