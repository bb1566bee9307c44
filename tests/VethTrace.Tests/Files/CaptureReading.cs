using VethTrace.Capture.Files;
using VethTrace.Packets;

namespace VethTrace.Tests.Files;

/// <summary>A <see cref="CaptureRecord"/> copied out of the reader's buffer, so it outlives the next read.</summary>
internal sealed record ReadPacket(byte[] Data, long TimestampNs, int InterfaceId, LinkType LinkType, int OriginalLength, PacketDirection Direction, long FileOffset,
    bool TimestampInvalid = false)
{
    public static ReadPacket CopyOf(in CaptureRecord record) =>
        new(record.Data.ToArray(), record.TimestampNs, record.InterfaceId, record.LinkType, record.OriginalLength, record.Direction, record.FileOffset,
            record.TimestampInvalid);
}

/// <summary>
/// Everything a reader gives for one file (or the one-line error that refused it), for the tests that read a file two
/// ways and want the same outcome: in one go and by the general path, mapped and read.
/// </summary>
internal sealed record ReadOutcome(List<ReadPacket> Packets, CaptureFileError? Error, List<CaptureFileError> Warnings, List<CaptureInterface> Interfaces,
    long PacketsRead, long InvalidTimestamps, long InOneGo, bool Mapped, string? OpenError)
{
    /// <summary>Opens with <paramref name="open"/> and reads to the end, in one go where it can when <paramref name="oneGo"/>.</summary>
    public static ReadOutcome Of(Func<CaptureFileReader> open, bool oneGo = true)
    {
        CaptureFileReader reader;
        try
        {
            reader = open();
        }
        catch (CaptureFileException e)
        {
            return new ReadOutcome([], null, [], [], 0, 0, 0, false, e.Error.ToString());
        }
        using (reader)
        {
            reader.ReadsInOneGo = oneGo;
            List<ReadPacket> packets = CaptureReading.ReadAll(reader);
            return new ReadOutcome(packets, reader.Error, [.. reader.Warnings], [.. reader.Interfaces], reader.PacketsRead, reader.InvalidTimestamps,
                reader.RecordsReadInOneGo, reader.IsMapped, null);
        }
    }

    /// <summary>Asserts that <paramref name="other"/> opened alike and, when both opened, read the same records, damage, warnings, interfaces and counts.</summary>
    public void AssertSameAs(ReadOutcome other, string what, string thisWay, string otherWay)
    {
        Assert.True(other.OpenError == OpenError, $"{what}: opening differs: {OpenError} / {other.OpenError}");
        if (OpenError is not null)
        {
            return;
        }
        Assert.True(other.Packets.Count == Packets.Count, $"{what}: {Packets.Count} records {thisWay}, {other.Packets.Count} {otherWay}");
        for (int i = 0; i < other.Packets.Count; i++)
        {
            ReadPacket a = Packets[i], b = other.Packets[i];
            Assert.True(a.Data.AsSpan().SequenceEqual(b.Data) && a with { Data = b.Data } == b, $"{what}: record {i} differs: {a} / {b}");
        }
        Assert.True(other.Error == Error, $"{what}: error {Error} / {other.Error}");
        Assert.True(other.Warnings.SequenceEqual(Warnings), $"{what}: warnings {string.Join("; ", Warnings)} / {string.Join("; ", other.Warnings)}");
        Assert.True(other.Interfaces.SequenceEqual(Interfaces), $"{what}: interfaces differ");
        Assert.Equal(other.PacketsRead, PacketsRead);
        Assert.Equal(other.InvalidTimestamps, InvalidTimestamps);
    }
}

internal static class CaptureReading
{
    public static CaptureFileReader Open(byte[] file, string name = "test.pcapng") => CaptureFileReader.Open(new MemoryStream(file), name);

    /// <summary>Reads until TryReadNext returns false; the reader is returned for its Error, Interfaces and counters.</summary>
    public static List<ReadPacket> ReadAll(CaptureFileReader reader)
    {
        var packets = new List<ReadPacket>();
        while (reader.TryReadNext(out CaptureRecord record))
        {
            packets.Add(ReadPacket.CopyOf(record));
        }
        return packets;
    }

    public static (List<ReadPacket> Packets, CaptureFileReader Reader) ReadAll(byte[] file, string name = "test.pcapng")
    {
        CaptureFileReader reader = Open(file, name);
        return (ReadAll(reader), reader);
    }

    /// <summary>The regular files' record sizes: 60 to 156 bytes, the eighth above the snaplen of 150 (read, and counted).</summary>
    public static int RegularSize(int i) => i == 7 ? 151 : 60 + i % 91;

    /// <summary>A pcapng of <paramref name="count"/> regular records on two interfaces (<see cref="RegularSize"/>, payload <see cref="Payload"/>(size, i)).</summary>
    public static byte[] RegularPcapng(int count)
    {
        var builder = CaptureBuilder.Pcapng().InterfaceDescription(name: "eth0", snapLength: 150, tsResol: 9)
            .InterfaceDescription(name: "eth1", snapLength: 150, tsResol: 9);
        for (int i = 0; i < count; i++)
        {
            builder.EnhancedPacket((uint)(i % 2), (ulong)i * 1000, Payload(RegularSize(i), i), originalLength: (uint)RegularSize(i) + 1000,
                flags: i % 3 == 0 ? 1u : null);
        }
        return builder.ToArray();
    }

    /// <summary>The same records in a pcap.</summary>
    public static byte[] RegularPcap(int count)
    {
        var builder = CaptureBuilder.Pcap(snapLength: 150);
        for (int i = 0; i < count; i++)
        {
            builder.PcapRecord((uint)i, (uint)i, Payload(RegularSize(i), i), originalLength: (uint)RegularSize(i) + 1000);
        }
        return builder.ToArray();
    }

    /// <summary>A recognisable payload: <paramref name="length"/> bytes counting up from <paramref name="seed"/>.</summary>
    public static byte[] Payload(int length, int seed)
    {
        byte[] data = new byte[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seed + i);
        }
        return data;
    }

    /// <summary>
    /// Asserts that a read stopped at damage, and that the stop is sticky (peek, then advance: a failed
    /// read moves nothing, so every later call fails the same way and counts no packet).
    /// </summary>
    /// <summary>
    /// A damaged copy of <paramref name="original"/>: 1 to <paramref name="maxMutations"/> - 1 bytes set at random,
    /// flipped by one bit, or set to an extreme in a 32-bit word (length fields are where damage hurts), and one time
    /// in four cut short at a random length. The same <paramref name="random"/> gives the same copies.
    /// </summary>
    public static byte[] Mutated(byte[] original, Random random, int maxMutations)
    {
        byte[] file = (byte[])original.Clone();
        int mutations = random.Next(1, maxMutations);
        for (int m = 0; m < mutations; m++)
        {
            int at = random.Next(file.Length);
            switch (random.Next(3))
            {
                case 0:
                    file[at] = (byte)random.Next(256);
                    break;
                case 1:
                    file[at] ^= (byte)(1 << random.Next(8));
                    break;
                default:
                    file[at & ~3] = random.Next(2) == 0 ? (byte)0xFF : (byte)0x00;
                    break;
            }
        }
        if (random.Next(4) == 0)
        {
            file = file[..random.Next(file.Length + 1)];
        }
        return file;
    }

    public static CaptureFileError AssertStoppedAt(CaptureFileReader reader, long offset, string message)
    {
        CaptureFileError? error = reader.Error;
        Assert.NotNull(error);
        Assert.Equal(message, error.Message);
        Assert.Equal(offset, error.Offset);
        long packets = reader.PacketsRead;
        for (int i = 0; i < 3; i++)
        {
            Assert.False(reader.TryReadNext(out CaptureRecord record));
            Assert.True(record.Data.IsEmpty);
            Assert.Same(error, reader.Error);
            Assert.Equal(packets, reader.PacketsRead);
        }
        return error;
    }

    /// <summary>Asserts a clean end of file, and that reading past it stays a clean end.</summary>
    public static void AssertCleanEnd(CaptureFileReader reader)
    {
        Assert.Null(reader.Error);
        Assert.False(reader.TryReadNext(out _));
        Assert.Null(reader.Error);
    }
}
