using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>Parsing shorthands and the invariants every parse must keep, whatever the input.</summary>
internal static class ParserInvariants
{
    public static ParsedPacket Parse(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions? options = null)
    {
        ParseOutcome outcome = PacketParser.Parse(frame, linkType, options ?? ParserOptions.Default, out var packet);
        Assert.Equal(packet.Outcome, outcome);
        return packet;
    }

    public static void AssertInvariants(in ParsedPacket packet, ReadOnlySpan<byte> frame)
    {
        string? violation = ParserInvariantRules.Violation(in packet, frame.Length);
        Assert.True(violation is null, $"{violation}\n{Hex.Dump(frame)}");
    }
}
