using System.Buffers.Binary;

namespace VethTrace.Packets.Headers;

/// <summary>
/// One MPLS label stack entry (RFC 3032 section 2.1) over a span: label (20 bits), traffic class (3 bits, RFC 5462),
/// bottom of stack (1 bit), TTL (8 bits). A stack is a run of entries ending at the one with the bottom-of-stack bit.
/// Once <see cref="TryCreate"/> succeeds no accessor can throw.
/// </summary>
public readonly ref struct MplsHeader
{
    public static class Field
    {
        public const int Entry = 0;
        public const int HeaderLength = Entry + 4;
    }

    private readonly ReadOnlySpan<byte> _data;

    private MplsHeader(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryCreate(ReadOnlySpan<byte> data, out MplsHeader header)
    {
        if (data.Length < Field.HeaderLength)
        {
            header = default;
            return false;
        }
        header = new MplsHeader(data);
        return true;
    }

    /// <summary>The whole 32-bit entry, as <see cref="MplsLabel"/> keeps it.</summary>
    public uint Entry => BinaryPrimitives.ReadUInt32BigEndian(_data);

    public MplsLabel ToLabel() => new(Entry);
}
