using PacketDotNet;
using VethTrace.Packets;

namespace VethTrace.Tests.Captures;

/// <summary>
/// For every packet of every capture in captures/, the fields that both VethTrace's parser and PacketDotNet
/// (the reference dissector) expose must agree. PacketDotNet is strict where we are lax: when it throws on a
/// packet (a snaplen cut, say) that packet is skipped for it, and the test insists enough packets were compared.
/// </summary>
public sealed class PacketDotNetDifferentialTests
{
    public static TheoryData<string> Captures() => CaptureCorpus.FileNames();

    [Fact]
    public void Corpus_HasCaptures()
    {
        Assert.NotEmpty(CaptureCorpus.Files());
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void EveryPacket_FieldsAgreeWithPacketDotNet(string capture)
    {
        var mismatches = new List<string>();
        int comparedIp = 0;
        int comparedTransport = 0;
        int skipped = 0;
        foreach (CorpusPacket corpusPacket in CaptureCorpus.Read(capture))
        {
            PacketParser.Parse(corpusPacket.Data, corpusPacket.LinkType, out ParsedPacket ours);
            Packet theirs;
            try
            {
                theirs = Packet.ParsePacket((LinkLayers)corpusPacket.LinkType.Value, corpusPacket.Data);
            }
            catch (Exception)
            {
                skipped++;
                continue;
            }
            var compare = new Comparer(corpusPacket.FrameNumber, mismatches);
            try
            {
                CompareStack(in ours.Outer, theirs, compare, ref comparedIp, ref comparedTransport);
                if (ours.TunnelDepth > 0 && theirs.Extract<VxlanPacket>() is { } vxlan)
                {
                    compare.Equal("vxlan.vni", ours.Vni, vxlan.Vni);
                    if (vxlan.PayloadPacket is { } inner)
                    {
                        CompareStack(in ours.Inner, inner, compare, ref comparedIp, ref comparedTransport);
                    }
                }
            }
            catch (Exception) when (ours.Outcome != ParseOutcome.Complete)
            {
                // PacketDotNet parses lazily and may throw on a field of a cut packet; ours stopped there too.
                skipped++;
            }
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} mismatches, first: " + string.Join("\n", mismatches.Take(20)));
        Assert.True(comparedIp > 0, "no IP packet was compared");
        Assert.True(skipped * 10 <= comparedIp, $"PacketDotNet rejected {skipped} packets, compared only {comparedIp}");
        _ = comparedTransport;
    }

    private static void CompareStack(in PacketLayers ours, Packet theirs, Comparer compare, ref int comparedIp, ref int comparedTransport)
    {
        if (ours.VlanCount > 0 && theirs.Extract<Ieee8021QPacket>() is { } vlan)
        {
            compare.Equal("vlan.id", ours.OuterVlanId, vlan.VlanIdentifier);
        }
        if (!ours.Has(LayerSet.Network))
        {
            return;
        }
        IPPacket? ip = theirs.Extract<IPPacket>();
        if (ip is null)
        {
            compare.Fail("PacketDotNet found no IP layer");
            return;
        }
        comparedIp++;
        compare.Equal("ip.src", ours.Source.ToString(), ip.SourceAddress.ToString());
        compare.Equal("ip.dst", ours.Destination.ToString(), ip.DestinationAddress.ToString());
        compare.Equal("ip.ttl", ours.Ttl, ip.TimeToLive);
        if (ip is IPv4Packet v4)
        {
            compare.Equal("ip.id", ours.IpId, v4.Id);
            compare.Equal("ip.len", ours.IpTotalLength, v4.TotalLength);
            compare.Equal("ip.proto", ours.Protocol.Value, (byte)v4.Protocol);
            compare.Equal("ip.hdr_len", ours.IpHeaderLength, v4.HeaderLength * 4);
        }
        else if (ip is IPv6Packet v6)
        {
            compare.Equal("ipv6.plen", ours.IpTotalLength - 40, v6.PayloadLength);
            compare.Equal("ipv6.flow", ours.FlowLabel, (uint)v6.FlowLabel);
        }
        if (!ours.Has(LayerSet.Transport) || (ours.Flags & PacketFlags.Fragment) != 0)
        {
            return;
        }
        if (ours.IsTcp && ip.Extract<TcpPacket>() is { } tcp)
        {
            comparedTransport++;
            compare.Equal("tcp.srcport", ours.SourcePort, tcp.SourcePort);
            compare.Equal("tcp.dstport", ours.DestinationPort, tcp.DestinationPort);
            compare.Equal("tcp.seq", ours.TcpSequence, tcp.SequenceNumber);
            compare.Equal("tcp.ack", ours.TcpAcknowledgment, tcp.AcknowledgmentNumber);
            compare.Equal("tcp.flags", (ushort)ours.TcpFlags, (ushort)(tcp.Flags & 0x1FF));
            compare.Equal("tcp.window", ours.TcpWindow, tcp.WindowSize);
            compare.Equal("tcp.hdr_len", ours.TcpHeaderLength, tcp.DataOffset * 4);
        }
        else if (ours.IsUdp && ip.Extract<UdpPacket>() is { } udp)
        {
            comparedTransport++;
            compare.Equal("udp.srcport", ours.SourcePort, udp.SourcePort);
            compare.Equal("udp.dstport", ours.DestinationPort, udp.DestinationPort);
            compare.Equal("udp.length", ours.UdpLength, udp.Length);
        }
        else if (ours.IsIcmp && ours.IpVersion == 4 && ip.Extract<IcmpV4Packet>() is { } icmp)
        {
            comparedTransport++;
            compare.Equal("icmp.type", ours.IcmpType, (byte)((ushort)icmp.TypeCode >> 8));
            compare.Equal("icmp.code", ours.IcmpCode, (byte)((ushort)icmp.TypeCode & 0xFF));
            if (ours.IcmpType is 0 or 8)
            {
                compare.Equal("icmp.ident", ours.IcmpIdentifier, icmp.Id);
                compare.Equal("icmp.seq", ours.IcmpSequence, icmp.Sequence);
            }
        }
        else if (ours.IsIcmp && ours.IpVersion == 6 && ip.Extract<IcmpV6Packet>() is { } icmp6)
        {
            comparedTransport++;
            compare.Equal("icmpv6.type", ours.IcmpType, (byte)icmp6.Type);
            compare.Equal("icmpv6.code", ours.IcmpCode, icmp6.Code);
        }
    }

    private sealed class Comparer(int frame, List<string> mismatches)
    {
        public void Equal<T>(string field, T ours, T theirs)
        {
            if (!EqualityComparer<T>.Default.Equals(ours, theirs))
            {
                mismatches.Add($"frame {frame}: {field}: ours {ours}, PacketDotNet {theirs}");
            }
        }

        public void Equal(string field, int ours, int theirs) => Equal<int>(field, ours, theirs);

        public void Fail(string message) => mismatches.Add($"frame {frame}: {message}");
    }
}
