using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace VethTrace.Capture.Files;

/// <summary>
/// The buffer the capture writers lay their records out in: a record is composed in place
/// (<see cref="Reserve"/>, then <see cref="Commit"/>) and the buffer goes to the stream only when the next
/// record would not fit, or on <see cref="Flush"/>. This is the writers' only buffering, so the stream
/// under it should be unbuffered (a <see cref="FileStream"/> with bufferSize 0): one copy per packet,
/// one write system call per MiB, and no allocation after construction. Not thread-safe: the writers lock.
/// </summary>
internal sealed class CaptureOutput : IDisposable
{
    /// <summary>Holds at least one largest packet block (256 KiB of data plus headers) with room to spare.</summary>
    public const int BufferLength = 1 << 20;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    // Rented, as the reader's: a 1 MiB array would land on the large-object heap, and a program that records
    // several files in turn would otherwise pay a full collection now and then.
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferLength);
    private int _used;

    public CaptureOutput(Stream stream, bool leaveOpen)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            throw new ArgumentException("the stream is not writable", nameof(stream));
        }
        _stream = stream;
        _leaveOpen = leaveOpen;
    }

    public bool IsDisposed => _buffer.Length == 0;

    /// <summary>Everything committed so far, in the stream or still in the buffer.</summary>
    public long Length { get; private set; }

    /// <summary>
    /// <paramref name="length"/> bytes to write a record into; their content is undefined, so the caller
    /// writes every byte, padding included. Nothing is written until <see cref="Commit"/>.
    /// </summary>
    public Span<byte> Reserve(int length)
    {
        if (IsDisposed)
        {
            ThrowDisposed();
        }
        if (_buffer.Length - _used < length)
        {
            WriteBuffer();
        }
        return _buffer.AsSpan(_used, length);
    }

    /// <summary>Keeps the <paramref name="length"/> bytes last reserved.</summary>
    public void Commit(int length)
    {
        _used += length;
        Length += length;
    }

    /// <summary>Hands the buffered records to the stream and flushes it (no fsync: that is the caller's call).</summary>
    public void Flush()
    {
        if (IsDisposed)
        {
            ThrowDisposed();
        }
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
            WriteBuffer();
            _stream.Flush();
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
        if (_used > 0)
        {
            _stream.Write(_buffer, 0, _used);
            _used = 0;
        }
    }

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException(nameof(CaptureOutput), "the capture writer is disposed");

    /// <summary>
    /// A file for a writer: created or truncated, readable by others while it grows (so <c>tshark -r</c> can
    /// look at a running recording), and unbuffered, because <see cref="CaptureOutput"/> buffers.
    /// </summary>
    public static FileStream CreateFile(string path) =>
        new(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0);
}
