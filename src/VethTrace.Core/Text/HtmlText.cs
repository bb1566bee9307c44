using System.Text;

namespace VethTrace.Text;

/// <summary>
/// Makes text from outside VethTrace (interface names, container names, descriptions, file paths) safe in an HTML
/// page, in its text, in a quoted attribute and in inline SVG alike. First <see cref="TerminalText.Escape"/>, so a
/// name reads exactly as the text report prints it (<c>\x1b</c>, <c>\u202e</c>, <c>\xff</c>; no control character,
/// bidi override, U+2028/U+2029 or stray surrogate is left), then the five characters that mean something to an
/// HTML or XML parser become entities. Nothing else is needed for text or a double-quoted attribute value: a name can
/// neither open a tag nor close the attribute, and the page holds no script for it to reach.
/// </summary>
public static class HtmlText
{
    public static string Escape(string text) => EscapeMarkup(TerminalText.Escape(text));

    /// <summary>
    /// Only the second step of <see cref="Escape"/>: for text already in its shown form (<see cref="TerminalText.Escape"/>
    /// applied once, then perhaps cut to fit a box), so that it is not escaped for the terminal twice.
    /// </summary>
    public static string EscapeMarkup(string shown)
    {
        ArgumentNullException.ThrowIfNull(shown);
        if (shown.AsSpan().IndexOfAny("&<>\"'") < 0)
        {
            return shown;
        }
        var escaped = new StringBuilder(shown.Length + 16);
        foreach (char c in shown)
        {
            _ = c switch
            {
                '&' => escaped.Append("&amp;"),
                '<' => escaped.Append("&lt;"),
                '>' => escaped.Append("&gt;"),
                '"' => escaped.Append("&quot;"),
                '\'' => escaped.Append("&#39;"),
                _ => escaped.Append(c),
            };
        }
        return escaped.ToString();
    }
}
