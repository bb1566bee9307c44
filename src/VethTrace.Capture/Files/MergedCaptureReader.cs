using System.Runtime.CompilerServices;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>
/// Reads several captures at once (one per interface, as people take them with <c>tcpdump -i X -w X.pcap</c>)
/// and returns their packets merged by timestamp; equal timestamps keep the order of the files as given. Each
/// file's next packet waits in its reader's buffer, so the merge copies and allocates nothing per packet.
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
            // Refill only now: the record returned last time pointed into this source's reader's buffer.
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
            // The first packet, read when the file was opened: it stays valid until the reader's next read.
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
            source.Hold(in record);
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

    /// <summary>
    /// One file and its next packet. The packet stays where its reader put it (valid until that reader's next read,
    /// which comes only once the merge has returned it): its fields are kept here, its bytes by position in the
    /// reader's buffer. The first design copied each packet into a buffer of the source's own (session 9: a tenth of the
    /// reading thread's time on four per-interface files, with the properties around it).
    /// </summary>
    private sealed class Source(CaptureFileReader reader) : IDisposable
    {
        public readonly CaptureFileReader Reader = reader;

        public bool HasPending;

        /// <summary>The file has ended (its error, if any, is recorded).</summary>
        public bool Finished;

        public long TimestampNs;
        private int _interfaceId;
        private LinkType _linkType;
        private int _originalLength;
        private PacketDirection _direction;
        private long _fileOffset;
        private bool _timestampInvalid;
        private int _dataStart;
        private int _dataLength;

        public CaptureRecord Record => new(Reader.Retained(_dataStart, _dataLength), TimestampNs, _interfaceId, _linkType, _originalLength, _direction,
            _fileOffset, _timestampInvalid);

        public void Hold(in CaptureRecord record)
        {
            _dataStart = Reader.OffsetInBuffer(record.Data);
            _dataLength = record.Data.Length;
            TimestampNs = record.TimestampNs;
            _interfaceId = record.InterfaceId;
            _linkType = record.LinkType;
            _originalLength = record.OriginalLength;
            _direction = record.Direction;
            _fileOffset = record.FileOffset;
            _timestampInvalid = record.TimestampInvalid;
            HasPending = true;
        }

        public void Dispose() => Reader.Dispose();
    }
}
