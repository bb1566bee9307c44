using System.Runtime.InteropServices;

namespace VethTrace.Capture.Live;

/// <summary>
/// A live capture's threads run below the workload they observe: nice <see cref="Nice"/> (setpriority(2) on the
/// thread), back to the thread's own priority (<see cref="Boost"/>) while it falls behind, so that it never loses
/// packets to it. On 2 cores, a capture thread or the matching (pump) thread at the workload's priority is scheduled
/// beside it as an equal, and takes its share of the core when both want it; below it, it takes what the workload
/// leaves (docs/performance.md, "Follow's cost per packet (session 10, live16e)"). Without the right to change a
/// thread's priority back (CAP_SYS_NICE), nothing changes: the thread keeps its own.
/// </summary>
public sealed class BackgroundPriority
{
    /// <summary>How far below its own priority a capture thread runs (nice 10: a tenth of a nice-0 thread's weight).</summary>
    public const int Nice = 10;

    private const int PrioProcess = 0;
    private const int SchedOther = 0;
    private const int SchedBatch = 3;
    /// <summary>SCHED_IDLE (linux/sched.h): runs when nothing else wants the CPU, weight 3 against a nice-0 thread's 1024.</summary>
    public const int SchedIdle = 5;

    private readonly int _thread;
    private readonly int _own;
    private readonly int _ownPolicy;
    private readonly bool _known;
    private readonly BackgroundPolicy _policy;

    private BackgroundPriority(int thread, int own, int ownPolicy, bool known, BackgroundPolicy policy)
    {
        _thread = thread;
        _own = own;
        _ownPolicy = ownPolicy;
        _known = known;
        _policy = policy;
    }

    private static readonly bool CanRaise = Capabilities.CanRaisePriority();

    /// <summary>
    /// The calling thread, with its priority as it is now (what <see cref="Boost"/> and <see cref="Restore"/> go back
    /// to). Without CAP_SYS_NICE a lowered thread could not be raised again, so it is never lowered; nor is a thread
    /// that runs under a real-time or deadline policy (someone chose it).
    /// </summary>
    /// <param name="policy">how it is lowered: nice <see cref="Nice"/>, or SCHED_IDLE.</param>
    public static BackgroundPriority OfCurrentThread(BackgroundPolicy policy = BackgroundPolicy.Nice)
    {
        if (!CanRaise)
        {
            return new BackgroundPriority(0, 0, SchedOther, false, policy);
        }
        try
        {
            int thread = gettid();
            Marshal.SetLastPInvokeError(0);
            int own = getpriority(PrioProcess, thread);
            int ownPolicy = sched_getscheduler(thread);
            bool known = (own != -1 || Marshal.GetLastPInvokeError() == 0) && ownPolicy is SchedOther or SchedBatch;
            return new BackgroundPriority(thread, known ? own : 0, known ? ownPolicy : SchedOther, known, policy);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return new BackgroundPriority(0, 0, SchedOther, false, policy);
        }
    }

    /// <summary>The thread's id (gettid), 0 when its priority is not managed (no CAP_SYS_NICE).</summary>
    public int ThreadId => _thread;

    /// <summary>The thread's own nice value (when it was taken over).</summary>
    public int Own => _own;

    /// <summary>How the thread is lowered.</summary>
    public BackgroundPolicy Policy => _policy;

    /// <summary>Whether the thread runs at its own priority now (boosted, restored, or never lowered).</summary>
    public bool AtOwn => Volatile.Read(ref _level) == LevelOwn;

    /// <summary>Whether the thread runs at its lowest (SCHED_IDLE, or nice <see cref="Nice"/>) now.</summary>
    public bool AtLowest => Volatile.Read(ref _level) == LevelLowest;

    private const int LevelOwn = 0, LevelNice = 1, LevelLowest = 2;
    private int _level;

    /// <summary>
    /// Below the thread's own priority: under SCHED_IDLE (<see cref="BackgroundPolicy.Idle"/>), or at nice
    /// <see cref="Nice"/> (its own when that is lower already).
    /// </summary>
    public void Lower() => Set(LevelLowest);

    /// <summary>
    /// Back to the thread's own priority while it catches up (from any thread: a watcher may raise it); true when it was
    /// below it until now.
    /// </summary>
    public bool Boost() => Set(LevelOwn);

    /// <summary>
    /// One step up (from any thread): from SCHED_IDLE to nice <see cref="Nice"/> (where the threads ran before SCHED_IDLE,
    /// a tenth of a nice-0 thread's weight), from there to its own priority. True when it moved.
    /// </summary>
    public bool Raise()
    {
        int level = Volatile.Read(ref _level);
        return level != LevelOwn && Set(_policy == BackgroundPolicy.Idle ? level - 1 : LevelOwn);
    }

    private int _boosts;

    /// <summary>How many times the thread was raised from below its own priority (a step or all the way).</summary>
    public int Boosts => Volatile.Read(ref _boosts);

    /// <summary>The thread's own priority, for good (a pool thread goes back to its pool as it came).</summary>
    public void Restore() => Set(LevelOwn, counted: false);

    /// <summary>Moves the thread to <paramref name="level"/>; true when that raised it.</summary>
    private bool Set(int level, bool counted = true)
    {
        if (!_known)
        {
            return false;
        }
        lock (this)
        {
            int from = _level;
            if (level == from)
            {
                return false;
            }
            // On Linux a thread id names that thread alone (PRIO_PROCESS and sched_setscheduler alike); raising it back,
            // or taking it out of SCHED_IDLE, needs CAP_SYS_NICE (checked above). Under SCHED_IDLE the nice value does not
            // count; it is set to Nice first, so that leaving SCHED_IDLE for one step up lands there.
            int nice = level == LevelOwn ? _own : Math.Max(_own, Nice);
            var parameter = new SchedParam();
            bool done = setpriority(PrioProcess, _thread, nice) == 0;
            if (done && _policy == BackgroundPolicy.Idle && (level == LevelLowest) != (from == LevelLowest))
            {
                done = sched_setscheduler(_thread, level == LevelLowest ? SchedIdle : _ownPolicy, ref parameter) == 0;
            }
            if (!done)
            {
                return false;
            }
            Volatile.Write(ref _level, level);
            if (level < from && counted)
            {
                Interlocked.Increment(ref _boosts);
            }
            return level < from;
        }
    }

    /// <summary>
    /// Takes the calling thread out of SCHED_IDLE (to SCHED_OTHER, its nice value kept) when it inherited it from the
    /// thread that started it (a thread starts with its maker's policy), with CAP_SYS_NICE; otherwise nothing.
    /// </summary>
    public static void LeaveInheritedIdle()
    {
        if (!CanRaise)
        {
            return;
        }
        try
        {
            int thread = gettid();
            if (sched_getscheduler(thread) == SchedIdle)
            {
                var parameter = new SchedParam();
                sched_setscheduler(thread, SchedOther, ref parameter);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }

    /// <summary>The scheduling policy of thread <paramref name="thread"/> of this process (sched_getscheduler), -1 when unknown.</summary>
    public static int PolicyOf(int thread)
    {
        try
        {
            return sched_getscheduler(thread);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    /// <summary>
    /// For a thread that pumps every few hundred milliseconds at most: called at each pump, it keeps the thread lowered
    /// while the pumps come on time and raises it a step (<see cref="Raise"/>) when one came more than
    /// <see cref="LatePumpNs"/> after the one before (the thread was kept off the CPU, and what it moves to the
    /// correlator is piling up); one more late pump raises it to its own priority.
    /// </summary>
    public void Paced(long sinceLastPumpNs)
    {
        if (sinceLastPumpNs > LatePumpNs)
        {
            Raise();
        }
        else
        {
            Lower();
        }
    }

    /// <summary>A pump this long after the one before came late (follow pumps every 100 ms, whole-host follow every 200).</summary>
    public const long LatePumpNs = 500_000_000;

    [StructLayout(LayoutKind.Sequential)]
    private struct SchedParam
    {
        public int Priority;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int getpriority(int which, int who);

    [DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int prio);

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_getscheduler(int pid);

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_setscheduler(int pid, int policy, ref SchedParam param);

    [DllImport("libc")]
    private static extern int gettid();
}

/// <summary>How a <see cref="BackgroundPriority"/> thread is put below the workload.</summary>
public enum BackgroundPolicy
{
    /// <summary>nice <see cref="BackgroundPriority.Nice"/>: a tenth of a nice-0 thread's CPU weight.</summary>
    Nice,

    /// <summary>
    /// SCHED_IDLE: the thread runs on CPU time nothing else wants (weight 3 against 1024), and the scheduler counts a
    /// CPU that runs only such threads as idle when it places a waking thread of the workload.
    /// </summary>
    Idle,
}

/// <summary>
/// The priority of the thread that pumps a live capture into its session (the one that calls <see cref="Pumped"/>, taken
/// at its first pump): under SCHED_IDLE while the pumps come on time, so that its matching takes only the CPU the
/// workload leaves, back to its own when one comes late (<see cref="BackgroundPriority.Paced"/>) or when a capture
/// thread finds it late (<see cref="Watch"/>: a thread kept off the CPU cannot see that itself until it runs). Per-hop
/// follow (<see cref="LiveCapture"/>) and whole-host follow (<see cref="HostCapture"/>) pump the same way.
/// </summary>
public sealed class PumpPriority(BackgroundPolicy policy = BackgroundPolicy.Idle)
{
    private long _lastPumpMs;
    /// <summary>When the pumping thread last began or ended a pump (Environment.TickCount64), 0 before the first.</summary>
    private long _markMs;
    private volatile BackgroundPriority? _priority;
    private int _watchBoosts;
    /// <summary>When <see cref="Watch"/> last raised the pumping thread a step.</summary>
    private long _raisedMs;

    /// <summary>The pumping thread's priority, null before the first pump.</summary>
    public BackgroundPriority? Priority => _priority;

    /// <summary>How the pumping thread is lowered.</summary>
    public BackgroundPolicy Policy => policy;

    /// <summary>Times a capture thread raised the pumping thread back (<see cref="Watch"/>).</summary>
    public int WatchBoosts => Volatile.Read(ref _watchBoosts);

    /// <summary>At each pump, on the pumping thread, before it moves anything.</summary>
    public void Pumped()
    {
        long now = Environment.TickCount64;
        BackgroundPriority priority = _priority ??= BackgroundPriority.OfCurrentThread(policy);
        priority.Paced(_lastPumpMs == 0 ? 0 : (now - _lastPumpMs) * 1_000_000);
        _lastPumpMs = now;
        Volatile.Write(ref _markMs, now);
    }

    /// <summary>At the end of each pump, on the pumping thread.</summary>
    public void Done() => Volatile.Write(ref _markMs, Environment.TickCount64);

    /// <summary>
    /// From another thread (a capture thread after each read of its ring, the watch thread): when the pumping thread is
    /// lowered and has neither begun nor ended a pump for <see cref="BackgroundPriority.LatePumpNs"/> (it pumps every
    /// 100-200 ms and a pump takes milliseconds), it is being kept off the CPU while the queues grow: it is raised a step
    /// now (from SCHED_IDLE to nice 10), another if it is still late as long after (to its own priority), and goes down
    /// again at the first pump that comes on time. What the queues hold is so bounded by about the order slack plus a
    /// second of packets.
    /// </summary>
    public void Watch()
    {
        if (_priority is { AtOwn: false } priority)
        {
            // Late since its last pump or the last step up: a step up (SCHED_IDLE to nice 10, then to its own).
            long now = Environment.TickCount64;
            long mark = Math.Max(Volatile.Read(ref _markMs), Volatile.Read(ref _raisedMs));
            if (mark != 0 && now - mark > BackgroundPriority.LatePumpNs / 1_000_000)
            {
                Volatile.Write(ref _raisedMs, now);
                if (priority.Raise())
                {
                    Interlocked.Increment(ref _watchBoosts);
                }
            }
        }
    }

    /// <summary>The pumping thread back to its own priority (the final report is built at it).</summary>
    public void Restore() => _priority?.Restore();
}

/// <summary>
/// A thread at follow's own priority that looks, every <see cref="EveryMs"/>, whether a capture thread lowered under
/// SCHED_IDLE has been kept off the CPU (its loop is <see cref="LateMs"/> past the time it was due to come round: the end
/// of a poll's wait or of a gathering pause, or its last read) or the pumping thread is late (<see cref="PumpPriority.Watch"/>), and raises it a step
/// (<see cref="BackgroundPriority.Raise"/>: to nice 10, and after as long again to its own priority).
/// A thread under SCHED_IDLE cannot find that out itself while it is not running.
/// </summary>
internal sealed class PriorityWatch : IDisposable
{
    public const int EveryMs = 50;
    public const long LateMs = 100;

    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _thread;

    private PriorityWatch(Func<IWatchedThread[]> threads, PumpPriority pump)
    {
        _thread = new Thread(() =>
        {
            // At follow's own priority, whichever thread started it.
            BackgroundPriority.LeaveInheritedIdle();
            while (!_stop.Wait(EveryMs))
            {
                long now = Environment.TickCount64;
                foreach (IWatchedThread watched in threads())
                {
                    // Late since its loop last came round or since the last step up: a step up.
                    if (watched.Priority is { AtOwn: false } priority && watched.BeatMs != 0 && now - Math.Max(watched.BeatMs, watched.RaisedMs) > LateMs)
                    {
                        watched.RaisedMs = now;
                        priority.Raise();
                    }
                }
                pump.Watch();
            }
        })
        { IsBackground = true, Name = "priority watch" };
    }

    public static PriorityWatch Start(Func<IWatchedThread[]> threads, PumpPriority pump)
    {
        var watch = new PriorityWatch(threads, pump);
        watch._thread.Start();
        return watch;
    }

    public void Dispose()
    {
        _stop.Set();
        _thread.Join();
    }
}

/// <summary>A thread that <see cref="PriorityWatch"/> looks after (a capture thread: <see cref="HopDevice"/>).</summary>
internal interface IWatchedThread
{
    /// <summary>Its priority, null before it started.</summary>
    BackgroundPriority? Priority { get; }

    /// <summary>When its loop is due to come round at the latest (Environment.TickCount64), 0 before it started.</summary>
    long BeatMs { get; }

    /// <summary>When it was last raised: a step by the watch, or to its own priority by its own read of a filling ring (then held for <see cref="HopDevice.HoldMs"/>).</summary>
    long RaisedMs { get; set; }
}
