using System.Globalization;

namespace VethTrace.Cli;

/// <summary>
/// Durations on the command line: a number and a unit (ns, us or µs, ms, s), or a bare number of seconds, as
/// <c>timeout</c>, <c>sleep</c>, <c>tcpdump -G</c> and <c>ping -w</c> take them (12, 0.5).
/// </summary>
public static class Durations
{
    /// <summary>Returns null and the value, or a problem.</summary>
    public static string? TryParseNanoseconds(string text, out long nanoseconds)
    {
        nanoseconds = 0;
        text = text.Trim();
        (string unit, long scale) = text switch
        {
            _ when text.EndsWith("ns", StringComparison.Ordinal) => ("ns", 1L),
            _ when text.EndsWith("us", StringComparison.Ordinal) => ("us", 1_000L),
            _ when text.EndsWith("µs", StringComparison.Ordinal) => ("µs", 1_000L),
            _ when text.EndsWith("ms", StringComparison.Ordinal) => ("ms", 1_000_000L),
            _ when text.EndsWith('s') => ("s", 1_000_000_000L),
            _ => ("", 1_000_000_000L),
        };
        // NumberStyles.Float without AllowExponent's neighbours: no thousands separators, no currency, no hex; and
        // "Infinity" or "NaN" spelled out are refused below, as is anything beyond long's range in nanoseconds.
        if (!double.TryParse(text.AsSpan(0, text.Length - unit.Length), NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            || !double.IsFinite(value) || value * scale > long.MaxValue)
        {
            return "not a duration";
        }
        nanoseconds = (long)Math.Round(value * scale);
        return null;
    }

    /// <summary>A duration as the command line takes it, in the largest unit that keeps it whole: 1s, 500ms, 250us, 7ns.</summary>
    public static string Format(long nanoseconds) => nanoseconds switch
    {
        _ when nanoseconds % 1_000_000_000 == 0 => string.Create(CultureInfo.InvariantCulture, $"{nanoseconds / 1_000_000_000}s"),
        _ when nanoseconds % 1_000_000 == 0 => string.Create(CultureInfo.InvariantCulture, $"{nanoseconds / 1_000_000}ms"),
        _ when nanoseconds % 1_000 == 0 => string.Create(CultureInfo.InvariantCulture, $"{nanoseconds / 1_000}us"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{nanoseconds}ns"),
    };
}
