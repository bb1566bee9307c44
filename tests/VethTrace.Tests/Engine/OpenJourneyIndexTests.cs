using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// <see cref="OpenJourneyIndex"/> keeps a journey's number modulo 2^32 and a 32-bit tag of its fingerprint in one 8-byte
/// slot. The answers it must give are those of a dictionary from fingerprint to its last journey, live while the
/// journey is at or after the ring's head: across the 2^32 boundary of the numbers, for two fingerprints with one tag,
/// and after the head has moved more than 2^32 journeys past an entry nobody looked up since.
/// </summary>
public sealed class OpenJourneyIndexTests
{
    /// <summary>The journey ring as the index sees it: the fingerprint of each number from the head to the tail, nothing else.</summary>
    private sealed class Ring
    {
        public readonly Dictionary<long, ulong> Fingerprints = [];
        public long Head;
        public long Tail;

        public ulong Of(long journey)
        {
            Assert.True(journey >= Head && journey < Tail, $"journey {journey} read outside the ring [{Head}, {Tail})");
            return Fingerprints[journey];
        }

        /// <summary>Adds a journey of <paramref name="fingerprint"/> at the tail, as the correlator does, and returns its number.</summary>
        public long Start(OpenJourneyIndex index, ulong fingerprint)
        {
            int at = index.Find(fingerprint, Head, new View(this), out _);
            long number = Tail++;
            Fingerprints[number] = fingerprint;
            index.Set(at, fingerprint, number);
            return number;
        }

        public long Find(OpenJourneyIndex index, ulong fingerprint)
        {
            index.Find(fingerprint, Head, new View(this), out long journey);
            return journey;
        }
    }

    private readonly struct View(Ring ring) : OpenJourneyIndex.IFingerprints
    {
        public ulong FingerprintOf(long journey) => ring.Of(journey);
    }

    /// <summary>The inverse of the Fibonacci multiplier modulo 2^64: a fingerprint whose hash is a chosen product.</summary>
    private static ulong WithHash(ulong product)
    {
        const ulong golden = 0x9E3779B97F4A7C15UL;
        ulong inverse = golden;
        for (int i = 0; i < 6; i++)
        {
            inverse *= 2 - golden * inverse; // Newton's step doubles the correct low bits
        }
        return product * inverse;
    }

    [Theory]
    [InlineData(0L)]
    [InlineData((1L << 31) - 3_000)]   // the numbers' sign bit in 32 bits
    [InlineData((1L << 32) - 3_000)]   // the 32-bit wrap
    [InlineData((5L << 32) - 7)]
    public void Find_NumbersAcrossTheWrap_EachFingerprintItsLastJourney(long start)
    {
        var ring = new Ring { Head = start, Tail = start };
        var index = new OpenJourneyIndex();
        var last = new Dictionary<ulong, long>();
        // 6,000 journeys of 2,500 fingerprints (some seen again: the later journey replaces the earlier), the table
        // growing through rebuilds on the way, the head following 4,000 journeys behind the tail.
        for (int i = 0; i < 6_000; i++)
        {
            ulong fingerprint = (ulong)(i * 7 % 2_500) * 0x1000_0000_01UL + 12345;
            Assert.Equal(last.TryGetValue(fingerprint, out long open) && open >= ring.Head ? open : -1, ring.Find(index, fingerprint));
            last[fingerprint] = ring.Start(index, fingerprint);
            ring.Head = Math.Max(ring.Head, ring.Tail - 4_000);
        }
        foreach (var (fingerprint, journey) in last)
        {
            Assert.Equal(journey >= ring.Head ? journey : -1, ring.Find(index, fingerprint));
        }
        Assert.True(index.Length >= 4_096);
    }

    [Fact]
    public void Find_TwoFingerprintsOneTag_TheOtherIsNotFound()
    {
        // Equal top 32 bits of the hash (and so one home slot and one tag), different fingerprints.
        ulong first = WithHash(0xABCD_1234_0000_0001UL), second = WithHash(0xABCD_1234_0000_0002UL);
        // Top halves that differ only in their lowest bit: one tag too (the tag sets that bit).
        ulong third = WithHash(0xABCD_1235_0000_0001UL);
        Assert.Equal(OpenJourneyIndex.Tag(first), OpenJourneyIndex.Tag(second));
        Assert.Equal(OpenJourneyIndex.Tag(first), OpenJourneyIndex.Tag(third));
        var ring = new Ring();
        var index = new OpenJourneyIndex();
        long journey = ring.Start(index, first);
        Assert.Equal(-1, ring.Find(index, second));
        Assert.Equal(-1, ring.Find(index, third));
        long other = ring.Start(index, second);
        Assert.Equal(journey, ring.Find(index, first));
        Assert.Equal(other, ring.Find(index, second));
        Assert.Equal(-1, ring.Find(index, third));
    }

    [Fact]
    public void Find_HeadMovedMoreThan2To32PastAnEntry_EntryNotReadBackAsLive()
    {
        var ring = new Ring();
        var index = new OpenJourneyIndex();
        ulong old = 0x5EED_0000_0000_0001UL;
        long journey = ring.Start(index, old);
        ring.Start(index, 2); // keeps the ring from being empty
        // The head moves on 2^28 journeys at a time (the correlator finds a fingerprint for every observation, and the
        // head never moves by more than a window's journeys in between), other fingerprints looked up on the way, until
        // it stands 5 journeys before old's number plus 2^32: read as 32 bits, old's entry is then 5 ahead of the head.
        for (long head = 1L << 28; head < (1L << 32) + journey - 5; head += 1L << 28)
        {
            ring.Head = ring.Tail = head;
            ring.Start(index, (ulong)head);
        }
        ring.Head = (1L << 32) + journey - 5;
        ring.Tail = ring.Head + 1; // old's number plus 2^32 is past the tail: not a journey to read
        ring.Fingerprints[ring.Head] = 3;
        Assert.Equal(-1, ring.Find(index, old));
        Assert.True(index.Rebuilds >= 3); // at heads 2^30, 2^31 and 3 x 2^30
    }
}
