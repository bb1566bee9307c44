using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// What the correlator needs of one packet seen on one interface: a small value that crosses from the
/// capture (or file) side to the matching engine. The packet bytes stay behind. <see cref="Selected"/> is false
/// when a packet filter rejected this copy: a journey is reported when any of its copies was selected, so a filter
/// on the inside address still follows the packet past NAT.
/// </summary>
public readonly record struct Observation(
    long TimestampNs,
    int Interface,
    long Order,
    ulong Fingerprint,
    FlowKey Flow,
    int Length,
    bool Selected = true)
{
    /// <summary>Builds an observation from a parsed packet (its innermost stack, as the fingerprint).</summary>
    public static Observation From(in ParsedPacket packet, ReadOnlySpan<byte> frame, long timestampNs, int interfaceId, long order, bool selected = true) =>
        new(timestampNs, interfaceId, order, PacketFingerprint.Compute(in packet, frame), FlowKey.From(in packet), frame.Length, selected);
}

/// <summary>Where an interface sits on a Docker host's path, for ordering equal timestamps (DESIGN.md).</summary>
public enum InterfaceRole : byte
{
    /// <summary>The container's own interface (eth0 inside its namespace).</summary>
    Container = 0,
    /// <summary>The host end of the container's veth pair.</summary>
    Veth = 1,
    /// <summary>docker0 or a user-defined br-… bridge.</summary>
    Bridge = 2,
    /// <summary>The host's egress (uplink) or anything else.</summary>
    Egress = 3,
}
