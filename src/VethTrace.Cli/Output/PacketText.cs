using System.Globalization;
using System.Text;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Packets.Headers;

namespace VethTrace.Cli.Output;

/// <summary>One-line, tcpdump-like descriptions of parsed packets. Off the hot path: these allocate.</summary>
public static class PacketText
{
    public static string Describe(in ParsedPacket packet)
    {
        var text = new StringBuilder(96);
        if (packet.TunnelDepth > 0)
        {
            ref readonly PacketLayers outer = ref packet.Outer;
            text.Append(CultureInfo.InvariantCulture, $"vxlan vni {packet.Vni} [{outer.Source.ToEndpointString(outer.SourcePort)} > {outer.Destination.ToEndpointString(outer.DestinationPort)} ttl {outer.Ttl}] ");
        }
        AppendStack(text, in packet.Innermost);
        // A frame that is simply not IP (ARP, LLDP) is ordinary, not a parse problem worth a note.
        bool notIp = packet.Outcome == ParseOutcome.UnsupportedProtocol && packet.StoppedAt == ParseLayer.Network;
        if (packet.Outcome != ParseOutcome.Complete && !notIp)
        {
            text.Append(" (").Append(DescribeStop(in packet)).Append(')');
        }
        if (((packet.Outer.Flags | (packet.TunnelDepth > 0 ? packet.Inner.Flags : 0)) & PacketFlags.IpLengthBeyondFrame) != 0)
        {
            // The capture record says the frame was whole, yet its IP header claims more: len counts what was there.
            ref readonly PacketLayers claimed = ref (packet.Outer.Flags & PacketFlags.IpLengthBeyondFrame) != 0 ? ref packet.Outer : ref packet.Inner;
            text.Append(CultureInfo.InvariantCulture,
                $" (inconsistent: ip length {claimed.IpTotalLength}, the frame holds {packet.OriginalLength - claimed.NetworkOffset})");
        }
        return text.ToString();
    }

    public static string DescribeStop(in ParsedPacket packet)
    {
        string layer = packet.StoppedAt switch
        {
            ParseLayer.IpExtension => "ipv6 extension header",
            ParseLayer.Vlan => "vlan tag",
            ParseLayer.Mpls => "mpls label stack",
            _ => packet.StoppedAt.ToString().ToLowerInvariant(),
        };
        return packet.Outcome switch
        {
            ParseOutcome.Truncated => $"truncated in {layer}: {packet.Available} of {packet.Required} bytes",
            ParseOutcome.Malformed => $"malformed {layer}",
            ParseOutcome.UnsupportedProtocol => $"{layer} protocol not dissected",
            ParseOutcome.NonFirstFragment => "non-first fragment",
            ParseOutcome.LimitExceeded => $"too many headers at {layer}",
            _ => "complete",
        };
    }

    private static void AppendStack(StringBuilder text, in PacketLayers layers)
    {
        if (layers.VlanCount > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"vlan {layers.OuterVlanId}");
            if (layers.VlanCount > 1)
            {
                text.Append(CultureInfo.InvariantCulture, $".{layers.InnerVlanId}");
            }
            text.Append(' ');
        }
        if (layers.MplsCount > 0)
        {
            // Top label first, as tcpdump lists the stack.
            text.Append("mpls ");
            ReadOnlySpan<MplsLabel> labels = layers.MplsLabels;
            for (int i = 0; i < labels.Length; i++)
            {
                text.Append(i == 0 ? "" : ",").Append(labels[i].Label);
            }
            text.Append(' ');
        }
        if (!layers.Has(LayerSet.Network))
        {
            text.Append(layers.EtherType.Value == 0 ? "unknown" : layers.EtherType.ToString());
            return;
        }
        var flow = FlowKey.From(in layers);
        text.Append(layers.Protocol.Name).Append(' ');
        if (layers.IsTcp || layers.IsUdp)
        {
            text.Append(flow.SourceEndpoint).Append(" > ").Append(flow.DestinationEndpoint);
        }
        else
        {
            text.Append(layers.Source).Append(" > ").Append(layers.Destination);
        }
        if (layers.IsTcp)
        {
            text.Append(CultureInfo.InvariantCulture, $" [{TcpFlagText(layers.TcpFlags)}] seq {layers.TcpSequence} ack {layers.TcpAcknowledgment} len {layers.PayloadLength}");
        }
        else if (layers.IsUdp)
        {
            text.Append(CultureInfo.InvariantCulture, $" len {layers.PayloadLength}");
            if ((layers.Flags & PacketFlags.MoreFragments) != 0 && layers.UdpLength >= 8)
            {
                // A first fragment: len is the UDP data in this fragment; the datagram's, from the UDP header, follows.
                text.Append(CultureInfo.InvariantCulture, $" of {layers.UdpLength - 8}");
            }
        }
        else if (layers.IsIcmp)
        {
            text.Append(' ').Append(IcmpText(in layers));
        }
        if (layers.IpVersion == 4)
        {
            text.Append(CultureInfo.InvariantCulture, $" ttl {layers.Ttl} id {layers.IpId}");
        }
        else
        {
            text.Append(CultureInfo.InvariantCulture, $" hlim {layers.Ttl}");
        }
        if ((layers.Flags & PacketFlags.Fragment) != 0)
        {
            text.Append(CultureInfo.InvariantCulture, $" frag off {layers.FragmentOffset}{((layers.Flags & PacketFlags.MoreFragments) != 0 ? "+" : "")}");
        }
    }

    private static string IcmpText(in PacketLayers layers)
    {
        bool v6 = layers.IpVersion == 6;
        string name = (v6, layers.IcmpType) switch
        {
            (false, IcmpHeader.V4Type.EchoRequest) or (true, IcmpHeader.V6Type.EchoRequest) => "echo request",
            (false, IcmpHeader.V4Type.EchoReply) or (true, IcmpHeader.V6Type.EchoReply) => "echo reply",
            (false, IcmpHeader.V4Type.DestinationUnreachable) or (true, IcmpHeader.V6Type.DestinationUnreachable) => $"unreachable code {layers.IcmpCode}",
            (false, IcmpHeader.V4Type.TimeExceeded) or (true, IcmpHeader.V6Type.TimeExceeded) => "time exceeded",
            (true, IcmpHeader.V6Type.PacketTooBig) => "packet too big",
            (true, 133) => "router solicitation",
            (true, 134) => "router advertisement",
            (true, 135) => "neighbor solicitation",
            (true, 136) => "neighbor advertisement",
            _ => $"type {layers.IcmpType} code {layers.IcmpCode}",
        };
        return IcmpHeader.HasIdentifier(v6, layers.IcmpType)
            ? $"{name} id {layers.IcmpIdentifier} seq {layers.IcmpSequence}"
            : name;
    }

    public static string TcpFlagText(TcpFlags flags)
    {
        if (flags == TcpFlags.None)
        {
            return "none";
        }
        var text = new StringBuilder(8);
        // tcpdump's letters: S F R P U E W, and '.' for ACK.
        if ((flags & TcpFlags.Syn) != 0) text.Append('S');
        if ((flags & TcpFlags.Fin) != 0) text.Append('F');
        if ((flags & TcpFlags.Rst) != 0) text.Append('R');
        if ((flags & TcpFlags.Psh) != 0) text.Append('P');
        if ((flags & TcpFlags.Urg) != 0) text.Append('U');
        if ((flags & TcpFlags.Ece) != 0) text.Append('E');
        if ((flags & TcpFlags.Cwr) != 0) text.Append('W');
        if ((flags & TcpFlags.Ack) != 0) text.Append('.');
        return text.ToString();
    }
}
