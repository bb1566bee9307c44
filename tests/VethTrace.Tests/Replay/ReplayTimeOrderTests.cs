using VethTrace.Capture.Files;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <c>replay</c> on a file out of time order by more than its first pass holds (<c>ReplayCommand.FirstPassSlackNs</c>):
/// it reads the file again with the full slack, and reports once, as for the same packets in order.
/// </summary>
public sealed class ReplayTimeOrderTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-order-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string name, IEnumerable<CorpusPacket> packets)
    {
        string path = Path.Combine(_directory, name);
        using var writer = new PcapWriter(File.Create(path), packets.First().LinkType, 262_144);
        foreach (CorpusPacket packet in packets)
        {
            writer.WritePacket(packet.TimestampNs, packet.Data, packet.Data.Length);
        }
        return path;
    }

    private static string Replay(string path)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", path, "--format", "json"], output, error));
        Assert.Equal("", error.ToString());
        return output.ToString();
    }

    [Fact]
    public void Execute_PacketsLateByHundredsOfMilliseconds_ReadAgainAndReportedOnceAsInOrder()
    {
        var packets = CaptureCorpus.Read("replay/split/eth0.pcap");
        var random = new Random(7);
        // Written in the order of their timestamps plus up to 400 ms: many arrive over 10 ms behind the newest.
        var shuffled = packets.Select(p => (Key: p.TimestampNs + random.NextInt64(400_000_000), Packet: p)).OrderBy(p => p.Key).Select(p => p.Packet).ToList();
        Assert.NotEqual(packets.Select(p => p.FrameNumber), shuffled.Select(p => p.FrameNumber));

        string inOrder = Replay(Write("in-order.pcap", packets));
        string outOfOrder = Replay(Write("out-of-order.pcap", shuffled));

        Assert.Single(outOfOrder.Split('\n'), line => line.Contains("\"type\":\"summary\"", StringComparison.Ordinal));
        Assert.Contains($"\"packets\":{packets.Count},", outOfOrder, StringComparison.Ordinal);
        Assert.Equal(inOrder, outOfOrder);
    }
}
