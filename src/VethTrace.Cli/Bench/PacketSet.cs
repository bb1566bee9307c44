using VethTrace.Packets;

namespace VethTrace.Cli.Bench;

/// <summary>
/// Packets held in memory for a benchmark: every frame in one contiguous array, with its offset, captured
/// length, original length, timestamp and link type in parallel arrays. Reading from here costs no I/O,
/// so a benchmark measures only the code under test.
/// </summary>
public sealed class PacketSet
{
    public PacketSet(string name, byte[] data, int[] offsets, int[] lengths, int[] originalLengths, long[] timestampsNs, LinkType[] linkTypes, IReadOnlyList<string> sources)
    {
        if (lengths.Length != offsets.Length || originalLengths.Length != offsets.Length || timestampsNs.Length != offsets.Length || linkTypes.Length != offsets.Length)
        {
            throw new ArgumentException("the per-packet arrays differ in length");
        }
        Name = name;
        Data = data;
        Offsets = offsets;
        Lengths = lengths;
        OriginalLengths = originalLengths;
        TimestampsNs = timestampsNs;
        LinkTypes = linkTypes;
        Sources = sources;
    }

    /// <summary>"bulk", "mixed", or a file name.</summary>
    public string Name { get; }

    /// <summary>All captured bytes, packet after packet.</summary>
    public byte[] Data { get; }

    public int[] Offsets { get; }

    /// <summary>Captured lengths.</summary>
    public int[] Lengths { get; }

    /// <summary>Lengths on the wire (at least the captured length, larger when the snaplen cut the packet).</summary>
    public int[] OriginalLengths { get; }

    public long[] TimestampsNs { get; }

    public LinkType[] LinkTypes { get; }

    /// <summary>The capture files the packets came from.</summary>
    public IReadOnlyList<string> Sources { get; }

    public int Count => Offsets.Length;

    public ReadOnlySpan<byte> Frame(int index) => Data.AsSpan(Offsets[index], Lengths[index]);

    /// <summary>A copy of one frame as its own array, for APIs that take <c>byte[]</c>.</summary>
    public byte[] FrameArray(int index) => Frame(index).ToArray();

    /// <summary>The distinct link types, in order of first appearance.</summary>
    public IReadOnlyList<LinkType> DistinctLinkTypes() => LinkTypes.Distinct().ToArray();

    /// <summary>Only the packets <paramref name="keep"/> accepts.</summary>
    public PacketSet Where(Func<int, bool> keep)
    {
        var builder = new PacketSetBuilder(Name);
        for (int i = 0; i < Count; i++)
        {
            if (keep(i))
            {
                Append(builder, i);
            }
        }
        return builder.Build(Sources);
    }

    /// <summary>
    /// Exactly <paramref name="count"/> packets, so a benchmark can declare a constant OperationsPerInvoke.
    /// A larger set is sampled at an even stride (keeping its mix from start to end) into a new contiguous array. A
    /// smaller one is repeated from the start by reference: the repeats are the same bytes in <see cref="Data"/>, not
    /// copies. Copies would add no packet the parsers have not seen, only memory: frames of up to 1,514 bytes, of which
    /// a parser reads the first 40 to 120, copied back to back lie at an irregular stride that the hardware prefetcher
    /// does not follow, so each frame's first cache line comes from memory, a wait that the fast parsers pay and the
    /// slow one hides behind its own work, reported as parsing. A parser in a tracer reads a frame that the capture file
    /// reader or the kernel has just written, in the cache; a large set's frames, sampled back to back (the bulk set's
    /// are 128 bytes), are streamed in by the prefetcher and behave the same (docs/performance.md, parser round 3).
    /// </summary>
    public PacketSet Resample(int count)
    {
        if (Count == 0)
        {
            throw new InvalidOperationException($"packet set '{Name}' is empty");
        }
        if (Count < count)
        {
            int[] offsets = new int[count];
            int[] lengths = new int[count];
            int[] originalLengths = new int[count];
            long[] timestamps = new long[count];
            var linkTypes = new LinkType[count];
            for (int i = 0; i < count; i++)
            {
                int index = i % Count;
                offsets[i] = Offsets[index];
                lengths[i] = Lengths[index];
                originalLengths[i] = OriginalLengths[index];
                timestamps[i] = TimestampsNs[index];
                linkTypes[i] = LinkTypes[index];
            }
            return new PacketSet(Name, Data, offsets, lengths, originalLengths, timestamps, linkTypes, Sources);
        }
        var builder = new PacketSetBuilder(Name);
        for (int i = 0; i < count; i++)
        {
            Append(builder, (int)((long)i * Count / count));
        }
        return builder.Build(Sources);
    }

    private void Append(PacketSetBuilder builder, int index) =>
        builder.Add(Frame(index), OriginalLengths[index], TimestampsNs[index], LinkTypes[index]);
}

/// <summary>Collects packets into the contiguous layout of <see cref="PacketSet"/>.</summary>
public sealed class PacketSetBuilder(string name)
{
    private byte[] _data = new byte[1 << 16];
    private int _used;
    private readonly List<int> _offsets = [];
    private readonly List<int> _lengths = [];
    private readonly List<int> _originalLengths = [];
    private readonly List<long> _timestamps = [];
    private readonly List<LinkType> _linkTypes = [];

    public int Count => _offsets.Count;

    public void Add(ReadOnlySpan<byte> frame, int originalLength, long timestampNs, LinkType linkType)
    {
        if (_data.Length - _used < frame.Length)
        {
            Array.Resize(ref _data, (int)Math.Min(Array.MaxLength, Math.Max((long)_data.Length * 2, (long)_used + frame.Length)));
        }
        frame.CopyTo(_data.AsSpan(_used));
        _offsets.Add(_used);
        _lengths.Add(frame.Length);
        _originalLengths.Add(Math.Max(originalLength, frame.Length));
        _timestamps.Add(timestampNs);
        _linkTypes.Add(linkType);
        _used += frame.Length;
    }

    public PacketSet Build(IReadOnlyList<string> sources) =>
        new(name, _data.AsSpan(0, _used).ToArray(), [.. _offsets], [.. _lengths], [.. _originalLengths], [.. _timestamps], [.. _linkTypes], sources);
}
