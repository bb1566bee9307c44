using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// The invariants every parse must keep, whatever the input, with no test framework in them: the xunit tests and
/// the fuzz targets (tests/fuzz, which compiles this file too) check the same rules.
/// </summary>
internal static class ParserInvariantRules
{
    /// <summary>
    /// Checks what must hold for any frame, returning a description of the first violation (or null), so
    /// hot loops over millions of frames can report the frame without building a message per packet.
    /// </summary>
    public static string? Violation(in ParsedPacket packet, int frameLength)
    {
        if (packet.CapturedLength != frameLength)
        {
            return $"CapturedLength {packet.CapturedLength} != {frameLength}";
        }
        if (packet.Outcome == ParseOutcome.Truncated && !(packet.Required > packet.Available && packet.Available >= 0))
        {
            return $"Truncated with Required {packet.Required} <= Available {packet.Available}";
        }
        if (packet.OriginalLength != 0 && packet.OriginalLength < frameLength)
        {
            return $"OriginalLength {packet.OriginalLength} below the captured {frameLength}";
        }
        return StackViolation(in packet.Outer, frameLength, packet.OriginalLength, "Outer")
            ?? (packet.TunnelDepth > 0 ? StackViolation(in packet.Inner, frameLength, packet.OriginalLength, "Inner") : null);
    }

    private static string? StackViolation(in PacketLayers layers, int frameLength, int originalLength, string name)
    {
        if (layers.MplsCount > MplsLabelStack.Capacity || layers.Has(LayerSet.Mpls) != (layers.MplsCount > 0))
        {
            return $"{name}: MplsCount {layers.MplsCount} with layers {layers.Layers}";
        }
        if (originalLength > 0 && (long)layers.PayloadOffset + layers.PayloadLength > originalLength)
        {
            // With the original length known, no payload reaches past the frame's end on the wire.
            return $"{name}: PayloadOffset {layers.PayloadOffset} + PayloadLength {layers.PayloadLength} > original length {originalLength}";
        }
        if ((layers.Flags & PacketFlags.IpLengthBeyondFrame) != 0 && (originalLength == 0 || (layers.Flags & PacketFlags.IpLengthBeyondCapture) == 0))
        {
            return $"{name}: IpLengthBeyondFrame without a known original length or without IpLengthBeyondCapture";
        }
        if (layers.CapturedPayloadLength < 0 || layers.CapturedPayloadLength > layers.PayloadLength)
        {
            return $"{name}: CapturedPayloadLength {layers.CapturedPayloadLength} outside 0..{layers.PayloadLength}";
        }
        if (layers.PayloadOffset < 0 || (long)layers.PayloadOffset + layers.CapturedPayloadLength > frameLength)
        {
            return $"{name}: PayloadOffset {layers.PayloadOffset} + CapturedPayloadLength {layers.CapturedPayloadLength} > {frameLength}";
        }
        if (layers.Has(LayerSet.Transport) && layers.TransportOffset > frameLength)
        {
            return $"{name}: TransportOffset {layers.TransportOffset} > {frameLength}";
        }
        if (layers.Has(LayerSet.Network) && layers.NetworkOffset + (layers.IpVersion == 4 ? 20 : 40) > frameLength)
        {
            return $"{name}: network header at {layers.NetworkOffset} does not fit in {frameLength}";
        }
        return null;
    }
}
