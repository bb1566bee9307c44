using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace VethTrace.Capture.Files;

/// <summary>
/// The length of the block (pcapng) or record (pcap) that starts <paramref name="block"/>, found at
/// <paramref name="fileOffset"/> of the file, and whether it holds a packet: how <see cref="CaptureOutput"/> finds
/// the last whole block after a write that failed part-way. <paramref name="block"/> holds at least that block, as
/// it was committed.
/// </summary>
internal delegate int BlockLength(ReadOnlySpan<byte> block, long fileOffset, out bool packet);

/// <summary>
/// The buffer the capture writers lay their records out in: a record is composed in place
/// (<see cref="Reserve"/>, then <see cref="Commit"/>) and the buffer goes to the stream only when the next
/// record would not fit, or on <see cref="Flush"/>. This is the writers' only buffering, so the stream
/// under it should be unbuffered (a <see cref="FileStream"/> with bufferSize 0): one copy per packet,
/// one write system call per MiB or per flush, and no allocation after construction. Not thread-safe: the writers
/// lock, and since a record is reserved and committed under one lock, the buffer holds whole records whenever the
/// lock is free; that is all a flush (timed, or at a signal) hands to the stream, so the file never ends in a
/// torn block at a flush.
/// <para>
/// A write that fails (a full disk, an I/O error) leaves the output failed: the file is cut back to the last whole
/// block that reached it (a write to a full disk stores what fits, up to a page boundary, before ENOSPC), every
/// later <see cref="Reserve"/> or <see cref="Flush"/> throws the same kind of <see cref="IOException"/>, and
/// <see cref="Dispose"/> only closes the stream.
/// </para>
/// </summary>
internal sealed class CaptureOutput : IDisposable
{
    /// <summary>Holds at least one largest packet block (256 KiB of data plus headers) with room to spare.</summary>
    public const int BufferLength = 1 << 20;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly BlockLength _blockLength;
    // Rented, as the reader's: a 1 MiB array would land on the large-object heap, and a program that records
    // several files in turn would otherwise pay a full collection now and then.
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferLength);
    private int _used;
    private long _packetsBuffered;
    private IOException? _failure;

    public CaptureOutput(Stream stream, bool leaveOpen, BlockLength blockLength)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(blockLength);
        if (!stream.CanWrite)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            throw new ArgumentException("the stream is not writable", nameof(stream));
        }
        _stream = stream;
        _leaveOpen = leaveOpen;
        _blockLength = blockLength;
    }

    public bool IsDisposed => _buffer.Length == 0;

    /// <summary>Everything committed so far, in the stream or still in the buffer.</summary>
    public long Length { get; private set; }

    /// <summary>What the stream holds: the whole blocks handed to it (after a failed write, those that reached it).</summary>
    public long Written { get; private set; }

    /// <summary>The packets among the blocks in <see cref="Written"/>.</summary>
    public long PacketsWritten { get; private set; }

    /// <summary>The error that failed a write, or null.</summary>
    public IOException? Failure => _failure;

    /// <summary>
    /// <paramref name="length"/> bytes to write a record into; their content is undefined, so the caller
    /// writes every byte, padding included. Nothing is written until <see cref="Commit"/>.
    /// </summary>
    public Span<byte> Reserve(int length)
    {
        ThrowIfUnusable();
        if (_buffer.Length - _used < length)
        {
            WriteBuffer();
        }
        return _buffer.AsSpan(_used, length);
    }

    /// <summary>Keeps the <paramref name="length"/> bytes last reserved; <paramref name="packet"/> when they are a packet's block.</summary>
    public void Commit(int length, bool packet = false)
    {
        _used += length;
        Length += length;
        if (packet)
        {
            _packetsBuffered++;
        }
    }

    /// <summary>Hands the buffered records to the stream and flushes it (no fsync: that is the caller's call).</summary>
    public void Flush()
    {
        ThrowIfUnusable();
        WriteBuffer();
        _stream.Flush();
    }

    public void Dispose()
    {
        if (IsDisposed)
        {
            return;
        }
        try
        {
            if (_failure is null)
            {
                WriteBuffer();
                _stream.Flush();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            _used = 0;
            if (!_leaveOpen)
            {
                _stream.Dispose();
            }
        }
    }

    private void WriteBuffer()
    {
        if (_used == 0)
        {
            return;
        }
        try
        {
            _stream.Write(_buffer, 0, _used);
        }
        catch (IOException e)
        {
            _failure = e;
            KeepWholeBlocks();
            throw;
        }
        Written += _used;
        PacketsWritten += _packetsBuffered;
        _used = 0;
        _packetsBuffered = 0;
    }

    /// <summary>
    /// After a failed write: cuts the stream back to the last whole block of the buffer that reached it, so a reader
    /// (ours, tshark, tcpdump) reads the file to that block and finds no torn one after it.
    /// </summary>
    private void KeepWholeBlocks()
    {
        if (!_stream.CanSeek)
        {
            return;
        }
        try
        {
            long landed = Math.Clamp(_stream.Length - Written, 0, _used);
            int whole = 0;
            long packets = 0;
            while (whole < landed)
            {
                int length = _blockLength(_buffer.AsSpan(whole, _used - whole), Written + whole, out bool packet);
                if (length <= 0 || whole + (long)length > landed)
                {
                    break;
                }
                whole += length;
                packets += packet ? 1 : 0;
            }
            _stream.SetLength(Written + whole);
            Written += whole;
            PacketsWritten += packets;
        }
        catch (IOException)
        {
            // Truncating frees space and does not fail on a full disk; if it fails anyway the file stays as the
            // kernel left it, and the reader reports the torn block at its end.
        }
    }

    private void ThrowIfUnusable()
    {
        if (IsDisposed)
        {
            ThrowDisposed();
        }
        if (_failure is not null)
        {
            ThrowFailed(_failure);
        }
    }

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException(nameof(CaptureOutput), "the capture writer is disposed");

    [DoesNotReturn]
    private static void ThrowFailed(IOException failure) => throw new IOException($"an earlier write failed: {failure.Message}", failure);

    /// <summary>
    /// A file for a writer: created or truncated, readable by others while it grows (so <c>tshark -r</c> can
    /// look at a running recording), and unbuffered, because <see cref="CaptureOutput"/> buffers.
    /// </summary>
    public static FileStream CreateFile(string path) =>
        new(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0);
}
