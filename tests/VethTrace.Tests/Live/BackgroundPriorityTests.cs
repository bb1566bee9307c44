using VethTrace.Capture.Live;

namespace VethTrace.Tests.Live;

/// <summary>
/// <see cref="BackgroundPriority"/> on a real thread of this process, its nice value read back from
/// /proc/thread-self/stat (field 19), as top or ps show it.
/// </summary>
public sealed class BackgroundPriorityTests
{
    private static int Nice()
    {
        string stat = File.ReadAllText("/proc/thread-self/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16]);
    }

    [Fact]
    public void LowerBoostRestore_OnAThreadOfItsOwn_NiceTenThenBackToItsOwn()
    {
        var seen = new List<int>();
        int boosts = -1;
        var thread = new Thread(() =>
        {
            var priority = BackgroundPriority.OfCurrentThread();
            seen.Add(Nice());
            priority.Lower();
            seen.Add(Nice());
            priority.Boost();
            seen.Add(Nice());
            priority.Paced(100_000_000); // on time: lowered again
            seen.Add(Nice());
            priority.Paced(BackgroundPriority.LatePumpNs + 1); // late: raised back
            seen.Add(Nice());
            priority.Lower();
            priority.Restore();
            seen.Add(Nice());
            boosts = priority.Boosts;
        });
        thread.Start();
        thread.Join();

        int own = seen[0];
        if (Capabilities.CanRaisePriority())
        {
            int low = Math.Max(own, BackgroundPriority.Nice);
            Assert.Equal([own, low, own, low, own, own], seen);
            Assert.Equal(own == low ? 0 : 2, boosts);
        }
        else
        {
            // Without CAP_SYS_NICE a lowered thread could not be raised again: it is never lowered.
            Assert.All(seen, n => Assert.Equal(own, n));
            Assert.Equal(0, boosts);
        }
    }

    /// <summary>The calling thread's scheduling policy as the kernel shows it (/proc/thread-self/sched, "policy").</summary>
    private static int Policy()
    {
        string line = File.ReadLines("/proc/thread-self/sched").First(l => l.StartsWith("policy", StringComparison.Ordinal));
        return int.Parse(line[(line.IndexOf(':') + 1)..].Trim());
    }

    [Fact]
    public void Idle_LowerBoostRestore_SchedIdleThenBackToItsOwnPolicyAndNice()
    {
        var seen = new List<(int Policy, int Nice)>();
        int boosts = -1;
        bool? atOwnWhenLowered = null;
        var thread = new Thread(() =>
        {
            var priority = BackgroundPriority.OfCurrentThread(BackgroundPolicy.Idle);
            seen.Add((Policy(), Nice()));
            priority.Lower();
            seen.Add((Policy(), Nice()));
            atOwnWhenLowered = priority.AtOwn;
            priority.Boost();
            seen.Add((Policy(), Nice()));
            priority.Paced(100_000_000); // on time: lowered again
            seen.Add((Policy(), Nice()));
            priority.Paced(BackgroundPriority.LatePumpNs + 1); // late: raised a step, to nice 10
            seen.Add((Policy(), Nice()));
            priority.Lower();
            priority.Restore();
            seen.Add((Policy(), Nice()));
            boosts = priority.Boosts;
        });
        thread.Start();
        thread.Join();

        var own = seen[0];
        if (Capabilities.CanRaisePriority() && own.Policy == 0)
        {
            // Under SCHED_IDLE the nice value does not count: it is set to 10, where one step up (a late pump) lands.
            var idle = (BackgroundPriority.SchedIdle, Math.Max(own.Nice, BackgroundPriority.Nice));
            var step = (own.Policy, Math.Max(own.Nice, BackgroundPriority.Nice));
            Assert.Equal([own, idle, own, idle, step, own], seen);
            Assert.Equal(2, boosts);
            Assert.False(atOwnWhenLowered);
            Assert.Equal(-1, BackgroundPriority.PolicyOf(int.MaxValue)); // no such thread
        }
        else
        {
            Assert.All(seen, p => Assert.Equal(own, p));
            Assert.Equal(0, boosts);
        }
    }

    [Fact]
    public void PumpPriority_AThreadKeptFromPumping_IsRaisedByAWatcher_AndLoweredAgainOnceItPumpsOnTime()
    {
        // The pumping thread pumps once (SCHED_IDLE), then does not pump for longer than a late pump; a watcher (a
        // capture thread after its read) raises it a step meanwhile (SCHED_OTHER at nice 10), once however often it
        // looks within the next half second. Its next pump is late too (raised to its own), the one after on time
        // lowers it again.
        var pump = new PumpPriority(BackgroundPolicy.Idle);
        using var pumped = new ManualResetEventSlim();
        using var watched = new ManualResetEventSlim();
        var seen = new List<int>();
        var thread = new Thread(() =>
        {
            pump.Pumped();
            pump.Done();
            seen.Add(Policy());
            pumped.Set();
            watched.Wait();
            seen.Add(Policy());
            pump.Pumped();
            pump.Done();
            seen.Add(Policy());
            Thread.Sleep(50);
            pump.Pumped();
            pump.Done();
            seen.Add(Policy());
            pump.Restore();
            seen.Add(Policy());
        });
        thread.Start();
        pumped.Wait();
        pump.Watch(); // on time: nothing
        int early = pump.WatchBoosts;
        Thread.Sleep((int)(BackgroundPriority.LatePumpNs / 1_000_000) + 150);
        pump.Watch();
        pump.Watch(); // raised once only
        int late = pump.WatchBoosts;
        watched.Set();
        thread.Join();

        Assert.Equal(0, early);
        if (Capabilities.CanRaisePriority() && pump.Priority!.ThreadId != 0)
        {
            Assert.Equal(1, late);
            Assert.Equal([BackgroundPriority.SchedIdle, 0, 0, BackgroundPriority.SchedIdle, 0], seen);
            Assert.Equal(2, pump.Priority.Boosts);
        }
        else
        {
            Assert.Equal(0, late);
            Assert.All(seen, p => Assert.Equal(seen[0], p));
        }
    }

    private sealed class Stalled : IWatchedThread
    {
        public BackgroundPriority? Priority { get; set; }
        public long BeatMs { get; set; }
        public long RaisedMs { get; set; }
    }

    /// <summary>Thread <paramref name="thread"/>'s policy and nice value (/proc/self/task/N/sched and stat).</summary>
    private static (int Policy, int Nice) Of(int thread)
    {
        string line = File.ReadLines($"/proc/self/task/{thread}/sched").First(l => l.StartsWith("policy", StringComparison.Ordinal));
        string stat = File.ReadAllText($"/proc/self/task/{thread}/stat");
        return (int.Parse(line[(line.IndexOf(':') + 1)..].Trim()), int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16]));
    }

    [Fact]
    public void PriorityWatch_AThreadUnderSchedIdleWhoseLoopStopsComingRound_RaisedToNiceTenThenToItsOwn()
    {
        // A capture thread kept off the CPU cannot raise itself: the watch thread does, one step (SCHED_IDLE to nice
        // 10) once its loop is LateMs late, the next (its own) when it is as late again after that. Here the thread blocks instead.
        var stalled = new Stalled();
        using var lowered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            stalled.Priority = BackgroundPriority.OfCurrentThread(BackgroundPolicy.Idle);
            stalled.Priority.Lower();
            stalled.BeatMs = Environment.TickCount64;
            lowered.Set();
            release.Wait();
            stalled.Priority.Restore();
        });
        thread.Start();
        lowered.Wait();
        BackgroundPriority priority = stalled.Priority!;
        var seen = new List<(int Policy, int Nice)>();
        if (priority.ThreadId != 0)
        {
            seen.Add(Of(priority.ThreadId));
        }
        using (PriorityWatch.Start(() => [stalled], new PumpPriority()))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (priority.ThreadId != 0 && !priority.AtOwn && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                var now = Of(priority.ThreadId);
                if (now != seen[^1])
                {
                    seen.Add(now);
                }
                Thread.Sleep(5);
            }
            if (priority.ThreadId != 0)
            {
                seen.Add(Of(priority.ThreadId));
            }
        }
        release.Set();
        thread.Join();

        if (priority.ThreadId != 0)
        {
            int own = priority.Own;
            (int, int) idle = (BackgroundPriority.SchedIdle, Math.Max(own, BackgroundPriority.Nice)), step = (0, Math.Max(own, BackgroundPriority.Nice)), back = (0, own);
            // In this order; the middle state lasts LateMs, so a poller held off the CPU that long could miss it: the
            // two steps are counted either way.
            Assert.Equal(idle, seen[0]);
            Assert.Equal(back, seen[^1]);
            Assert.All(seen, state => Assert.Contains(state, new[] { idle, step, back }));
            Assert.Equal(2, priority.Boosts);
        }
    }
}
