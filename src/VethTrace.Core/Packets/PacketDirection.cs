namespace VethTrace.Packets;

/// <summary>
/// Which way a packet went on its interface, when the capture says: pcapng <c>epb_flags</c> bits 0-1 (the same
/// values), an SLL packet type, or follow's inference from the Ethernet source.
/// </summary>
public enum PacketDirection : byte
{
    Unknown = 0,
    Inbound = 1,
    Outbound = 2,
}
