using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using VethTrace.Benchmarks.Parser;

namespace VethTrace.Benchmarks;

/// <summary>
/// Runs the benchmarks through BenchmarkDotNet's switcher (<c>--filter</c>, <c>--job</c>, <c>--list</c>…;
/// see README.md). <c>compare [bulk|mixed|FILE…]</c> instead lists the fields on which PacketDotNet and
/// VethTrace disagree.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["compare", .. var rest])
        {
            return FieldComparison.Run(rest, Console.Out, Console.Error);
        }
        IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        // A benchmark whose setup threw still yields a summary; fail the process so a CI smoke run notices.
        return summaries.Any(summary => summary.HasCriticalValidationErrors || summary.Reports.Any(report => !report.Success)) ? 1 : 0;
    }
}
