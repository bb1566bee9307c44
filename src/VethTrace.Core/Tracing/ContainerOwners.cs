using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>A container as whole-host tracing names it: Docker's name, the network of the interface, its addresses.</summary>
/// <param name="Name">The container's name.</param>
/// <param name="Network">The Docker network (bridge, a user network's name); null when not known.</param>
/// <param name="Addresses">The container's addresses on it: flows and NAT rows are attributed by them.</param>
public sealed record ContainerOwner(string Name, string? Network, IReadOnlyList<IpAddress> Addresses);

/// <summary>
/// Which container each interface of a trace belongs to (a host veth to the container at its far end), by interface
/// id. Bridges and the egress belong to none: they carry every container's packets. An interface keeps its owner after
/// it went away, so a stopped container's figures stay attributed. Written and read by the thread that builds reports
/// (follow's main thread, replay's after the run); never on the per-packet path.
/// </summary>
public sealed class ContainerOwners
{
    private readonly Dictionary<int, ContainerOwner> _byInterface = [];
    private readonly Dictionary<string, ContainerOwner> _byName = new(StringComparer.Ordinal);

    public int Count => _byName.Count;

    /// <summary>Every container seen, in the order first seen.</summary>
    public IEnumerable<ContainerOwner> Containers => _byName.Values;

    /// <summary>
    /// Gives interface <paramref name="interfaceId"/> to a container. A container seen again (a restart, a second
    /// veth) keeps one entry by name; its addresses are the union of what was seen, so a restarted container's old
    /// flows stay its own.
    /// </summary>
    public ContainerOwner Assign(int interfaceId, ContainerOwner owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        if (_byName.TryGetValue(owner.Name, out ContainerOwner? known))
        {
            owner = known with
            {
                Network = owner.Network ?? known.Network,
                Addresses = [.. known.Addresses.Union(owner.Addresses)],
            };
        }
        _byName[owner.Name] = owner;
        foreach (int id in _byInterface.Where(pair => pair.Value.Name == owner.Name).Select(pair => pair.Key).ToList())
        {
            _byInterface[id] = owner;
        }
        _byInterface[interfaceId] = owner;
        return owner;
    }

    public ContainerOwner? Of(int interfaceId) => _byInterface.GetValueOrDefault(interfaceId);

    /// <summary>The container one of whose addresses <paramref name="address"/> is, or null.</summary>
    public ContainerOwner? ByAddress(IpAddress address)
    {
        if (address.IsNone)
        {
            return null;
        }
        foreach (ContainerOwner owner in _byName.Values)
        {
            foreach (IpAddress known in owner.Addresses)
            {
                if (known == address)
                {
                    return owner;
                }
            }
        }
        return null;
    }

    /// <summary>The interfaces of a container, by id.</summary>
    public IEnumerable<int> InterfacesOf(string name) => _byInterface.Where(pair => pair.Value.Name == name).Select(pair => pair.Key);

    /// <summary>
    /// The container a path belongs to: the owner of its first interface that has one (the sender's veth for a packet
    /// leaving a container, or the receiver's for one coming in; the sender for east-west).
    /// </summary>
    public ContainerOwner? OfPath(IReadOnlyList<int> interfaces)
    {
        ArgumentNullException.ThrowIfNull(interfaces);
        foreach (int id in interfaces)
        {
            if (Of(id) is { } owner)
            {
                return owner;
            }
        }
        return null;
    }

    /// <summary>The container a loss belongs to: the owner of the interface it was last seen on, else of the flow's source or destination address.</summary>
    public ContainerOwner? OfLoss(LossReport loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return Of(loss.LastSeen) ?? ByAddress(loss.Flow.Source) ?? ByAddress(loss.Flow.Destination);
    }

    /// <summary>The container a hop belongs to: the owner of either end (null for a hop between shared interfaces, bridge to egress).</summary>
    public ContainerOwner? OfHop(HopReport hop)
    {
        ArgumentNullException.ThrowIfNull(hop);
        return Of(hop.From) ?? Of(hop.To);
    }

    /// <summary>The container whose address is a NAT row's inside address (<c>172.17.0.2:40000</c>, <c>[fd00::2]:80</c>, or a bare address).</summary>
    public ContainerOwner? OfNatInside(string inside)
    {
        ArgumentNullException.ThrowIfNull(inside);
        string address = inside;
        if (address.StartsWith('['))
        {
            int close = address.IndexOf(']', StringComparison.Ordinal);
            address = close > 0 ? address[1..close] : address;
        }
        else if (address.Count(c => c == ':') == 1)
        {
            address = address[..address.IndexOf(':', StringComparison.Ordinal)];
        }
        return System.Net.IPAddress.TryParse(address, out _) ? ByAddress(IpAddress.Parse(address)) : null;
    }
}
