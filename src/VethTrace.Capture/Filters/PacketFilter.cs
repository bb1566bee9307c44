using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;
using VethTrace.Packets;
using VethTrace.Tracing;

namespace VethTrace.Capture.Filters;

/// <summary>
/// A pcap-filter expression (pcap-filter(7)), compiled by libpcap itself through SharpPcap's <see cref="BpfProgram"/>
/// and run on captured bytes: exactly tcpdump's semantics, never a hand-written subset. A BPF program depends on
/// the link type, so one is compiled per link type met, on first use. Safe to use from several threads at once
/// (follow's handles): compiling takes a lock, and a compiled program only reads.
/// </summary>
public sealed class PacketFilter : IPacketSelector, IDisposable
{
    private readonly Dictionary<uint, Compiled> _programs = [];
    /// <summary>The last program used, with its link type (one reference, so threads never see half of one): a source's packets mostly share one.</summary>
    private Compiled? _last;

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
    public bool Matches(ReadOnlySpan<byte> data, LinkType linkType)
    {
        Compiled? last = Volatile.Read(ref _last);
        if (last is not null && last.LinkType == linkType.Value)
        {
            return last.Program.Matches(data);
        }
        if (!TryCompile(linkType, out Compiled? compiled, out _))
        {
            return false;
        }
        Volatile.Write(ref _last, compiled);
        return compiled!.Program.Matches(data);
    }

    public void Dispose()
    {
        lock (_programs)
        {
            _last = null;
            foreach (Compiled compiled in _programs.Values)
            {
                compiled.Program.Dispose();
            }
            _programs.Clear();
        }
    }

    private bool TryCompile(LinkType linkType, out Compiled? compiled, out string? error)
    {
        lock (_programs)
        {
            return TryCompileLocked(linkType, out compiled, out error);
        }
    }

    private bool TryCompileLocked(LinkType linkType, out Compiled? compiled, out string? error)
    {
        error = null;
        if (_programs.TryGetValue(linkType.Value, out compiled))
        {
            return true;
        }
        try
        {
            compiled = new Compiled(linkType.Value, BpfProgram.Create((LinkLayers)linkType.Value, Expression));
            _programs[linkType.Value] = compiled;
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
        compiled = null;
        return false;
    }

    private sealed record Compiled(uint LinkType, BpfProgram Program);
}
