using System.Text.RegularExpressions;
using VethTrace.Tracing;

namespace VethTrace.Capture.Files;

/// <summary>
/// The if_description <c>vethtrace record</c> writes for an interface of the whole host, and its reading back by
/// <c>replay</c>: the role, and for a host veth the container at its far end with its network and addresses.
/// <c>host veth of container web on network bridge at 172.17.0.4 fe80::42:acff:fe11:4</c>, <c>bridge of the whole host</c>,
/// <c>egress of the whole host</c>. Docker's container and network names hold no spaces.
/// </summary>
public static partial class HostInterfaceDescription
{
    private const string WholeHost = "the whole host";

    public static string Format(InterfaceRole role, string? container, string? network, IEnumerable<string> addresses)
    {
        string what = role switch
        {
            InterfaceRole.Veth => "host veth",
            InterfaceRole.Bridge => "bridge",
            InterfaceRole.Tunnel => "tunnel",
            _ => "egress",
        };
        if (container is null)
        {
            return $"{what} of {WholeHost}";
        }
        string text = $"{what} of container {container}" + (network is null ? "" : $" on network {network}");
        string at = string.Join(' ', addresses);
        return at.Length == 0 ? text : $"{text} at {at}";
    }

    /// <summary>Reads a description <see cref="Format"/> wrote; false for any other (a container's own recording, dumpcap's).</summary>
    public static bool TryParse(string? description, out InterfaceRole role, out ContainerOwner? owner)
    {
        role = InterfaceRole.Egress;
        owner = null;
        if (description is null || Pattern().Match(description) is not { Success: true } match)
        {
            return false;
        }
        role = match.Groups["role"].Value switch
        {
            "host veth" => InterfaceRole.Veth,
            "bridge" => InterfaceRole.Bridge,
            "tunnel" => InterfaceRole.Tunnel,
            _ => InterfaceRole.Egress,
        };
        if (match.Groups["container"].Success)
        {
            var addresses = new List<VethTrace.Packets.IpAddress>();
            foreach (string text in match.Groups["at"].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (System.Net.IPAddress.TryParse(text, out _))
                {
                    addresses.Add(VethTrace.Packets.IpAddress.Parse(text));
                }
            }
            owner = new ContainerOwner(match.Groups["container"].Value, match.Groups["network"].Success ? match.Groups["network"].Value : null, addresses);
        }
        return true;
    }

    [GeneratedRegex(@"^(?<role>host veth|bridge|tunnel|egress) of (?:the whole host|container (?<container>\S+)(?: on network (?<network>\S+))?(?: at (?<at>.+))?)$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
