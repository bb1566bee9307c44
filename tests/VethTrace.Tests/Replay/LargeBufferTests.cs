using System.Globalization;
using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>The memory under the correlator's rings and open-journey table.</summary>
public sealed class LargeBufferTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(1000, 1024)]
    [InlineData(1024, 1024)]
    public void New_Small_ExactPowerOfTwoZeroed(int asked, int length)
    {
        using var buffer = new LargeBuffer<long>(asked);
        Assert.Equal(length, buffer.Length);
        Assert.All(buffer.Span.ToArray(), value => Assert.Equal(0, value));
        buffer[length - 1] = 42;
        Assert.Equal(42, buffer.Span[^1]);
    }

    [Fact]
    public void New_Large_WholeHugePagesAdvisedForTransparentHugePages()
    {
        Assert.True(OperatingSystem.IsLinux(), "VethTrace runs on Linux; madvise(MADV_HUGEPAGE) is Linux only");
        // 300,000 longs (2.3 MiB) round up to 2 huge pages: 4 MiB, 524,288 longs.
        using var buffer = new LargeBuffer<long>(300_000);
        Assert.Equal(1 << 19, buffer.Length);
        Assert.Equal(0u, buffer.Address % (2u << 20));
        buffer.Span.Fill(7);
        Assert.All(buffer.Span.ToArray(), value => Assert.Equal(7, value));

        // The kernel's view of the mapping: advised (hg in VmFlags), so eligible for huge pages whatever the
        // system-wide setting short of "never".
        string mapping = MappingOf(buffer.Address);
        Assert.Contains(" hg", mapping);
        const string Setting = "/sys/kernel/mm/transparent_hugepage/enabled";
        if (!File.Exists(Setting) || File.ReadAllText(Setting).Contains("[never]", StringComparison.Ordinal))
        {
            return;
        }
        Assert.Matches(@"THPeligible:\s+1\b", mapping);
    }

    /// <summary>The /proc/self/smaps entry of the mapping that holds <paramref name="address"/>.</summary>
    private static string MappingOf(nuint address)
    {
        string[] lines = File.ReadAllLines("/proc/self/smaps");
        for (int i = 0; i < lines.Length; i++)
        {
            string[] range = lines[i].Split(' ')[0].Split('-');
            if (range.Length == 2 && ulong.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong start)
                && ulong.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong end)
                && start <= address && address < end)
            {
                int next = i + 1;
                while (next < lines.Length && !lines[next].Contains('-', StringComparison.Ordinal))
                {
                    next++;
                }
                return string.Join('\n', lines[i..next]);
            }
        }
        throw new InvalidOperationException($"no mapping holds 0x{address:x}");
    }
}
