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
}
