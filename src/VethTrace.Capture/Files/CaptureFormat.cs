namespace VethTrace.Capture.Files;

/// <summary>Classic pcap's magic numbers and field offsets (draft-ietf-opsawg-pcap section 4 and 5).</summary>
internal static class PcapFormat
{
    public const uint MagicMicroseconds = 0xA1B2C3D4;
    public const uint MagicNanoseconds = 0xA1B23C4D;
    public const int SnapLengthOffset = 16;
    public const int LinkTypeOffset = SnapLengthOffset + 4;
    public const int FileHeaderLength = LinkTypeOffset + 4;
    public const int RecordHeaderLength = 16;
}

/// <summary>pcapng's block types, option codes and magic numbers (draft-ietf-opsawg-pcapng).</summary>
internal static class PcapngFormat
{
    public const uint SectionHeader = 0x0A0D0D0A;
    public const uint ByteOrderMagic = 0x1A2B3C4D;

    public static class BlockType
    {
        public const uint InterfaceDescription = 1;
        public const uint Packet = 2; // obsolete, still written by old tools
        public const uint SimplePacket = 3;
        public const uint EnhancedPacket = 6;
    }

    public static class OptionCode
    {
        public const ushort EndOfOptions = 0;
        public const ushort Comment = 1;
        public const ushort IfName = 2;
        public const ushort IfDescription = 3;
        public const ushort IfTsResol = 9;
        public const ushort IfTsOffset = 14;
        public const ushort EpbFlags = 2;
    }
}
