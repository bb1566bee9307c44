using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace VethTrace.Benchmarks.Reader;

/// <summary>
/// File throughput in MB/s (10^6 bytes): the file's bytes per packet over the mean time per packet.
/// Computed in the host process from the same deterministic file the benchmark read.
/// </summary>
public sealed class ThroughputColumn : IColumn
{
    /// <summary>Adds the column to a benchmark class: <c>[Config(typeof(ThroughputColumn.Config))]</c>.</summary>
    public sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new ThroughputColumn());
    }

    public string Id => nameof(ThroughputColumn);

    public string ColumnName => "MB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "File bytes read per second, in 10^6 bytes (file length / packets / mean time per packet)";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? nanosecondsPerPacket = summary[benchmarkCase]?.ResultStatistics?.Mean;
        if (nanosecondsPerPacket is not > 0)
        {
            return "NA";
        }
        long length;
        try
        {
            length = ReaderBenchmarks.FileLength(benchmarkCase.Descriptor.WorkloadMethod.Name);
        }
        catch (IOException)
        {
            return "NA";
        }
        double bytesPerPacket = (double)length / ReaderBenchmarks.PacketsPerInvoke;
        // bytes/ns = GB/s; times 1000 = MB/s.
        return (bytesPerPacket / nanosecondsPerPacket.Value * 1000).ToString("N0", CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
