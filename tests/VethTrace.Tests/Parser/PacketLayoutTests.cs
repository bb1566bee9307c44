using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// The parser's fast path writes <see cref="PacketLayers"/> and the end of <see cref="ParsedPacket"/> with few stores: it
/// zeroes only the fields from <see cref="PacketLayers.ColdStart"/> on, and stores pairs and runs of adjacent fields with
/// one wide store each. Both depend on the order the fields are declared in; these tests pin it, so a reordered field
/// fails here by name rather than as a wrong value somewhere in <see cref="CommonShapeTests"/>.
/// </summary>
public class PacketLayoutTests
{
    /// <summary>The fields the first tier writes on every path, so it does not zero them (all the others it zeroes).</summary>
    private static readonly string[] s_writtenByEveryParse =
    [
        nameof(PacketLayers.SourceLow), nameof(PacketLayers.SourceHigh), nameof(PacketLayers.DestinationLow), nameof(PacketLayers.DestinationHigh),
        nameof(PacketLayers.LinkType), nameof(PacketLayers.NetworkOffset),
        nameof(PacketLayers.IpId), nameof(PacketLayers.IpHeaderLength), nameof(PacketLayers.IpTotalLength), nameof(PacketLayers.TransportOffset),
        nameof(PacketLayers.PayloadOffset), nameof(PacketLayers.PayloadLength), nameof(PacketLayers.CapturedPayloadLength),
        nameof(PacketLayers.EtherType), nameof(PacketLayers.Flags), nameof(PacketLayers.Layers), nameof(PacketLayers.IpVersion),
        nameof(PacketLayers.Ttl), nameof(PacketLayers.Protocol), nameof(PacketLayers.TrafficClass),
    ];

    [Fact]
    public void ClearCold_ZeroesEveryOtherFieldAndNoneOfThese()
    {
        PacketLayers layers = default;
        MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref layers, 1)).Fill(0xA5);
        PacketParser.ClearCold(ref layers);
        object boxed = layers;
        foreach (FieldInfo field in typeof(PacketLayers).GetFields(BindingFlags.Public | BindingFlags.Instance))
        {
            object? value = field.GetValue(boxed);
            object? zero = Activator.CreateInstance(field.FieldType);
            if (field.FieldType == typeof(MplsLabelStack))
            {
                Assert.True(((ReadOnlySpan<MplsLabel>)layers.MplsStack).IndexOfAnyExcept(default(MplsLabel)) < 0, "MplsStack was not zeroed");
            }
            else if (s_writtenByEveryParse.Contains(field.Name))
            {
                Assert.False(Equals(zero, value), $"{field.Name} lies in the zeroed part; the fast path writes it itself");
            }
            else
            {
                Assert.True(Equals(zero, value), $"{field.Name} was not zeroed: {value}");
            }
        }
    }

    [Fact]
    public void PacketLayers_FieldsStoredTogether_AreAdjacent()
    {
        PacketLayers l = default;
        // The addresses: each one 16-byte block, the low half first (an IPv4 address zero-extended is the block), the
        // destination's right after the source's.
        Assert.Equal(0, (int)Unsafe.ByteOffset(ref Unsafe.As<PacketLayers, byte>(ref l), ref Unsafe.As<ulong, byte>(ref l.SourceLow)));
        AssertNext(ref l.SourceLow, ref l.SourceHigh, nameof(l.SourceHigh));
        AssertNext(ref l.SourceHigh, ref l.DestinationLow, nameof(l.DestinationLow));
        AssertNext(ref l.DestinationLow, ref l.DestinationHigh, nameof(l.DestinationHigh));
        // The four 4-byte fields that are constants for IPv4 without options after a given link header, one 16-byte
        // store of a constant in the first tier: the link type, the network offset, the IP header length, the transport offset.
        AssertNext(ref l.LinkType, ref l.NetworkOffset, nameof(l.NetworkOffset));
        AssertNext(ref l.NetworkOffset, ref l.IpHeaderLength, nameof(l.IpHeaderLength));
        AssertNext(ref l.IpHeaderLength, ref l.TransportOffset, nameof(l.TransportOffset));
        // Pairs of 4-byte fields, each written with one 8-byte store.
        AssertNext(ref l.PayloadOffset, ref l.PayloadLength, nameof(l.PayloadLength));
        // Big-endian reads of two header fields, stored little-endian: the field later in the header comes first.
        AssertNext(ref l.TcpAcknowledgment, ref l.TcpSequence, nameof(l.TcpSequence));
        AssertNext(ref l.TcpTsEcr, ref l.TcpTsVal, nameof(l.TcpTsVal));
        AssertNext(ref l.DestinationPort, ref l.SourcePort, nameof(l.SourcePort));
        AssertNext(ref l.TcpWindow, ref l.TcpFlags, nameof(l.TcpFlags));
        AssertNext(ref l.TcpHeaderLength, ref l.TcpOptionsLength, nameof(l.TcpOptionsLength));
        // One 8-byte run: EtherType, Flags, Layers, IpVersion, then TTL and protocol in the IPv4 header's order.
        AssertNext(ref l.EtherType, ref l.Flags, nameof(l.Flags));
        AssertNext(ref l.Flags, ref l.Layers, nameof(l.Layers));
        AssertNext(ref l.Layers, ref l.IpVersion, nameof(l.IpVersion));
        AssertNext(ref l.IpVersion, ref l.Ttl, nameof(l.Ttl));
        AssertNext(ref l.Ttl, ref l.Protocol, nameof(l.Protocol));
        Assert.Equal(PacketLayers.ColdStart, (int)Unsafe.ByteOffset(ref Unsafe.As<PacketLayers, byte>(ref l), ref Unsafe.As<uint, byte>(ref l.TcpAcknowledgment)));
    }

    [Fact]
    public void ParsedPacket_OutcomeFields_AreAdjacent()
    {
        ParsedPacket p = default;
        AssertNext(ref p.StoppedAt, ref p.Outcome, nameof(p.Outcome));
        AssertNext(ref p.Outcome, ref p.TunnelDepth, nameof(p.TunnelDepth));
        Assert.Equal(4, (int)Unsafe.ByteOffset(ref Unsafe.As<ParseLayer, byte>(ref p.StoppedAt), ref Unsafe.As<uint, byte>(ref p.Vni)));
        AssertNext(ref p.Required, ref p.Available, nameof(p.Available));
        // StoppedAt through Available: 16 bytes, one store of a constant on the first tier's success path.
        Assert.Equal(8, (int)Unsafe.ByteOffset(ref Unsafe.As<ParseLayer, byte>(ref p.StoppedAt), ref Unsafe.As<int, byte>(ref p.Required)));
    }

    private static void AssertNext<TFirst, TSecond>(ref TFirst first, ref TSecond second, string name)
    {
        long offset = (long)Unsafe.ByteOffset(ref Unsafe.As<TFirst, byte>(ref first), ref Unsafe.As<TSecond, byte>(ref second));
        Assert.True(offset == Unsafe.SizeOf<TFirst>(), $"{name} is {offset} bytes after the field before it, not {Unsafe.SizeOf<TFirst>()}");
    }
}
