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
    /// <summary>How far below its own priority a capture or pump thread runs (nice 10: a tenth of a nice-0 thread's weight).</summary>
    public const int Nice = 10;

    private const int PrioProcess = 0;

    private readonly int _thread;
    private readonly int _own;
    private readonly bool _known;
    private int _current;

    private BackgroundPriority(int thread, int own, bool known)
    {
        _thread = thread;
        _own = own;
        _known = known;
        _current = own;
    }

    private static readonly bool CanRaise = Capabilities.CanRaisePriority();

    /// <summary>
    /// The calling thread, with its priority as it is now (what <see cref="Boost"/> and <see cref="Restore"/> go back
    /// to). Without CAP_SYS_NICE a lowered thread could not be raised again, so it is never lowered.
    /// </summary>
    public static BackgroundPriority OfCurrentThread()
    {
        if (!CanRaise)
        {
            return new BackgroundPriority(0, 0, false);
        }
        try
        {
            int thread = gettid();
            Marshal.SetLastPInvokeError(0);
            int own = getpriority(PrioProcess, thread);
            bool known = own != -1 || Marshal.GetLastPInvokeError() == 0;
            return new BackgroundPriority(thread, known ? own : 0, known);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return new BackgroundPriority(0, 0, false);
        }
    }

    /// <summary>The thread's id (gettid), 0 when its priority is not managed (no CAP_SYS_NICE).</summary>
    public int ThreadId => _thread;

    /// <summary>The thread's own nice value (when it was taken over).</summary>
    public int Own => _own;

    /// <summary>Whether the thread runs at its own priority now (boosted, restored, or never lowered).</summary>
    public bool AtOwn => _current == _own;

    /// <summary>Below the thread's own priority: nice <see cref="Nice"/>, or its own when that is lower already.</summary>
    public void Lower() => Set(Math.Max(_own, Nice));

    /// <summary>Back to the thread's own priority while it catches up.</summary>
    public void Boost()
    {
        if (_known && _current != _own)
        {
            Interlocked.Increment(ref _boosts);
        }
        Set(_own);
    }

    private int _boosts;

    /// <summary>How many times the thread was raised back to its own priority from below it.</summary>
    public int Boosts => Volatile.Read(ref _boosts);

    /// <summary>The thread's own priority, for good (a pool thread goes back to its pool as it came).</summary>
    public void Restore() => Set(_own);

    private void Set(int nice)
    {
        if (!_known || nice == _current)
        {
            return;
        }
        // On Linux PRIO_PROCESS with a thread id sets that thread alone (raising it back needs CAP_SYS_NICE, checked above).
        if (setpriority(PrioProcess, _thread, nice) == 0)
        {
            _current = nice;
        }
    }

    /// <summary>
    /// For a thread that pumps every few hundred milliseconds at most: called at each pump, it keeps the thread lowered
    /// while the pumps come on time and raises it back when one came more than <see cref="LatePumpNs"/> after the one
    /// before (the thread was kept off the CPU, and what it moves to the correlator is piling up).
    /// </summary>
    public void Paced(long sinceLastPumpNs)
    {
        if (sinceLastPumpNs > LatePumpNs)
        {
            Boost();
        }
        else
        {
            Lower();
        }
    }

    /// <summary>A pump this long after the one before came late (follow pumps every 100 ms, whole-host follow every 200).</summary>
    public const long LatePumpNs = 500_000_000;

    [DllImport("libc", SetLastError = true)]
    private static extern int getpriority(int which, int who);

    [DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int prio);

    [DllImport("libc")]
    private static extern int gettid();
}

/// <summary>
/// The priority of the thread that pumps a live capture into its session (the one that calls <see cref="Pumped"/>, taken
/// at its first pump): below the workload while the pumps come on time, back to its own when one comes late
/// (<see cref="BackgroundPriority.Paced"/>). Per-hop follow (<see cref="LiveCapture"/>) and whole-host follow
/// (<see cref="HostCapture"/>) pump the same way.
/// </summary>
public sealed class PumpPriority
{
    private long _lastPumpMs;

    /// <summary>The pumping thread's priority, null before the first pump.</summary>
    public BackgroundPriority? Priority { get; private set; }

    /// <summary>At each pump, on the pumping thread.</summary>
    public void Pumped()
    {
        long now = Environment.TickCount64;
        Priority ??= BackgroundPriority.OfCurrentThread();
        Priority.Paced(_lastPumpMs == 0 ? 0 : (now - _lastPumpMs) * 1_000_000);
        _lastPumpMs = now;
    }

    /// <summary>The pumping thread back to its own priority (the final report is built at it).</summary>
    public void Restore() => Priority?.Restore();
}
