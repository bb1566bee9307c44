using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using VethTrace.Capture.Files;
using VethTrace.Cli;
using VethTrace.Tests.Files;

namespace VethTrace.Tests.Lab;

/// <summary>
/// <c>vethtrace record</c> as a real process on the lab, treated as a crash, a long bulk run and a full disk would
/// treat it: killed with SIGKILL mid-recording, rotated under iperf3, and filling a 1 MiB tmpfs. What the files must
/// hold is counted by an independent tcpdump, and whether they read is for tshark and capinfos to say.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class LiveRecordTests
{
    [Fact]
    public void Record_KilledWithSigkill_FileHoldsEveryPacketUpToTheLastSecondAndReads()
    {
        var lab = LabEnvironment.Load();
        string directory = Directory.CreateTempSubdirectory("vethtrace-record-kill-").FullName;
        string file = Path.Combine(directory, "killed.pcapng");
        string reference = Path.Combine(directory, "tcpdump.pcap");
        // Only this test's pings: busybox ping -s 123 makes IPv4 packets of 151 bytes, requests and replies alike.
        const string Filter = "icmp and ip[2:2] = 151";
        using var tcpdump = Start("tcpdump", ["-i", lab["EGRESS_IF"], "-n", "-U", "-w", reference, Filter]);
        using var record = RecordProcess.Start(lab, file, ["--filter", Filter]);
        Process? ping = null;
        try
        {
            WaitFor(() => File.Exists(reference), "tcpdump did not start");
            ping = Start("docker", ["exec", lab["C1_NAME"], "ping", "-c", "40", "-i", "0.2", "-s", "123", lab["UPSTREAM_IP"]]);
            Thread.Sleep(TimeSpan.FromSeconds(4.5));

            long killedAtNs = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
            record.Process.Kill(); // SIGKILL: no handler runs, as for the OOM killer or a crash
            Assert.True(record.Process.WaitForExit(10_000));
            Assert.True(ping.WaitForExit(30_000), "ping did not end");
            Thread.Sleep(500);
            LabEnvironment.Run("kill", "-INT", tcpdump.Id.ToString(CultureInfo.InvariantCulture));
            Assert.True(tcpdump.WaitForExit(10_000));

            // Every echo request tcpdump saw on the egress more than a second before the kill is in the file, on all
            // four hops, with its reply.
            long cutoffNs = killedAtNs - 1_000_000_000L;
            var expected = Fields(reference, "frame.time_epoch", "icmp.type", "icmp.seq")
                .Where(f => EpochNs(f[0]) < cutoffNs).Select(f => (f[1], f[2])).ToHashSet();
            Assert.True(expected.Count(e => e.Item1 == "8") >= 15, $"tcpdump saw {expected.Count} packets before the cut-off");
            var recorded = Fields(file, "frame.interface_name", "icmp.type", "icmp.seq");
            string[] hops = [$"eth0({lab["C1_NAME"]})", lab["C1_VETH"], lab["BRIDGE"], lab["EGRESS_IF"]];
            foreach (string hop in hops)
            {
                var onHop = recorded.Where(r => r[0] == hop).Select(r => (r[1], r[2])).ToHashSet();
                Assert.True(expected.IsSubsetOf(onHop),
                    $"{hop}: missing {string.Join(", ", expected.Except(onHop).Select(e => $"type {e.Item1} seq {e.Item2}"))}");
            }

            // Whole blocks only: capinfos and tshark read the file to its end without complaint, and so does replay.
            Assert.Contains(WiresharkTool.Run("capinfos", ["-c", file]), l => l.StartsWith("Number of packets:", StringComparison.Ordinal));
            var replayOutput = new StringWriter();
            var replayError = new StringWriter();
            Assert.Equal(ExitCode.Success, VethTraceCommand.Run(["replay", file, "--format", "json"], replayOutput, replayError));
            Assert.Equal("", replayError.ToString());
            long replayed = replayOutput.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => JsonDocument.Parse(l).RootElement).Single(r => r.GetProperty("type").GetString() == "summary")
                .GetProperty("packets").GetInt64();
            Assert.Equal(recorded.Count, replayed);
        }
        finally
        {
            ping?.WaitForExit(15_000); // it ends by itself (-c 40); a killed docker exec would leave it running
            StopQuietly(ping);
            StopQuietly(tcpdump);
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Record_BulkTcpWithSizeRing_CountFilesEachUnderTheSizeAndEachReads()
    {
        var lab = LabEnvironment.Load();
        string directory = Directory.CreateTempSubdirectory("vethtrace-record-ring-").FullName;
        const int Port = 5219; // this test's own iperf3 port
        const long Limit = 4_000_000; // -C 4: millions of bytes
        Process? server = null;
        try
        {
            server = Start("ip", ["netns", "exec", lab["UPSTREAM_NS"], "iperf3", "-s", "-1", "-B", lab["UPSTREAM_IP"], "-p", Port.ToString(CultureInfo.InvariantCulture)]);
            Thread.Sleep(500);
            using var record = RecordProcess.Start(lab, Path.Combine(directory, "bulk.pcapng"),
                ["--filter", $"tcp port {Port}", "-C", "4", "-W", "3", "--duration", "9s"], json: false);
            LabEnvironment.Run("nsenter", $"--net={lab["C1_NETNS"]}", "iperf3", "-c", lab["UPSTREAM_IP"], "-p", Port.ToString(CultureInfo.InvariantCulture),
                "-t", "3", "-b", "200M");
            Assert.True(record.Process.WaitForExit(30_000), "record did not end after its duration");
            record.Process.WaitForExit();
            Assert.True(record.Process.ExitCode == 0, $"exit {record.Process.ExitCode}: {record.Error}");

            // More files were started than kept, and -W 3 kept three, bulk0 to bulk2.
            string wrote = record.Output.Split('\n').Single(l => l.StartsWith("wrote ", StringComparison.Ordinal));
            Assert.Matches(@"^wrote \d+ packets on 4 interfaces to \d+ files in turn, the last 3 kept \(.*bulk0\.pcapng to .*bulk2\.pcapng; the newest is .*\)$", wrote);
            Assert.Equal(["bulk0.pcapng", "bulk1.pcapng", "bulk2.pcapng"], Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            foreach (string file in Directory.GetFiles(directory))
            {
                Assert.InRange(new FileInfo(file).Length, 1, Limit);
                string[] info = WiresharkTool.Run("capinfos", [file]);
                Assert.Contains("Number of interfaces in file: 4", info);
                // The files a ring rotates past under load are full ones: headers and packets up to the limit.
                long packets = long.Parse(info.Single(l => l.StartsWith("Number of packets:", StringComparison.Ordinal))["Number of packets:".Length..].Trim(), CultureInfo.InvariantCulture);
                Assert.True(packets > 0, $"{file}: no packets");
                Assert.Equal(packets, WiresharkTool.Run("tshark", ["-r", file, "-T", "fields", "-e", "frame.number"]).Length);
            }
        }
        finally
        {
            StopQuietly(server);
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Record_DiskFull_OneLineExitFourAndTheFileReadsToItsLastWholeBlock()
    {
        var lab = LabEnvironment.Load();
        using var disk = new SmallTmpfs(1024 * 1024);
        string file = disk.PathOf("full.pcapng");
        const string Filter = "icmp and ip[2:2] = 1428"; // this test's pings: -s 1400
        Process? ping = null;
        RecordProcess? record = null;
        try
        {
            record = RecordProcess.Start(lab, file, ["--filter", Filter, "--duration", "30s"], json: false);
            // About 1.1 MB a second over the four hops: the disk is full within a second or two.
            // Killing docker exec would leave the ping running in the container, into the next test: it ends by itself
            // (-c, -w) and the test waits for it.
            ping = Start("docker", ["exec", lab["C1_NAME"], "ping", "-c", "300", "-w", "5", "-i", "0.01", "-s", "1400", lab["UPSTREAM_IP"]]);
            Assert.True(record.Process.WaitForExit(20_000), "record did not stop when the disk filled");
            record.Process.WaitForExit();

            Assert.Equal((int)ExitCode.CaptureFailed, record.Process.ExitCode);
            string[] errors = record.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            string line = Assert.Single(errors);
            Assert.Equal($"vethtrace: cannot write {file}: No space left on device : '{file}'; recording stopped (the file ends at the last whole packet written)", line);
            Assert.Contains("Capture (packets seen, dropped by the kernel)", record.Output);

            Assert.InRange(new FileInfo(file).Length, 500_000, 1024 * 1024);
            using (var reader = CaptureFileReader.Open(file))
            {
                long packets = 0;
                while (reader.TryReadNext(out _))
                {
                    packets++;
                }
                Assert.Null(reader.Error);
                Assert.True(packets > 300, $"{packets} packets");
                Assert.Equal(packets, WiresharkTool.Run("tshark", ["-r", file, "-T", "fields", "-e", "frame.number"]).Length);
                // The closing line counts what the file kept, not what was captured.
                Assert.Contains($"\nwrote {packets} packets on 4 interfaces to {file}\n", record.Output);
            }
            Assert.Contains(WiresharkTool.Run("capinfos", ["-c", file]), l => l.StartsWith("Number of packets:", StringComparison.Ordinal));
        }
        finally
        {
            ping?.WaitForExit(15_000);
            StopQuietly(ping);
            if (record is not null)
            {
                StopQuietly(record.Process);
                record.Dispose();
            }
        }
    }

    /// <summary>A <c>vethtrace record vt-c1</c> process on the lab's four hops, started and capturing.</summary>
    private sealed class RecordProcess : IDisposable
    {
        private readonly StringWriter _output = new();
        private readonly StringWriter _error = new();

        private RecordProcess(Process process) => Process = process;

        public Process Process { get; }

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public string Error
        {
            get
            {
                lock (_error)
                {
                    return _error.ToString();
                }
            }
        }

        public static RecordProcess Start(LabEnvironment lab, string file, string[] options, bool json = true)
        {
            string dll = Path.Combine(AppContext.BaseDirectory, "vethtrace.dll");
            var start = new ProcessStartInfo("dotnet", [dll, "record", lab["C1_NAME"], "--egress", lab["EGRESS_IF"], "-o", file,
                "--format", json ? "json" : "table", .. options])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            var record = new RecordProcess(Process.Start(start)!);
            var started = new ManualResetEventSlim();
            record.Process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }
                lock (record._output)
                {
                    record._output.WriteLine(e.Data);
                }
                if (e.Data.Contains("\"type\":\"start\"", StringComparison.Ordinal) || e.Data == "capturing.")
                {
                    started.Set();
                }
            };
            record.Process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (record._error)
                    {
                        record._error.WriteLine(e.Data);
                    }
                }
            };
            record.Process.BeginOutputReadLine();
            record.Process.BeginErrorReadLine();
            Assert.True(started.Wait(TimeSpan.FromSeconds(30)), $"record did not start capturing: {record.Error}");
            return record;
        }

        public void Dispose()
        {
            StopQuietly(Process);
            Process.Dispose();
        }
    }

    private static Process Start(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Ends a process this test started, by its own handle, if it is still running.</summary>
    private static void StopQuietly(Process? process)
    {
        if (process is not null && !process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(5_000);
        }
    }

    private static void WaitFor(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            Thread.Sleep(50);
        }
    }

    private static List<string[]> Fields(string file, params string[] fields) =>
        WiresharkTool.Run("tshark", ["-n", "-r", file, "-T", "fields", .. fields.SelectMany(f => new[] { "-e", f })])
            .Select(l => l.Split('\t')).ToList();

    private static long EpochNs(string epoch)
    {
        string[] parts = epoch.Split('.');
        return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1_000_000_000L + long.Parse(parts[1].PadRight(9, '0')[..9], CultureInfo.InvariantCulture);
    }
}
