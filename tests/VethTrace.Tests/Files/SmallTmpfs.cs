using System.Diagnostics;
using System.Globalization;

namespace VethTrace.Tests.Files;

/// <summary>
/// A real, small filesystem that fills up: a tmpfs of a few hundred KiB mounted on a fresh temporary directory
/// (root, as the suite runs), unmounted and removed on dispose. Writes past its size fail with ENOSPC as on a
/// full disk: the kernel stores what fits, a page at a time, then refuses.
/// </summary>
internal sealed class SmallTmpfs : IDisposable
{
    public SmallTmpfs(int bytes)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("vethtrace-record-tmpfs-").FullName;
        string? problem = Run("mount", "-t", "tmpfs", "-o", "size=" + bytes.ToString(CultureInfo.InvariantCulture), "vethtrace-record", Directory);
        if (problem is not null)
        {
            System.IO.Directory.Delete(Directory);
            Assert.Fail($"cannot mount a {bytes}-byte tmpfs to fill (the disk-full tests need root and CAP_SYS_ADMIN): {problem}");
        }
    }

    public string Directory { get; }

    public string PathOf(string name) => Path.Combine(Directory, name);

    public void Dispose()
    {
        Run("umount", Directory);
        try
        {
            System.IO.Directory.Delete(Directory);
        }
        catch (IOException)
        {
            // Still mounted (a file held open elsewhere): left for the next boot rather than hiding the test's result.
        }
    }

    /// <summary>Runs a command; null when it succeeded, else its error output.</summary>
    private static string? Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        Task<string> error = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? null : $"{file} exited {process.ExitCode}: {error.Result.Trim()}";
    }
}
