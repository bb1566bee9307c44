using System.Reflection;
using System.Runtime.InteropServices;
using SharpPcap.LibPcap;

namespace VethTrace.Capture.Live;

/// <summary>
/// pcap_stats(3PCAP) read with libpcap's own layout. SharpPcap 6.3 declares <c>struct pcap_stat</c> on Unix with
/// pointer-sized fields, but libpcap's are three <c>u_int</c>s: on 64-bit Linux its ps_recv spans ps_recv and ps_drop,
/// and its ps_drop reads ps_ifdrop, so <c>Statistics.DroppedPackets</c> is always 0. Seen in the lab: a bulk load
/// that tcpdump showed dropping 21,156 packets on one handle read as 0 drops through SharpPcap.
/// </summary>
internal static class PcapStatistics
{
    private const string Library = "vethtrace-libpcap";

    static PcapStatistics() => NativeLibrary.SetDllImportResolver(typeof(PcapStatistics).Assembly, Resolve);

    [StructLayout(LayoutKind.Sequential)]
    private struct PcapStat
    {
        public uint Received;
        public uint Dropped;
        public uint InterfaceDropped;
    }

    /// <summary>
    /// Packets the kernel passed the filter, dropped for want of buffer space, and the driver dropped;
    /// null when libpcap cannot say (the handle's interface went away).
    /// </summary>
    public static (long Received, long Dropped, long InterfaceDropped)? Read(PcapDevice device)
    {
        if (device.Handle is not { IsInvalid: false, IsClosed: false } handle || pcap_stats(handle, out PcapStat stat) != 0)
        {
            return null;
        }
        return (stat.Received, stat.Dropped, stat.InterfaceDropped);
    }

    /// <summary>
    /// pcap_set_datalink(3PCAP): the <c>any</c> device offers LINUX_SLL (the default) and LINUX_SLL2, whose header
    /// carries the interface index whole-host capture keys on. Here beside pcap_stats for the one library resolver.
    /// </summary>
    public static bool TrySetDataLink(PcapDevice device, int linkType) =>
        device.Handle is { IsInvalid: false, IsClosed: false } handle && pcap_set_datalink(handle, linkType) == 0;

    // The sonames libpcap ships under: 0.8 on Debian and Ubuntu, 1 elsewhere; the bare name needs the -dev package.
    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Library)
        {
            return IntPtr.Zero;
        }
        foreach (string candidate in (ReadOnlySpan<string>)["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"])
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle))
            {
                return handle;
            }
        }
        return IntPtr.Zero;
    }

    [DllImport(Library)]
    private static extern int pcap_set_datalink(PcapHandle handle, int linkType);

    [DllImport(Library)]
    private static extern int pcap_stats(PcapHandle handle, out PcapStat stat);

    /// <summary>
    /// pcap_next_ex(3PCAP) on a raw pcap_t (the caller holds a reference on its handle): 1 with a packet, 0 when a
    /// non-blocking handle has none, -1 on error, -2 after pcap_breakloop.
    /// </summary>
    public static int Next(IntPtr pcap, out IntPtr header, out IntPtr data) => pcap_next_ex(pcap, out header, out data);

    [DllImport(Library)]
    private static extern int pcap_next_ex(IntPtr pcap, out IntPtr header, out IntPtr data);

    /// <summary>
    /// pcap_offline_filter(3PCAP) on a raw struct bpf_program (the caller keeps it alive): the filter's return value,
    /// 0 when the packet does not match. SharpPcap's BpfProgram.Matches takes and drops a reference on its SafeHandle
    /// per call (two interlocked operations per packet on every capture thread's one shared program).
    /// </summary>
    public static unsafe int OfflineFilter(IntPtr program, void* header, byte* data) => pcap_offline_filter(program, header, data);

    [DllImport(Library)]
    private static extern unsafe int pcap_offline_filter(IntPtr program, void* header, byte* data);
}
