using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The correlator's memory structures (issue 14 §5): the chunked <see cref="SequenceRing{T}"/> and the NAT
/// <see cref="TranslationTable"/>, checked against plain collections doing the same work.
/// </summary>
public sealed class CorrelatorMemoryTests
{
    [Fact]
    public void SequenceRing_PushAndDropAcrossChunks_KeepsEntriesAndGivesChunksBack()
    {
        using var ring = new SequenceRing<long>();
        int perChunk = SequenceRing<long>.ChunkBytes / sizeof(long);
        var model = new Queue<long>();
        var random = new Random(14);
        long pushed = 0;
        long mostBytes = 0;
        // Grow to about 40 chunks, then drain to a few, three times over; the head sometimes lands on the tail at a
        // chunk boundary (the case where the tail's chunk is the only one left).
        for (int cycle = 0; cycle < 3; cycle++)
        {
            for (int iteration = 0; model.Count < 40 * perChunk; iteration++)
            {
                int push = random.Next(1, 3 * perChunk);
                for (int i = 0; i < push; i++)
                {
                    long value = pushed * 7 + 1;
                    Assert.Equal(pushed, ring.Push(value));
                    model.Enqueue(value);
                    pushed++;
                }
                // Fewer dropped than pushed: the ring grows by half a push on average.
                int drop = random.Next(0, push);
                ring.DropBefore(ring.Head + drop);
                for (int i = 0; i < drop; i++)
                {
                    model.Dequeue();
                }
                if (iteration % 8 == 0)
                {
                    AssertSame(ring, model);
                }
            }
            AssertSame(ring, model);
            long grownBytes = ring.Bytes;
            mostBytes = Math.Max(mostBytes, grownBytes);
            Assert.InRange(ring.Bytes, 40L * SequenceRing<long>.ChunkBytes, 49L * SequenceRing<long>.ChunkBytes);
            ring.DropBefore(ring.Tail - (ring.Tail % perChunk)); // everything but the tail's chunk
            model.Clear();
            for (long s = ring.Head; s < ring.Tail; s++)
            {
                model.Enqueue(s * 7 + 1);
            }
            AssertSame(ring, model);
            // The chunks the head left are spares at first: none is handed back in the middle of a swing.
            Assert.Equal(grownBytes, ring.Bytes);
            // Quiet traffic (a chunk's worth at a time, a few live) for a few periods: what the burst took goes back,
            // the chunks live (the head's and the tail's), the one each step swaps in and four spares stay.
            for (int quiet = 0; quiet < 200; quiet++)
            {
                for (int i = 0; i < perChunk; i++)
                {
                    long value = pushed * 7 + 1;
                    ring.Push(value);
                    model.Enqueue(value);
                    pushed++;
                }
                ring.DropBefore(ring.Tail - perChunk / 2);
                while (model.Count > ring.Count)
                {
                    model.Dequeue();
                }
            }
            AssertSame(ring, model);
            Assert.InRange(ring.Bytes, SequenceRing<long>.ChunkBytes, 7L * SequenceRing<long>.ChunkBytes);
        }
        ring.DropBefore(ring.Tail);
        Assert.Equal(0, ring.Count);
        Assert.Equal(pushed, ring.Push(-1));
        Assert.Equal(-1, ring[pushed]);
    }

    [Fact]
    public void SequenceRing_LengthSwingsByManyChunks_MapsNoFreshChunkAfterTheFirstSwing()
    {
        // A window's worth of entries whose length swings between 10 and 30 chunks (the traffic's rate changing): after
        // the first growth to 30, every chunk the tail needs is one the head gave back. Kept to four spares, the ring
        // mapped fresh memory (a page fault and a cleared page per 4 KiB) on every swing up.
        using var ring = new SequenceRing<long>();
        int perChunk = SequenceRing<long>.ChunkBytes / sizeof(long);
        for (int i = 0; i < 30 * perChunk; i++)
        {
            ring.Push(i);
        }
        long mappedAfterFirstGrowth = ring.ChunksMapped;
        Assert.InRange(mappedAfterFirstGrowth, 30, 31);
        for (int swing = 0; swing < 50; swing++)
        {
            ring.DropBefore(ring.Tail - 10 * perChunk);
            for (int i = 0; i < 20 * perChunk; i++)
            {
                ring.Push(i);
            }
            Assert.Equal(30L * perChunk, ring.Count);
        }
        Assert.Equal(mappedAfterFirstGrowth, ring.ChunksMapped);
        Assert.Equal(20L * perChunk - 1, ring[ring.Tail - 1]);
        Assert.Equal(0, ring[ring.Head + 10 * perChunk]); // the first entry of the last swing's pushes
    }

    private static void AssertSame(SequenceRing<long> ring, Queue<long> model)
    {
        Assert.Equal(model.Count, ring.Count);
        long sequence = ring.Head;
        foreach (long value in model)
        {
            Assert.Equal(value, ring[sequence++]);
        }
    }

    [Fact]
    public void TranslationTable_SweepAfterUdpTimeout_RemovesExactlyTheIdleAndFindsTheRest()
    {
        var timeouts = new FlowTimeouts { UdpNs = 30_000_000_000 };
        using var table = new TranslationTable(timeouts);
        const long Second = 1_000_000_000;
        var lastSeen = new Dictionary<ulong, long>();
        var random = new Random(5);
        // 200,000 translations over 60 s, 1,000 of them seen again later: the table grows through many shard resizes.
        for (int i = 0; i < 200_000; i++)
        {
            ulong hash = NextHash(random);
            long at = i * (60 * Second / 200_000);
            table.FindOrAdd(hash, NatKind.Snat, TranslationTable.TimeoutClass.Udp, at, closing: false, out bool found);
            Assert.False(found);
            lastSeen[hash] = at;
        }
        foreach (ulong hash in lastSeen.Keys.Take(1000).ToList())
        {
            table.FindOrAdd(hash, NatKind.Dnat, TranslationTable.TimeoutClass.Udp, 59 * Second, closing: false, out bool found);
            Assert.True(found);
            lastSeen[hash] = 59 * Second;
        }
        Assert.Equal(200_000, table.Count);
        long grown = table.Bytes;
        // 16 bytes a translation (a 12-byte slot and its 4-byte row) at a load of 0.4 to 0.8 (shards below 2^17 slots
        // double), and each shard's two ranges rounded up to whole pages.
        Assert.InRange(grown, 200_000L * 16, 200_000L * 16 * 5 / 2 + TranslationTable.ShardCount * 2 * 4096);

        // At 61 s everything last seen before 31 s (less one unit of rounding) is gone, the rest stays.
        long now = 61 * Second;
        Assert.True(table.Sweep(now, timeouts));
        var expected = lastSeen.Where(t => now - t.Value <= timeouts.UdpNs).Select(t => t.Key).ToHashSet();
        int boundary = lastSeen.Count(t => Math.Abs(now - t.Value - timeouts.UdpNs) <= 2 * table.UnitNs);
        Assert.InRange(table.Count, expected.Count, expected.Count + boundary);
        foreach (ulong hash in expected)
        {
            table.FindOrAdd(hash, NatKind.Snat, TranslationTable.TimeoutClass.Udp, now, closing: false, out bool found);
            Assert.True(found);
        }
        // The first kind is kept: the 1,000 seen again were made as SNAT, and the later DNAT sighting did not change it.
        ref var again = ref table.FindOrAdd(lastSeen.Keys.First(), NatKind.Dnat, TranslationTable.TimeoutClass.Udp, now, closing: false, out bool known);
        Assert.True(known);
        Assert.Equal(NatKind.Snat, TranslationTable.KindOf(in again));

        // Idle past the timeout, all go, and the shards shrink back.
        Assert.True(table.Sweep(now + 31 * Second, timeouts));
        Assert.Equal(0, table.Count);
        Assert.True(table.Bytes < grown / 10, $"{table.Bytes} bytes held after emptying, {grown} before");
    }

    [Fact]
    public void TranslationTable_ClosingTcp_ExpiresAfterTheClosingTimeout()
    {
        var timeouts = new FlowTimeouts { TcpNs = 1000_000_000_000, TcpClosingNs = 2_000_000_000 };
        using var table = new TranslationTable(timeouts);
        table.FindOrAdd(0x1111_0000_0000_0000, NatKind.Snat, TranslationTable.TimeoutClass.Tcp, 0, closing: false, out _);
        table.FindOrAdd(0x2222_0000_0000_0000, NatKind.Snat, TranslationTable.TimeoutClass.Tcp, 0, closing: false, out _);
        table.FindOrAdd(0x2222_0000_0000_0000, NatKind.Snat, TranslationTable.TimeoutClass.Tcp, 1_000_000_000, closing: true, out bool found);
        Assert.True(found);
        Assert.False(table.Sweep(2_500_000_000, timeouts)); // 1.5 s after the FIN: both stay
        Assert.True(table.Sweep(3_500_000_000, timeouts));  // 2.5 s after it: the closing one goes, the open one stays
        Assert.Equal(1, table.Count);
        table.FindOrAdd(0x1111_0000_0000_0000, NatKind.Snat, TranslationTable.TimeoutClass.Tcp, 4_000_000_000, closing: false, out found);
        Assert.True(found);
    }

    private static ulong NextHash(Random random)
    {
        Span<byte> bytes = stackalloc byte[8];
        random.NextBytes(bytes);
        return BitConverter.ToUInt64(bytes);
    }
}
