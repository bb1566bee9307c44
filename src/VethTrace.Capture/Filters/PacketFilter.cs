using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;
using VethTrace.Packets;

namespace VethTrace.Capture.Filters;

/// <summary>
/// A pcap-filter expression (pcap-filter(7)), compiled by libpcap itself through SharpPcap's <see cref="BpfProgram"/>
/// and run on captured bytes: exactly tcpdump's semantics, never a hand-written subset. A BPF program depends on
/// the link type, so one is compiled per link type met, on first use.
/// </summary>
public sealed class PacketFilter : IDisposable
{
    private readonly Dictionary<uint, BpfProgram> _programs = [];

    private PacketFilter(string expression) => Expression = expression;

    public string Expression { get; }

    /// <summary>Compiles for Ethernet to check the expression; returns null and libpcap's message when it does not compile.</summary>
    public static PacketFilter? TryCreate(string expression, out string? error)
    {
        var filter = new PacketFilter(expression);
        if (!filter.TryCompile(LinkType.Ethernet, out _, out error))
        {
            filter.Dispose();
            return null;
        }
        return filter;
    }

    /// <summary>True when the packet matches. A link type the expression cannot be compiled for matches nothing.</summary>
    public bool Matches(ReadOnlySpan<byte> data, LinkType linkType) =>
        TryCompile(linkType, out BpfProgram? program, out _) && program!.Matches(data);

    public void Dispose()
    {
        foreach (BpfProgram program in _programs.Values)
        {
            program.Dispose();
        }
        _programs.Clear();
    }

    private bool TryCompile(LinkType linkType, out BpfProgram? program, out string? error)
    {
        error = null;
        if (_programs.TryGetValue(linkType.Value, out program))
        {
            return true;
        }
        try
        {
            program = BpfProgram.Create((LinkLayers)linkType.Value, Expression);
            _programs[linkType.Value] = program;
            return true;
        }
        catch (PcapException e)
        {
            error = e.Message;
        }
        catch (DllNotFoundException)
        {
            error = "libpcap is not installed (Debian: apt-get install libpcap0.8)";
        }
        program = null;
        return false;
    }
}
