using System.Diagnostics;
using VethTrace.Cli;

namespace VethTrace.Tests.Live;

/// <summary>
/// Stopping follow from outside: SIGTERM (and Ctrl-C's SIGINT, which takes the same path) ends the capture cleanly
/// with the final report and exit 0. A real process capturing on loopback (root, as the test suite runs).
/// </summary>
public sealed class SignalTests
{
    [Theory]
    [InlineData("TERM", 4.0)]
    [InlineData("TERM", 0.0)] // during start-up: before the handles are open
    [InlineData("INT", 4.0)] // Ctrl-C
    [InlineData("INT", 0.0)] // Ctrl-C during start-up
    public void Follow_Signal_FinalReportAndExitZero(string signal, double afterSeconds)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
        var start = new ProcessStartInfo("dotnet", [dll, "follow", "--hop", "lo", "--format", "json"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var follow = new JsonLinesProcess(start);
        Process process = follow.Process;
        if (afterSeconds > 0)
        {
            Assert.True(follow.Started.Wait(TimeSpan.FromSeconds(30)), "follow did not start capturing");
            Thread.Sleep(TimeSpan.FromSeconds(afterSeconds));
        }
        else
        {
            // Start-up: the signal handlers are registered before the command runs, and libpcap is loaded when the
            // first handle opens, so once it is mapped the signal lands while the handles are being opened. A fixed
            // sleep raced the runtime's own start-up under load (SIGTERM before Main: exit 143).
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!File.ReadAllText($"/proc/{process.Id}/maps").Contains("libpcap", StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline && !process.HasExited, "follow never loaded libpcap");
                Thread.Sleep(2);
            }
        }

        Send(signal, process);
        Assert.True(process.WaitForExit(20_000), "follow did not end after the signal");
        process.WaitForExit(); // drains the redirected output

        Assert.Equal((int)ExitCode.Success, process.ExitCode);
        Assert.Contains(follow.Lines, l => l.StartsWith("{\"type\":\"summary\",\"packets\":", StringComparison.Ordinal));
        Assert.Contains(follow.Lines, l => l.StartsWith("{\"type\":\"capture\",\"interface\":\"lo\"", StringComparison.Ordinal));
    }

    /// <summary>
    /// A script's background job (<c>vethtrace follow … &amp;</c> in sh) starts with SIGINT ignored; tcpdump stops on
    /// <c>kill -INT</c> all the same, and so must follow (the runtime alone left SIGINT ignored: follow ran on).
    /// </summary>
    [Fact]
    public void Follow_StartedWithSigintIgnored_StillStopsOnSigint()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
        // The shell ignores SIGINT, then execs follow: the disposition is inherited across exec, as in a script's `&`.
        var start = new ProcessStartInfo("/bin/sh", ["-c", "trap '' INT; exec dotnet \"$0\" follow --hop lo --format json", dll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var follow = new JsonLinesProcess(start);
        Process process = follow.Process;
        Assert.True(follow.Started.Wait(TimeSpan.FromSeconds(30)), "follow did not start capturing");
        // The precondition the test is about: follow's own process inherited SIGINT as ignored (bit 2 of SigIgn)...
        // and now catches it (SigCgt) instead.
        string status = File.ReadAllText($"/proc/{process.Id}/status");
        ulong caught = ulong.Parse(status.Split('\n').Single(l => l.StartsWith("SigCgt:", StringComparison.Ordinal))[7..].Trim(), System.Globalization.NumberStyles.HexNumber);
        Assert.True((caught & 2) != 0, "follow does not catch SIGINT: " + status);

        Send("INT", process);
        Assert.True(process.WaitForExit(20_000), "follow started with SIGINT ignored did not end on SIGINT");
        process.WaitForExit();
        Assert.Equal((int)ExitCode.Success, process.ExitCode);
        Assert.Contains(follow.Lines, l => l.StartsWith("{\"type\":\"summary\",\"packets\":", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("TERM")]
    [InlineData("INT")]
    [InlineData("HUP")] // the terminal closed: stopped as by Ctrl-C, not killed
    public void Record_Signal_FileHoldsEveryPacketSentBeforeItAndExitZero(string signal)
    {
        string file = Path.Combine(Path.GetTempPath(), $"vethtrace-signal-{signal}-{Environment.ProcessId}.pcapng");
        const int Port = 47_391;
        try
        {
            string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
            var start = new ProcessStartInfo("dotnet", [dll, "record", "--hop", "lo", "-o", file, "--format", "json", "--filter", $"udp port {Port}"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var record = new JsonLinesProcess(start);
            Process process = record.Process;
            Assert.True(record.Started.Wait(TimeSpan.FromSeconds(30)), "record did not start capturing");
            // Loopback datagrams to a port nobody listens on: each is captured once on lo.
            using (var udp = new System.Net.Sockets.UdpClient())
            {
                for (int i = 0; i < 20; i++)
                {
                    udp.Send(new byte[100 + i], new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, Port));
                }
            }
            Thread.Sleep(200);

            Send(signal, process);
            Assert.True(process.WaitForExit(20_000), "record did not end after the signal");
            process.WaitForExit();

            Assert.Equal((int)ExitCode.Success, process.ExitCode);
            using var reader = VethTrace.Capture.Files.CaptureFileReader.Open(file);
            int packets = 0;
            while (reader.TryReadNext(out _))
            {
                packets++;
            }
            Assert.Null(reader.Error);
            Assert.Equal(20, packets);
            string[] lengths = Files.WiresharkTool.Run("tshark", ["-r", file, "-T", "fields", "-e", "udp.length"]);
            Assert.Equal(Enumerable.Range(0, 20).Select(i => (108 + i).ToString(System.Globalization.CultureInfo.InvariantCulture)), lengths);
        }
        finally
        {
            File.Delete(file);
        }
    }
    [Fact]
    public void Record_KilledRightAfterStarting_FileIsAPcapngWithItsInterfaces()
    {
        string file = Path.Combine(Path.GetTempPath(), $"vethtrace-signal-early-{Environment.ProcessId}.pcapng");
        try
        {
            string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
            var start = new ProcessStartInfo("dotnet", [dll, "record", "--hop", "lo", "-o", file, "--format", "json", "--filter", "udp port 47392"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            string? line;
            while ((line = process.StandardOutput.ReadLine()) is not null && !line.Contains("\"type\":\"start\"", StringComparison.Ordinal))
            {
            }
            Assert.NotNull(line);

            process.Kill(); // SIGKILL before the first timed flush
            process.WaitForExit();

            // The section and interface blocks were flushed before capturing began: the file reads, with no packets.
            string[] info = Files.WiresharkTool.Run("capinfos", ["-c", "-I", file]);
            Assert.Contains("Number of packets:   0", info);
            Assert.Contains("Number of interfaces in file: 1", info);
        }
        finally
        {
            File.Delete(file);
        }
    }
    [Theory]
    [InlineData("TERM")]
    [InlineData("HUP")]
    public async Task Bench_Signal_DefaultActionEndsItAtOnce(string signal)
    {
        // Only follow and record turn a signal into a clean stop; a command that does not watch for it must not
        // swallow it and run on to its end (a 30 s bench here).
        string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
        var start = new ProcessStartInfo("dotnet", [dll, "bench", Captures.CaptureCorpus.PathOf("vxlan.pcap"), "--duration", "30s"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        // Past start-up: the signal handlers are registered before the command runs, and bench first reads its file
        // (VethTrace.Capture.dll is mapped then); a signal before registration would end it whatever the handlers do.
        while (!File.ReadAllText($"/proc/{process.Id}/maps").Contains("VethTrace.Capture.dll", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline && !process.HasExited, "bench never loaded VethTrace.Capture");
            Thread.Sleep(10);
        }
        Thread.Sleep(500);
        var clock = Stopwatch.StartNew();

        Send(signal, process);

        Assert.True(process.WaitForExit(10_000), $"bench ran on after SIG{signal}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal(128 + (signal == "TERM" ? 15 : 1), process.ExitCode);
        await Task.WhenAll(output, error);
    }

    /// <summary>Sends SIG<paramref name="signal"/> to <paramref name="process"/> with kill(1), as a user would.</summary>
    private static void Send(string signal, Process process)
    {
        using var kill = Process.Start("kill", ["-s", signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    /// <summary>
    /// A follow or record process with its standard output read line by line as it comes: <see cref="Started"/> is set by
    /// its <c>start</c> record. Disposing ends it if a failed assertion left it running.
    /// </summary>
    private sealed class JsonLinesProcess : IDisposable
    {
        private readonly List<string> _lines = [];

        public JsonLinesProcess(ProcessStartInfo start)
        {
            Process = Process.Start(start)!;
            Process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }
                lock (_lines)
                {
                    _lines.Add(e.Data);
                }
                if (e.Data.Contains("\"type\":\"start\"", StringComparison.Ordinal))
                {
                    Started.Set();
                }
            };
            Process.BeginOutputReadLine();
        }

        public Process Process { get; }

        public ManualResetEventSlim Started { get; } = new();

        /// <summary>The lines read so far.</summary>
        public string[] Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill();
            }
            Process.Dispose();
            Started.Dispose();
        }
    }
}
