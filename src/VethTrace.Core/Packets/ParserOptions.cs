namespace VethTrace.Packets;

/// <summary>
/// Parser settings. Immutable and shared: configuration lives here, never in mutable statics,
/// so two parsers with different VXLAN ports can run side by side.
/// </summary>
public sealed record ParserOptions
{
    /// <summary>Defaults: VXLAN on UDP 4789 (IANA, RFC 7348 section 5), and the bounds below.</summary>
    public static readonly ParserOptions Default = new();

    /// <summary>The UDP destination port that carries VXLAN; 0 turns decapsulation off.</summary>
    public ushort VxlanPort { get; init; } = 4789;

    /// <summary>
    /// How many VLAN tags are walked before giving up. 802.1ad stacks two; more is hostile or a loop.
    /// </summary>
    public int MaxVlanTags { get; init; } = 4;

    /// <summary>
    /// How many MPLS label stack entries are walked before giving up; at most <see cref="MplsLabelStack.Capacity"/>
    /// (a larger value is that). A stack without its bottom-of-stack bit within the bound ends the parse as
    /// <see cref="ParseOutcome.LimitExceeded"/>.
    /// </summary>
    public int MaxMplsLabels { get; init; } = MplsLabelStack.Capacity;

    /// <summary>
    /// How many IPv6 extension headers are walked. RFC 8200 section 4.1 expects each at most once
    /// (destination options twice); 16 leaves room for odd but legal chains and bounds a hostile one.
    /// </summary>
    public int MaxExtensionHeaders { get; init; } = 16;

    /// <summary>How many VXLAN headers are decapsulated (VXLAN inside VXLAN exists, but rarely twice).</summary>
    public int MaxTunnelDepth { get; init; } = 2;
}
