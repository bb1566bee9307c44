using System.Text;
using System.Text.Json;
using VethTrace.Text;

namespace VethTrace.Tests.Text;

/// <summary>The escaping rules of <see cref="TerminalText"/> and the byte-keeping decoder <see cref="LosslessUtf8"/>.</summary>
public sealed class TerminalTextTests
{
    [Theory]
    [InlineData("eth0")]
    [InlineData("veth1eae2a7@4177")]
    [InlineData("br-1a2b3c4d5e6f [vxlan 42] ~!#$%&'()*+,-./:;<=>?@^_`{|}")]
    [InlineData("контейнер-é-日本-😀")] // printable non-ASCII stays readable
    [InlineData("pua-\ue000")] // private use: icon fonts draw it, no terminal acts on it
    public void Escape_PrintableText_ReturnedAsItIs(string text)
    {
        Assert.Same(text, TerminalText.Escape(text));
        Assert.False(TerminalText.NeedsEscaping(text));
    }

    [Theory]
    [InlineData("\u001b[2J\u001b[31mx", @"\x1b[2J\x1b[31mx")]
    [InlineData("\u001b]0;title\u0007", @"\x1b]0;title\x07")]
    [InlineData("a\u0000b\tc\nd\re", @"a\x00b\x09c\x0ad\x0de")]
    [InlineData("del\u007f", @"del\x7f")]
    [InlineData("back\\slash", @"back\\slash")]
    [InlineData("c1\u0085\u009b", @"c1\u0085\u009b")]
    [InlineData("bidi\u202eevil\u2066x\u2069\u200f", @"bidi\u202eevil\u2066x\u2069\u200f")]
    [InlineData("zero\u200bwidth\u200d\ufeff\u00ad", @"zero\u200bwidth\u200d\ufeff\u00ad")]
    [InlineData("lines\u2028\u2029", @"lines\u2028\u2029")]
    [InlineData("tag\U000e0041", @"tag\U000e0041")]
    [InlineData("unassigned\u0378", @"unassigned\u0378")]
    [InlineData("mixed é\u001b😀\u202e", @"mixed é\x1b😀\u202e")]
    public void Escape_UnsafeCharacters_VisibleEscapes(string text, string expected)
    {
        Assert.Equal(expected, TerminalText.Escape(text));
        Assert.True(TerminalText.NeedsEscaping(text));
        TerminalAssert.Safe(TerminalText.Escape(text));
    }

    [Fact]
    public void Escape_StraySurrogates_InvalidBytesAsBytesOthersAsCodeUnits()
    {
        // Built in code: attribute arguments cannot hold a stray surrogate (metadata stores them as U+FFFD).
        Assert.Equal(@"byte\xff\x80", TerminalText.Escape("byte" + (char)0xDCFF + (char)0xDC80));
        Assert.Equal(@"lone\ud800x\udc7f", TerminalText.Escape("lone" + (char)0xD800 + "x" + (char)0xDC7F));
    }

    [Fact]
    public void Escape_EveryBmpCodePointAndStrayByte_NeverRaw()
    {
        // Every UTF-16 code unit alone (stray surrogates included), and each in the middle of text.
        for (int c = 0; c <= 0xFFFF; c++)
        {
            string text = "a" + (char)c + "b";
            string escaped = TerminalText.Escape(text);
            TerminalAssert.Safe(escaped.Replace("\n", "", StringComparison.Ordinal));
            Assert.DoesNotContain('\n', escaped);
        }
    }

    [Fact]
    public void Escape_DistinctNames_StayDistinct()
    {
        // Nothing is dropped or replaced: names that differ only in what is escaped still print differently,
        // and a name cannot pose as the escape of another.
        string[] names = ["a\u001bb", @"a\x1bb", "a\u00adb", "ab", "a\udcffb", @"a\xffb", "a\u00ffb"];
        Assert.Equal(names.Length, names.Select(TerminalText.Escape).Distinct().Count());
    }

    [Fact]
    public void EscapeJson_FormatCharactersLeftRawBySystemTextJson_EscapedAndSameValue()
    {
        string name = "x\u202ey\u200b\u2066z\U000e0041 é 😀 \u001b";
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("name", name);
            writer.WriteEndObject();
        }
        string json = Encoding.UTF8.GetString(buffer.ToArray());
        Assert.Contains('\u202e', json); // the reason EscapeJson exists

        string escaped = TerminalText.EscapeJson(json);

        TerminalAssert.Safe(escaped);
        Assert.Contains(@"x\u202ey\u200b\u2066z", escaped);
        Assert.Equal(name, JsonDocument.Parse(escaped).RootElement.GetProperty("name").GetString());
        Assert.Same("{\"name\":\"eth0 é\\\\\\n\"}", TerminalText.EscapeJson("{\"name\":\"eth0 é\\\\\\n\"}"));
    }

    [Fact]
    public void LosslessUtf8_ValidUtf8_SameAsEncodingUtf8()
    {
        byte[] bytes = "eth0 é 日本 😀 \u001b[31m"u8.ToArray();
        Assert.Equal(Encoding.UTF8.GetString(bytes), LosslessUtf8.Decode(bytes));
    }

    [Fact]
    public void LosslessUtf8_Encode_GivesTheDecodedBytesBack()
    {
        byte[][] inputs =
        [
            "eth0 é 日本 😀"u8.ToArray(),
            [(byte)'v', 0xFF, 0xE2, 0x82, (byte)'A', 0xC0, 0xAF, 0x80, (byte)'z'],
            [0xED, 0xA0, 0x80], // an encoded surrogate: not UTF-8, three kept bytes
            [0xF4, 0x90, 0x80, 0x80], // beyond U+10FFFF
        ];
        Assert.All(inputs, bytes => Assert.Equal(bytes, LosslessUtf8.Encode(LosslessUtf8.Decode(bytes))));
        // A stray surrogate that is not a kept byte is written as U+FFFD, as Encoding.UTF8 does.
        Assert.Equal("a\uFFFDb"u8.ToArray(), LosslessUtf8.Encode("a" + (char)0xD800 + "b"));
    }

    [Fact]
    public void LosslessUtf8_InvalidBytes_KeptAndShownAsBytes()
    {
        // A lone 0xFF, a truncated three-byte sequence (E2 82 then 'A'), an overlong '/' (C0 AF), a lone continuation byte.
        byte[] bytes = [(byte)'v', 0xFF, 0xE2, 0x82, (byte)'A', 0xC0, 0xAF, 0x80, (byte)'z'];

        string decoded = LosslessUtf8.Decode(bytes);

        Assert.Equal("v\udcff\udce2\udc82A\udcc0\udcaf\udc80z", decoded);
        Assert.Equal(@"v\xff\xe2\x82A\xc0\xaf\x80z", TerminalText.Escape(decoded));
    }
}
