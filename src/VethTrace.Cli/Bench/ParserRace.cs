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
/// and PacketDotNet's lazy statics are built), then passes over the set that take turns, in an order that rotates, until
/// the time is up (and the last rotation is whole), so a change in machine load and the cache left by the pass before
/// touch all three alike. Allocation is counted on this thread with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/>, around whole passes.
/// </summary>
public static class ParserRace
{
    public const string VethTraceName = "vethtrace";
    public const string PacketDotNetName = "PacketDotNet";
    public const string FloorName = "NaiveSpanRead";

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
        // The order turns each round, so each pass follows each other one equally often: PacketDotNet's pass allocates
        // tens of megabytes and leaves the packets out of the cache, the other two bring them back in, and in a fixed
        // order the pass after PacketDotNet would always start cold and the one after it warm.
        for (int round = 0; ours.Passes == 0 || round % 3 != 0 || clock.Elapsed < duration; round++)
        {
            switch (round % 3)
            {
                case 0:
                    ours.Time(passes.VethTrace);
                    theirs.Time(passes.PacketDotNet);
                    floor.Time(passes.NaiveSpanRead);
                    break;
                case 1:
                    theirs.Time(passes.PacketDotNet);
                    floor.Time(passes.NaiveSpanRead);
                    ours.Time(passes.VethTrace);
                    break;
                default:
                    floor.Time(passes.NaiveSpanRead);
                    ours.Time(passes.VethTrace);
                    theirs.Time(passes.PacketDotNet);
                    break;
            }
        }
        return (ours.Result(VethTraceName, passes.Count), theirs.Result(PacketDotNetName, passes.Count), floor.Result(FloorName, passes.Count));
    }

    private sealed class Tally
    {
        private long _ticks;
        private long _bytes;
        private ulong _checksum;

        public int Passes { get; private set; }

        public void Time(Func<ulong> pass)
        {
            long bytesBefore = GC.GetAllocatedBytesForCurrentThread();
            long start = Stopwatch.GetTimestamp();
            _checksum = pass();
            _ticks += Stopwatch.GetTimestamp() - start;
            _bytes += GC.GetAllocatedBytesForCurrentThread() - bytesBefore;
            Passes++;
        }

        public ParserResult Result(string parser, int packetsPerPass)
        {
            long packets = (long)Passes * packetsPerPass;
            double nanoseconds = _ticks * (1e9 / Stopwatch.Frequency);
            return new ParserResult(parser, packets, nanoseconds / packets, (double)_bytes / packets, _checksum);
        }
    }
}
