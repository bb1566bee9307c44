using System.Buffers;
using System.Globalization;
using System.Text;

namespace VethTrace.Text;

/// <summary>
/// Makes text from outside VethTrace safe to print: pcapng if_name and if_description, interface names from netlink,
/// names from the Docker API, file paths and the error messages that carry them. A capture is input like any other,
/// and a name holding <c>ESC[2J</c> or <c>ESC]0;title BEL</c> would clear the screen or retitle the window of whoever
/// reads it, so every such string is escaped once, where it is printed, as tcpdump (<c>fn_print_str</c>) and
/// Wireshark (<c>format_text</c>) do.
/// <para>
/// What stays as it is: printable ASCII, and printable non-ASCII letters, digits, symbols, marks and spaces (a name
/// in Cyrillic or with an accent is still readable). What is shown as a visible escape, never sent raw:
/// <list type="bullet">
/// <item>C0 controls and DEL: <c>\x1b</c>, <c>\x7f</c> (lower-case hex, as tcpdump and Wireshark write bytes);</item>
/// <item>the backslash itself: <c>\\</c>, so an escape in the output always means an escaped character, never a name
/// that merely looks like one;</item>
/// <item>bytes that were not valid UTF-8: <c>\xff</c> (<see cref="LosslessUtf8"/> keeps them as U+DC80–U+DCFF);</item>
/// <item>other code points a terminal may act on or that disguise the text around them: C1 controls (U+0080–U+009F;
/// U+009B is CSI to some terminals), Unicode format characters (bidi overrides and isolates such as U+202E, zero-width
/// characters, the BOM, soft hyphen), the line and paragraph separators, unassigned code points and stray surrogates:
/// <c>\u202e</c>, or <c>\U000e0041</c> beyond the BMP.</item>
/// </list>
/// Nothing is dropped or replaced, so two different names never print alike. Markup (Spectre.Console's <c>[red]</c>
/// and <c>:rocket:</c>) is another route, closed where it opens: the live view never parses a name as markup.
/// </para>
/// </summary>
public static class TerminalText
{
    /// <summary>Printable ASCII but the backslash: what passes through unchanged on the fast path.</summary>
    private static readonly SearchValues<char> PlainAscii = SearchValues.Create(
        " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    /// <summary>
    /// The text as it may be printed on a terminal (see the class remarks). Returns <paramref name="text"/> itself,
    /// with no allocation, when nothing needs escaping, which is the common case.
    /// </summary>
    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int first = IndexOfUnsafe(text);
        if (first < 0)
        {
            return text;
        }
        var escaped = new StringBuilder(text.Length + 16);
        escaped.Append(text, 0, first);
        ReadOnlySpan<char> rest = text.AsSpan(first);
        while (!rest.IsEmpty)
        {
            int plain = rest.IndexOfAnyExcept(PlainAscii);
            if (plain < 0)
            {
                escaped.Append(rest);
                break;
            }
            escaped.Append(rest[..plain]);
            rest = rest[plain..];
            int length = Next(rest, out Rune rune, out bool lone);
            if (lone)
            {
                // A stray surrogate: LosslessUtf8 puts an invalid byte b there as U+DC00 + b; show the byte.
                char surrogate = rest[0];
                if (surrogate is >= (char)0xDC80 and <= (char)0xDCFF)
                {
                    escaped.Append(CultureInfo.InvariantCulture, $"\\x{surrogate - 0xDC00:x2}");
                }
                else
                {
                    escaped.Append(CultureInfo.InvariantCulture, $"\\u{(int)surrogate:x4}");
                }
            }
            else if (rune.Value == '\\')
            {
                escaped.Append(@"\\");
            }
            else if (rune.Value < 0x80)
            {
                escaped.Append(CultureInfo.InvariantCulture, $"\\x{rune.Value:x2}");
            }
            else if (!IsSafe(rune))
            {
                if (rune.IsBmp)
                {
                    escaped.Append(CultureInfo.InvariantCulture, $"\\u{rune.Value:x4}");
                }
                else
                {
                    escaped.Append(CultureInfo.InvariantCulture, $"\\U{rune.Value:x8}");
                }
            }
            else
            {
                escaped.Append(rest[..length]);
            }
            rest = rest[length..];
        }
        return escaped.ToString();
    }

    /// <summary>Each of <paramref name="texts"/> escaped, for a list of names escaped once before a report is laid out.</summary>
    public static string[] EscapeAll(IEnumerable<string> texts) => [.. texts.Select(Escape)];

    /// <summary>
    /// A line of JSON written by System.Text.Json, with the characters it leaves raw but a terminal would act on
    /// written as JSON escapes too. System.Text.Json escapes C0, DEL and C1 controls, and replaces invalid UTF-16 by
    /// U+FFFD, but passes Unicode format characters (the bidi override U+202E, zero-width characters) through: they
    /// become <c>\u202e</c> here, which every JSON reader decodes to the same string. They occur only inside JSON
    /// strings, so the result is the same JSON value.
    /// </summary>
    public static string EscapeJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        int first = IndexOfUnsafe(json, jsonSyntax: true);
        if (first < 0)
        {
            return json;
        }
        var escaped = new StringBuilder(json.Length + 16);
        escaped.Append(json, 0, first);
        ReadOnlySpan<char> rest = json.AsSpan(first);
        while (!rest.IsEmpty)
        {
            int length = Next(rest, out Rune rune, out bool lone);
            if (lone || !IsSafe(rune) && rune.Value is not ('\\' or '\n'))
            {
                // JSON's \u escapes are UTF-16 code units: a code point beyond the BMP is written as its surrogate pair.
                foreach (char unit in rest[..length])
                {
                    escaped.Append(CultureInfo.InvariantCulture, $"\\u{(int)unit:x4}");
                }
            }
            else
            {
                escaped.Append(rest[..length]);
            }
            rest = rest[length..];
        }
        return escaped.ToString();
    }

    /// <summary>Whether <see cref="Escape"/> would change <paramref name="text"/>.</summary>
    public static bool NeedsEscaping(string text) => IndexOfUnsafe(text ?? throw new ArgumentNullException(nameof(text))) >= 0;

    /// <summary>
    /// Printable ASCII other than the backslash, or a non-ASCII code point that only draws a glyph: letters, marks,
    /// numbers, punctuation, symbols, spaces, private-use characters (icon fonts). Not controls, format characters,
    /// separators of lines and paragraphs, surrogates or unassigned code points.
    /// </summary>
    private static bool IsSafe(Rune rune)
    {
        if (rune.Value < 0x80)
        {
            return rune.Value is >= 0x20 and < 0x7F and not '\\';
        }
        return Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
            or UnicodeCategory.Surrogate or UnicodeCategory.OtherNotAssigned);
    }

    /// <summary>The next code point of <paramref name="text"/> and its length in chars; a stray surrogate is one char.</summary>
    private static int Next(ReadOnlySpan<char> text, out Rune rune, out bool lone)
    {
        lone = Rune.DecodeFromUtf16(text, out rune, out int length) != OperationStatus.Done;
        return lone ? 1 : length;
    }

    /// <summary>
    /// Where the first character to escape is, or -1. ASCII is checked a vector at a time; only non-ASCII text is
    /// looked at code point by code point. With <paramref name="jsonSyntax"/> the backslash and the line end are
    /// JSON's own and pass.
    /// </summary>
    private static int IndexOfUnsafe(ReadOnlySpan<char> text, bool jsonSyntax = false)
    {
        int offset = 0;
        while (true)
        {
            int at = text[offset..].IndexOfAnyExcept(PlainAscii);
            if (at < 0)
            {
                return -1;
            }
            at += offset;
            int length = Next(text[at..], out Rune rune, out bool lone);
            if (lone || !IsSafe(rune) && !(jsonSyntax && rune.Value is '\\' or '\n'))
            {
                return at;
            }
            offset = at + length;
        }
    }
}
