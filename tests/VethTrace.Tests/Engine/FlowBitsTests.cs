using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>
/// <see cref="Correlator.FlowBits.IsLinkScoped"/> reads the stored words instead of building the addresses (once per
/// observation that joins a journey): it must say what <see cref="FlowKey.IsLinkScoped"/> says of the same flow. Expected
/// answers from RFC 3927 (169.254.0.0/16), RFC 5771 (224.0.0.0/24), RFC 4291 (fe80::/10, ff01::/16, ff02::/16) and IGMP.
/// </summary>
public sealed class FlowBitsTests
{
    [Theory]
    [InlineData("tcp", "172.17.0.2", "198.51.100.2", false)]
    [InlineData("udp", "169.254.1.2", "198.51.100.2", true)]   // link-local source
    [InlineData("udp", "198.51.100.2", "169.254.0.1", true)]   // link-local destination
    [InlineData("udp", "169.253.255.255", "169.255.0.0", false)]
    [InlineData("udp", "172.17.0.2", "224.0.0.251", true)]     // mDNS: the local network control block
    [InlineData("udp", "172.17.0.2", "224.0.1.1", false)]      // NTP multicast: routed
    [InlineData("udp", "224.0.0.5", "172.17.0.2", false)]      // only the destination's multicast counts
    [InlineData("igmp", "172.17.0.2", "239.1.1.1", true)]
    [InlineData("tcp", "fd00::2", "2001:db8::1", false)]
    [InlineData("icmpv6", "fe80::1", "2001:db8::1", true)]
    [InlineData("icmpv6", "2001:db8::1", "febf::1", true)]     // fe80::/10 includes febf::
    [InlineData("icmpv6", "2001:db8::1", "fec0::1", false)]
    [InlineData("icmpv6", "fd00::2", "ff02::16", true)]        // MLD reports
    [InlineData("udp", "fd00::2", "ff01::1", true)]
    [InlineData("udp", "fd00::2", "ff05::2", false)]           // site scope: routed
    [InlineData("udp", "ff02::1", "fd00::2", false)]
    public void IsLinkScoped_AsTheFlowKeySays(string protocol, string source, string destination, bool expected)
    {
        IpProtocol proto = protocol switch
        {
            "tcp" => IpProtocol.Tcp, "udp" => IpProtocol.Udp, "igmp" => IpProtocol.Igmp, _ => IpProtocol.IcmpV6,
        };
        var flow = new FlowKey(proto, IpAddress.Parse(source), 1000, IpAddress.Parse(destination), 2000);
        Correlator.FlowBits bits = default;
        bits.Set(in flow);
        Assert.Equal(expected, flow.IsLinkScoped);
        Assert.Equal(expected, bits.IsLinkScoped);
        Assert.Equal(flow, bits.ToFlowKey());
    }

    [Fact]
    public void IsLinkScoped_NoAddresses_NotLinkScoped()
    {
        Correlator.FlowBits bits = default;
        Assert.False(bits.IsLinkScoped);
        Assert.Equal(default(FlowKey).IsLinkScoped, bits.IsLinkScoped);
    }
}
