namespace VethTrace.Cli;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        InheritedSignals.RestoreInterrupt();
        return (int)await VethTraceCommand.RunAsync(args, Console.Out, Console.Error);
    }
}
