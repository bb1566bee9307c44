namespace VethTrace.Cli;

public static class Program
{
    public static async Task<int> Main(string[] args) => (int)await VethTraceCommand.RunAsync(args, Console.Out, Console.Error);
}
