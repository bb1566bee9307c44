using System.Diagnostics;

namespace VethTrace.Cli.Bench;

/// <summary>What one parser did in a <see cref="ParserRace"/>: packets parsed while timed, time and bytes allocated per packet.</summary>
public sealed record ParserResult(string Parser, long Packets, double NanosecondsPerPacket, double BytesPerPacket, ulong Checksum)
{
    /// <summary>Millions of packets per second.</summary>
    public double Mpps => NanosecondsPerPacket > 0 ? 1000 / NanosecondsPerPacket : 0;
}

/// <summary>
/// Times VethTrace's parser against PacketDotNet and the floor (<see cref="ParserPasses.NaiveSpanRead"/>: the same
/// fields read at fixed offsets, no parser) on the same packets in one process: a warm-up (the JIT tiers each loop up,
/// and PacketDotNet's lazy statics are built), then passes over the set that take turns, in a cycle in which each pass
/// follows each other one equally often, until the time is up (and the last cycle is whole), so a change in machine load
/// and the cache left by the pass before touch all three alike. Each pass is timed by the process's CPU time
/// (<see cref="ProcessCpuClock"/>), so time the process spends waiting for a CPU on a busy machine is not counted (on an
/// idle machine it equals the wall-clock time; the GC's work for PacketDotNet's allocations is counted on any thread).
/// Allocation is counted on this thread with <see cref="GC.GetAllocatedBytesForCurrentThread"/>, around whole passes.
/// </summary>
public static class ParserRace
{
    public const string VethTraceName = "vethtrace";
    public const string PacketDotNetName = "PacketDotNet";
    public const string FloorName = "NaiveSpanRead";

    /// <summary>The order of the passes: VethTrace, PacketDotNet, the floor.</summary>
    internal const string Cycle = "VPFVFP";

    public static (ParserResult VethTrace, ParserResult PacketDotNet, ParserResult Floor) Run(ParserPasses passes, TimeSpan duration, TimeSpan warmUp)
    {
        // Warm-up: at least two passes each, then as long as asked.
        var clock = Stopwatch.StartNew();
        for (int pass = 0; pass < 2 || clock.Elapsed < warmUp; pass++)
        {
            passes.VethTrace();
            passes.PacketDotNet();
            passes.NaiveSpanRead();
        }

        var ours = new Tally();
        var theirs = new Tally();
        var floor = new Tally();
        clock.Restart();
        // Each pass follows each of the other two once per cycle (a rotation of one order, V P F, P F V, F V P, would not:
        // V would follow F twice as often as P). The pass before matters: PacketDotNet's allocates tens of megabytes and
        // leaves the packets out of the cache, the other two bring the frames they share back in.
        for (int step = 0; ours.Passes == 0 || step % Cycle.Length != 0 || clock.Elapsed < duration; step++)
        {
            switch (Cycle[step % Cycle.Length])
            {
                case 'V':
                    ours.Time(passes.VethTrace);
                    break;
                case 'P':
                    theirs.Time(passes.PacketDotNet);
                    break;
                default:
                    floor.Time(passes.NaiveSpanRead);
                    break;
            }
        }
        return (ours.Result(VethTraceName, passes.Count), theirs.Result(PacketDotNetName, passes.Count), floor.Result(FloorName, passes.Count));
    }

    private sealed class Tally
    {
        private long _nanoseconds;
        private long _bytes;
        private ulong _checksum;

        public int Passes { get; private set; }

        public void Time(Func<ulong> pass)
        {
            long bytesBefore = GC.GetAllocatedBytesForCurrentThread();
            long start = ProcessCpuClock.Nanoseconds();
            _checksum = pass();
            _nanoseconds += ProcessCpuClock.Nanoseconds() - start;
            _bytes += GC.GetAllocatedBytesForCurrentThread() - bytesBefore;
            Passes++;
        }

        public ParserResult Result(string parser, int packetsPerPass)
        {
            long packets = (long)Passes * packetsPerPass;
            return new ParserResult(parser, packets, (double)_nanoseconds / packets, (double)_bytes / packets, _checksum);
        }
    }
}
