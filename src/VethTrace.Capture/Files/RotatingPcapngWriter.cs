using System.Globalization;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>
/// What <c>vethtrace record</c> writes through: a <see cref="PcapngWriter"/> that is flushed on a timer, starts a new
/// file by size or time (<see cref="RotationOptions"/>, as tcpdump's <c>-C</c>, <c>-G</c>, <c>-W</c>), and stops
/// cleanly when a write fails.
/// <list type="bullet">
/// <item>Every file is a whole pcapng: its own Section Header Block and every interface declared so far, with the
/// same ids, so each one reads alone (tshark, capinfos, <c>vethtrace replay</c>).</item>
/// <item>A background thread flushes every <see cref="RotationOptions.FlushInterval"/>, under the writer's lock, so
/// only whole blocks reach the file: killed at any moment between flushes, the file reads to its last flush. Between
/// flushes a packet costs a copy into the buffer, no system call and no allocation.</item>
/// <item>An I/O error (a full disk) is not thrown: the file is cut back to its last whole block and closed, the
/// error is kept in <see cref="Failure"/>, and every later packet is dropped (<see cref="WritePacket"/> returns
/// false) until the caller, which polls <see cref="Failure"/>, stops.</item>
/// </list>
/// Thread-safe: capture threads write concurrently.
/// </summary>
public sealed class RotatingPcapngWriter : IDisposable
{
    private readonly Lock _lock = new();
    private readonly string _path;
    private readonly RotationOptions _options;
    private readonly List<(string Name, string? Description, LinkType LinkType, int SnapLength)> _interfaces = [];
    private readonly Thread? _flusher;
    private readonly ManualResetEventSlim _closing = new();
    private PcapngWriter? _current;
    private string _currentPath;
    private int _index;
    private int _files;
    private long _packetsInFile;
    private long _rotateAtNs;
    private long _packets;
    private long _packetsInClosedFiles;
    private long _dropped;
    private IOException? _failure;
    private string? _failedPath;

    /// <summary>Creates the first file (an <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/> if it cannot be).</summary>
    public RotatingPcapngWriter(string path, RotationOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxFileBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(options.RotateEveryNs);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxFiles);
        _path = path;
        _options = options;
        _currentPath = FileName(path, 0, options);
        _current = PcapngWriter.Create(_currentPath);
        _files = 1;
        if (options.FlushInterval > TimeSpan.Zero)
        {
            _flusher = new Thread(FlushLoop) { IsBackground = true, Name = "vethtrace record flush" };
            _flusher.Start();
        }
    }

    /// <summary>The file being written now.</summary>
    public string CurrentPath
    {
        get
        {
            lock (_lock)
            {
                return _currentPath;
            }
        }
    }

    /// <summary>How many files were started (with a ring, more than are kept).</summary>
    public int FilesStarted
    {
        get
        {
            lock (_lock)
            {
                return _files;
            }
        }
    }

    /// <summary>Packets accepted by <see cref="WritePacket"/> (in a file, or still buffered; after a failure, some never reached it).</summary>
    public long PacketsWritten => Interlocked.Read(ref _packets);

    /// <summary>Packets in the files: those of closed files, and of the current one those already flushed. After <see cref="Dispose"/>, all that were kept.</summary>
    public long PacketsInFiles
    {
        get
        {
            lock (_lock)
            {
                return _packetsInClosedFiles + (_current?.PacketsInStream ?? 0);
            }
        }
    }

    /// <summary>Packets not written because the writer had failed or was closed.</summary>
    public long PacketsDropped => Interlocked.Read(ref _dropped);

    /// <summary>The write error that stopped the recording, or null.</summary>
    public IOException? Failure
    {
        get
        {
            lock (_lock)
            {
                return _failure;
            }
        }
    }

    /// <summary>The file the failed write was for.</summary>
    public string? FailedPath
    {
        get
        {
            lock (_lock)
            {
                return _failedPath;
            }
        }
    }

    /// <summary>
    /// The name of file <paramref name="index"/>: tcpdump's numbering with the number before the extension, so the
    /// files keep it. Without rotation, <paramref name="path"/> itself. With rotation and no ring, the first file is
    /// <paramref name="path"/> and the next ones <c>web1.pcapng</c>, <c>web2.pcapng</c>…; with a ring of N files,
    /// <c>web0.pcapng</c> to <c>web{N-1}.pcapng</c>, zero-padded to the width of N-1 so they sort.
    /// </summary>
    public static string FileName(string path, int index, RotationOptions options)
    {
        if (!options.Rotates || (index == 0 && options.MaxFiles == 0))
        {
            return path;
        }
        int width = options.MaxFiles == 0 ? 0 : (options.MaxFiles - 1).ToString(CultureInfo.InvariantCulture).Length;
        string number = index.ToString(new string('0', Math.Max(width, 1)), CultureInfo.InvariantCulture);
        string directory = Path.GetDirectoryName(path) ?? "";
        string name = Path.GetFileName(path);
        // The extension is what follows the last dot, unless that dot starts the name (".capture" has none).
        int dot = name.LastIndexOf('.');
        string numbered = dot > 0 ? name[..dot] + number + name[dot..] : name + number;
        return directory.Length == 0 ? numbered : Path.Combine(directory, numbered);
    }

    /// <summary>Declares an interface in the current file and in every file after it; returns its id.</summary>
    public int AddInterface(string name, string? description, LinkType linkType, int snapLength)
    {
        lock (_lock)
        {
            _interfaces.Add((name, description, linkType, snapLength));
            if (_current is not null)
            {
                try
                {
                    _current.AddInterface(name, description, linkType, snapLength);
                }
                catch (IOException e)
                {
                    Fail(e);
                }
            }
            return _interfaces.Count - 1;
        }
    }

    /// <summary>
    /// Writes one packet, into a new file first when the current one is full or old enough. False when it was dropped:
    /// the writer failed (see <see cref="Failure"/>) or was disposed. Argument errors throw as <see cref="PcapngWriter.WritePacket"/>.
    /// </summary>
    public bool WritePacket(int interfaceId, long timestampNs, ReadOnlySpan<byte> data, int originalLength, PacketDirection direction)
    {
        int blockLength = PcapngWriter.PacketBlockLength(data.Length, direction);
        lock (_lock)
        {
            if (_current is null)
            {
                _dropped++;
                return false;
            }
            try
            {
                if (_packetsInFile > 0 && ShouldRotate(blockLength, timestampNs))
                {
                    Rotate();
                }
                if (_packetsInFile == 0)
                {
                    _rotateAtNs = _options.RotateEveryNs > 0 ? timestampNs + _options.RotateEveryNs : long.MaxValue;
                }
                _current!.WritePacket(interfaceId, timestampNs, data, originalLength, direction);
                _packetsInFile++;
                _packets++;
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Fail(e as IOException ?? new IOException(e.Message, e));
                _dropped++;
                return false;
            }
        }
    }

    /// <summary>Hands the buffered blocks to the file now (the timer does this on its own).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (_current is null)
            {
                return;
            }
            try
            {
                _current.Flush();
            }
            catch (IOException e)
            {
                Fail(e);
            }
        }
    }

    /// <summary>Stops the timer, flushes and closes the file; a failure on the way lands in <see cref="Failure"/>.</summary>
    public void Dispose()
    {
        _closing.Set();
        _flusher?.Join();
        lock (_lock)
        {
            if (_current is not null)
            {
                PcapngWriter last = _current;
                _current = null;
                try
                {
                    Close(last);
                }
                catch (IOException e)
                {
                    Fail(e);
                }
            }
        }
    }

    private bool ShouldRotate(int blockLength, long timestampNs) =>
        (_options.MaxFileBytes > 0 && _current!.Length + blockLength > _options.MaxFileBytes)
        || timestampNs >= _rotateAtNs;

    /// <summary>Closes the current file (its last blocks flushed) and opens the next with the section and every interface.</summary>
    private void Rotate()
    {
        PcapngWriter full = _current!;
        _current = null;
        Close(full);
        _index = _options.MaxFiles > 0 ? (_index + 1) % _options.MaxFiles : _index + 1;
        _currentPath = FileName(_path, _index, _options);
        PcapngWriter next = PcapngWriter.Create(_currentPath);
        _current = next;
        _files++;
        _packetsInFile = 0;
        foreach (var (name, description, linkType, snapLength) in _interfaces)
        {
            next.AddInterface(name, description, linkType, snapLength);
        }
    }

    /// <summary>Keeps the first error and closes the file, which the writer has already cut back to its last whole block.</summary>
    private void Fail(IOException e)
    {
        if (_failure is null)
        {
            _failure = e;
            _failedPath = _currentPath;
        }
        if (_current is not null)
        {
            PcapngWriter failed = _current;
            _current = null;
            try
            {
                Close(failed);
            }
            catch (IOException)
            {
                // Closing after the failure: nothing more to keep.
            }
        }
    }

    /// <summary>Flushes and closes a file, and counts its packets, whether or not the last flush failed.</summary>
    private void Close(PcapngWriter writer)
    {
        try
        {
            writer.Dispose();
        }
        finally
        {
            _packetsInClosedFiles += writer.PacketsInStream;
        }
    }

    private void FlushLoop()
    {
        while (!_closing.Wait(_options.FlushInterval))
        {
            Flush();
        }
    }
}
