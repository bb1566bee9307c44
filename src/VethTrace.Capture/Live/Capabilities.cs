using System.Globalization;

namespace VethTrace.Capture.Live;

/// <summary>
/// The capabilities a live capture needs, checked up front from /proc/self/status (CapEff) so the user gets one
/// line naming what is missing instead of a libpcap error from deep inside: CAP_NET_RAW to open packet sockets,
/// CAP_NET_ADMIN for promiscuous mode, CAP_SYS_ADMIN to enter a container's network namespace (setns).
/// </summary>
public static class Capabilities
{
    // linux/capability.h
    private const int NetAdmin = 12;
    private const int NetRaw = 13;
    private const int SysAdmin = 21;

    /// <summary>Names the missing capabilities, or returns null when all are there (or the check cannot be made).</summary>
    public static string? Missing(bool entersNamespaces, string statusPath = "/proc/self/status")
    {
        ulong? effective = Effective(statusPath);
        if (effective is not { } caps)
        {
            return null; // not Linux's procfs: let libpcap speak for itself
        }
        var missing = new List<string>();
        if ((caps & (1UL << NetRaw)) == 0)
        {
            missing.Add("CAP_NET_RAW (to open packet sockets)");
        }
        if ((caps & (1UL << NetAdmin)) == 0)
        {
            missing.Add("CAP_NET_ADMIN (for promiscuous mode)");
        }
        if (entersNamespaces && (caps & (1UL << SysAdmin)) == 0)
        {
            missing.Add("CAP_SYS_ADMIN (to enter the container's network namespace)");
        }
        return missing.Count == 0 ? null : "missing " + string.Join(", ", missing) + "; run as root or grant them (setcap, or docker's --cap-add)";
    }

    private const int SysNice = 23;

    /// <summary>
    /// Whether this process may raise a thread's priority back (CAP_SYS_NICE): a capture thread is run below the
    /// workload only when it can be raised again as it falls behind (<see cref="BackgroundPriority"/>).
    /// </summary>
    public static bool CanRaisePriority(string statusPath = "/proc/self/status") =>
        Effective(statusPath) is { } caps && (caps & (1UL << SysNice)) != 0;

    private static ulong? Effective(string statusPath)
    {
        try
        {
            foreach (string line in File.ReadLines(statusPath))
            {
                if (line.StartsWith("CapEff:", StringComparison.Ordinal)
                    && ulong.TryParse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong value))
                {
                    return value;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }
}
