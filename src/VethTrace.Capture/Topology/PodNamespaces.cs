using System.Net;
using System.Text;
using System.Text.Json;
using VethTrace.Capture.Topology.Netlink;

namespace VethTrace.Capture.Topology;

/// <summary>What a CNI runtime or IPAM plugin wrote about one pod's interface under <c>/var/lib/cni</c>.</summary>
/// <param name="ContainerId">CNI_CONTAINERID (the pod sandbox's id for containerd and CRI-O).</param>
/// <param name="Network">The CNI network's name.</param>
/// <param name="InterfaceName">CNI_IFNAME (eth0), when the file says.</param>
/// <param name="Namespace">CNI_NETNS, from a result cache only.</param>
/// <param name="PodName">K8S_POD_NAMESPACE/K8S_POD_NAME from a result cache's cniArgs (what the kubelet passes), when present.</param>
/// <param name="Addresses">The interface's addresses the file names.</param>
/// <param name="Source">The file it came from.</param>
public sealed record CniRecord(string ContainerId, string Network, string? InterfaceName, string? Namespace, string? PodName,
    IReadOnlyList<IPAddress> Addresses, string Source);

/// <summary>A host veth whose peer is inside a network namespace no container engine named: a pod of a CNI runtime, or any <c>ip netns</c>.</summary>
/// <param name="Name">What to call it: the Kubernetes pod (namespace/name), else the CNI container id, else the namespace's name.</param>
/// <param name="NamespacePath">The namespace file (/run/netns/NAME, or the path a CNI cache names).</param>
/// <param name="Cni">The CNI record that named it; null when only the namespace's path did.</param>
public sealed record PodVeth(int HostIndex, string HostName, string Name, string NamespacePath, string InterfaceInside, int IndexInside,
    IReadOnlyList<NetlinkAddress> Addresses, CniRecord? Cni)
{
    /// <summary>Where the name came from, for <c>interfaces</c>: "CNI result cache /var/lib/cni/results/…", "host-local lease …" or "netns path …".</summary>
    public string NameSource => Cni is null
        ? $"netns path {NamespacePath}"
        : Cni.Source.Contains("/results/", StringComparison.Ordinal)
            ? $"CNI result cache {Cni.Source}"
            : $"host-local lease {Cni.Source}";
}

/// <summary>
/// Names the veths no container engine knows: those whose peer sits in a network namespace pinned under
/// <c>/run/netns</c> (where <c>ip netns</c>, CNI runtimes such as containerd and CRI-O, and Podman put them) or named
/// by a CNI result cache. A pod's name comes from the CNI files under <c>/var/lib/cni</c> when one matches (the result
/// caches libcni keeps under <c>results/</c>, then host-local's leases under <c>networks/NET/IP</c>, matched by the
/// interface's address), else from the namespace's path.
/// </summary>
public static class PodNamespaces
{
    public const string CniDirectory = "/var/lib/cni";

    /// <summary>Reads the namespaces and the CNI files, and joins them to the host's veths.</summary>
    public static IReadOnlyList<PodVeth> Find(NamespaceSnapshot host, string cniDirectory = CniDirectory, string netnsDirectory = NetworkNamespace.NamedNamespaceDirectory)
    {
        ArgumentNullException.ThrowIfNull(host);
        IReadOnlyList<CniRecord> records = ReadCni(cniDirectory);
        var paths = new List<string>();
        try
        {
            if (Directory.Exists(netnsDirectory))
            {
                paths.AddRange(Directory.EnumerateFiles(netnsDirectory).Order(StringComparer.Ordinal));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No namespaces to read: the CNI caches may still name some.
        }
        foreach (CniRecord record in records)
        {
            if (record.Namespace is { } path && !paths.Contains(path) && !paths.Contains(Canonical(path)) && File.Exists(path))
            {
                paths.Add(path);
            }
        }
        var spaces = new List<NamespaceSnapshot>();
        var identities = new HashSet<string>(StringComparer.Ordinal) { host.Identity };
        foreach (string path in paths)
        {
            try
            {
                NamespaceSnapshot snapshot = NetworkNamespace.FromPath(path).ReadSnapshot();
                if (identities.Add(snapshot.Identity))
                {
                    spaces.Add(snapshot);
                }
            }
            catch (TopologyException)
            {
                // Not a network namespace (a stale pin), or gone meanwhile: nothing to name.
            }
        }
        return Build(host, spaces, records);
    }

    /// <summary>The pure part of <see cref="Find"/>: joins each namespace's veths to the host's and names them.</summary>
    public static IReadOnlyList<PodVeth> Build(NamespaceSnapshot host, IReadOnlyList<NamespaceSnapshot> spaces, IReadOnlyList<CniRecord> records)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(spaces);
        ArgumentNullException.ThrowIfNull(records);
        var found = new List<PodVeth>();
        foreach (NamespaceSnapshot space in spaces)
        {
            if (space.Identity == host.Identity || space.Path is null)
            {
                continue;
            }
            foreach (NetlinkLink link in space.Links.Where(l => !l.IsLoopback && l.Kind == "veth"))
            {
                if (link.LinkIndex is not int peerIndex || link.LinkNetnsId is null
                    || host.FindLink(peerIndex) is not NetlinkLink peer || peer.Kind != "veth" || peer.LinkIndex != link.Index)
                {
                    continue;
                }
                IReadOnlyList<NetlinkAddress> addresses = space.AddressesOf(link.Index);
                CniRecord? cni = Match(records, space.Path, link.Name, addresses);
                string name = cni?.PodName ?? cni?.ContainerId ?? NamespaceName(space.Path);
                found.Add(new PodVeth(peer.Index, peer.Name, name, space.Path, link.Name, link.Index, addresses, cni));
            }
        }
        return found;
    }

    /// <summary>
    /// The CNI files under <paramref name="directory"/>: every <c>results/*</c> cache of kind cniCacheV1, and every
    /// host-local lease <c>networks/NET/IP</c> (the container id on the first line, the interface on the second).
    /// Files that do not parse are skipped: they are another tool's.
    /// </summary>
    public static IReadOnlyList<CniRecord> ReadCni(string directory = CniDirectory)
    {
        var records = new List<CniRecord>();
        foreach (string file in Files(Path.Combine(directory, "results")))
        {
            if (ReadCache(file) is { } record)
            {
                records.Add(record);
            }
        }
        foreach (string network in Directories(Path.Combine(directory, "networks")))
        {
            foreach (string file in Files(network))
            {
                if (IPAddress.TryParse(Path.GetFileName(file), out IPAddress? address) && ReadSmall(file) is { } text)
                {
                    string[] lines = text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                    if (lines.Length > 0)
                    {
                        records.Add(new CniRecord(lines[0], Path.GetFileName(network), lines.Length > 1 ? lines[1] : null, null, null, [address], file));
                    }
                }
            }
        }
        return records;
    }

    /// <summary>One libcni result cache (cniCacheV1); null when it is something else.</summary>
    public static CniRecord? ReadCache(string file)
    {
        if (ReadSmall(file) is not { } text)
        {
            return null;
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(text);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || String(root, "kind") != "cniCacheV1"
                || String(root, "containerId") is not { } id || String(root, "networkName") is not { } network)
            {
                return null;
            }
            string? podNamespace = null, podName = null;
            if (root.TryGetProperty("cniArgs", out JsonElement args) && args.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement pair in args.EnumerateArray())
                {
                    if (pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2
                        && pair[0].ValueKind == JsonValueKind.String && pair[1].ValueKind == JsonValueKind.String)
                    {
                        switch (pair[0].GetString())
                        {
                            case "K8S_POD_NAMESPACE": podNamespace = pair[1].GetString(); break;
                            case "K8S_POD_NAME": podName = pair[1].GetString(); break;
                        }
                    }
                }
            }
            var addresses = new List<IPAddress>();
            if (root.TryGetProperty("result", out JsonElement result) && result.ValueKind == JsonValueKind.Object
                && result.TryGetProperty("ips", out JsonElement ips) && ips.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement ip in ips.EnumerateArray())
                {
                    if (String(ip, "address") is { } cidr && IPAddress.TryParse(cidr.Split('/')[0], out IPAddress? address))
                    {
                        addresses.Add(address);
                    }
                }
            }
            string? pod = podName is null ? null : podNamespace is null ? podName : $"{podNamespace}/{podName}";
            return new CniRecord(id, network, String(root, "ifName"), String(root, "netns"), pod, addresses, file);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// The record for an interface: a result cache naming this namespace and interface, then any record (cache or
    /// lease) that holds one of its addresses with the same interface name (or none given).
    /// </summary>
    private static CniRecord? Match(IReadOnlyList<CniRecord> records, string path, string interfaceName, IReadOnlyList<NetlinkAddress> addresses)
    {
        foreach (CniRecord record in records)
        {
            if (record.Namespace is { } ns && SamePath(ns, path) && (record.InterfaceName is null || record.InterfaceName == interfaceName))
            {
                return record;
            }
        }
        // A cache for another namespace that reuses the address is stale; only those that name no namespace match by address.
        foreach (CniRecord record in records.Where(r => r.Namespace is null || !File.Exists(r.Namespace)).OrderBy(r => r.PodName is null))
        {
            if ((record.InterfaceName is null || record.InterfaceName == interfaceName)
                && record.Addresses.Any(a => addresses.Any(own => own.Address.Equals(a))))
            {
                return record;
            }
        }
        return null;
    }

    private static bool SamePath(string a, string b) => a == b || Canonical(a) == Canonical(b);

    /// <summary>/var/run is /run on every current distribution: a cache saying /var/run/netns/X names /run/netns/X.</summary>
    private static string Canonical(string path) => path.StartsWith("/var/run/", StringComparison.Ordinal) ? path[4..] : path;

    private static string NamespaceName(string path) =>
        path.StartsWith(NetworkNamespace.NamedNamespaceDirectory + "/", StringComparison.Ordinal) ? $"netns:{Path.GetFileName(path)}" : $"netns:{path}";

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>A lease or a cache is a few kilobytes; anything past 1 MiB is not one of them.</summary>
    private static string? ReadSmall(string file)
    {
        try
        {
            var info = new FileInfo(file);
            return info.Length > 1 << 20 ? null : File.ReadAllText(file, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static IEnumerable<string> Files(string directory)
    {
        try
        {
            return Directory.Exists(directory) ? [.. Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal)] : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static IEnumerable<string> Directories(string directory)
    {
        try
        {
            return Directory.Exists(directory) ? [.. Directory.EnumerateDirectories(directory).Order(StringComparer.Ordinal)] : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
