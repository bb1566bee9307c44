using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>
/// Reads classic pcap (both byte orders, microsecond and nanosecond magic) and pcapng (several sections in
/// either byte order, several interfaces, EPB, SPB and the obsolete PB; unknown blocks are skipped),
/// plain or gzip-compressed, with one reusable buffer: memory stays flat whatever the file's length and
/// no read allocates. Each <see cref="TryReadNext"/> invalidates the record the previous one returned.
/// It reads every record tcpdump reads: records that break the format's rules but can be read (a caplen above the
/// snaplen, caplen 0, an invalid timestamp) are returned and counted, one <see cref="Warnings"/> entry per kind.
/// Damage that leaves nothing to read past it stops the reading: <see cref="TryReadNext"/> returns false and
/// <see cref="Error"/> names the byte offset and the problem; every packet before it was returned.
/// </summary>
public sealed partial class CaptureFileReader : IDisposable
{
    /// <summary>
    /// The largest packet accepted for most link types (libpcap's MAXIMUM_SNAPLEN): beyond it a length field is damage,
    /// not data. A few link types allow more (<see cref="MaxCaptureLengthFor"/>).
    /// </summary>
    public const int MaxCaptureLength = 262_144;

    /// <summary>The largest pcapng block accepted; bounds memory against a hostile length field.</summary>
    public const int MaxBlockLength = 16 * 1024 * 1024;

    private readonly Stream _stream;
    private readonly string _path;
    private readonly string _baseName;
    private bool _isPcapng; // set by ReadHeader, once
    private readonly List<CaptureInterface> _interfaces = [];
    private readonly List<InterfaceFacts> _facts = [];
    // pcapng interface ids are per section: this maps the current section's ids to global ones.
    private readonly List<int> _sectionInterfaces = [];
    // The same interfaces' facts for TryReadEnhancedPacketInBuffer, by their id in the section (kept beside _sectionInterfaces).
    private readonly List<SectionInterface> _sectionFacts = [];
    private readonly List<CaptureFileError> _warnings = [];
    private readonly Tally[] _irregular = new Tally[3]; // by Irregularity

    // Rented, not allocated: a 1 MiB array lands on the large-object heap, and opening many files
    // (a merge, a test suite) would otherwise cost a full collection now and then. Empty when the file is mapped.
    private byte[] _buffer;
    // A regular file of at least MapFilesFrom bytes is mapped instead, a window at a time: the buffer is then the window.
    // Only while this reader holds a read lease on it (ReadLease): null again once another process asks to write it.
    private FileStream? _mapped;
    private nint _windowAddress;
    private nuint _windowLength;
    private int _start;
    private int _end;
    private long _bufferFileOffset; // file offset of the buffer's first byte
    private bool _endOfStream;
    private bool _bigEndian;
    private bool _pcapNanoseconds;
    // A pcap file's one interface, for TryReadPcapInBuffer (set with the file header).
    private LinkType _pcapLinkType;
    private uint _pcapCaptureLimit;
    private uint _pcapFractionLimit;
    private int _pcapFractionUnit;
    private long _lastTimestampNs;

    private CaptureFileReader(Stream stream, string path, bool compressed, FileStream? mapped = null)
    {
        _stream = stream;
        _mapped = mapped is not null && ReadLease.Take(mapped) ? mapped : null;
        _buffer = _mapped is null ? ArrayPool<byte>.Shared.Rent(1 << 20) : [];
        _path = path;
        _baseName = System.IO.Path.GetFileNameWithoutExtension(StripCompressionSuffix(System.IO.Path.GetFileName(path)));
        IsCompressed = compressed;
        try
        {
            ReadHeader(path);
        }
        catch
        {
            // The caller closes the file; a window still mapped would keep it open, and its read lease with it.
            Unmap();
            throw;
        }
    }

    private void ReadHeader(string path)
    {
        try
        {
            if (!Ensure(4))
            {
                throw new CaptureFileException(new CaptureFileError(path, 0, _end == 0 ? "empty file" : "file too short for a capture header"));
            }
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(Bytes(0, 4));
            _isPcapng = magic == PcapngFormat.SectionHeader;
            if (!_isPcapng)
            {
                ReadPcapHeader(magic);
            }
        }
        // The first reads can fail as later ones do (a damaged gzip header or first deflate block throws
        // InvalidDataException); Open promises CaptureFileException only.
        catch (IOException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, _end, $"read error: {e.Message}"));
        }
        catch (InvalidDataException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, _end, $"compressed data damaged: {e.Message}"));
        }
    }

    /// <summary>The interfaces seen so far (pcapng declares them as it goes).</summary>
    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    public string Path => _path;

    public bool IsPcapng => _isPcapng;

    public bool IsCompressed { get; }

    /// <summary>The damage that stopped reading, or null after a clean end of file.</summary>
    public CaptureFileError? Error { get; private set; }

    /// <summary>
    /// Problems that did not stop the reading, every packet having been returned: an interface whose link type the
    /// parser does not decode, named at its declaration (<see cref="CaptureProblem.Unsupported"/>); and one entry per
    /// kind of irregular record read so far, with the count and the first offset (<see cref="CaptureProblem.Irregular"/>).
    /// Built when asked for, not per record.
    /// </summary>
    public IReadOnlyList<CaptureFileError> Warnings
    {
        get
        {
            if (_irregular.All(tally => tally.Count == 0))
            {
                return _warnings;
            }
            var all = new List<CaptureFileError>(_warnings);
            for (int kind = 0; kind < _irregular.Length; kind++)
            {
                if (_irregular[kind].Count > 0)
                {
                    all.Add(new CaptureFileError(_path, _irregular[kind].FirstOffset, Describe((Irregularity)kind, in _irregular[kind]), CaptureProblem.Irregular));
                }
            }
            return all;
        }
    }

    /// <summary>How many records had a timestamp tcpdump marks "(invalid us)" (they were read; see <see cref="CaptureRecord.TimestampInvalid"/>).</summary>
    public long InvalidTimestamps => _irregular[(int)Irregularity.InvalidTimestamp].Count;

    public long PacketsRead { get; private set; }

    /// <summary>
    /// Whether regular records are read in one go (<see cref="TryReadEnhancedPacketInBuffer"/>, <see cref="TryReadPcapInBuffer"/>);
    /// off, every record takes the general path: the tests compare the two.
    /// </summary>
    internal bool ReadsInOneGo { get; set; } = true;

    /// <summary>The records read in one go, for the tests that check the common record takes that path.</summary>
    internal long RecordsReadInOneGo { get; private set; }

    /// <summary>
    /// Where a record's data returned by the last read starts in the read buffer, so that a merge can hold the record
    /// without copying it (<see cref="Retained"/>) until this reader's next read.
    /// </summary>
    internal int OffsetInBuffer(ReadOnlySpan<byte> data) =>
        data.IsEmpty ? 0 : (int)Unsafe.ByteOffset(ref _mapped is null ? ref MemoryMarshal.GetArrayDataReference(_buffer) : ref Window, ref MemoryMarshal.GetReference(data));

    /// <summary>The bytes at <paramref name="start"/> (<see cref="OffsetInBuffer"/>), valid until the next read.</summary>
    internal ReadOnlySpan<byte> Retained(int start, int length) => Bytes(start, length);

    /// <summary>The read buffer's size (the window's, when mapped): what the reader holds in memory, for the tests that bound it.</summary>
    internal int BufferCapacity => _mapped is null ? _buffer.Length : _end;

    /// <summary>Whether the file's bytes are mapped (<see cref="MapFilesFrom"/>) rather than read into the buffer.</summary>
    internal bool IsMapped => _mapped is not null;

    /// <summary>
    /// The buffer's bytes from <paramref name="start"/>: the read buffer's, or the mapped window's (bounded by
    /// <see cref="_end"/>, the window's length, as the read buffer bounds its own).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // per record
    private ReadOnlySpan<byte> Bytes(int start, int length)
    {
        if (_mapped is null)
        {
            return _buffer.AsSpan(start, length);
        }
        if ((uint)start > (uint)_end || (uint)length > (uint)(_end - start))
        {
            throw new ArgumentOutOfRangeException(nameof(length));
        }
        return MemoryMarshal.CreateReadOnlySpan(ref Unsafe.AddByteOffset(ref Window, start), length);
    }

    /// <summary>The mapped window's first byte.</summary>
    private ref byte Window => ref Unsafe.AddByteOffset(ref Unsafe.NullRef<byte>(), _windowAddress);

    /// <summary>Opens a file; throws <see cref="CaptureFileException"/> with a one-line reason when it is not a readable capture.</summary>
    public static CaptureFileReader Open(string path) => Open(path, MapFilesFrom);

    /// <summary>
    /// Files of at least this many bytes are mapped into memory a window of <see cref="MapWindowLength"/> at a time
    /// instead of read into the buffer: the kernel's copy of every byte into the buffer (read(2)) was a fifth of
    /// replay's reading thread (session 11). Smaller files, pipes and compressed files are read.
    /// </summary>
    internal const long MapFilesFrom = 4 << 20;

    /// <summary>
    /// How much of a mapped file is mapped at once (more when a record needs it): what the reader holds of it, as the
    /// read buffer is. Its pages count in the resident set once touched, so it is the read buffer's size: a 4 MiB window
    /// raised replay's peak resident set by 4.5 MiB. Moving it on costs two system calls a MiB.
    /// </summary>
    internal const int MapWindowLength = 1 << 20;

    /// <summary><see cref="Open(string)"/>, mapping the file when it has at least <paramref name="mapFrom"/> bytes (the tests compare both ways).</summary>
    internal static CaptureFileReader Open(string path, long mapFrom)
    {
        if (Directory.Exists(path))
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "is a directory, not a capture file", CaptureProblem.NotOpened));
        }
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "no such file", CaptureProblem.NotOpened));
        }
        catch (DirectoryNotFoundException)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "no such file", CaptureProblem.NotOpened));
        }
        catch (UnauthorizedAccessException)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, "permission denied", CaptureProblem.NotOpened));
        }
        catch (IOException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, e.Message, CaptureProblem.NotOpened));
        }
        try
        {
            return Open(file, path, map: MappableLength(file) >= Math.Max(mapFrom, 8));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The length of a regular file read from its start, which can be mapped; -1 for anything else (a pipe, /dev/stdin at an offset).</summary>
    private static long MappableLength(FileStream file)
    {
        try
        {
            return file.CanSeek && file.Position == 0 ? file.Length : -1;
        }
        catch (IOException)
        {
            return -1;
        }
        catch (NotSupportedException)
        {
            return -1;
        }
    }

    /// <summary>Reads a capture from a stream; <paramref name="path"/> names it in errors and interface names.</summary>
    public static CaptureFileReader Open(Stream stream, string path) => Open(stream, path, map: false);

    private static CaptureFileReader Open(Stream stream, string path, bool map)
    {
        // gzip (RFC 1952 magic 1f 8b) is read transparently, as Wireshark does; offsets in errors
        // then count decompressed bytes.
        byte[] head = new byte[2];
        int n;
        bool seekable = stream.CanSeek;
        try
        {
            n = stream.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        }
        catch (IOException e)
        {
            throw new CaptureFileException(new CaptureFileError(path, 0, $"read error: {e.Message}"));
        }
        if (seekable)
        {
            stream.Seek(-n, SeekOrigin.Current);
        }
        else
        {
            // A pipe (/dev/stdin, a process substitution) cannot be rewound: the two bytes are put back in front.
            stream = new PrefixedStream(head.AsSpan(0, n).ToArray(), stream);
        }
        if (n == 2 && head[0] == 0x1F && head[1] == 0x8B)
        {
            return new CaptureFileReader(new GZipStream(stream, CompressionMode.Decompress), path, compressed: true) { IsSeekable = seekable };
        }
        return new CaptureFileReader(stream, path, compressed: false, map ? (FileStream)stream : null) { IsSeekable = seekable };
    }

    /// <summary>
    /// Whether the capture comes from a seekable stream (a regular file, not a pipe such as <c>/dev/stdin</c>), which
    /// can be opened and read again from its start.
    /// </summary>
    public bool IsSeekable { get; private init; }

    /// <summary>
    /// Reads the next packet. Returns false at the end of the file or at damage (<see cref="Error"/>).
    /// The record's data is valid until the next call.
    /// </summary>
    public bool TryReadNext(out CaptureRecord record)
    {
        if (Error is not null)
        {
            record = default;
            return false;
        }
        // Nearly every record: a packet whole in the buffer that breaks no rule, read in one go. Anything else (another
        // block, a record that needs more bytes read, a record to count or to reject) is declined untouched and read
        // by the general path below, which judges it as it always has.
        if (ReadsInOneGo && (_isPcapng ? TryReadEnhancedPacketInBuffer(out record) : TryReadPcapInBuffer(out record)))
        {
            RecordsReadInOneGo++;
            return true;
        }
        try
        {
            return _isPcapng ? TryReadPcapng(out record) : TryReadPcap(out record);
        }
        catch (IOException e)
        {
            record = default;
            return Fail(_bufferFileOffset + _start, $"read error: {e.Message}");
        }
        catch (InvalidDataException e)
        {
            record = default;
            return Fail(_bufferFileOffset + _start, $"compressed data damaged: {e.Message}");
        }
    }

    public void Dispose()
    {
        Unmap();
        _stream.Dispose();
        byte[] buffer = _buffer;
        _buffer = [];
        _start = _end = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The largest caplen libpcap accepts for a link type (max_snaplen_for_dlt in pcap-common.c): D-Bus messages
    /// reach 128 MiB, EBHSCR frames 8 MiB, USBPcap transfers 1 MiB; everything else 256 KiB. A caplen beyond it is
    /// damage: libpcap stops there too ("invalid packet capture length").
    /// </summary>
    public static int MaxCaptureLengthFor(LinkType linkType) => linkType.Value switch
    {
        LinkTypeDbus => 128 * 1024 * 1024,
        LinkTypeEbhscr => 8 * 1024 * 1024,
        LinkTypeUsbPcap => 1024 * 1024,
        _ => MaxCaptureLength,
    };

    private const uint LinkTypeDbus = 231;
    private const uint LinkTypeUsbPcap = 249;
    private const uint LinkTypeEbhscr = 279;

    /// <summary>The kinds of irregular record: each is read, counted, and reported once per file.</summary>
    private enum Irregularity
    {
        /// <summary>caplen above the interface's snaplen: libpcap reads it (cut to the snaplen), Wireshark whole, and so do we.</summary>
        CaplenAboveSnaplen,
        /// <summary>caplen 0: tcpdump counts it ("[Invalid header: caplen==0 …]"), and so do we, as an empty packet.</summary>
        Empty,
        /// <summary>A classic pcap sub-second field out of range: tcpdump prints "(invalid us)" or "(invalid ns)".</summary>
        InvalidTimestamp,
    }

    /// <summary>A count and the first occurrence's offset and two numbers: no string is built per record.</summary>
    private struct Tally
    {
        public long Count;
        public long FirstOffset;
        public ulong FirstA;
        public ulong FirstB;
    }

    private void Note(Irregularity kind, long offset, ulong a, ulong b)
    {
        ref Tally tally = ref _irregular[(int)kind];
        if (tally.Count++ == 0)
        {
            tally.FirstOffset = offset;
            tally.FirstA = a;
            tally.FirstB = b;
        }
    }

    private string Describe(Irregularity kind, in Tally tally)
    {
        string records = tally.Count == 1 ? "1 record" : $"{tally.Count} records";
        return kind switch
        {
            // libpcap's pcap reader takes such a record (cut at the snaplen); its pcapng reader stops at the first.
            Irregularity.CaplenAboveSnaplen when _isPcapng =>
                $"{records} with a caplen above the snaplen, read whole as Wireshark reads {(tally.Count == 1 ? "it" : "them")} (tcpdump stops at the first); " +
                $"the first at byte {tally.FirstOffset}: caplen {tally.FirstA}, snaplen {tally.FirstB}",
            Irregularity.CaplenAboveSnaplen =>
                $"{records} with a caplen above the snaplen, read whole (tcpdump reads {(tally.Count == 1 ? "it" : "them")} too, cut at the snaplen); " +
                $"the first at byte {tally.FirstOffset}: caplen {tally.FirstA}, snaplen {tally.FirstB}",
            Irregularity.Empty =>
                $"{records} with caplen 0, read as {(tally.Count == 1 ? "an empty packet" : "empty packets")} (tcpdump counts {(tally.Count == 1 ? "it" : "them")} as \"[Invalid header: caplen==0]\"); " +
                $"the first at byte {tally.FirstOffset}: length {tally.FirstA}",
            _ =>
                $"{records} with an invalid timestamp (tcpdump: \"(invalid {(_pcapNanoseconds ? "ns" : "us")})\"), placed at the previous " +
                $"packet's time and left out of latency figures; the first at byte {tally.FirstOffset}: " +
                $"{(_pcapNanoseconds ? "nsec" : "usec")} {tally.FirstA} of at most {(_pcapNanoseconds ? 999_999_999 : 999_999)}",
        };
    }

    /// <summary>
    /// The one place where a name read from the file (if_name, or the file's own name standing for its interface)
    /// enters a message. Messages reach a terminal: escaping such names (issue 12, section 1) belongs here.
    /// </summary>
    private static string Named(string name) => name;

    private void WarnIfNotDecoded(LinkType linkType, long offset, string interfaceName)
    {
        if (!PacketParser.Decodes(linkType))
        {
            _warnings.Add(new CaptureFileError(_path, offset,
                $"interface {Named(interfaceName)} has link type {linkType.Value}, which VethTrace does not decode: its packets are counted, not traced",
                CaptureProblem.Unsupported));
        }
    }

    // ---- buffer ----

    /// <summary>
    /// The most one read() asks for. The buffer stays at 1 MiB, but reading it a quarter at a time keeps the bytes
    /// the kernel just copied in the core's cache (1 MiB of L2 here) until the records are read from them: a whole
    /// 1 MiB read evicted its own first half, and each record's first touch was a miss (session 9).
    /// </summary>
    internal const int ReadLength = 256 * 1024;

    /// <summary>Makes <paramref name="count"/> bytes available from <see cref="_start"/>; false at end of stream.</summary>
    private bool Ensure(int count)
    {
        if (_end - _start >= count)
        {
            return true;
        }
        if (_mapped is not null)
        {
            return EnsureMapped(count);
        }
        if (_start > 0)
        {
            // Compact: the caller's previous record is invalidated here, as documented.
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _bufferFileOffset += _start;
            _end -= _start;
            _start = 0;
        }
        while (_end < count && !_endOfStream)
        {
            if (_end == _buffer.Length)
            {
                // Grow only as the data arrives, doubling: a length field that claims more than the file holds
                // (a hostile 16 MiB pcapng block in a 100-byte file) costs no more memory than the file's bytes.
                byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Min(count, _buffer.Length * 2));
                Buffer.BlockCopy(_buffer, 0, larger, 0, _end);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = larger;
            }
            int read = _stream.Read(_buffer, _end, Math.Min(_buffer.Length - _end, ReadLength));
            if (read == 0)
            {
                _endOfStream = true;
            }
            _end += read;
        }
        return _end >= count;
    }

    /// <summary>
    /// <see cref="Ensure"/> for a mapped file: maps the window again from the page of <see cref="_start"/>, as far as
    /// the file goes (its length asked again, so a file still being written is read on as with read(2)), at least
    /// <see cref="MapWindowLength"/> and <paramref name="count"/> bytes. Nothing is copied.
    /// </summary>
    private bool EnsureMapped(int count)
    {
        if (!ReadLease.Held(_mapped!))
        {
            // Another process opens the file to write or truncates it, and waits until the lease is given up: the bytes
            // not read yet are read from here on, so that a truncation ends the capture as an end of file would.
            StopMapping();
            return Ensure(count);
        }
        long from = _bufferFileOffset + _start;
        long fileLength = _mapped!.Length;
        long aligned = from & ~(long)(Environment.SystemPageSize - 1);
        long window = Math.Min(fileLength - aligned, Math.Max(MapWindowLength, from - aligned + count));
        if (aligned + window <= _bufferFileOffset + _end)
        {
            return false; // the file holds no more than is mapped
        }
        Unmap();
        // mmap(2) itself, not MemoryMappedFile: its view objects (a safe handle each) were garbage per window.
        nint address = Mmap(0, (nuint)window, ProtRead, MapShared, (int)_mapped.SafeFileHandle.DangerousGetHandle(), aligned);
        if (address == -1)
        {
            throw new IOException($"mmap failed (errno {Marshal.GetLastPInvokeError()})");
        }
        _windowAddress = address;
        _windowLength = (nuint)window;
        _bufferFileOffset = aligned;
        _start = (int)(from - aligned);
        _end = (int)window;
        return _end - _start >= count;
    }

    /// <summary>
    /// Goes on with read(2) from the first byte not read: the window's rest is copied into the read buffer, the stream
    /// is placed after the window, and the lease is given up (after the window is unmapped, so that the truncation it
    /// lets through finds no mapping).
    /// </summary>
    private void StopMapping()
    {
        FileStream file = _mapped!;
        int rest = _end - _start;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1 << 20, rest));
        if (rest > 0)
        {
            Bytes(_start, rest).CopyTo(buffer);
        }
        long next = _bufferFileOffset + _end;
        _bufferFileOffset += _start;
        Unmap();
        _mapped = null;
        _buffer = buffer;
        _start = 0;
        _end = rest;
        file.Seek(next, SeekOrigin.Begin);
        ReadLease.Release(file);
        MappingStopped = true;
    }

    /// <summary>Whether this reader was mapping its file and went on with read(2) because another process asked to write it.</summary>
    internal bool MappingStopped { get; private set; }

    /// <summary>Whether another process waits to write the mapped file (for the tests: the reader stops mapping at its next window).</summary>
    internal bool LeaseBreakPending => _mapped is not null && !ReadLease.Held(_mapped);

    /// <summary>
    /// A Linux read lease (fcntl(2) F_SETLEASE) on a mapped file: a process that opens the file for writing or truncates
    /// it waits until the lease is given up (at most /proc/sys/fs/lease-break-time, 45 s by default). Without it, a
    /// truncation under the mapping ends the reader's process with SIGBUS at its next read of the lost pages. The lease
    /// is taken only when no process has the file open for writing and this one may (the file's owner or
    /// CAP_LEASE); otherwise the file is read, not mapped. The break is seen by polling the lease at each window (no
    /// handler: the signal it sends is SIGURG, ignored by default, instead of SIGIO, which would end the process).
    /// </summary>
    private static class ReadLease
    {
        private const int FSetSig = 10, FSetLease = 1024, FGetLease = 1025, FReadLock = 0, FUnlock = 2, SigUrg = 23;

        public static bool Take(FileStream file)
        {
            if (!OperatingSystem.IsLinux())
            {
                return false;
            }
            int fd = (int)file.SafeFileHandle.DangerousGetHandle();
            if (Fcntl(fd, FSetSig, SigUrg) != 0)
            {
                return false;
            }
            // EAGAIN: the file is open for writing somewhere. That may be for an instant only: a child forked by a
            // process that had just written the file holds its descriptor until its exec closes it (the test suite's
            // threads spawn processes while others write captures). A writer that stays is still found after a few
            // milliseconds, and the file is then read.
            for (int attempt = 0; ; attempt++)
            {
                if (Fcntl(fd, FSetLease, FReadLock) == 0)
                {
                    return true;
                }
                if (Marshal.GetLastPInvokeError() != EAgain || attempt == LeaseAttempts - 1)
                {
                    return false;
                }
                Thread.Sleep(1);
            }
        }

        private const int EAgain = 11, LeaseAttempts = 5;

        /// <summary>False once a break is pending (F_GETLEASE then gives the lease type asked for: unlocked).</summary>
        public static bool Held(FileStream file) => Fcntl((int)file.SafeFileHandle.DangerousGetHandle(), FGetLease, 0) == FReadLock;

        public static void Release(FileStream file) => _ = Fcntl((int)file.SafeFileHandle.DangerousGetHandle(), FSetLease, FUnlock);

        [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
        private static extern int Fcntl(int fd, int command, int argument);
    }

    private void Unmap()
    {
        if (_windowAddress != 0)
        {
            _ = Munmap(_windowAddress, _windowLength);
            _windowAddress = 0;
            _windowLength = 0;
        }
    }

    private const int ProtRead = 1;
    private const int MapShared = 1;

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int Munmap(nint address, nuint length);

    private bool Fail(long offset, string message)
    {
        Error = new CaptureFileError(_path, offset, message);
        return false;
    }

    private ushort U16(ReadOnlySpan<byte> data) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(data) : BinaryPrimitives.ReadUInt16LittleEndian(data);

    private uint U32(ReadOnlySpan<byte> data) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data) : BinaryPrimitives.ReadUInt32LittleEndian(data);

    private static string StripCompressionSuffix(string name) =>
        name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? name[..^3] : name;

    /// <summary>A read-only stream that returns <paramref name="prefix"/>, then the rest of <paramref name="inner"/>.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream inner) : ForwardReadStream
    {
        private int _used;

        public override int Read(Span<byte> buffer)
        {
            if (_used < prefix.Length)
            {
                int n = Math.Min(buffer.Length, prefix.Length - _used);
                prefix.AsSpan(_used, n).CopyTo(buffer);
                _used += n;
                return n;
            }
            return inner.Read(buffer);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
