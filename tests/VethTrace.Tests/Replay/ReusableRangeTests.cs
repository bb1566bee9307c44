using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// <see cref="LargeMemory.ReusableRange"/>, the memory a <see cref="TranslationTable"/>'s shards are rebuilt in (session
/// 11: the 1M many-flows file's page faults 51,506 → 28,601): a range used again reads zero, gives back what a smaller
/// use leaves, moves on to unwritten pages when it comes to want huge pages; and a table grown to a million
/// translations faults its pages about once, not once per size it had. The NAT rows found from a translation's own
/// endpoints (ports left out in place) against rows worked out by hand.
/// </summary>
public sealed class ReusableRangeTests
{
    private const int Page = 4096;
    private const int HugePage = 2 << 20;

    [Fact]
    public void UsedAgain_ReadsZeroWhereItWasWritten_AndASmallerUseGivesTheRestBack()
    {
        using var range = new LargeMemory.ReusableRange(64 << 10);
        nint start = range.Address;
        At(start, 64 << 10).Fill(0xA5);

        Assert.True(range.TryPrepare(100 << 10, out nuint usable));
        Assert.Equal((nuint)(100 << 10), usable);
        Assert.Equal(start, range.Address); // below 2 MiB the use stays where it was
        Assert.Equal(-1, At(start, (int)usable).IndexOfAnyExcept((byte)0));

        At(start, (int)usable).Fill(0x5A);
        Assert.True(range.TryPrepare(5000, out usable));
        Assert.Equal((nuint)(2 * Page), usable); // whole pages
        Assert.Equal((nuint)(2 * Page), range.Touched);
        Assert.Equal(-1, At(start, (int)usable).IndexOfAnyExcept((byte)0));
        // What the smaller use left went back to the kernel: it reads zero without being cleared again.
        Assert.True(range.TryPrepare(100 << 10, out usable));
        Assert.Equal(-1, At(start, (int)usable).IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public void TooSmall_SaysSoAndStaysAsItWas()
    {
        using var range = new LargeMemory.ReusableRange(Page);
        nint start = range.Address;
        At(start, 1)[0] = 7;
        Assert.False(range.TryPrepare(LargeMemory.ReusableRange.MinimumReserved + Page, out _));
        Assert.Equal(start, range.Address);
        Assert.Equal(7, At(start, 1)[0]);
        // All of it but the first 2 MiB, where ordinary pages were written (the use moves on past them, to be advised
        // for huge pages), fits.
        Assert.True(range.TryPrepare(LargeMemory.ReusableRange.MinimumReserved - HugePage, out nuint usable));
        Assert.Equal(LargeMemory.ReusableRange.MinimumReserved - HugePage, usable);
        Assert.Equal(start + HugePage, range.Address);
        Assert.Equal(0, At(range.Address, 1)[0]);
    }

    [Fact]
    public void GrowingPast2MiB_MovesOnPastTheOrdinaryPages_AdvisesHugePages_AndGivesTheOldOnesBack()
    {
        Assert.True(OperatingSystem.IsLinux(), "the advice and /proc/self/smaps are Linux's");
        using var range = new LargeMemory.ReusableRange(1 << 20);
        nint first = range.Address;
        Assert.Equal(0, first % HugePage);
        At(first, 1 << 20).Fill(0xA5);
        Assert.Equal((1 << 20) / Page, ResidentPages(first, 1 << 20));
        Assert.DoesNotContain("hg", VmFlags(first));

        // 3 MiB wants its first 2 MiB in a huge page, where ordinary pages were written: the use moves on to the next
        // 2 MiB boundary past them, and their memory goes back.
        Assert.True(range.TryPrepare(3 << 20, out nuint usable));
        nint moved = range.Address;
        Assert.Equal(HugePage, moved - first);
        Assert.Equal((nuint)(3 << 20), usable);
        Assert.Equal(-1, At(moved, 3 << 20).IndexOfAnyExcept((byte)0));
        Assert.Equal(0, ResidentPages(first, 1 << 20));
        Assert.Contains("hg", VmFlags(moved)); // MADV_HUGEPAGE on the whole 2 MiB
        Assert.DoesNotContain("hg", VmFlags(moved + HugePage)); // the 1 MiB tail: ordinary pages
        Assert.Equal((3 << 20) / Page, ResidentPages(moved, 3 << 20)); // mapped at once (MADV_POPULATE_WRITE)

        // Used again at the same size: it stays, and reads zero.
        At(moved, 3 << 20).Fill(0x5A);
        Assert.True(range.TryPrepare(3 << 20, out _));
        Assert.Equal(moved, range.Address);
        Assert.Equal(-1, At(moved, 3 << 20).IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public void TranslationTable_GrownToAMillion_FaultsItsPagesAboutOnce()
    {
        Assert.True(OperatingSystem.IsLinux(), "the thread's page faults are read from /proc/thread-self/stat");
        const int Count = 1_000_000;
        var random = new Random(11);
        var hashes = new ulong[Count];
        var distinct = new HashSet<ulong>();
        for (int i = 0; i < Count; i++)
        {
            ulong hash;
            do
            {
                hash = (ulong)random.NextInt64() << 1 & ~0xFUL;
            }
            while (hash == 0 || !distinct.Add(hash));
            hashes[i] = hash;
        }
        using var table = new TranslationTable(FlowTimeouts.Default, keepRows: false);
        long faultsBefore = ThreadMinorFaults();
        for (int i = 0; i < Count; i++)
        {
            table.FindOrAdd(hashes[i], NatKind.Snat, TranslationTable.TimeoutClass.Udp, i, closing: false, out bool found);
            Assert.False(found);
        }
        long faults = ThreadMinorFaults() - faultsBefore;
        long pages = table.Bytes / Page;
        // Each shard was rebuilt 8 times; in fresh mappings that faulted every page of every size (twice the last
        // size in all, four times with the steps of a third before). In the spare range only the growth is new: the
        // last size, plus the spare (half a shard), plus a few pages of this thread's other work.
        Assert.InRange(faults, 1, pages * 5 / 4);
        Assert.Equal(Count, table.Count);
        for (int i = 0; i < Count; i += 7)
        {
            ref var slot = ref table.FindOrAdd(hashes[i], NatKind.Dnat, TranslationTable.TimeoutClass.Udp, Count, closing: false, out bool found);
            Assert.True(found);
            Assert.Equal(NatKind.Snat, TranslationTable.KindOf(in slot));
        }
    }

    [Fact]
    public void TranslationTable_EmptiedAndFilledAgain_KeepsEveryTranslationThroughTheShrinksAndGrowths()
    {
        var timeouts = new FlowTimeouts { UdpNs = 30_000_000_000 };
        using var table = new TranslationTable(timeouts, keepRows: true);
        var random = new Random(12);
        for (int round = 0; round < 3; round++)
        {
            long at = round * 100_000_000_000L;
            var hashes = new List<ulong>();
            for (int i = 0; i < 150_000; i++)
            {
                ulong hash = (ulong)random.NextInt64() << 1 & ~0xFUL;
                ref var slot = ref table.FindOrAdd(hash, NatKind.Snat, TranslationTable.TimeoutClass.Udp, at, closing: false, out bool found);
                if (!found)
                {
                    table.LastRow = i;
                    hashes.Add(hash);
                }
            }
            Assert.Equal(hashes.Count, table.Count);
            var counts = new long[150_000];
            table.CountByRow(counts);
            Assert.Equal(hashes.Count, counts.Sum());
            foreach (ulong hash in hashes)
            {
                table.FindOrAdd(hash, NatKind.Dnat, TranslationTable.TimeoutClass.Udp, at, closing: false, out bool found);
                Assert.True(found);
            }
            long grown = table.Bytes;
            // Idle past the timeout: all go, and the shards shrink (in the spare ranges).
            Assert.True(table.Sweep(at + 31_000_000_000L, timeouts));
            Assert.Equal(0, table.Count);
            Assert.True(table.Bytes < grown / 10, $"{table.Bytes} bytes held after emptying, {grown} before");
            foreach (ulong hash in hashes.Take(1000))
            {
                table.FindOrAdd(hash, NatKind.Snat, TranslationTable.TimeoutClass.Udp, at + 31_000_000_000L, closing: false, out bool found);
                Assert.False(found);
            }
            Assert.True(table.Sweep(at + 62_000_000_000L, timeouts));
        }
    }

    [Fact]
    public void NatTable_RowsFromTheTranslationsOwnEndpoints_AgreeWithRowsWorkedOutByHand()
    {
        foreach (bool inUse in new[] { false, true })
        {
            var nat = new NatTable(detail: false, FlowTimeouts.Default, inUse);
            long at = 0;
            // SNAT of two ephemeral ports of one container to one server (one row), each with its reply (a DNAT step of
            // the same translation, counted in its SNAT row).
            foreach (ushort port in new ushort[] { 40000, 40001 })
            {
                nat.Observe(Flow(IpProtocol.Udp, "172.17.0.2", port, "198.51.100.1", 53), Flow(IpProtocol.Udp, "10.0.0.5", port, "198.51.100.1", 53), at += 1000, closing: false);
                nat.Observe(Flow(IpProtocol.Udp, "198.51.100.1", 53, "10.0.0.5", port), Flow(IpProtocol.Udp, "198.51.100.1", 53, "172.17.0.2", port), at += 1000, closing: false);
            }
            // DNAT of a published port from two client ports (one row: the client's port left out).
            foreach (ushort port in new ushort[] { 5555, 5556 })
            {
                nat.Observe(Flow(IpProtocol.Tcp, "203.0.113.9", port, "10.0.0.5", 8080), Flow(IpProtocol.Tcp, "203.0.113.9", port, "172.17.0.3", 80), at += 1000, closing: false);
            }
            // The same addresses and ports as the DNAT, but TCP from the container first: an SNAT row of its own.
            nat.Observe(Flow(IpProtocol.Tcp, "172.17.0.3", 80, "203.0.113.9", 5557), Flow(IpProtocol.Tcp, "10.0.0.5", 8080, "203.0.113.9", 5557), at += 1000, closing: false);
            // IPv6 SNAT.
            nat.Observe(Flow(IpProtocol.Udp, "fd00::2", 1000, "2001:db8::1", 443), Flow(IpProtocol.Udp, "2001:db8:1::5", 1000, "2001:db8::1", 443), at += 1000, closing: false);

            var rows = nat.Aggregates().Select(r => (r.Kind, r.Protocol.Value, r.Inside, r.Outside, r.Flows, r.Packets)).ToList();
            Assert.Equal(
                [
                    (NatKind.Snat, (byte)17, "172.17.0.2", "10.0.0.5", 2L, 4L),
                    (NatKind.Dnat, (byte)6, "172.17.0.3:80", "10.0.0.5:8080", 2L, 2L),
                    (NatKind.Snat, (byte)6, "172.17.0.3", "10.0.0.5", 1L, 1L),
                    (NatKind.Snat, (byte)17, "fd00::2", "2001:db8:1::5", 1L, 1L),
                ],
                rows);
            Assert.Equal(6, nat.ActiveTranslations);
        }
    }

    /// <summary>The bytes at <paramref name="address"/> (native memory), without an unsafe context.</summary>
    private static Span<byte> At(nint address, int length) =>
        MemoryMarshal.CreateSpan(ref Unsafe.AddByteOffset(ref Unsafe.NullRef<byte>(), address), length);

    [Fact]
    public void LearntJourneys_PagesMappedAheadOfTheWrites_AndEveryJourneyKept()
    {
        Assert.True(OperatingSystem.IsLinux(), "mincore(2) is Linux's");
        var journeys = new LearntJourneys();
        var journey = new Observation[3];
        // 50,000 journeys, then on until the pages ahead were mapped again (where that falls depends on the observation's
        // size): the quarter of a megabyte ahead is then all but whole.
        int count = 0;
        long before = -1;
        while (true)
        {
            if (count == 50_000)
            {
                before = journeys.Memory.Populated;
            }
            if (count > 50_000 && journeys.Memory.Populated != before)
            {
                break;
            }
            for (int k = 0; k < 3; k++)
            {
                journey[k] = new Observation(count * 10L + k, k, count * 3L + k, (ulong)count, default, 100 + k);
            }
            journeys.Add(journey);
            count++;
        }
        Assert.Equal(count, journeys.Count);
        int index = 0;
        foreach (ReadOnlySpan<Observation> learnt in journeys)
        {
            Assert.Equal(3, learnt.Length);
            Assert.Equal([index * 10L, index * 10L + 1, index * 10L + 2], learnt.ToArray().Select(o => o.TimestampNs));
            Assert.Equal((ulong)index, learnt[2].Fingerprint);
            index++;
        }
        // Over 150,000 observations written (megabytes, in memory of their own): the pages after the last written are mapped
        // already, a quarter of a megabyte ahead (without it, pages never written are not in memory).
        var (address, populated) = journeys.Memory;
        long written = 3L * count * Unsafe.SizeOf<Observation>();
        long nextPage = (address + written + Page - 1) / Page * Page;
        long aheadEnd = (address + populated) / Page * Page;
        Assert.InRange(aheadEnd - nextPage, 32 * Page, 64 * Page);
        Assert.Equal((int)((aheadEnd - nextPage) / Page), ResidentPages((nint)nextPage, (int)(aheadEnd - nextPage)));
        journeys.Release();
        Assert.Equal(0, journeys.Count);
    }

    private static FlowKey Flow(IpProtocol protocol, string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(protocol, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);

    /// <summary>This thread's minor page faults so far (/proc/thread-self/stat, field 10).</summary>
    private static long ThreadMinorFaults()
    {
        string stat = File.ReadAllText("/proc/thread-self/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[10 - 3], CultureInfo.InvariantCulture);
    }

    /// <summary>How many of the pages from <paramref name="address"/> are in memory (mincore(2)).</summary>
    private static int ResidentPages(nint address, int length)
    {
        var pages = new byte[(length + Page - 1) / Page];
        Assert.Equal(0, Mincore(address, (nuint)length, pages));
        return pages.Count(p => (p & 1) != 0);
    }

    [DllImport("libc", EntryPoint = "mincore")]
    private static extern int Mincore(nint address, nuint length, byte[] pages);

    /// <summary>The VmFlags of the mapping in /proc/self/smaps that holds <paramref name="address"/>.</summary>
    private static string[] VmFlags(nint address)
    {
        ulong at = (ulong)address;
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong from)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong to))
            {
                inside = from <= at && at < to;
                continue;
            }
            if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                return line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            }
        }
        throw new InvalidOperationException($"no mapping holds 0x{at:x}");
    }
}
