using System.Globalization;
using VethTrace.Capture.Files;
using VethTrace.Tests.Captures;
using VethTrace.Tests.Files;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// The engine replay and follow share. Fed the shipped multi-interface capture the way follow feeds it (a concurrent
/// feed per interface, pumped), it reports what replay's pipelined run reports, and counts every packet and those that
/// are not IP as tshark counts them.
/// </summary>
public sealed class TraceSessionTests
{
    private const string Capture = "masquerade-multi.pcapng";

    [Fact]
    public void ConcurrentFeeds_MasqueradeCapture_CountsAsTsharkAndReportsAsReplay()
    {
        string path = CaptureCorpus.PathOf(Capture);
        long frames = WiresharkTool.Run("tshark", ["-n", "-r", path, "-T", "fields", "-e", "frame.number"]).Length;
        long notIp = WiresharkTool.Run("tshark", ["-n", "-r", path, "-Y", "not ip and not ipv6", "-T", "fields", "-e", "frame.number"]).Length;
        Assert.True(notIp > 0, "the capture should hold frames that are not IP (ARP)");

        var session = new TraceSession(new TraceSessionOptions());
        var feeds = FollowFeeding.Feed(session, path);
        CorrelationReport live = session.Report();

        Assert.Equal((frames, notIp), (live.Packets, live.NotIp));
        Assert.Equal(frames, feeds.Sum(f => f.Feed.Packets));

        FileTraceResult replayed = FileTrace.Run([path], new TraceSessionOptions());
        CorrelationReport file = replayed.Report!;
        Assert.Empty(replayed.Problems);
        Assert.Equal(session.Interfaces.Names, replayed.Interfaces!.Names);
        Assert.Equal((file.Packets, file.NotIp, file.Journeys, file.MultiHopJourneys, file.Complete, file.Lost),
            (live.Packets, live.NotIp, live.Journeys, live.MultiHopJourneys, live.Complete, live.Lost));
        Assert.Equal(Hops(file), Hops(live));
        Assert.Equal(file.NatAggregates.Select(n => n.ToString()), live.NatAggregates.Select(n => n.ToString()));
        // Follow counts the translations in use per row (its metrics); replay keeps no row per translation and reports none.
        Assert.NotEmpty(live.NatInUse);
        Assert.Empty(file.NatInUse);
        Assert.Equal(file.Paths.Select(p => (string.Join(">", p.Interfaces), p.Journeys)), live.Paths.Select(p => (string.Join(">", p.Interfaces), p.Journeys)));
    }

    [Fact]
    public void FileTrace_FileThatCannotBeOpened_NoReportAndTheProblem()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"vethtrace-no-such-{Environment.ProcessId}.pcap");

        FileTraceResult result = FileTrace.Run([missing], new TraceSessionOptions());

        Assert.Null(result.Report);
        CaptureFileError problem = Assert.Single(result.Problems);
        Assert.Equal(CaptureProblem.NotOpened, problem.Kind);
    }

    private static List<string> Hops(CorrelationReport report) =>
        [.. report.Hops.Select(h => string.Create(CultureInfo.InvariantCulture,
            $"{h.From}>{h.To} {h.Histogram.Count} {h.Histogram.Percentile(50)} {h.Histogram.Percentile(99)} {h.Histogram.Max}")).Order(StringComparer.Ordinal)];
}
