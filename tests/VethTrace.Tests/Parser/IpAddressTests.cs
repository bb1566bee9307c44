using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

public class IpAddressTests
{
    [Theory]
    [InlineData("172.17.0.2", 4)]
    [InlineData("0.0.0.0", 4)]
    [InlineData("255.255.255.255", 4)]
    [InlineData("fd00:dead:beef::2", 6)]
    [InlineData("::", 6)]
    [InlineData("::1", 6)]
    [InlineData("2001:db8:85a3:1:2:8a2e:370:7334", 6)]
    [InlineData("::ffff:172.17.0.2", 6)] // IPv4-mapped stays IPv6: the wire said so
    public void Parse_ToString_RoundTrips(string text, int version)
    {
        var address = IpAddress.Parse(text);

        Assert.Equal(version, address.Version);
        Assert.False(address.IsNone);
        Assert.Equal(text, address.ToString());
        Assert.Equal(address, IpAddress.Parse(address.ToString()));
        Assert.Equal(System.Net.IPAddress.Parse(text), address.ToIPAddress());
    }

    [Theory]
    [InlineData("172.17.0.2", 8080, "172.17.0.2:8080")]
    [InlineData("fd00::2", 443, "[fd00::2]:443")]
    [InlineData("::ffff:10.0.0.1", 53, "[::ffff:10.0.0.1]:53")]
    [InlineData("10.0.0.1", 0, "10.0.0.1:0")]
    public void ToEndpointString_WithPort_DesignFormat(string text, int port, string expected)
    {
        Assert.Equal(expected, IpAddress.Parse(text).ToEndpointString(port));
    }

    [Theory]
    [InlineData("172.17.0.2")]
    [InlineData("fd00::2")]
    public void ToEndpointString_WithoutPort_BareAddress(string text)
    {
        Assert.Equal(text, IpAddress.Parse(text).ToEndpointString(null));
    }

    [Fact]
    public void Default_IsNoneAndPrintsDash()
    {
        IpAddress none = default;

        Assert.True(none.IsNone);
        Assert.Equal(0, none.Version);
        Assert.Equal("-", none.ToString());
    }

    [Fact]
    public void FromV4AndReadV4_AgreeWithParse()
    {
        Assert.Equal(IpAddress.Parse("172.17.0.2"), IpAddress.FromV4(0xAC110002));
        Assert.Equal(IpAddress.Parse("172.17.0.2"), IpAddress.ReadV4([0xAC, 0x11, 0x00, 0x02]));
        Assert.Equal(0xAC110002u, IpAddress.Parse("172.17.0.2").V4);
    }

    [Fact]
    public void Equality_FamilyMatters()
    {
        // 0.0.0.1 and ::1 share the numeric value 1 but are different addresses.
        Assert.NotEqual(IpAddress.Parse("0.0.0.1"), IpAddress.Parse("::1"));
        Assert.Equal(IpAddress.Parse("fd00::0:2"), IpAddress.Parse("fd00::2"));
        Assert.True(IpAddress.Parse("10.0.0.1") == IpAddress.Parse("10.0.0.1"));
        Assert.Equal(IpAddress.Parse("10.0.0.1").GetHashCode(), IpAddress.Parse("10.0.0.1").GetHashCode());
    }

    [Fact]
    public void CompareTo_FamilyThenNumeric()
    {
        Assert.True(IpAddress.Parse("10.0.0.2") < IpAddress.Parse("10.0.0.10"));
        Assert.True(IpAddress.Parse("255.255.255.255") < IpAddress.Parse("::"));
        Assert.True(IpAddress.Parse("fd00::10") > IpAddress.Parse("fd00::9"));
        Assert.True(default(IpAddress) < IpAddress.Parse("0.0.0.0"));
    }
}
