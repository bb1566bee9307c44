using VethTrace.Fuzz;
using VethTrace.Tests.Captures;

namespace VethTrace.Tests.Fuzz;

/// <summary>
/// The fuzz targets' properties (tests/fuzz/VethTrace.Fuzz/Targets.cs and ReplayTarget.cs, compiled here too) on the committed corpus:
/// the inputs AFL++ kept for new coverage in a run of tests/fuzz/run.sh, and every finding once fixed. So each
/// build checks, without AFL, the paths the fuzzer reached, and a crash found once stays a regression test. To add
/// a finding: copy it into tests/fuzz/corpus/TARGET/ under any name.
/// </summary>
public sealed class FuzzCorpusTests
{
    public static TheoryData<string> TargetNames => new() { "parser", "pcap", "pcapng", "replay" };

    [Theory]
    [MemberData(nameof(TargetNames))]
    public void Target_EveryCorpusInput_PropertiesHold(string name)
    {
        string directory = Path.Combine(CaptureCorpus.RepositoryRoot, "tests", "fuzz", "corpus", name);
        string[] inputs = Directory.GetFiles(directory);
        Assert.True(inputs.Length > 0, $"no corpus in {directory}");
        FuzzTarget target = Targets.Find(name)!;

        foreach (string input in inputs)
        {
            byte[] bytes = File.ReadAllBytes(input);
            try
            {
                target(bytes);
            }
            catch (Exception e)
            {
                Assert.Fail($"{Path.GetRelativePath(CaptureCorpus.RepositoryRoot, input)}: {e.GetType().Name}: {e.Message}\n{Convert.ToHexString(bytes)}\n{e.StackTrace}");
            }
        }
    }
}
