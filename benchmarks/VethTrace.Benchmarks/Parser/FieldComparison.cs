using System.Globalization;
using PacketDotNet;
using VethTrace.Cli.Bench;
using VethTrace.Capture.Files;
using VethTrace.Packets;

namespace VethTrace.Benchmarks.Parser;

/// <summary>
/// The <c>compare</c> command: parses every packet of a set with both parsers and lists, field by field,
/// where PacketDotNet and VethTrace disagree, with examples, and which packets PacketDotNet throws on.
/// A disagreement is a finding to judge, not necessarily a VethTrace bug.
/// </summary>
public static class FieldComparison
{
    /// <summary>
    /// <c>compare [--truncate] [bulk|mixed|FILE…]</c>; no set compares both sets. <c>--truncate</c> compares
    /// every prefix of every packet instead (the first <see cref="TruncateUpTo"/> bytes), which is where
    /// parsers differ most. Returns 0, or 2 on bad arguments or missing captures. Disagreements do not fail
    /// it: they are reported.
    /// </summary>
    public static int Run(IReadOnlyList<string> arguments, TextWriter output, TextWriter error)
    {
        bool truncate = arguments.Contains("--truncate");
        arguments = arguments.Where(argument => argument != "--truncate").ToArray();
        IReadOnlyList<PacketSet> sets;
        try
        {
            sets = arguments.Count == 0
                ? PacketSetLoader.SetNames.Select(PacketSetLoader.Load).ToArray()
                : arguments.All(argument => PacketSetLoader.SetNames.Contains(argument))
                    ? arguments.Select(PacketSetLoader.Load).ToArray()
                    : [PacketSetLoader.LoadFiles("files", arguments)];
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidDataException or CaptureFileException)
        {
            error.WriteLine($"compare: {e.Message}");
            return 2;
        }
        foreach (PacketSet set in sets)
        {
            Compare(truncate ? Prefixes(set) : set, output);
        }
        return 0;
    }

    /// <summary>How far <c>--truncate</c> cuts: past the deepest headers of the sets (VXLAN inner TCP ends near 120).</summary>
    public const int TruncateUpTo = 160;

    /// <summary>Every prefix (0 to <see cref="TruncateUpTo"/> bytes, at most the whole frame) of every distinct frame.</summary>
    private static PacketSet Prefixes(PacketSet set)
    {
        var builder = new PacketSetBuilder(set.Name + " prefixes");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < set.Count; i++)
        {
            ReadOnlySpan<byte> frame = set.Frame(i);
            ReadOnlySpan<byte> head = frame[..Math.Min(frame.Length, TruncateUpTo)];
            // Most bulk frames differ only in sequence numbers; one per distinct header shape is enough.
            if (!seen.Add($"{set.LinkTypes[i].Value}:{Convert.ToHexString(head[..Math.Min(head.Length, 16)])}:{frame.Length}"))
            {
                continue;
            }
            for (int length = 0; length <= head.Length; length++)
            {
                builder.Add(head[..length], set.OriginalLengths[i], set.TimestampsNs[i], set.LinkTypes[i]);
            }
        }
        return builder.Build(set.Sources);
    }

    /// <summary>
    /// Compares one set. Disagreements are grouped by field and by where VethTrace's parse stopped
    /// (outcome and layer), with a count and the first example of each group, hex frame included.
    /// </summary>
    public static void Compare(PacketSet set, TextWriter output)
    {
        // field -> parse state -> (count, first example)
        var disagreements = new SortedDictionary<string, Dictionary<string, (int Count, string Example)>>(StringComparer.Ordinal);
        var thrown = new Dictionary<string, (int Count, string Example)>(StringComparer.Ordinal);
        int agreed = 0;
        for (int i = 0; i < set.Count; i++)
        {
            ReadOnlySpan<byte> frame = set.Frame(i);
            PacketParser.Parse(frame, set.LinkTypes[i], out ParsedPacket parsed);
            string state = $"{set.LinkTypes[i]}, VethTrace {parsed.Outcome} at {parsed.StoppedAt}";
            int index = i;
            string hex = Convert.ToHexString(frame[..Math.Min(frame.Length, ExampleBytes)]);
            string description = $"packet {index} ({frame.Length} of {set.OriginalLengths[index]} bytes, {parsed})";
            string Example(string detail) => $"{description}: {detail}; frame {hex}";

            PacketFields ours = PacketFields.From(in parsed.Outer);
            PacketFields theirs;
            Packet packet;
            try
            {
                packet = Packet.ParsePacket(PacketDotNetFields.ToLinkLayer(set.LinkTypes[i]), frame.ToArray());
                theirs = PacketDotNetFields.Read(packet);
            }
            catch (Exception e)
            {
                Count(thrown, $"{e.GetType().Name} reading the fields ({state})", () => Example(e.Message));
                continue;
            }
            int? theirSegment = null;
            try
            {
                // The benchmark never touches the payload; this does, to see what PacketDotNet says it holds.
                theirSegment = packet.Extract<IPPacket>()?.PayloadPacket is TransportPacket transport ? PacketDotNetFields.PayloadSegmentLength(transport) : null;
            }
            catch (Exception e)
            {
                Count(thrown, $"{e.GetType().Name} only on touching the transport payload ({state})", () => Example(e.Message));
            }
            IEnumerable<(string Field, string Ours, string Theirs)> differences = Differences(ours, theirs);
            if (theirSegment is int segment && ours.Transport != TransportKind.None && segment != parsed.Outer.CapturedPayloadLength)
            {
                // Not a field the checksum folds: how many payload bytes PacketDotNet's segment claims to hold.
                differences = differences.Append(("~ PacketDotNet payload segment length vs captured payload bytes",
                    Text(parsed.Outer.CapturedPayloadLength), Text(segment)));
            }
            if (ours == theirs)
            {
                agreed++;
            }
            foreach ((string field, string mine, string other) in differences)
            {
                if (!disagreements.TryGetValue(field, out var byState))
                {
                    disagreements[field] = byState = new(StringComparer.Ordinal);
                }
                Count(byState, state, () => Example($"VethTrace {mine}, PacketDotNet {other}"));
            }
        }

        output.WriteLine($"== {set.Name}: {set.Count} packets, link types {string.Join(", ", set.DistinctLinkTypes())}, from {string.Join(", ", set.Sources)}");
        output.WriteLine($"   compared fields all agree on {agreed}; PacketDotNet threw {thrown.Values.Sum(t => t.Count)} times");
        foreach ((string key, (int count, string example)) in thrown.OrderByDescending(t => t.Value.Count))
        {
            output.WriteLine($"   throws {count} x {key}");
            output.WriteLine($"       e.g. {example}");
        }
        foreach ((string field, Dictionary<string, (int Count, string Example)> byState) in disagreements)
        {
            output.WriteLine($"   {field} differs on {byState.Values.Sum(s => s.Count)} packets:");
            foreach ((string state, (int count, string example)) in byState.OrderByDescending(s => s.Value.Count))
            {
                output.WriteLine($"     {count} x ({state})");
                output.WriteLine($"       e.g. {example}");
            }
        }
    }

    private const int ExampleBytes = 96;

    private static void Count(Dictionary<string, (int Count, string Example)> groups, string key, Func<string> example) =>
        groups[key] = groups.TryGetValue(key, out var seen) ? (seen.Count + 1, seen.Example) : (1, example());

    private static IEnumerable<(string Field, string Ours, string Theirs)> Differences(PacketFields ours, PacketFields theirs)
    {
        if (ours.IpVersion != theirs.IpVersion)
        {
            yield return ("ip version", Text(ours.IpVersion), Text(theirs.IpVersion));
        }
        if (ours.Source != theirs.Source)
        {
            yield return ("source address", ours.Source.ToString("x", CultureInfo.InvariantCulture), theirs.Source.ToString("x", CultureInfo.InvariantCulture));
        }
        if (ours.Destination != theirs.Destination)
        {
            yield return ("destination address", ours.Destination.ToString("x", CultureInfo.InvariantCulture), theirs.Destination.ToString("x", CultureInfo.InvariantCulture));
        }
        if (ours.Protocol != theirs.Protocol)
        {
            yield return ("protocol", Text(ours.Protocol), Text(theirs.Protocol));
        }
        if (ours.Ttl != theirs.Ttl)
        {
            yield return ("ttl", Text(ours.Ttl), Text(theirs.Ttl));
        }
        if (ours.IpId != theirs.IpId)
        {
            yield return ("ip id", Text(ours.IpId), Text(theirs.IpId));
        }
        if (ours.Transport != theirs.Transport)
        {
            yield return ("transport decoded", ours.Transport.ToString(), theirs.Transport.ToString());
        }
        if (ours.SourcePort != theirs.SourcePort || ours.DestinationPort != theirs.DestinationPort)
        {
            yield return ("ports", $"{ours.SourcePort}>{ours.DestinationPort}", $"{theirs.SourcePort}>{theirs.DestinationPort}");
        }
        if (ours.Sequence != theirs.Sequence || ours.Acknowledgment != theirs.Acknowledgment)
        {
            yield return ("tcp seq/ack", $"{ours.Sequence}/{ours.Acknowledgment}", $"{theirs.Sequence}/{theirs.Acknowledgment}");
        }
        if (ours.TcpFlags != theirs.TcpFlags)
        {
            yield return ("tcp flags", $"0x{ours.TcpFlags:x3}", $"0x{theirs.TcpFlags:x3}");
        }
        if (ours.PayloadLength != theirs.PayloadLength)
        {
            yield return ("payload length", Text(ours.PayloadLength), Text(theirs.PayloadLength));
        }
    }

    private static string Text<T>(T value) where T : IFormattable => value.ToString(null, CultureInfo.InvariantCulture);
}
