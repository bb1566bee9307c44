using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>
/// The many-flows tables (issue 14 §5): <see cref="EgressWayTable"/> against a dictionary doing the same work, and
/// <see cref="NatTable"/>'s steps that wait behind a prefetch (every read applies them first) against counts kept by hand.
/// </summary>
public sealed class NatTablesTests
{
    private const long Second = 1_000_000_000;

    [Fact]
    public void EgressWayTable_SawContainsSweep_AgreeWithADictionary()
    {
        var table = new EgressWayTable();
        var model = new Dictionary<(IpAddress, int), long>();
        var random = new Random(14);
        long now = 0;
        for (int round = 0; round < 6; round++)
        {
            // Enough ways to grow the table several times, with repeats (a way seen again keeps its latest time).
            for (int i = 0; i < 20_000; i++)
            {
                now += random.Next(1, 1_000_000);
                IpAddress destination = random.Next(4) == 0
                    ? IpAddress.FromV6(0x2001_0db8_0000_0000UL, (ulong)random.Next(3_000))
                    : IpAddress.FromV4(0xC633_6400u + (uint)random.Next(3_000)); // 198.51.100.0 onwards
                int interfaceId = random.Next(8);
                table.Saw(destination, interfaceId, now);
                model[(destination, interfaceId)] = now;
            }
            Assert.Equal(model.Count, table.Count);
            long timeout = 2 * Second;
            table.Sweep(now, timeout);
            foreach (var key in model.Where(w => now - w.Value > timeout).Select(w => w.Key).ToList())
            {
                model.Remove(key);
            }
            Assert.Equal(model.Count, table.Count);
            for (int probe = 0; probe < 5_000; probe++)
            {
                var destination = IpAddress.FromV4(0xC633_6400u + (uint)random.Next(3_000));
                int interfaceId = random.Next(8);
                Assert.Equal(model.ContainsKey((destination, interfaceId)), table.Contains(destination, interfaceId));
            }
            // The same address as IPv4 and as the low half of an IPv6 address are different ways.
            Assert.All(model.Keys.Where(k => k.Item1.Version == 4), k => Assert.True(table.Contains(k.Item1, k.Item2)));
        }
    }

    [Fact]
    public void NatTable_StepsWaitingForTheirPrefetch_AreAppliedBeforeASweep()
    {
        // A translation at 0 s, pushed into the table by four other steps behind it, then seen again at 29 s (that
        // step still waiting); a sweep at 31 s must see the 29 s step: the translation stays, one flow of two
        // packets. Applied after the sweep, the step would find the translation gone and count a second flow.
        var nat = new NatTable(detail: false, FlowTimeouts.Default);
        FlowKey inside = Udp("172.17.0.2", 40000, "198.51.100.7", 53);
        FlowKey outside = Udp("10.0.0.5", 40000, "198.51.100.7", 53);
        nat.Observe(inside, outside, 0, closing: false);
        for (int other = 0; other < 4; other++)
        {
            nat.Observe(Udp("172.17.0.3", 40000, $"198.51.100.{20 + other}", 53), Udp("10.0.0.5", 40001, $"198.51.100.{20 + other}", 53), 2 * Second, closing: false);
        }
        nat.Observe(inside, outside, 29 * Second, closing: false);
        nat.Sweep(31 * Second, FlowTimeouts.Default);
        Assert.Equal(5, nat.ActiveTranslations);
        NatAggregate row = Assert.Single(nat.Aggregates(), r => r.Inside == "172.17.0.2");
        Assert.Equal((NatKind.Snat, "10.0.0.5", "198.51.100.7:53", 1L, 2L), (row.Kind, row.Outside, row.Peer, row.Flows, row.Packets));

        // 31 s after the last step it goes (the others earlier); the next step is a new flow.
        nat.Sweep(61 * Second, FlowTimeouts.Default);
        Assert.Equal(0, nat.ActiveTranslations);
        nat.Observe(inside, outside, 62 * Second, closing: false);
        row = Assert.Single(nat.Aggregates(), r => r.Inside == "172.17.0.2");
        Assert.Equal((2L, 3L), (row.Flows, row.Packets));
        Assert.Equal(1, Assert.Single(nat.InUse(), u => u.Inside == "172.17.0.2").Translations);
        Assert.Equal(0, Assert.Single(nat.InUse(), u => u.Inside == "172.17.0.3").Translations);
    }

    [Fact]
    public void NatTable_StepRepeatedRightAfterItself_CountedIntoTheWaitingStepWithItsLatestAndEarliestTimes()
    {
        // A connection through MASQUERADE repeats its translation journey after journey: a repeat right after the same
        // call is counted into the waiting step, not queued again. The table must end as if each were applied: the
        // translation's time the latest of the run (a sweep 29 s after it keeps it, one 31 s after removes it), the
        // mapping's first kind that of the earliest step (a reply stamped before the requests), the packets a sum.
        var nat = new NatTable(detail: true, FlowTimeouts.Default);
        FlowKey inside = Udp("172.17.0.2", 40000, "198.51.100.7", 53), outside = Udp("10.0.0.5", 40000, "198.51.100.7", 53);
        FlowKey replyOutside = Udp("198.51.100.7", 53, "10.0.0.5", 40000), replyInside = Udp("198.51.100.7", 53, "172.17.0.2", 40000);
        for (int second = 1; second <= 5; second++)
        {
            nat.Observe(inside, outside, second * Second, closing: false);
        }
        nat.Observe(replyOutside, replyInside, Second * 6 / 10, closing: false);
        nat.Observe(replyOutside, replyInside, Second / 2, closing: false);
        nat.Observe(Udp("172.17.0.3", 40001, "198.51.100.8", 53), Udp("10.0.0.5", 40001, "198.51.100.8", 53), Second, closing: false);
        Assert.Equal(3, nat.StepsQueued); // 8 calls: one step for each run of the same flows

        NatMapping mapping = Assert.Single(nat.Mappings(), m => m.Inside == "172.17.0.2:40000");
        Assert.Equal((NatKind.Dnat, "10.0.0.5:40000", "198.51.100.7:53", 7L), (mapping.Kind, mapping.Outside, mapping.Peer, mapping.Packets));
        NatAggregate row = Assert.Single(nat.Aggregates(), r => r.Inside == "172.17.0.2");
        Assert.Equal((1L, 7L), (row.Flows, row.Packets));

        nat.Sweep(34 * Second, FlowTimeouts.Default); // 29 s after the run's latest (5 s): kept; the other (1 s) goes
        Assert.Equal(1, nat.ActiveTranslations);
        nat.Sweep(36 * Second, FlowTimeouts.Default);
        Assert.Equal(0, nat.ActiveTranslations);

        // After a read (which applies what waits) the same flows again are a new step, and here a new flow.
        nat.Observe(inside, outside, 37 * Second, closing: false);
        nat.Observe(inside, outside, 38 * Second, closing: false);
        Assert.Equal(4, nat.StepsQueued);
        row = Assert.Single(nat.Aggregates(), r => r.Inside == "172.17.0.2");
        Assert.Equal((2L, 9L), (row.Flows, row.Packets));
        Assert.Equal(9L, Assert.Single(nat.Mappings(), m => m.Inside == "172.17.0.2:40000").Packets);
    }

    [Fact]
    public void NatTable_DataAndAcknowledgmentsAlternating_CountedIntoTheirWaitingSteps()
    {
        // Data one way, acknowledgments the other, alternating (the two calls' steps wait side by side), with another
        // connection's step between now and then, and a read in the middle (which applies what waits): the counts of
        // every call applied one by one, by construction.
        var nat = new NatTable(detail: false, FlowTimeouts.Default);
        FlowKey data = Tcp("172.17.0.2", 40000, "198.51.100.7", 5201), dataOut = Tcp("198.51.100.1", 40000, "198.51.100.7", 5201);
        FlowKey ack = Tcp("198.51.100.7", 5201, "198.51.100.1", 40000), ackIn = Tcp("198.51.100.7", 5201, "172.17.0.2", 40000);
        FlowKey other = Tcp("172.17.0.3", 40001, "198.51.100.8", 80), otherOut = Tcp("198.51.100.1", 40001, "198.51.100.8", 80);
        long at = 0;
        for (int i = 0; i < 10; i++)
        {
            nat.Observe(data, dataOut, at += 1000, closing: false);
            nat.Observe(ack, ackIn, at += 1000, closing: false);
        }
        Assert.Equal(1, nat.StepsQueued); // 20 calls, one step: the acknowledgments are the data's reply (the memo, acct17)
        nat.Observe(other, otherOut, at += 1000, closing: false); // a third: the data's step is no longer among the last two calls
        nat.Observe(data, dataOut, at += 1000, closing: false); // but its step still waits: counted into it (the memo, acct17)
        Assert.Equal(2, nat.StepsQueued);
        Assert.Equal(2, nat.ActiveTranslations); // a read: every waiting step applied
        nat.Observe(data, dataOut, at += 1000, closing: false); // its step was applied: done at its translation's remembered place
        nat.Observe(data, dataOut, at += 1000, closing: true);
        Assert.Equal(2, nat.StepsQueued);
        var rows = nat.Aggregates().ToDictionary(r => r.Inside);
        Assert.Equal((NatKind.Snat, 1L, 23L), (rows["172.17.0.2"].Kind, rows["172.17.0.2"].Flows, rows["172.17.0.2"].Packets));
        Assert.Equal((1L, 1L), (rows["172.17.0.3"].Flows, rows["172.17.0.3"].Packets));
        // The closing mark of the last repeat reached the translation: TCP's closing timeout (120 s) applies, not 5 days.
        nat.Sweep(at + 121 * Second, FlowTimeouts.Default);
        Assert.Equal(1, nat.ActiveTranslations);
    }

    [Fact]
    public void NatTable_ManyRowsNewAndRepeated_CountsAgreeWithAModel()
    {
        // 3,000 rows (containers × servers) with new translations (the speculative row lookups) and then the same
        // translations again (found: no row lookup), across several growths of the row slots.
        var nat = new NatTable(detail: false, FlowTimeouts.Default);
        var flows = new Dictionary<(string Inside, string Peer), (long Flows, long Packets)>();
        var random = new Random(16);
        var seen = new List<(FlowKey Before, FlowKey After, string Inside, string Peer)>();
        long at = 0;
        for (int i = 0; i < 30_000; i++)
        {
            int container = random.Next(60), server = random.Next(50);
            ushort port = (ushort)(1024 + i);
            string inside = $"172.17.0.{container + 2}", peer = $"198.51.100.{server + 1}";
            FlowKey before = Udp(inside, port, peer, 53), after = Udp("10.0.0.5", port, peer, 53);
            nat.Observe(before, after, at += 1000, closing: false);
            seen.Add((before, after, inside, peer + ":53"));
            var counts = flows.GetValueOrDefault((inside, peer + ":53"));
            flows[(inside, peer + ":53")] = (counts.Flows + 1, counts.Packets + 1);
        }
        for (int i = 0; i < 60_000; i++)
        {
            var (before, after, inside, peer) = seen[random.Next(seen.Count)];
            nat.Observe(before, after, at += 1000, closing: false);
            var counts = flows[(inside, peer)];
            flows[(inside, peer)] = (counts.Flows, counts.Packets + 1);
        }
        List<NatAggregate> rows = nat.Aggregates();
        Assert.Equal(flows.Count, rows.Count);
        Assert.All(rows, r => Assert.Equal(flows[(r.Inside, r.Peer)], (r.Flows, r.Packets)));
        Assert.Equal(30_000, nat.ActiveTranslations);
        // Most flows first, then most packets, ties in the order the rows were first seen (the model's insertion order).
        var expectedOrder = flows.Select((row, first) => (row.Key, row.Value.Flows, row.Value.Packets, first))
            .OrderByDescending(r => r.Flows).ThenByDescending(r => r.Packets).ThenBy(r => r.first).Select(r => r.Key);
        Assert.Equal(expectedOrder, rows.Select(r => (r.Inside, r.Peer)));
        Assert.Contains(rows.GroupBy(r => (r.Flows, r.Packets)), tie => tie.Count() > 1);
        // One text per distinct endpoint, shared by the rows: the one outside address is one string, the 60 containers 60.
        Assert.Single(rows.Select(r => r.Outside).Distinct(ReferenceEqualityComparer.Instance));
        Assert.Equal(60, rows.Select(r => r.Inside).Distinct(ReferenceEqualityComparer.Instance).Count());
    }

    [Fact]
    public void TranslationTable_WithoutRows_LargeShardsAreDenseAndAgreeWithAModel()
    {
        // 2.4 million translations: every shard passes 2^17 slots (the denser loads). 12-byte slots at a load of 0.7
        // to 0.85 take 14-17 bytes a translation; the 16-byte slots at 0.6 to 0.8 before took 20-27.
        var timeouts = new FlowTimeouts { UdpNs = 30 * Second };
        using var table = new TranslationTable(timeouts, keepRows: false);
        Assert.False(table.KeepsRows);
        const int Count = 2_400_000;
        var random = new Random(91);
        var hashes = new ulong[Count];
        var known = new HashSet<ulong>();
        for (int i = 0; i < Count; i++)
        {
            ulong hash;
            do
            {
                hash = NextHash(random) & ~0xFUL; // the table keeps 60 bits: keep the model's keys distinct in those
            }
            while (hash == 0 || !known.Add(hash));
            hashes[i] = hash;
            // The first half at 0-10 s, the second at 20-30 s.
            long at = (i < Count / 2 ? 0 : 20 * Second) + i % 1000 * 10_000_000L;
            table.FindOrAdd(hash, i % 3 == 0 ? NatKind.Dnat : NatKind.Snat, TranslationTable.TimeoutClass.Udp, at, closing: false, out bool found);
            Assert.False(found);
        }
        Assert.Equal(Count, table.Count);
        double perTranslation = (double)table.Bytes / Count;
        Assert.InRange(perTranslation, 12.0, 17.5);

        // Every 7th is found again with its first kind; hashes never added are not.
        for (int i = 0; i < Count; i += 7)
        {
            ref var slot = ref table.FindOrAdd(hashes[i], NatKind.Snat, TranslationTable.TimeoutClass.Udp, 10 * Second, closing: false, out bool found);
            Assert.True(found);
            Assert.Equal(i % 3 == 0 ? NatKind.Dnat : NatKind.Snat, TranslationTable.KindOf(in slot));
        }
        Assert.Equal(Count, table.Count);

        // At 41 s the first half (last seen by 10 s) has gone, the second (20-30 s) stays, in place.
        Assert.True(table.Sweep(41 * Second, timeouts));
        Assert.Equal(Count / 2, table.Count);
        for (int i = Count / 2; i < Count; i += 5)
        {
            table.FindOrAdd(hashes[i], NatKind.Snat, TranslationTable.TimeoutClass.Udp, 41 * Second, closing: false, out bool found);
            Assert.True(found);
        }
        int added = 0;
        for (int i = 0; i < Count / 2; i += 11)
        {
            table.FindOrAdd(hashes[i], NatKind.Snat, TranslationTable.TimeoutClass.Udp, 41 * Second, closing: false, out bool found);
            Assert.False(found);
            added++;
        }
        Assert.Equal(Count / 2 + added, table.Count);
    }

    [Fact]
    public void TranslationTable_WithRows_RowsMoveWithTheirSlotsThroughResizesAndSweeps()
    {
        // The rows are a second array beside the slots: a resize and a deletion's backward shift must move them too.
        var timeouts = new FlowTimeouts { UdpNs = 30 * Second };
        using var table = new TranslationTable(timeouts, keepRows: true);
        var random = new Random(92);
        var rowOf = new Dictionary<ulong, (int Row, long At)>();
        for (int i = 0; i < 300_000; i++)
        {
            ulong hash = NextHash(random) & ~0xFUL;
            long at = i * 100_000L; // 0-30 s
            if (hash == 0 || rowOf.ContainsKey(hash) || Math.Abs(at - 15 * Second) < Second / 100)
            {
                continue; // times within 2 units (about 1 ms) of the sweep's boundary may stay or go: none here
            }
            table.FindOrAdd(hash, NatKind.Snat, TranslationTable.TimeoutClass.Udp, at, closing: false, out bool found);
            Assert.False(found);
            table.LastRow = i % 997;
            rowOf[hash] = (i % 997, at);
        }
        table.Sweep(45 * Second, timeouts); // those last seen before 15 s (less a unit) go
        foreach (var gone in rowOf.Where(r => 45 * Second - r.Value.At > timeouts.UdpNs).Select(r => r.Key).ToList())
        {
            rowOf.Remove(gone);
        }
        var counts = new long[997];
        table.CountByRow(counts);
        var expected = new long[997];
        foreach (var (row, _) in rowOf.Values)
        {
            expected[row]++;
        }
        Assert.Equal(rowOf.Count, table.Count);
        Assert.Equal(expected, counts);
        foreach (var (hash, (row, _)) in rowOf.Take(20_000))
        {
            table.FindOrAdd(hash, NatKind.Dnat, TranslationTable.TimeoutClass.Udp, 45 * Second, closing: false, out bool found);
            Assert.True(found);
            Assert.Equal(row, table.LastRow);
        }
    }

    [Fact]
    public void NatTable_WithoutInUse_CountsTheSameAsWithItAndAsAModel()
    {
        // Replay keeps no row per translation: a translation seen again (a reply, which passes the other way and so
        // has the other kind) finds its row from its key and its first kind. 1,600 SNAT rows and 40 DNAT rows (rows in
        // several chunks), replies, flows that come back after a sweep; counted with rows kept, without, and by hand.
        var withRows = new NatTable(detail: false, FlowTimeouts.Default);
        var without = new NatTable(detail: false, FlowTimeouts.Default, inUse: false);
        var model = new Dictionary<(NatKind, string Inside, string Outside, string Peer), (long Flows, long Packets)>();
        var random = new Random(93);
        var live = new List<(FlowKey Out, FlowKey OutAfter, FlowKey Reply, FlowKey ReplyAfter, (NatKind, string, string, string) Row)>();
        long at = 0;
        void Step(in FlowKey before, in FlowKey after, (NatKind, string, string, string) row, bool isNew)
        {
            withRows.Observe(before, after, at, closing: false);
            without.Observe(before, after, at, closing: false);
            var counts = model.GetValueOrDefault(row);
            model[row] = (counts.Flows + (isNew ? 1 : 0), counts.Packets + 1);
        }
        for (int i = 0; i < 40_000; i++)
        {
            at += 500_000; // 2,000 steps a second: 20 s in all
            if (live.Count > 0 && random.Next(3) == 0)
            {
                // A reply or another packet of a live flow: found, counted in the flow's row.
                var flow = live[random.Next(live.Count)];
                if (random.Next(2) == 0)
                {
                    Step(flow.Reply, flow.ReplyAfter, flow.Row, isNew: false);
                }
                else
                {
                    Step(flow.Out, flow.OutAfter, flow.Row, isNew: false);
                }
                continue;
            }
            ushort port = (ushort)(10_000 + i);
            if (random.Next(10) == 0)
            {
                // DNAT: a client reaches a published port 10.0.0.5:8080 of container c:80; row without the client's port.
                int c = random.Next(40);
                string container = $"172.18.0.{c + 2}", client = $"203.0.113.{random.Next(50) + 1}";
                FlowKey inbound = Udp(client, port, "10.0.0.5", 8080), delivered = Udp(client, port, container, 80);
                FlowKey answer = Udp(container, 80, client, port), answered = Udp("10.0.0.5", 8080, client, port);
                var row = (NatKind.Dnat, container + ":80", "10.0.0.5:8080", client);
                live.Add((inbound, delivered, answer, answered, row));
                Step(inbound, delivered, row, isNew: true);
            }
            else
            {
                int c = random.Next(40), s = random.Next(40);
                string container = $"172.17.0.{c + 2}", server = $"198.51.100.{s + 1}";
                FlowKey outbound = Udp(container, port, server, 53), masqueraded = Udp("10.0.0.5", port, server, 53);
                FlowKey reply = Udp(server, 53, "10.0.0.5", port), delivered = Udp(server, 53, container, port);
                var row = (NatKind.Snat, container, "10.0.0.5", server + ":53");
                live.Add((outbound, masqueraded, reply, delivered, row));
                Step(outbound, masqueraded, row, isNew: true);
            }
        }
        // All idle since at most 20 s: a sweep at 35 s drops those last seen before 5 s; seen again, they are new flows.
        withRows.Sweep(at + 15 * Second, FlowTimeouts.Default);
        without.Sweep(at + 15 * Second, FlowTimeouts.Default);
        Assert.Equal(withRows.ActiveTranslations, without.ActiveTranslations);
        Assert.InRange(without.ActiveTranslations, 1, live.Count - 1);

        List<NatAggregate> expected = withRows.Aggregates();
        Assert.Equal(expected, without.Aggregates());
        Assert.True(expected.Count > 1_024, $"{expected.Count} rows");
        Assert.Equal(model.Count, expected.Count);
        Assert.All(expected, r => Assert.Equal(model[(r.Kind, r.Inside, r.Outside, r.Peer)], (r.Flows, r.Packets)));
        Assert.Empty(without.InUse());
        Assert.Equal(withRows.ActiveTranslations, withRows.InUse().Sum(u => u.Translations));
    }

    private static ulong NextHash(Random random)
    {
        Span<byte> bytes = stackalloc byte[8];
        random.NextBytes(bytes);
        return BitConverter.ToUInt64(bytes);
    }

    private static FlowKey Tcp(string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(IpProtocol.Tcp, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);

    private static FlowKey Udp(string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(IpProtocol.Udp, IpAddress.Parse(source), sourcePort, IpAddress.Parse(destination), destinationPort);
}
