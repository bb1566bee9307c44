using VethTrace.Capture.Files;
using VethTrace.Flows;
using VethTrace.Packets;
using VethTrace.Tests.Parser;

namespace VethTrace.Fuzz;

/// <summary>A property that does not hold: AFL records the input as a crash.</summary>
public sealed class FuzzFinding(string message) : Exception(message);

public delegate void FuzzTarget(ReadOnlySpan<byte> input);

public static class Targets
{
    private static readonly Dictionary<string, FuzzTarget> All = new()
    {
        ["parser"] = Parser,
        ["pcap"] = Pcap,
        ["pcapng"] = Pcapng,
    };

    public static FuzzTarget? Find(string name) => All.GetValueOrDefault(name);

    // Byte 0 of a parser input picks the link type, byte 1 the options; the rest is the frame.
    internal static readonly LinkType[] LinkTypes =
        [LinkType.Ethernet, LinkType.LinuxSll, LinkType.LinuxSll2, LinkType.Raw, new(228), new(229), new(0), new(108), new(147)];

    private static readonly ParserOptions[] Options =
    [
        ParserOptions.Default,
        new() { MaxVlanTags = 1, MaxExtensionHeaders = 2, MaxTunnelDepth = 1 },
        new() { VxlanPort = 0 },
        new() { MaxTunnelDepth = 8, MaxExtensionHeaders = 64, MaxVlanTags = 16 },
    ];

    /// <summary>
    /// The parser and the fingerprint: nothing escapes; no layer beyond the captured bytes; the same bytes give the
    /// same fingerprint; no allocation.
    /// </summary>
    public static void Parser(ReadOnlySpan<byte> input)
    {
        if (input.Length < 2)
        {
            return;
        }
        LinkType linkType = LinkTypes[input[0] % LinkTypes.Length];
        ParserOptions options = Options[input[1] % Options.Length];
        ReadOnlySpan<byte> frame = input[2..];

        long before = GC.GetAllocatedBytesForCurrentThread();
        ParseOutcome outcome = PacketParser.Parse(frame, linkType, options, out ParsedPacket packet);
        ulong fingerprint = PacketFingerprint.Compute(in packet, frame);
        FlowKey key = FlowKey.From(in packet);
        PacketFingerprint.CoversPayload(in packet);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        if (outcome != packet.Outcome)
        {
            throw new FuzzFinding($"Parse returned {outcome} but the packet says {packet.Outcome}");
        }
        if (ParserInvariantRules.Violation(in packet, frame.Length) is { } violation)
        {
            throw new FuzzFinding(violation);
        }
        // Deterministic: a copy of the frame in another buffer parses to the same fingerprint and flow.
        byte[] copy = frame.ToArray();
        PacketParser.Parse(copy, linkType, options, out ParsedPacket again);
        if (PacketFingerprint.Compute(in again, copy) != fingerprint || !FlowKey.From(in again).Equals(key))
        {
            throw new FuzzFinding("the same bytes gave another fingerprint or flow key");
        }
        if (allocated != 0 && AllocatesEveryTime(frame, linkType, options))
        {
            throw new FuzzFinding($"parsing and fingerprinting allocated {allocated} bytes");
        }
    }

    /// <summary>The runtime may allocate once on this thread (tier-up, on-stack replacement): only a repeat counts.</summary>
    private static bool AllocatesEveryTime(ReadOnlySpan<byte> frame, LinkType linkType, ParserOptions options)
    {
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            PacketParser.Parse(frame, linkType, options, out ParsedPacket packet);
            PacketFingerprint.Compute(in packet, frame);
            FlowKey.From(in packet);
            if (GC.GetAllocatedBytesForCurrentThread() == before)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The classic pcap reader: the input gets a pcap magic unless it has one (or is gzip).</summary>
    public static void Pcap(ReadOnlySpan<byte> input) => ReadCapture(input, [0xd4, 0xc3, 0xb2, 0xa1], "fuzz.pcap");

    /// <summary>The pcapng reader: the input gets a section header block type unless it has one (or is gzip).</summary>
    public static void Pcapng(ReadOnlySpan<byte> input) => ReadCapture(input, [0x0a, 0x0d, 0x0d, 0x0a], "fuzz.pcapng");

    private static void ReadCapture(ReadOnlySpan<byte> input, byte[] magic, string name)
    {
        byte[] file = input.ToArray();
        bool gzip = file.Length >= 2 && file[0] == 0x1f && file[1] == 0x8b;
        if (!gzip && file.Length >= 4 && !IsCaptureMagic(file))
        {
            magic.CopyTo(file, 0);
        }
        CaptureFileReader reader;
        try
        {
            // Half the inputs come as from a pipe: read forward only, a byte or two at a time.
            reader = CaptureFileReader.Open(file.Length % 2 == 0 ? new MemoryStream(file) : new ForwardOnlyStream(file), name);
        }
        catch (CaptureFileException e)
        {
            if (e.Error.Offset < 0 || !gzip && e.Error.Offset > file.Length || string.IsNullOrWhiteSpace(e.Error.Message))
            {
                throw new FuzzFinding($"Open: error out of place: {e.Error}");
            }
            return;
        }
        using (reader)
        {
            long packets = 0;
            // A gzip member can inflate about a thousandfold (RFC 1951's longest match is 258 bytes for a few bits).
            long limit = gzip ? 1032L * file.Length + 64 : file.Length;
            while (reader.TryReadNext(out CaptureRecord record))
            {
                packets++;
                if (record.Data.Length > CaptureFileReader.MaxCaptureLengthFor(record.LinkType))
                {
                    throw new FuzzFinding($"a record of {record.Data.Length} bytes");
                }
                if (record.FileOffset < 0 || record.FileOffset >= limit)
                {
                    throw new FuzzFinding($"a record at offset {record.FileOffset} of a {file.Length}-byte input");
                }
                if (packets > limit)
                {
                    throw new FuzzFinding("more packets than bytes: the reader does not advance");
                }
                if ((uint)record.InterfaceId >= (uint)reader.Interfaces.Count)
                {
                    throw new FuzzFinding($"a record on interface {record.InterfaceId} of {reader.Interfaces.Count}");
                }
                // What replay does with each record.
                PacketParser.Parse(record.Data, record.LinkType, ParserOptions.Default, out ParsedPacket packet);
                PacketFingerprint.Compute(in packet, record.Data);
            }
            if (reader.PacketsRead != packets)
            {
                throw new FuzzFinding($"PacketsRead {reader.PacketsRead}, returned {packets}");
            }
            if (reader.Error is { } error && (error.Offset < 0 || error.Offset > limit || string.IsNullOrWhiteSpace(error.Message)))
            {
                throw new FuzzFinding($"error out of place: {error}");
            }
            if (reader.TryReadNext(out _))
            {
                throw new FuzzFinding("a packet after the end");
            }
        }
    }

    private static bool IsCaptureMagic(byte[] file)
    {
        uint magic = BitConverter.ToUInt32(file, 0);
        return magic is 0xA1B2C3D4 or 0xD4C3B2A1 or 0xA1B23C4D or 0x4D3CB2A1 or 0x0A0D0D0A;
    }
}

/// <summary>A stream that can only be read forward, a byte or two at a time, as a pipe delivers.</summary>
internal sealed class ForwardOnlyStream(byte[] data) : ForwardReadStream
{
    private int _position;

    public override int Read(Span<byte> buffer)
    {
        int n = Math.Min(Math.Min(buffer.Length, 1 + _position % 2), data.Length - _position);
        data.AsSpan(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }
}
