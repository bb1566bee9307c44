using VethTrace.Capture.Files;
using VethTrace.Cli;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <c>replay</c> on a file out of time order by more than its first pass holds (<c>FileTrace.FirstPassSlackNs</c>):
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

    /// <summary>The split eth0 capture written in the order of its timestamps plus up to 400 ms: many packets arrive over 10 ms behind the newest.</summary>
    private static (List<CorpusPacket> InOrder, List<CorpusPacket> Shuffled) Packets()
    {
        var packets = CaptureCorpus.Read("replay/split/eth0.pcap");
        var random = new Random(7);
        var shuffled = packets.Select(p => (Key: p.TimestampNs + random.NextInt64(400_000_000), Packet: p)).OrderBy(p => p.Key).Select(p => p.Packet).ToList();
        Assert.NotEqual(packets.Select(p => p.FrameNumber), shuffled.Select(p => p.FrameNumber));
        return (packets, shuffled);
    }

    [Fact]
    public void Execute_PacketsLateByHundredsOfMilliseconds_ReadAgainAndReportedOnceAsInOrder()
    {
        var (packets, shuffled) = Packets();

        string inOrder = Replay(Write("in-order.pcap", packets));
        string outOfOrder = Replay(Write("out-of-order.pcap", shuffled));

        Assert.Single(outOfOrder.Split('\n'), line => line.Contains("\"type\":\"summary\"", StringComparison.Ordinal));
        Assert.Contains($"\"packets\":{packets.Count},", outOfOrder, StringComparison.Ordinal);
        Assert.Equal(inOrder, outOfOrder);
    }

    [Fact]
    public async Task Execute_OutOfOrderFromAPipe_FullSlackFromTheStart()
    {
        // A pipe cannot be read a second time: replay must hold for the full slack on its one pass.
        var (packets, shuffled) = Packets();
        string file = Write("out-of-order.pcap", shuffled);
        string fifo = Path.Combine(_directory, "fifo");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
        {
            mkfifo.WaitForExit();
            Assert.Equal(0, mkfifo.ExitCode);
        }
        var writer = Task.Run(() =>
        {
            using var pipe = new FileStream(fifo, FileMode.Open, FileAccess.Write);
            pipe.Write(File.ReadAllBytes(file));
        });

        // A second open of the FIFO would wait for a writer that is gone: bounded, so a regression fails instead of hanging.
        var replay = Task.Run(() => Replay(fifo));
        if (await Task.WhenAny(replay, Task.Delay(TimeSpan.FromSeconds(30))) != replay)
        {
            await using (new FileStream(fifo, FileMode.Open, FileAccess.Write))
            {
            }
            Assert.Fail("replay opened the pipe a second time");
        }
        string fromPipe = await replay;
        await writer;

        Assert.Contains($"\"packets\":{packets.Count},", fromPipe, StringComparison.Ordinal);
        Assert.Equal(Replay(file), fromPipe);
    }
}
