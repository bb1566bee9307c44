using System.Text.Json;
using VethTrace.Capture.Files;
using VethTrace.Packets;
using VethTrace.Tests.Captures;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// A path's through-host times (<see cref="PathStats.Through"/>) are kept only when a report reads them: for the
/// containers a whole-host recording names (docs/performance.md, "Many flows"). Checked against the journeys that
/// tests/lab/derive-journeys.py derived with tshark from the shipped capture (captures/replay/expected/masquerade-multi.pcapng.json).
/// </summary>
public sealed class PathLatencyTests
{
    private const string Capture = "masquerade-multi.pcapng";

    private static JsonElement Derived() => JsonDocument.Parse(File.ReadAllText(
        Path.Combine(CaptureCorpus.CapturesDirectory, "replay", "expected", Capture + ".json"))).RootElement;

    /// <summary>Each derived path (interface names) with its journeys' through-host times: the sum of their hop deltas.</summary>
    private static Dictionary<string, long[]> DerivedThrough() => Derived().GetProperty("journeys").EnumerateArray()
        .Where(j => j.GetProperty("path").GetArrayLength() > 1)
        .GroupBy(j => string.Join(" > ", Derived().GetProperty("paths").EnumerateArray()
            .First(p => p.GetProperty("path").GetRawText() == j.GetProperty("path").GetRawText()).GetProperty("path_names").EnumerateArray().Select(n => n.GetString())))
        .ToDictionary(g => g.Key, g => g.Select(j => j.GetProperty("deltas_ns").EnumerateArray().Sum(d => d.GetInt64())).Order().ToArray());

    private static string NameOf(PathStats path, InterfaceRegistry interfaces) => string.Join(" > ", path.Interfaces.Select(id => interfaces.Names[id]));

    [Fact]
    public void Replay_NoContainersNamed_PathsCountedWithoutThroughTimes()
    {
        FileTraceResult result = FileTrace.Run([CaptureCorpus.PathOf(Capture)], new TraceSessionOptions());

        var derived = DerivedThrough();
        Assert.Equal(derived.Count, result.Report!.Paths.Count);
        Assert.All(result.Report.Paths, path =>
        {
            Assert.Equal(derived[NameOf(path, result.Interfaces!)].Length, path.Journeys);
            Assert.Equal(0, path.Through.Count);
        });
    }

    [Fact]
    public void Replay_WholeHostRecording_ThroughTimesOfEveryPathAsDerived()
    {
        // The shipped capture with the interface descriptions `vethtrace record` gives a whole-host recording.
        string directory = Directory.CreateTempSubdirectory("vethtrace-path-latency-").FullName;
        try
        {
            string file = Path.Combine(directory, "whole-host.pcapng");
            using (CaptureFileReader reader = CaptureFileReader.Open(CaptureCorpus.PathOf(Capture)))
            using (PcapngWriter writer = PcapngWriter.Create(file))
            {
                // Every interface first, as record writes them: a reader knows the blocks before the first packet.
                var packets = new List<(int Interface, long TimestampNs, byte[] Data, int OriginalLength, PacketDirection Direction)>();
                while (reader.TryReadNext(out CaptureRecord record))
                {
                    packets.Add((record.InterfaceId, record.TimestampNs, record.Data.ToArray(), record.OriginalLength, record.Direction));
                }
                foreach (CaptureInterface declared in reader.Interfaces)
                {
                    string? description = declared.Name switch
                    {
                        "docker0" => HostInterfaceDescription.Format(InterfaceRole.Bridge, null, null, []),
                        "vt-up0" => HostInterfaceDescription.Format(InterfaceRole.Egress, null, null, []),
                        string veth when veth.StartsWith("veth", StringComparison.Ordinal) =>
                            HostInterfaceDescription.Format(InterfaceRole.Veth, "c" + veth, "bridge", []),
                        _ => null,
                    };
                    Assert.Equal(declared.Id, writer.AddInterface(declared.Name, description, declared.LinkType, declared.SnapLength));
                }
                foreach (var packet in packets)
                {
                    writer.WritePacket(packet.Interface, packet.TimestampNs, packet.Data, packet.OriginalLength, packet.Direction);
                }
            }

            FileTraceResult result = FileTrace.Run([file], new TraceSessionOptions());

            Assert.NotNull(result.Owners);
            var derived = DerivedThrough();
            Assert.Equal(derived.Count, result.Report!.Paths.Count);
            foreach (PathStats path in result.Report.Paths)
            {
                long[] through = derived[NameOf(path, result.Interfaces!)];
                Assert.Equal(through.Length, path.Through.Count);
                // Below 8192 ns the histogram is exact; above, it reports its bucket's lowest value (2^-13 relative).
                foreach (double percent in new[] { 50.0, 99 })
                {
                    long exact = through[Math.Max(1, (int)Math.Ceiling(percent / 100 * through.Length)) - 1];
                    long reported = path.Through.Percentile(percent);
                    Assert.True(reported <= exact && exact - reported <= exact >> LatencyHistogram.SubBucketBits, $"{NameOf(path, result.Interfaces!)} p{percent}: derived {exact} ns, reported {reported} ns");
                }
                Assert.Equal(through[^1], path.Through.Max);
                Assert.Equal(through[0], path.Through.Min);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
