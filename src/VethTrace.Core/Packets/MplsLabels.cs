using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace VethTrace.Packets;

/// <summary>
/// An MPLS label stack entry as read from the wire (RFC 3032 section 2.1), kept whole: a plain value that outlives
/// the capture buffer.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
public readonly record struct MplsLabel(uint Entry)
{
    /// <summary>The 20-bit label. 0 and 2 are the IPv4 and IPv6 explicit-null labels (RFC 3032 section 2.1).</summary>
    public uint Label => Entry >> 12;

    /// <summary>The traffic class, formerly EXP (RFC 5462).</summary>
    public byte TrafficClass => (byte)((Entry >> 9) & 0x7);

    /// <summary>Set on the last entry of the stack.</summary>
    public bool BottomOfStack => (Entry & 0x100) != 0;

    public byte Ttl => (byte)Entry;

    public override string ToString() => Label.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// The label stack of one protocol stack, top (outermost) entry first, stored inline so a parse allocates nothing.
/// <see cref="PacketLayers.MplsCount"/> says how many entries are valid; read them through
/// <see cref="PacketLayers.MplsLabels"/>.
/// </summary>
[InlineArray(Capacity)]
public struct MplsLabelStack
{
    /// <summary>
    /// The deepest stack kept, and the most the parser walks (<see cref="ParserOptions.MaxMplsLabels"/> may lower it).
    /// L3VPN over a TE tunnel with fast reroute uses 3 or 4; segment-routing stacks on a container host stay well inside 8.
    /// </summary>
    public const int Capacity = 8;

    private MplsLabel _first;
}
