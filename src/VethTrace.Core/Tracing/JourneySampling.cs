using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// <c>--sample 1/N</c>: consistent sampling, decided per packet from what is the same in every copy of it, so a journey
/// is kept whole (on every hop) or not at all. The key is the NAT-invariant fingerprint (<see cref="PacketFingerprint"/>);
/// for TCP data it is the segment key instead (<see cref="Observation.SegmentKeyOf"/>: acknowledgment, flags and
/// timestamps), because GRO and GSO merge and cut data segments between hops, and a super-packet's fingerprint is not its
/// segments'; the segment key is what they share. The key is mixed again and compared with 2^64 / N: about one journey in
/// N is kept, and what 1/100 keeps is a subset of what 1/10 keeps.
/// </summary>
public static class JourneySampling
{
    /// <summary>Whether a packet is kept at 1/<paramref name="n"/> (always for n = 1).</summary>
    public static bool Keeps(in ParsedPacket packet, ReadOnlySpan<byte> frame, int n) => n <= 1 || Keeps(KeyOf(in packet, frame), n);

    /// <summary>Whether a packet with sampling key <paramref name="key"/> is kept at 1/<paramref name="n"/>.</summary>
    public static bool Keeps(ulong key, int n) => n <= 1 || StableHash.Finish(key) < ulong.MaxValue / (ulong)n;

    /// <summary>The sampling key: the same on every copy of one packet, and on the segments GRO or GSO made of it.</summary>
    public static ulong KeyOf(in ParsedPacket packet, ReadOnlySpan<byte> frame)
    {
        ref readonly PacketLayers layers = ref packet.Innermost;
        return layers.IsTcp && layers.PayloadLength > 0 ? Observation.SegmentKeyOf(in layers) : PacketFingerprint.Compute(in packet, frame);
    }
}
