using System.Runtime.InteropServices;

namespace VethTrace.Cli.Bench;

/// <summary>
/// The CPU time the process has used, all threads (clock_gettime(2) with CLOCK_PROCESS_CPUTIME_ID), in nanoseconds: what
/// <see cref="ParserRace"/> times each pass with. Unlike the wall clock it stops while the process waits for a CPU, which
/// on a machine shared with other work is most of the difference between two runs of the same build.
/// </summary>
public static class ProcessCpuClock
{
    /// <summary>CLOCK_PROCESS_CPUTIME_ID in linux/time.h.</summary>
    private const int ProcessCpuTimeClock = 2;

    public static long Nanoseconds()
    {
        if (clock_gettime(ProcessCpuTimeClock, out Timespec time) != 0)
        {
            throw new InvalidOperationException($"clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return time.Seconds * 1_000_000_000 + time.Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int clock_gettime(int clock, out Timespec time);
}
