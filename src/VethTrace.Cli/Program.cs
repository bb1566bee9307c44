namespace VethTrace.Cli;

public static class Program
{
    public static int Main(string[] args) => (int)VethTraceCommand.Run(args, Console.Out, Console.Error);
}
