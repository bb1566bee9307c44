using System.Diagnostics;
using VethTrace.Capture.Live;
using VethTrace.Tracing;

namespace VethTrace.Tests.Lab;

/// <summary>
/// What session 10 changed in follow's capture side, on the real lab's hops (the container's veth, docker0, the
/// egress): the session's clock on the rings' watermark with a quarter of a second of order slack, and the capture and
/// pump threads below the workload's priority, raised back while a ring fills.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class FollowCostLabTests
{
    private static List<HopTarget> HostHops(LabEnvironment lab) =>
    [
        new(lab["C1_VETH"], null, InterfaceRole.Veth, lab["C1_VETH"]),
        new(lab["BRIDGE"], null, InterfaceRole.Bridge, lab["BRIDGE"]),
        new(lab["EGRESS_IF"], null, InterfaceRole.Egress, lab["EGRESS_IF"]),
    ];

    private static void Ping(LabEnvironment lab, int count, string interval) =>
        // The container's own ping (busybox), run in its namespaces: quicker to start than docker exec. Under
        // SCHED_OTHER: a child of this thread would inherit its SCHED_IDLE once it has pumped.
        LabEnvironment.Run("chrt", "-o", "0", "nsenter", "-t", lab["C1_PID"], "-m", "-n", "/bin/ping", "-q", "-c", count.ToString(), "-i", interval, "-W", "2", lab["UPSTREAM_IP"]);

    [Fact]
    public void Pump_ClockOnTheRingsWatermark_AJourneyIsMatchedWellWithinTheOldTwoSecondsOfSlack()
    {
        var lab = LabEnvironment.Load();
        var session = new TraceSession(new TraceSessionOptions { Egress = lab["EGRESS_IF"] });
        using var live = new LiveCapture(HostHops(lab), session);
        var clock = Stopwatch.StartNew();
        live.Start();
        Ping(lab, 1, "1");
        TimeSpan pinged = clock.Elapsed;
        // A journey is matched when its window (1 s after its first copy) has passed on the session's clock, and that
        // clock is the rings' watermark less the order slack: about 1.25 s after the echo request. With the wall clock
        // and 2 s of slack (before) no journey could be matched before 3 s after the capture started.
        while (session.Correlator.Journeys == 0 && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(50);
            live.Pump();
        }
        TimeSpan matched = clock.Elapsed;
        live.Stop();

        Assert.True(pinged < TimeSpan.FromSeconds(1), $"the ping took until {pinged.TotalSeconds:0.00} s: too late to tell");
        Assert.True(session.Correlator.Journeys > 0, "no journey matched");
        Assert.True(matched < TimeSpan.FromSeconds(2.7), $"the first journey was matched {matched.TotalSeconds:0.00} s after the capture started");
        Assert.Equal(0, live.LatePackets);
        Assert.All(live.Statistics(), h => Assert.Equal(0, h.KernelDropped));
    }

    [Fact]
    public void CaptureThreads_RunBelowTheWorkload_RaisedBackWhileTheRingFills_RestoredAtStop()
    {
        // The nice values are read from /proc for this capture's own threads (by thread id), not counted over the
        // process: other threads of the test process may be lowered or restored meanwhile (CI saw a count of 3 for 4).
        var lab = LabEnvironment.Load();
        // A thread starts at the priority of the thread that made it: run a process first, so that .NET's signal thread
        // (made with the first child process) is not made by this thread while it pumps below its priority.
        LabEnvironment.Run("true");
        List<BackgroundPriority> threads = [];
        // Lowered: with follow's own ring size (a read of an eighth of 8 MiB raises a thread back), so that the lab's
        // other traffic cannot keep a thread raised while this waits (with a 16 KiB ring a few packets a read did, in
        // one CI run). Raised back: a 16 KiB ring holds about 50 packets cut to 256 bytes, a read of an eighth (6) does.
        foreach (int? ringBytes in new int?[] { null, 16 * 1024 })
        {
            var session = new TraceSession(new TraceSessionOptions { Egress = lab["EGRESS_IF"] });
            using (var live = ringBytes is { } bytes ? new LiveCapture(HostHops(lab), session, bufferBytes: bytes) : new LiveCapture(HostHops(lab), session))
            {
                live.Start();
                var clock = Stopwatch.StartNew();
                if (ringBytes is null)
                {
                    // The three capture threads, and this one once it has pumped, all under SCHED_IDLE at one moment.
                    while (!AllLowered(live.ThreadPriorities) && clock.Elapsed < TimeSpan.FromSeconds(5))
                    {
                        Thread.Sleep(100);
                        live.Pump();
                    }
                    Assert.Equal(4, live.ThreadPriorities.Count);
                    Assert.True(AllLowered(live.ThreadPriorities), $"nice/policy of the capture and pump threads: {string.Join(", ", live.ThreadPriorities.Select(t => $"{NiceOf(t.ThreadId)}/{BackgroundPriority.PolicyOf(t.ThreadId)}"))}");
                    Assert.Equal(BackgroundPolicy.Idle, live.PumpPriority.Policy);
                }
                else
                {
                    while (live.ThreadPriorities.Count < 4 && clock.Elapsed < TimeSpan.FromSeconds(5))
                    {
                        Thread.Sleep(100);
                        live.Pump();
                    }
                    Ping(lab, 200, "0.002");
                    live.Pump();
                    Assert.True(live.PriorityBoosts > 0, "no capture thread was raised back while its 16 KiB ring filled");
                }
                threads.AddRange(live.ThreadPriorities);
                live.Stop();
            }
        }
        // StopCapture waits 200 ms for a capture thread (SharpPcap's timeout); one in its quiet poll ends up to 100 ms later.
        var stopped = Stopwatch.StartNew();
        while (threads.Any(Lowered) && stopped.Elapsed < TimeSpan.FromSeconds(3))
        {
            Thread.Sleep(50);
        }
        Assert.All(threads, t => Assert.True(NiceOf(t.ThreadId) is null || NiceOf(t.ThreadId) == t.Own, $"thread {t.ThreadId} at nice {NiceOf(t.ThreadId)}, its own {t.Own}"));
        Assert.All(threads, t => Assert.True(BackgroundPriority.PolicyOf(t.ThreadId) is -1 or 0, $"thread {t.ThreadId} under policy {BackgroundPriority.PolicyOf(t.ThreadId)}"));
    }

    [Fact]
    public void PumpThread_SchedIdle_KeptFromPumping_RaisedBackByTheCaptureThreads_NoPacketLost()
    {
        // The pumping thread (this one) pumps under SCHED_IDLE; when it does not pump for longer than a late pump while
        // packets come, a capture thread, after its next read, raises it back (it cannot tell itself while it is kept
        // off the CPU); its first pump on time lowers it again. Nothing is lost to the wait.
        var lab = LabEnvironment.Load();
        LabEnvironment.Run("true");
        var session = new TraceSession(new TraceSessionOptions { Egress = lab["EGRESS_IF"] });
        using var live = new LiveCapture(HostHops(lab), session);
        live.Start();
        var clock = Stopwatch.StartNew();
        while ((live.PumpPriority.Priority is not { AtOwn: false } || live.ThreadPriorities.Count < 4) && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(100);
            live.Pump();
        }
        BackgroundPriority pump = live.PumpPriority.Priority!;
        bool managed = pump.ThreadId != 0;
        if (managed)
        {
            Assert.Equal(BackgroundPriority.SchedIdle, BackgroundPriority.PolicyOf(pump.ThreadId));
        }
        // No pump for about 1.2 s while pings cross the hops: the capture threads read and find the pump late.
        Ping(lab, 40, "0.03");
        int policyWhileKept = BackgroundPriority.PolicyOf(pump.ThreadId);
        live.Pump(); // late: stays raised
        Thread.Sleep(100);
        live.Pump(); // on time: lowered again
        int policyAfter = BackgroundPriority.PolicyOf(pump.ThreadId);
        Thread.Sleep(100);
        live.Stop();

        if (managed)
        {
            Assert.True(live.PumpPriority.WatchBoosts >= 1, "no capture thread raised the pumping thread back");
            Assert.Equal(0, policyWhileKept);
            Assert.Equal(BackgroundPriority.SchedIdle, policyAfter);
            Assert.Equal(0, BackgroundPriority.PolicyOf(pump.ThreadId)); // restored at stop
        }
        Assert.True(session.Correlator.Journeys >= 40, $"{session.Correlator.Journeys} journeys for 40 pings");
        Assert.Equal(0, live.LatePackets);
        Assert.All(live.Statistics(), h => Assert.Equal(0, h.KernelDropped));
    }

    private static bool Lowered(BackgroundPriority t) => t.Policy == BackgroundPolicy.Idle
        ? BackgroundPriority.PolicyOf(t.ThreadId) == BackgroundPriority.SchedIdle
        : NiceOf(t.ThreadId) == BackgroundPriority.Nice;

    private static bool AllLowered(IReadOnlyList<BackgroundPriority> threads) =>
        threads.Count == 4 && threads.All(Lowered);

    /// <summary>The nice value of this process's thread <paramref name="thread"/> (/proc/self/task/N/stat, field 19), or null once it ended.</summary>
    private static int? NiceOf(int thread)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/self/task/{thread}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // the thread ended
        }
    }

}
