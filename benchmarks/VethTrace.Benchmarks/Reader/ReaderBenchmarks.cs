using BenchmarkDotNet.Attributes;
using VethTrace.Benchmarks.PacketSets;
using VethTrace.Cli.Bench;
using VethTrace.Capture.Files;

namespace VethTrace.Benchmarks.Reader;

/// <summary>
/// <see cref="CaptureFileReader"/> over a pcap and a pcapng file in memory, written from the bulk packets,
/// so the disk is out of the measurement. Each invocation opens the file and reads all
/// <see cref="PacketsPerInvoke"/> packets: times and allocations are per packet, and the MB/s column
/// turns them into file throughput. Opening is included (the 1 MiB read buffer shows as bytes per packet).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ThroughputColumn.Config))]
public class ReaderBenchmarks
{
    public const int PacketsPerInvoke = 1 << 16;

    private byte[] _pcap = [];
    private byte[] _pcapng = [];

    [GlobalSetup]
    public void Setup()
    {
        (_pcap, _pcapng) = Files.Value;
        Console.WriteLine($"// pcap {_pcap.Length} bytes, pcapng {_pcapng.Length} bytes, {PacketsPerInvoke} packets each");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public long ReadPcap() => ReadAll(_pcap, "bench.pcap");

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public long ReadPcapng() => ReadAll(_pcapng, "bench.pcapng");

    /// <summary>The file's length for a benchmark method, for the MB/s column (which runs in the host process).</summary>
    public static long FileLength(string method) => method switch
    {
        nameof(ReadPcap) => Files.Value.Pcap.Length,
        nameof(ReadPcapng) => Files.Value.Pcapng.Length,
        _ => 0,
    };

    // Both files are written from the same sample of the bulk set, so pcap and pcapng carry equal packets.
    private static readonly Lazy<(byte[] Pcap, byte[] Pcapng)> Files = new(() =>
    {
        PacketSet packets = PacketSetLoader.LoadBulk().Resample(PacketsPerInvoke);
        return (CaptureWriter.WritePcap(packets), CaptureWriter.WritePcapng(packets));
    });

    private static long ReadAll(byte[] file, string name)
    {
        using var stream = new MemoryStream(file, writable: false);
        using CaptureFileReader reader = CaptureFileReader.Open(stream, name);
        long sum = 0;
        int packets = 0;
        while (reader.TryReadNext(out CaptureRecord record))
        {
            sum += record.Data.Length + record.TimestampNs + record.OriginalLength + record.InterfaceId;
            packets++;
        }
        if (reader.Error is not null || packets != PacketsPerInvoke)
        {
            throw new InvalidOperationException($"read {packets} of {PacketsPerInvoke} packets: {reader.Error}");
        }
        return sum;
    }
}
