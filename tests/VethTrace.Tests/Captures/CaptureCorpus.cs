using VethTrace.Capture.Files;
using VethTrace.Packets;

namespace VethTrace.Tests.Captures;

/// <summary>One packet of a real capture, copied out of the reader's buffer.</summary>
public sealed record CorpusPacket(int FrameNumber, byte[] Data, LinkType LinkType, string Interface, long TimestampNs);

/// <summary>The real captures shipped in captures/, recorded in the lab (see captures/README.md).</summary>
public static class CaptureCorpus
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string CapturesDirectory => Path.Combine(RepositoryRoot, "captures");

    /// <summary>Every readable capture (pcap, pcapng) under captures/, the replay scenarios and the expanded bulk capture included.</summary>
    public static IEnumerable<string> Files() =>
        Directory.Exists(CapturesDirectory)
            ? Directory.EnumerateFiles(CapturesDirectory, "*", SearchOption.AllDirectories)
                .Where(f => f.EndsWith(".pcap", StringComparison.Ordinal) || f.EndsWith(".pcapng", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal)
            : [];

    /// <summary>xunit theory data: file paths relative to captures/ (replay/east-west.pcapng).</summary>
    public static TheoryData<string> FileNames()
    {
        var data = new TheoryData<string>();
        foreach (string file in Files())
        {
            data.Add(Path.GetRelativePath(CapturesDirectory, file));
        }
        return data;
    }

    public static string PathOf(string name) => Path.Combine(CapturesDirectory, name);

    /// <summary>Reads every packet of a capture; fails the test if the reader reports damage.</summary>
    public static List<CorpusPacket> Read(string name, int limit = int.MaxValue)
    {
        var packets = new List<CorpusPacket>();
        using var reader = CaptureFileReader.Open(PathOf(name));
        while (packets.Count < limit && reader.TryReadNext(out CaptureRecord record))
        {
            packets.Add(new CorpusPacket(packets.Count + 1, record.Data.ToArray(), record.LinkType, reader.Interfaces[record.InterfaceId].Name, record.TimestampNs));
        }
        Assert.Null(reader.Error);
        return packets;
    }

    private static string FindRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "VethTrace.sln")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("VethTrace.sln not found above " + AppContext.BaseDirectory);
    }
}
