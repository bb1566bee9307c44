using VethTrace.Capture.Files;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tests.Lab;

[CollectionDefinition("Lab", DisableParallelization = true)]
public sealed class LabCollection;

/// <summary>
/// Real traffic on the real Docker lab, captured with dumpcap on the container's eth0 (inside its namespace),
/// its veth, the bridge, the other container's veth and the stand-in egress: the fingerprint must put every copy
/// of a packet together across MASQUERADE and DNAT, and keep distinct packets apart. Expected addresses come
/// from the lab's state file and topology (tests/lab/lib.sh), not from VethTrace.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class LiveFingerprintTests
{
    private sealed record Sighting(string Interface, PacketLayers Layers);

    [Fact]
    public void Fingerprint_LiveIcmpThroughMasqueradeAndTcpThroughDnat_CopiesMatchOnEveryHop()
    {
        var lab = LabEnvironment.Load();
        string directory = Directory.CreateTempSubdirectory("vethtrace-lab-").FullName;
        string containerFile = Path.Combine(directory, "c1.pcapng");
        string hostFile = Path.Combine(directory, "host.pcapng");
        string c1Veth = lab["C1_VETH"], c2Veth = lab["C2_VETH"], bridge = lab["BRIDGE"], egress = lab["EGRESS_IF"];

        using (var inContainer = new DumpcapSession(containerFile, lab["C1_NETNS"], "eth0"))
        using (var onHost = new DumpcapSession(hostFile, null, c1Veth, bridge, c2Veth, egress))
        {
            LabEnvironment.Run("docker", "exec", lab["C1_NAME"], "ping", "-c", "3", "-W", "2", lab["UPSTREAM_IP"]);
            string response = LabEnvironment.Run("bash", "-c",
                $"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ip netns exec {lab["UPSTREAM_NS"]} socat -t 3 -T 5 - TCP:{lab["EGRESS_IP"]}:{lab["C2_PUBLISHED_PORT"]},connect-timeout=3");
            Assert.Contains("200 OK", response);
            Thread.Sleep(500);
            inContainer.Stop();
            onHost.Stop();
        }

        var groups = new Dictionary<ulong, List<Sighting>>();
        foreach (string file in new[] { containerFile, hostFile })
        {
            using var reader = CaptureFileReader.Open(file);
            while (reader.TryReadNext(out CaptureRecord record))
            {
                PacketParser.Parse(record.Data, record.LinkType, out ParsedPacket packet);
                ulong fingerprint = PacketFingerprint.Compute(in packet, record.Data);
                if (!groups.TryGetValue(fingerprint, out var list))
                {
                    groups[fingerprint] = list = [];
                }
                list.Add(new Sighting(reader.Interfaces[record.InterfaceId].Name, packet.Innermost));
            }
            Assert.Null(reader.Error);
        }
        Directory.Delete(directory, recursive: true);

        var c1 = IpAddress.Parse(lab["C1_IP"]);
        var c2 = IpAddress.Parse(lab["C2_IP"]);
        var hostSide = IpAddress.Parse(lab["EGRESS_IP"]);
        var upstream = IpAddress.Parse(lab["UPSTREAM_IP"]);

        // Outbound ICMP echo through MASQUERADE: container eth0 → veth → bridge → egress, source rewritten, TTL - 1.
        var requests = groups.Where(g => g.Value.Any(s => s.Interface == "eth0" && s.Layers.IsIcmp && s.Layers.IcmpType == 8 && s.Layers.Destination == upstream)).ToList();
        Assert.Equal(3, requests.Count);
        foreach (var (_, sightings) in requests)
        {
            Assert.Equal(new[] { bridge, "eth0", c1Veth, egress }.Order(), sightings.Select(s => s.Interface).Order());
            var inside = sightings.Single(s => s.Interface == "eth0").Layers;
            var outside = sightings.Single(s => s.Interface == egress).Layers;
            Assert.Equal(c1, inside.Source);
            Assert.Equal(hostSide, outside.Source);
            Assert.Equal(inside.Ttl - 1, outside.Ttl);
            Assert.Equal(inside.IcmpSequence, outside.IcmpSequence);
        }

        // The replies come back through the reverse translation: destination rewritten to the container.
        var replies = groups.Where(g => g.Value.Any(s => s.Interface == egress && s.Layers.IsIcmp && s.Layers.IcmpType == 0 && s.Layers.Destination == hostSide)).ToList();
        Assert.Equal(3, replies.Count);
        foreach (var (_, sightings) in replies)
        {
            Assert.Contains(sightings, s => s.Interface == "eth0" && s.Layers.Destination == c1);
            Assert.Contains(sightings, s => s.Interface == c1Veth && s.Layers.Destination == c1);
        }

        // Inbound to the published port: DNAT from host:8080 to the second container's :80, seen on the egress and its veth.
        var syn = groups.Where(g => g.Value.Any(s => s.Interface == egress && s.Layers.IsTcp && s.Layers.TcpFlags == TcpFlags.Syn
            && s.Layers.Destination == hostSide && s.Layers.DestinationPort == ushort.Parse(lab["C2_PUBLISHED_PORT"]))).ToList();
        Assert.Single(syn);
        var translated = syn[0].Value.Single(s => s.Interface == c2Veth).Layers;
        Assert.Equal(c2, translated.Destination);
        Assert.Equal(80, translated.DestinationPort);
        Assert.Equal(upstream, translated.Source);

        // Every TCP segment of that exchange seen on c2's veth is matched on the egress too, one to one.
        var exchange = groups.Values.Where(v => v.Any(s => s.Interface == c2Veth && s.Layers.IsTcp)).ToList();
        Assert.True(exchange.Count >= 6, $"expected a whole HTTP exchange on {c2Veth}, saw {exchange.Count} segments");
        Assert.All(exchange, sightings => Assert.Contains(sightings, s => s.Interface == egress));
    }
}
