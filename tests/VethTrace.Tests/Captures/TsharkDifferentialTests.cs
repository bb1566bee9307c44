using VethTrace.Packets;

namespace VethTrace.Tests.Captures;

/// <summary>
/// Every frame of every capture parsed by VethTrace agrees with tshark's field output recorded beside the capture
/// (captures/expected/*.tsv, written by tests/lab/expected.sh): the expected answers come from Wireshark's
/// dissectors, never from VethTrace itself.
/// </summary>
public sealed class TsharkDifferentialTests
{
    public static TheoryData<string> Captures() => CaptureCorpus.FileNames();

    [Theory]
    [MemberData(nameof(Captures))]
    public void EveryFrame_FieldsAgreeWithTshark(string capture)
    {
        string? path = ExpectedFields.PathFor(capture);
        Assert.True(path is not null, $"captures/expected/{capture}.tsv is missing: run tests/lab/expected.sh");
        ExpectedFields expected = ExpectedFields.Load(path);
        List<CorpusPacket> packets = CaptureCorpus.Read(capture);
        Assert.Equal(expected.FrameCount, packets.Count);

        var mismatches = new List<string>();
        int compared = 0;
        foreach (CorpusPacket corpusPacket in packets)
        {
            int frame = corpusPacket.FrameNumber;
            PacketParser.Parse(corpusPacket.Data, corpusPacket.LinkType, out ParsedPacket packet);
            var check = new Check(frame, mismatches, expected);

            check.Number("frame.cap_len", 0, corpusPacket.Data.Length);
            if (expected.Has("frame.interface_name") && expected.Text(frame, "frame.interface_name") is { } name)
            {
                check.Equal("frame.interface_name", name, corpusPacket.Interface);
            }
            if (packet.Outer.LinkType == LinkType.LinuxSll2 || packet.Outer.LinkType == LinkType.LinuxSll)
            {
                check.Number("sll.pkttype", 0, (long)packet.Outer.PacketType);
                if (packet.Outer.LinkType == LinkType.LinuxSll2)
                {
                    check.Number("sll.ifindex", 0, packet.Outer.InterfaceIndex);
                }
            }
            if (packet.Outer.VlanCount > 0)
            {
                // Wireshark files an 802.1ad S-tag under ieee8021ad.id and 802.1Q C-tags under vlan.id.
                bool serviceTag = packet.Outer.OuterVlanType == EtherType.QinQ;
                check.Number(serviceTag ? "ieee8021ad.id" : "vlan.id", 0, packet.Outer.OuterVlanId);
                if (packet.Outer.VlanCount > 1)
                {
                    check.Number("vlan.id", serviceTag ? 0 : 1, packet.Outer.InnerVlanId);
                }
            }
            CompareStack(in packet.Outer, 0, 0, check);
            if (packet.TunnelDepth == 1)
            {
                // tshark lists a field once per header: the inner header is the second occurrence only when
                // the outer stack has a header of the same kind.
                check.Number("vxlan.vni", 0, packet.Vni);
                int ipOccurrence = packet.Outer.IpVersion == packet.Inner.IpVersion ? 1 : 0;
                int transportOccurrence = packet.Outer.Protocol == packet.Inner.Protocol ? 1 : 0;
                CompareStack(in packet.Inner, ipOccurrence, transportOccurrence, check);
            }
            if (packet.Outer.Has(LayerSet.Network))
            {
                compared++;
            }
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} mismatches, first: " + string.Join("\n", mismatches.Take(20)));
        Assert.True(compared > 0, "no IP packet was compared");
    }

    /// <summary>Compares one stack against the <paramref name="ip"/>-th IP header and the <paramref name="transport"/>-th transport header tshark saw.</summary>
    private static void CompareStack(in PacketLayers layers, int ip, int transport, Check check)
    {
        if (!layers.Has(LayerSet.Network))
        {
            return;
        }
        bool v4 = layers.IpVersion == 4;
        if (v4)
        {
            check.Text("ip.src", ip, layers.Source.ToString());
            check.Text("ip.dst", ip, layers.Destination.ToString());
            check.Number("ip.proto", ip, layers.Protocol.Value);
            check.Number("ip.id", ip, layers.IpId);
            check.Number("ip.ttl", ip, layers.Ttl);
            check.Number("ip.len", ip, layers.IpTotalLength);
            check.Number("ip.flags.mf", ip, (layers.Flags & PacketFlags.MoreFragments) != 0 ? 1 : 0);
            check.Number("ip.frag_offset", ip, layers.FragmentOffset, alternative: layers.FragmentOffset / 8);
        }
        else
        {
            check.Text("ipv6.src", ip, layers.Source.ToString());
            check.Text("ipv6.dst", ip, layers.Destination.ToString());
            check.Number("ipv6.hlim", ip, layers.Ttl);
            check.Number("ipv6.plen", ip, layers.IpTotalLength - 40);
            if (layers.ExtensionHeaderCount == 0)
            {
                check.Number("ipv6.nxt", ip, layers.Protocol.Value);
            }
        }
        if (!layers.Has(LayerSet.Transport))
        {
            return;
        }
        if (layers.IsTcp)
        {
            check.Number("tcp.srcport", transport, layers.SourcePort);
            check.Number("tcp.dstport", transport, layers.DestinationPort);
            check.Number("tcp.seq_raw", transport, layers.TcpSequence);
            check.Number("tcp.ack_raw", transport, layers.TcpAcknowledgment);
            check.Number("tcp.flags", transport, (long)layers.TcpFlags);
            check.Number("tcp.len", transport, layers.PayloadLength);
            check.Number("tcp.hdr_len", transport, layers.TcpHeaderLength);
        }
        else if (layers.IsUdp)
        {
            check.Number("udp.srcport", transport, layers.SourcePort);
            check.Number("udp.dstport", transport, layers.DestinationPort);
            check.Number("udp.length", transport, layers.UdpLength);
        }
        else if (layers.IsIcmp && v4)
        {
            check.Number("icmp.type", transport, layers.IcmpType);
            check.Number("icmp.code", transport, layers.IcmpCode);
            if (layers.IcmpType is 0 or 8)
            {
                check.Number("icmp.ident", transport, layers.IcmpIdentifier);
                check.Number("icmp.seq", transport, layers.IcmpSequence);
            }
        }
        else if (layers.IsIcmp)
        {
            check.Number("icmpv6.type", transport, layers.IcmpType);
            check.Number("icmpv6.code", transport, layers.IcmpCode);
            if (layers.IcmpType is 128 or 129)
            {
                check.Number("icmpv6.echo.identifier", transport, layers.IcmpIdentifier);
                check.Number("icmpv6.echo.sequence_number", transport, layers.IcmpSequence);
            }
        }
    }

    private sealed class Check(int frame, List<string> mismatches, ExpectedFields expected)
    {
        public void Number(string field, int occurrence, long ours, long? alternative = null)
        {
            if (!expected.Has(field))
            {
                return;
            }
            long? theirs = expected.Number(frame, field, occurrence);
            if (theirs is null)
            {
                mismatches.Add($"frame {frame}: {field}[{occurrence}]: ours {ours}, tshark has none");
            }
            else if (theirs != ours && theirs != alternative)
            {
                mismatches.Add($"frame {frame}: {field}[{occurrence}]: ours {ours}, tshark {theirs}");
            }
        }

        public void Text(string field, int occurrence, string ours)
        {
            if (!expected.Has(field))
            {
                return;
            }
            string? theirs = expected.Text(frame, field, occurrence);
            if (theirs != ours)
            {
                mismatches.Add($"frame {frame}: {field}[{occurrence}]: ours {ours}, tshark {theirs ?? "none"}");
            }
        }

        public void Equal(string field, string theirs, string ours)
        {
            if (theirs != ours)
            {
                mismatches.Add($"frame {frame}: {field}: ours {ours}, tshark {theirs}");
            }
        }
    }
}
