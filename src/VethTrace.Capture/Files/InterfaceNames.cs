using System.Globalization;
using VethTrace.Packets;

namespace VethTrace.Capture.Files;

/// <summary>
/// Names the interface a packet was seen on (docs/DESIGN.md, "Interface names"): a pcapng interface by its if_name, a
/// classic pcap file by its base name, and a Linux cooked v2 packet by <c>if&lt;index&gt;</c> unless
/// <c>--ifname INDEX=NAME</c> maps the index.
/// </summary>
public sealed class InterfaceNames
{
    private readonly IReadOnlyDictionary<int, string> _byIndex;
    private readonly Dictionary<int, string> _indexNames = [];

    public InterfaceNames(IReadOnlyDictionary<int, string> byIndex) => _byIndex = byIndex;

    /// <summary>Parses <c>INDEX=NAME</c>; returns an error message, or null.</summary>
    public static string? TryParseMapping(string text, Dictionary<int, string> into)
    {
        int equals = text.IndexOf('=');
        if (equals <= 0 || equals == text.Length - 1
            || !int.TryParse(text.AsSpan(0, equals), NumberStyles.None, CultureInfo.InvariantCulture, out int index) || index <= 0)
        {
            return $"--ifname expects INDEX=NAME with a positive index, as in --ifname 4=docker0; got '{text}'";
        }
        into[index] = text[(equals + 1)..];
        return null;
    }

    public string Name(CaptureInterface captureInterface, in ParsedPacket packet)
    {
        int index = packet.Outer.InterfaceIndex;
        if (packet.Outer.LinkType != LinkType.LinuxSll2 || index <= 0)
        {
            return captureInterface.Name;
        }
        if (_byIndex.TryGetValue(index, out string? mapped))
        {
            return mapped;
        }
        if (!_indexNames.TryGetValue(index, out string? name))
        {
            name = "if" + index.ToString(CultureInfo.InvariantCulture);
            _indexNames[index] = name;
        }
        return name;
    }
}
