using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace VethTrace.Text;

/// <summary>
/// Decodes names that are meant to be UTF-8 but are not checked by whoever wrote them: pcapng's if_name and
/// if_description (the format says UTF-8; a hostile or broken writer may put anything there) and the kernel's
/// interface names (any bytes but '/', ':', whitespace and NUL). Valid UTF-8 decodes as usual; each byte that is not
/// part of a valid sequence becomes the lone surrogate U+DC00 + byte (Python's "surrogateescape", PEP 383), where
/// <see cref="Encoding.UTF8"/> would put U+FFFD and lose which byte it was. <see cref="TerminalText"/> shows such a
/// byte as <c>\xff</c>; JSON output writes U+FFFD for it, as JSON holds only Unicode. <see cref="Encode"/> gives the
/// bytes back, so a name recorded into a pcapng is the kernel's, byte for byte, as dumpcap writes it.
/// </summary>
public static class LosslessUtf8
{
    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes))
        {
            return Encoding.UTF8.GetString(bytes);
        }
        // UTF-16 never needs more code units than UTF-8 has bytes, and an escaped byte is one code unit.
        var text = new StringBuilder(bytes.Length);
        Span<char> units = stackalloc char[2];
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out Rune rune, out int length) == OperationStatus.Done)
            {
                text.Append(units[..rune.EncodeToUtf16(units)]);
            }
            else
            {
                for (int i = 0; i < length; i++)
                {
                    text.Append((char)(0xDC00 + bytes[i]));
                }
            }
            bytes = bytes[length..];
        }
        return text.ToString();
    }

    /// <summary>
    /// The inverse of <see cref="Decode"/>: UTF-8, with each U+DC80–U+DCFF that stands alone written as the byte it
    /// kept. Any other stray surrogate becomes U+FFFD, as <see cref="Encoding.UTF8"/> writes it.
    /// </summary>
    public static byte[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            return Encoding.UTF8.GetBytes(text);
        }
        var bytes = new List<byte>(text.Length * 3);
        Span<byte> units = stackalloc byte[4];
        ReadOnlySpan<char> rest = text;
        while (!rest.IsEmpty)
        {
            if (Rune.DecodeFromUtf16(rest, out Rune rune, out int length) != OperationStatus.Done
                && rest[0] is >= (char)0xDC80 and <= (char)0xDCFF)
            {
                bytes.Add((byte)(rest[0] - 0xDC00));
                length = 1;
            }
            else
            {
                // A stray surrogate other than those decodes as U+FFFD (ReplacementChar), one code unit long.
                bytes.AddRange(units[..rune.EncodeToUtf8(units)]);
            }
            rest = rest[length..];
        }
        return [.. bytes];
    }
}
