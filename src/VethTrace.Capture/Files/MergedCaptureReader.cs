using System.Buffers;
using System.Runtime.CompilerServices;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>
/// Reads several captures at once (one per interface, as people take them with <c>tcpdump -i X -w X.pcap</c>)
/// and returns their packets merged by timestamp; equal timestamps keep the order of the files as given. Each
/// file's next packet is copied into a buffer of its own, so the merge allocates nothing per packet.
/// A damaged file stops contributing at the damage (its error is kept in <see cref="Errors"/>); the others go on.
/// </summary>
public sealed class MergedCaptureReader : IDisposable
{
    private readonly Source[] _sources;
    private readonly List<CaptureFileError> _errors = [];
    private Source? _lastReturned;
    /// <summary>The only source when there is one (nothing to merge): read straight through.</summary>
    private readonly Source? _single;

    /// <summary>
    /// Opens every file; when any cannot be opened, throws one <see cref="CaptureFileException"/> that names every
    /// such file (a replay that silently lacked a hop would report wrong paths).
    /// </summary>
    public MergedCaptureReader(IReadOnlyList<string> paths)
    {
        var sources = new List<Source>(paths.Count);
        var failures = new List<CaptureFileError>();
        foreach (string path in paths)
        {
            try
            {
                sources.Add(new Source(CaptureFileReader.Open(path)));
            }
            catch (CaptureFileException e)
            {
                failures.AddRange(e.Errors);
            }
        }
        if (failures.Count > 0)
        {
            foreach (var source in sources)
            {
                source.Dispose();
            }
            throw new CaptureFileException(failures);
        }
        _sources = [.. sources];
        _single = _sources.Length == 1 ? _sources[0] : null;
        // Each file's first packet is read now, so its interfaces declared before it are known (pcapng IDBs).
        foreach (var source in _sources)
        {
            Advance(source);
        }
    }

    public IReadOnlyList<CaptureFileError> Errors => _errors;

    /// <summary>The problems that did not stop any file (<see cref="CaptureFileReader.Warnings"/>), file by file.</summary>
    public IEnumerable<CaptureFileError> Warnings => _sources.SelectMany(source => source.Reader.Warnings);

    /// <summary>The reader of file <paramref name="index"/>, for its interface table.</summary>
    public CaptureFileReader File(int index) => _sources[index].Reader;

    public int FileCount => _sources.Length;

    /// <summary>The next packet in time order, and which file it came from. Its data is valid until the next call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, into the read loop
    public bool TryReadNext(out CaptureRecord record, out int fileIndex)
    {
        if (_single is { } only && !only.HasPending && !only.Finished)
        {
            // Nothing to merge: the file's own record is valid until its next read, as ours must be, so no copy.
            if (only.Reader.TryReadNext(out record))
            {
                fileIndex = 0;
                return true;
            }
            Finish(only);
            fileIndex = -1;
            return false;
        }
        return TryReadNextMerged(out record, out fileIndex);
    }

    private bool TryReadNextMerged(out CaptureRecord record, out int fileIndex)
    {
        record = default;
        fileIndex = -1;
        if (_sources.Length == 1)
        {
            return TryReadSingle(out record, out fileIndex);
        }
        if (_lastReturned is { } previous)
        {
            // Refill only now: the record returned last time pointed into this source's buffer.
            Advance(previous);
            _lastReturned = null;
        }
        Source? next = null;
        for (int i = 0; i < _sources.Length; i++)
        {
            Source source = _sources[i];
            if (source.HasPending && (next is null || source.TimestampNs < next.TimestampNs))
            {
                next = source;
                fileIndex = i;
            }
        }
        if (next is null)
        {
            return false;
        }
        record = next.Record;
        _lastReturned = next;
        return true;
    }

    public void Dispose()
    {
        foreach (var source in _sources)
        {
            source.Dispose();
        }
    }

    private bool TryReadSingle(out CaptureRecord record, out int fileIndex)
    {
        Source only = _sources[0];
        fileIndex = 0;
        if (only.HasPending)
        {
            // The first packet, read when the file was opened: its copy stays valid until the reader's next read.
            only.HasPending = false;
            record = only.Record;
            return true;
        }
        if (!only.Finished && only.Reader.TryReadNext(out record))
        {
            return true;
        }
        if (!only.Finished)
        {
            Finish(only);
        }
        record = default;
        fileIndex = -1;
        return false;
    }

    private void Advance(Source source)
    {
        if (source.Reader.TryReadNext(out CaptureRecord record))
        {
            source.Hold(record);
            return;
        }
        source.HasPending = false;
        Finish(source);
    }

    private void Finish(Source source)
    {
        source.Finished = true;
        if (source.Reader.Error is { } error)
        {
            _errors.Add(error);
        }
    }

    private sealed class Source(CaptureFileReader reader) : IDisposable
    {
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(2048);
        private int _length;

        public CaptureFileReader Reader { get; } = reader;

        public bool HasPending { get; set; }

        /// <summary>The file has ended (its error, if any, is recorded).</summary>
        public bool Finished { get; set; }

        public long TimestampNs { get; private set; }

        public int InterfaceId { get; private set; }

        public LinkType LinkType { get; private set; }

        public int OriginalLength { get; private set; }

        public PacketDirection Direction { get; private set; }

        public long FileOffset { get; private set; }

        public bool TimestampInvalid { get; private set; }

        public ReadOnlySpan<byte> Data => _buffer.AsSpan(0, _length);

        public CaptureRecord Record => new(Data, TimestampNs, InterfaceId, LinkType, OriginalLength, Direction, FileOffset, TimestampInvalid);

        public void Hold(CaptureRecord record)
        {
            if (record.Data.Length > _buffer.Length)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = ArrayPool<byte>.Shared.Rent(record.Data.Length);
            }
            record.Data.CopyTo(_buffer);
            _length = record.Data.Length;
            TimestampNs = record.TimestampNs;
            InterfaceId = record.InterfaceId;
            LinkType = record.LinkType;
            OriginalLength = record.OriginalLength;
            Direction = record.Direction;
            FileOffset = record.FileOffset;
            TimestampInvalid = record.TimestampInvalid;
            HasPending = true;
        }

        public void Dispose()
        {
            Reader.Dispose();
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
