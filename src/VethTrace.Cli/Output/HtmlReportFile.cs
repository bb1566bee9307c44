using System.Text;
using VethTrace.Text;
using VethTrace.Tracing;

namespace VethTrace.Cli.Output;

/// <summary>
/// <c>--html FILE</c>: the file is created when the command starts, so a path that cannot be written is reported
/// before a capture runs for an hour, and the page (<see cref="ReplayHtml"/>) is written into it at the end.
/// </summary>
internal sealed class HtmlReportFile : IDisposable
{
    private readonly FileStream _stream;

    private HtmlReportFile(string path, FileStream stream)
    {
        Path = path;
        _stream = stream;
    }

    public string Path { get; }

    /// <summary>The file, created (emptied when it exists); null after one line on <paramref name="error"/> when it cannot be.</summary>
    public static HtmlReportFile? Create(string path, TextWriter error)
    {
        try
        {
            return new HtmlReportFile(path, new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {path}: {e.Message}"));
            return null;
        }
    }

    /// <summary>Writes the page; false after one line on <paramref name="error"/> when the write failed (a full disk).</summary>
    public bool Write(CorrelationReport report, IReadOnlyList<string> names, InterfaceRegistry interfaces, HtmlReportContext context, TextWriter error)
    {
        try
        {
            using (var writer = new StreamWriter(_stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), leaveOpen: true))
            {
                ReplayHtml.Write(writer, report, names, interfaces, context);
            }
            _stream.Flush(flushToDisk: false);
            return true;
        }
        catch (IOException e)
        {
            error.WriteLine(TerminalText.Escape($"vethtrace: cannot write {Path}: {e.Message}"));
            return false;
        }
    }

    /// <summary>Removes the file created for a report that was never made.</summary>
    public void Discard()
    {
        _stream.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left empty: nothing more to say than the error that stopped the report.
        }
    }

    public void Dispose() => _stream.Dispose();
}
