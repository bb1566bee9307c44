using System.Runtime.CompilerServices;
using System.Text.Json;

namespace VethTrace.Capture.Docker;

/// <summary>
/// Follows the Engine API's <c>GET /events</c> stream, filtered on the daemon to <see cref="DockerEvent.Filters"/>,
/// over a <see cref="DockerClient"/>'s unix socket. When the stream breaks (the daemon stops or restarts) it reports
/// <see cref="DockerEventKind.StreamLost"/> once, retries with a doubling delay, and on success reports
/// <see cref="DockerEventKind.StreamRestored"/> and asks again from the last event's time (<c>since</c>), dropping the
/// events it already gave. Memory is bounded: one event of at most <see cref="MaxEventBytes"/> is buffered at a time.
/// </summary>
public sealed class DockerEventStream
{
    /// <summary>A container event is a few hundred bytes (its labels included); a longer line is not an event.</summary>
    public const int MaxEventBytes = 1024 * 1024;

    private const int InitialBufferBytes = 16 * 1024;

    private readonly DockerClient _client;
    private readonly TimeSpan _firstRetry;
    private readonly TimeSpan _maxRetry;
    private long _malformed;
    private long _reconnections;

    /// <param name="firstRetry">The delay before the first reconnection attempt (default 100 ms), doubled up to <paramref name="maxRetry"/> (default 2 s).</param>
    public DockerEventStream(DockerClient client, TimeSpan? firstRetry = null, TimeSpan? maxRetry = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        _client = client;
        _firstRetry = firstRetry ?? TimeSpan.FromMilliseconds(100);
        _maxRetry = maxRetry ?? TimeSpan.FromSeconds(2);
    }

    /// <summary>Lines that were not an event object (bad JSON, too long, no Type/Action): counted and skipped.</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Times the stream was opened again after it broke.</summary>
    public long Reconnections => Interlocked.Read(ref _reconnections);

    /// <summary>
    /// The events, until <paramref name="cancellationToken"/> is cancelled (then the enumeration ends without an
    /// exception). A daemon that cannot be reached at the start is reported as StreamLost and retried, like a break.
    /// </summary>
    /// <param name="sinceTimeNano">
    /// Replay the daemon's recent events from this time (Unix nanoseconds) first: take the time, list the containers,
    /// then read from that time, and no container starts unseen in between. 0: from when the stream opens.
    /// </param>
    public async IAsyncEnumerable<DockerEvent> ReadAsync(long sinceTimeNano = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // The events already given at the watermark's nanosecond: a reconnection with since=watermark repeats them.
        var atWatermark = new HashSet<(string Action, string? Id, string? Other)>();
        long watermark = sinceTimeNano;
        bool replayFirst = sinceTimeNano > 0;
        bool lost = false, everOpened = false;
        TimeSpan retry = _firstRetry;
        while (!cancellationToken.IsCancellationRequested)
        {
            string path = $"events?filters={Uri.EscapeDataString(DockerEvent.Filters)}" + (watermark > 0 ? $"&since={DockerEvent.Since(watermark)}" : string.Empty);
            // Taken before the request: every event the new stream carries is stamped after it.
            long attemptedAt = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
            (Stream? stream, string? error) = await TryOpenAsync(path, cancellationToken).ConfigureAwait(false);
            if (stream is null)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    yield break;
                }
                if (!lost)
                {
                    lost = true;
                    yield return Marker(DockerEventKind.StreamLost, error);
                }
                if (!await DelayAsync(retry, cancellationToken).ConfigureAwait(false))
                {
                    yield break;
                }
                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, _maxRetry.Ticks));
                continue;
            }
            if (!everOpened)
            {
                everOpened = true;
                // Events from now on; a break before the first event then asks from this moment.
                if (!replayFirst)
                {
                    watermark = attemptedAt;
                }
            }
            if (lost)
            {
                lost = false;
                Interlocked.Increment(ref _reconnections);
                yield return Marker(DockerEventKind.StreamRestored, null);
            }
            retry = _firstRetry;
            var lines = new LineReader(stream);
            try
            {
                while (true)
                {
                    (LineStatus status, ReadOnlyMemory<byte> line, string? problem) = await lines.NextAsync(cancellationToken).ConfigureAwait(false);
                    if (status == LineStatus.Cancelled)
                    {
                        yield break;
                    }
                    if (status == LineStatus.Ended)
                    {
                        lost = true;
                        yield return Marker(DockerEventKind.StreamLost, problem);
                        break;
                    }
                    if (status == LineStatus.TooLong)
                    {
                        Interlocked.Increment(ref _malformed);
                        lost = true;
                        yield return Marker(DockerEventKind.StreamLost, problem);
                        break;
                    }
                    if (line.Span.Trim((byte)' ').Length == 0)
                    {
                        continue;
                    }
                    DockerEvent? parsed = Parse(line);
                    if (parsed is null)
                    {
                        Interlocked.Increment(ref _malformed);
                        continue;
                    }
                    var key = (parsed.Action, parsed.ContainerId, parsed.NetworkId);
                    if (parsed.TimeNano < watermark || (parsed.TimeNano == watermark && !atWatermark.Add(key)))
                    {
                        continue;
                    }
                    if (parsed.TimeNano > watermark)
                    {
                        watermark = parsed.TimeNano;
                        atWatermark.Clear();
                        atWatermark.Add(key);
                    }
                    yield return parsed;
                }
            }
            finally
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
            if (!await DelayAsync(retry, cancellationToken).ConfigureAwait(false))
            {
                yield break;
            }
        }
    }

    private DockerEvent? Parse(ReadOnlyMemory<byte> line)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(line);
            return DockerEvent.TryParse(document.RootElement, out DockerEvent? parsed) ? parsed : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private async Task<(Stream? Stream, string? Error)> TryOpenAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            return (await _client.OpenStreamAsync(path, cancellationToken).ConfigureAwait(false), null);
        }
        catch (DockerException exception)
        {
            return (null, exception.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return (null, null);
        }
    }

    private static async Task<bool> DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static DockerEvent Marker(DockerEventKind kind, string? detail) => new(kind, kind.ToString(), null, null, null, null, null, 0, detail);

    private enum LineStatus : byte
    {
        Line,
        Ended,
        TooLong,
        Cancelled,
    }

    /// <summary>Splits the response body on '\n' (the daemon's JSON encoder ends every event with one), in one reused buffer.</summary>
    private sealed class LineReader(Stream stream)
    {
        private byte[] _buffer = new byte[InitialBufferBytes];
        private int _start;
        private int _end;

        /// <summary>The next line, valid until the next call.</summary>
        public async Task<(LineStatus Status, ReadOnlyMemory<byte> Line, string? Problem)> NextAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                int newline = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
                if (newline >= 0)
                {
                    var line = new ReadOnlyMemory<byte>(_buffer, _start, newline);
                    _start += newline + 1;
                    return (LineStatus.Line, line, null);
                }
                if (_start > 0)
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                if (_end == _buffer.Length)
                {
                    if (_buffer.Length >= MaxEventBytes)
                    {
                        return (LineStatus.TooLong, default, $"the Docker event stream sent a line longer than {MaxEventBytes} bytes");
                    }
                    Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxEventBytes));
                }
                int read;
                try
                {
                    read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return (LineStatus.Cancelled, default, null);
                }
                catch (Exception exception) when (exception is IOException or HttpRequestException or ObjectDisposedException)
                {
                    return (LineStatus.Ended, default, $"the Docker event stream broke: {exception.Message.ReplaceLineEndings(" ")}");
                }
                if (read == 0)
                {
                    return (LineStatus.Ended, default, "the Docker daemon closed the event stream");
                }
                _end += read;
            }
        }
    }
}
