using System.Globalization;
using System.Text;

namespace VethTrace.Tests.Text;

/// <summary>What a terminal must never be sent: the check every hostile-name test ends with.</summary>
internal static class TerminalAssert
{
    /// <summary>
    /// No C0 control but the line feed (so no ESC, BEL, CR or NUL), no DEL, no C1 control, no Unicode format character
    /// (the bidi override U+202E among them), no stray surrogate (a byte that was not UTF-8), checked on the UTF-8
    /// bytes as a terminal would receive them and on the characters.
    /// </summary>
    public static void Safe(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            Assert.False(b < 0x20 && b != (byte)'\n' || b == 0x7F,
                $"byte 0x{b:x2} at {i} reaches the terminal raw: {Around(text, Encoding.UTF8.GetCharCount(bytes, 0, i))}");
        }
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            UnicodeCategory category = char.IsSurrogate(c) && !(i + 1 < text.Length && char.IsSurrogatePair(c, text[i + 1]))
                ? UnicodeCategory.Surrogate
                : CharUnicodeInfo.GetUnicodeCategory(text, i);
            bool control = category == UnicodeCategory.Control && c != '\n';
            Assert.False(control || category is UnicodeCategory.Format or UnicodeCategory.Surrogate,
                $"U+{(int)c:X4} ({category}) at {i} reaches the terminal raw: {Around(text, i)}");
            if (char.IsHighSurrogate(c) && category != UnicodeCategory.Surrogate)
            {
                i++;
            }
        }
    }

    private static string Around(string text, int index)
    {
        int start = Math.Max(0, index - 30);
        return text[start..Math.Min(text.Length, index + 30)].Replace("\u001b", "<ESC>", StringComparison.Ordinal);
    }
}
