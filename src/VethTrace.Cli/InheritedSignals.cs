using System.Runtime.InteropServices;

namespace VethTrace.Cli;

/// <summary>
/// Undoes an inherited "ignore SIGINT" before the runtime looks at it. A non-interactive shell starts a background
/// command (<c>vethtrace follow … &amp;</c> in a script) with SIGINT ignored, and .NET then leaves SIGINT ignored even
/// when a handler is registered, so <c>kill -INT</c> (or Ctrl-C reaching the script's process group) did nothing and
/// follow ran on. tcpdump installs its SIGINT handler whatever it inherited; so does VethTrace now: SIGINT stops
/// follow and record with the final report, as it does in a terminal. Only an ignored disposition is changed, never a
/// handler the runtime installed.
/// </summary>
internal static class InheritedSignals
{
    private const int SigInt = 2;
    private const long Ignore = 1; // SIG_IGN
    private static readonly nint Default = 0; // SIG_DFL

    public static void RestoreInterrupt()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        // struct sigaction begins with the handler on every Linux ABI .NET runs on; the rest is not read. 256 bytes
        // hold the whole structure (152 on x86-64 and arm64).
        byte[] current = new byte[256];
        if (SigAction(SigInt, 0, current) != 0 || BitConverter.ToInt64(current) != Ignore)
        {
            return;
        }
        Signal(SigInt, Default);
    }

    [DllImport("libc", EntryPoint = "sigaction")]
    private static extern int SigAction(int signal, nint action, [Out] byte[] previous);

    [DllImport("libc", EntryPoint = "signal")]
    private static extern nint Signal(int signal, nint handler);
}
