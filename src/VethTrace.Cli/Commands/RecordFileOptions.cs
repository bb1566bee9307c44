using System.CommandLine;
using System.Globalization;
using VethTrace.Capture.Files;

namespace VethTrace.Cli.Commands;

/// <summary>
/// <c>record</c>'s options for its files, as tcpdump names them: <c>-C</c> (size), <c>-W</c> (a ring of files) and
/// <c>-G</c> (time), with long names. Built and read here, so the command tree only adds them.
/// </summary>
public sealed class RecordFileOptions
{
    public Option<string?> FileSize { get; } = new("--file-size", "-C")
    {
        Description = "Start a new file before one would grow past SIZE: millions of bytes as tcpdump's -C (-C 100 is 100,000,000 bytes), " +
            "or with a suffix k, m or g for KiB, MiB or GiB (-C 512k). Files are numbered before the extension: web.pcapng, web1.pcapng, web2.pcapng…",
        HelpName = "SIZE",
    };

    public Option<int?> FileCount { get; } = new("--file-count", "-W")
    {
        Description = "With -C or -G: keep COUNT files, web0.pcapng to web{COUNT-1}.pcapng (zero-padded), overwriting the oldest: a ring, as tcpdump's -W with -C",
        HelpName = "COUNT",
    };

    public Option<int?> RotateSeconds { get; } = new("--rotate-seconds", "-G")
    {
        Description = "Start a new file every SECONDS (of packet time, from the first packet of the file; no packets, no new file), numbered as with -C",
        HelpName = "SECONDS",
    };

    public RecordFileOptions()
    {
        FileSize.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } text && !TryParseSize(text, out _))
            {
                result.AddError($"--file-size expects a positive size in millions of bytes (100), or with a suffix k, m or g (512k, 64m); got '{text}'");
            }
        });
        FileCount.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is { } count && count < 1)
            {
                result.AddError($"--file-count must be at least 1; got {count}");
            }
        });
        RotateSeconds.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is { } seconds && seconds < 1)
            {
                result.AddError($"--rotate-seconds must be at least 1; got {seconds}");
            }
        });
    }

    /// <summary>Adds the options to <paramref name="command"/>, and the check that -W comes with -C or -G.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(FileSize);
        command.Options.Add(FileCount);
        command.Options.Add(RotateSeconds);
        command.Validators.Add(result =>
        {
            if (result.GetValue(FileCount) is not null && result.GetValue(FileSize) is null && result.GetValue(RotateSeconds) is null)
            {
                result.AddError("--file-count (-W) needs --file-size (-C) or --rotate-seconds (-G): without rotation there is one file");
            }
        });
    }

    /// <summary>The rotation the command line asks for; the timed flush is always on.</summary>
    public RotationOptions Read(ParseResult parseResult)
    {
        long bytes = 0;
        if (parseResult.GetValue(FileSize) is { } size)
        {
            TryParseSize(size, out bytes);
        }
        return new RotationOptions
        {
            MaxFileBytes = bytes,
            MaxFiles = parseResult.GetValue(FileCount) ?? 0,
            RotateEveryNs = (parseResult.GetValue(RotateSeconds) ?? 0) * 1_000_000_000L,
        };
    }

    /// <summary>
    /// A file size as tcpdump reads -C: a whole number of millions of bytes (1,000,000, not 1,048,576), or with a
    /// suffix k, m or g (either case) a number of KiB, MiB or GiB, as tcpdump 4.99.5 and later accept.
    /// </summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        text = text.Trim();
        if (text.Length == 0)
        {
            return false;
        }
        long unit = char.ToLowerInvariant(text[^1]) switch
        {
            'k' => 1L << 10,
            'm' => 1L << 20,
            'g' => 1L << 30,
            _ => 0,
        };
        string digits = unit == 0 ? text : text[..^1];
        if (unit == 0)
        {
            unit = 1_000_000;
        }
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long count) || count <= 0 || count > long.MaxValue / unit)
        {
            return false;
        }
        bytes = count * unit;
        return true;
    }
}
