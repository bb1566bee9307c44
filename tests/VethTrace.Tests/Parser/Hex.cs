using System.Text;

namespace VethTrace.Tests.Parser;

/// <summary>Hex test vectors: parse them with any whitespace, and dump frames the way <c>tcpdump -X</c> does.</summary>
internal static class Hex
{
    /// <summary>Parses hex digits, ignoring spaces, tabs and line breaks, so vectors can be laid out by field.</summary>
    public static byte[] Parse(string hex)
    {
        var digits = new StringBuilder(hex.Length);
        foreach (char c in hex)
        {
            if (!char.IsWhiteSpace(c))
            {
                digits.Append(c);
            }
        }
        return Convert.FromHexString(digits.ToString());
    }

    /// <summary>
    /// Formats bytes like <c>tcpdump -X</c>: offset, eight 16-bit groups, then the printable ASCII.
    /// Used in failure messages so a failing frame can be read (and pasted into a test).
    /// </summary>
    public static string Dump(ReadOnlySpan<byte> data)
    {
        var text = new StringBuilder();
        for (int line = 0; line < data.Length; line += 16)
        {
            ReadOnlySpan<byte> row = data[line..Math.Min(line + 16, data.Length)];
            text.Append("0x").Append(line.ToString("x4", System.Globalization.CultureInfo.InvariantCulture)).Append(": ");
            for (int i = 0; i < 16; i++)
            {
                if (i % 2 == 0)
                {
                    text.Append(' ');
                }
                text.Append(i < row.Length ? row[i].ToString("x2", System.Globalization.CultureInfo.InvariantCulture) : "  ");
            }
            text.Append("  ");
            foreach (byte b in row)
            {
                text.Append(b is >= 0x20 and < 0x7F ? (char)b : '.');
            }
            text.Append('\n');
        }
        return text.ToString();
    }

    public static string ToHex(ReadOnlySpan<byte> data) => Convert.ToHexString(data).ToLowerInvariant();
}
