using System.Runtime.InteropServices;
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

    /// <summary>
    /// True when the packet matches. A link type the expression cannot be compiled for matches nothing. The program
    /// sees <paramref name="originalLength"/> as the packet's length, as tcpdump's does (libpcap hands bpf_filter the
    /// record's wire length): `greater 1000` must match a 1,500-byte packet of which a snaplen kept 256 bytes.
    /// </summary>
    public bool Matches(ReadOnlySpan<byte> data, int originalLength, LinkType linkType)
    {
        Compiled? last = Volatile.Read(ref _last);
        if (last is null || last.LinkType != linkType.Value)
        {
            if (!TryCompile(linkType, out last, out _))
            {
                return false;
            }
            Volatile.Write(ref _last, last);
        }
        return Run(last!.Raw, data, originalLength);
    }

    /// <summary>
    /// pcap_offline_filter with a pcap_pkthdr of our own on the stack: caplen the bytes we have, len the wire length.
    /// (SharpPcap's Matches(ReadOnlySpan) sets both to the captured length, and allocates the header per packet.)
    /// </summary>
    private static unsafe bool Run(IntPtr program, ReadOnlySpan<byte> data, int originalLength)
    {
        var header = new PacketHeader
        {
            CapturedLength = (uint)data.Length,
            Length = (uint)Math.Max(originalLength, data.Length),
        };
        fixed (byte* bytes = data)
        {
            // The raw program, not SharpPcap's SafeHandle (a reference taken and dropped per packet): Compiled holds one
            // reference from compiling to Dispose.
            return VethTrace.Capture.Live.PcapStatistics.OfflineFilter(program, &header, bytes) != 0;
        }
    }

    /// <summary>struct pcap_pkthdr (pcap/pcap.h): a struct timeval (two C longs), then bpf_u_int32 caplen and len.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct PacketHeader
    {
        public nint Seconds;
        public nint Microseconds;
        public uint CapturedLength;
        public uint Length;
    }

    public void Dispose()
    {
        lock (_programs)
        {
            _last = null;
            foreach (Compiled compiled in _programs.Values)
            {
                compiled.Program.DangerousRelease();
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
            BpfProgram program = BpfProgram.Create((LinkLayers)linkType.Value, Expression);
            bool referenced = false;
            program.DangerousAddRef(ref referenced); // released in Dispose: the raw pointer stays valid until then
            compiled = new Compiled(linkType.Value, program, program.DangerousGetHandle());
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

    /// <summary>A compiled program: SharpPcap's handle (referenced until Dispose) and its struct bpf_program.</summary>
    private sealed record Compiled(uint LinkType, BpfProgram Program, IntPtr Raw);
}
