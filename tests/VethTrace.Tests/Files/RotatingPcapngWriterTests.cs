using VethTrace.Capture.Files;
using VethTrace.Packets;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>
/// What <c>vethtrace record</c> writes through: <see cref="RotatingPcapngWriter"/> flushes on its own timer, starts
/// whole new files by size and by time (numbered as tcpdump numbers them, with the number before the extension),
/// keeps a ring, and on a full disk (a real tmpfs) stops with a file that reads cleanly to its last whole block.
/// Every file is checked by our reader and by capinfos or tshark.
/// </summary>
public sealed class RotatingPcapngWriterTests : IDisposable
{
    private const long Timestamp = 1_700_000_000_000_000_000L;

    private readonly string _directory = Directory.CreateTempSubdirectory("vethtrace-rotating-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("web.pcapng", 0, 0, 0, "web.pcapng")] // no rotation: the name as given
    [InlineData("web.pcapng", 0, 0, 7, "web.pcapng")]
    [InlineData("web.pcapng", 1_000_000, 0, 0, "web.pcapng")] // -C: FILE, FILE1, FILE2… (tcpdump), before the extension
    [InlineData("web.pcapng", 1_000_000, 0, 1, "web1.pcapng")]
    [InlineData("web.pcapng", 1_000_000, 0, 12, "web12.pcapng")]
    [InlineData("web.pcapng", 1_000_000, 10, 0, "web0.pcapng")] // -W 10: 0 to 9, one digit
    [InlineData("web.pcapng", 1_000_000, 10, 9, "web9.pcapng")]
    [InlineData("web.pcapng", 1_000_000, 11, 3, "web03.pcapng")] // -W 11: 00 to 10
    [InlineData("web.pcapng", 1_000_000, 1, 0, "web0.pcapng")]
    [InlineData("out/run.2.pcapng", 1_000_000, 0, 4, "out/run.24.pcapng")] // the last dot only
    [InlineData("a.b/capture", 1_000_000, 0, 2, "a.b/capture2")] // no extension: the number at the end
    [InlineData(".pcapng", 1_000_000, 0, 2, ".pcapng2")] // a dot that starts the name is no extension
    public void FileName_AsTcpdumpNumbersThem_NumberBeforeTheExtension(string path, long maxBytes, int maxFiles, int index, string expected)
    {
        var options = new RotationOptions { MaxFileBytes = maxBytes, MaxFiles = maxFiles };

        Assert.Equal(expected, RotatingPcapngWriter.FileName(path, index, options));
    }

    [Fact]
    public void FileName_TimeRotation_NumberedAsSizeRotation()
    {
        Assert.Equal("web3.pcapng", RotatingPcapngWriter.FileName("web.pcapng", 3, new RotationOptions { RotateEveryNs = 1_000_000_000 }));
    }

    [Fact]
    public void Flush_Timer_PacketsReachTheFileWithinTheIntervalWhileItIsOpen()
    {
        string timed = Path.Combine(_directory, "timed.pcapng");
        string untimed = Path.Combine(_directory, "untimed.pcapng");
        using var withTimer = new RotatingPcapngWriter(timed, new RotationOptions { FlushInterval = TimeSpan.FromMilliseconds(100) });
        using var withoutTimer = new RotatingPcapngWriter(untimed, new RotationOptions { FlushInterval = TimeSpan.Zero });
        foreach (RotatingPcapngWriter writer in new[] { withTimer, withoutTimer })
        {
            int id = writer.AddInterface("eth0", "hop", LinkType.Ethernet, 0);
            for (int i = 0; i < 10; i++)
            {
                writer.WritePacket(id, Timestamp + i, Payload(100 + i, i), 100 + i, PacketDirection.Outbound);
            }
        }

        // Within a second (the interval is 100 ms; a loaded machine schedules the thread late), without closing.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while ((new FileInfo(timed).Length == 0 || ReadFile(timed).Packets.Count < 10) && clock.Elapsed < TimeSpan.FromSeconds(1))
        {
            Thread.Sleep(20);
        }
        var (packets, reader) = ReadFile(timed);
        Assert.Null(reader.Error);
        Assert.Equal(10, packets.Count);
        Assert.Equal(Payload(109, 9), packets[9].Data);
        Assert.Contains("Number of packets:   10", WiresharkTool.Run("capinfos", ["-c", timed]));
        // The same packets without the timer are all still in the buffer, with the file's headers: it is the timer that wrote them.
        Assert.Equal(0, new FileInfo(untimed).Length);
    }

    [Fact]
    public void WritePacket_SizeLimit_WholeFilesUnderTheLimitWithEveryInterface()
    {
        string path = Path.Combine(_directory, "web.pcapng");
        const long Limit = 20_000;
        var written = new List<(string Interface, long Timestamp, byte[] Data)>();
        string[] names = ["eth0", "veth1", "docker0"];
        using (var writer = new RotatingPcapngWriter(path, new RotationOptions { MaxFileBytes = Limit, FlushInterval = TimeSpan.Zero }))
        {
            writer.AddInterface(names[0], "container interface of web", LinkType.Ethernet, 262_144);
            writer.AddInterface(names[1], "host veth of web", LinkType.Ethernet, 262_144);
            for (int i = 0; i < 300; i++)
            {
                if (i == 20)
                {
                    // An interface declared mid-file: it is in this file from here, and in every later file.
                    writer.AddInterface(names[2], "bridge", LinkType.Ethernet, 262_144);
                }
                int id = i < 20 ? i % 2 : i % 3;
                byte[] data = Payload(60 + i * 37 % 1441, i);
                Assert.True(writer.WritePacket(id, Timestamp + i * 1000L, data, data.Length, (PacketDirection)(i % 3)));
                written.Add((names[id], Timestamp + i * 1000L, data));
            }
            Assert.Equal(300, writer.PacketsWritten);
            writer.Dispose();
            Assert.Equal(300, writer.PacketsInFiles);
        }

        string[] files = Directory.GetFiles(_directory).Order(StringComparer.Ordinal).ToArray();
        // web.pcapng, web1.pcapng, web2.pcapng…
        List<string> numbered = [path, .. Enumerable.Range(1, files.Length - 1).Select(i => Path.Combine(_directory, $"web{i}.pcapng"))];
        Assert.Equal(numbered.Order(StringComparer.Ordinal), files);
        Assert.True(files.Length >= 10, $"{files.Length} files");
        var read = new List<(string Interface, long Timestamp, byte[] Data)>();
        for (int f = 0; f < numbered.Count; f++)
        {
            long length = new FileInfo(numbered[f]).Length;
            Assert.InRange(length, 1, Limit);
            var (packets, reader) = ReadFile(numbered[f]);
            Assert.Null(reader.Error);
            Assert.NotEmpty(packets);
            // Each file declares every interface known when it was started (or added while it was written), with the same ids.
            Assert.Equal(names.Take(read.Count + packets.Count > 20 ? 3 : 2), reader.Interfaces.Select(i => i.Name));
            read.AddRange(packets.Select(p => (reader.Interfaces[p.InterfaceId].Name, p.TimestampNs, p.Data)));
            if (f + 1 < numbered.Count)
            {
                // Rotated only when needed: the next file's first packet did not fit in this one.
                int next = read.Count;
                Assert.True(length + PcapngWriter.PacketBlockLength(written[next].Data.Length, (PacketDirection)(next % 3)) > Limit,
                    $"{numbered[f]} ({length} bytes) had room for the next packet");
            }
            Assert.Contains($"Number of packets:   {packets.Count}", WiresharkTool.Run("capinfos", ["-c", numbered[f]]));
        }
        Assert.Equal(written.Count, read.Count);
        for (int i = 0; i < written.Count; i++)
        {
            Assert.Equal(written[i].Interface, read[i].Interface);
            Assert.Equal(written[i].Timestamp, read[i].Timestamp);
            Assert.Equal(written[i].Data, read[i].Data);
        }
    }

    [Fact]
    public void WritePacket_PacketLargerThanTheLimit_OnePacketPerFile()
    {
        string path = Path.Combine(_directory, "big.pcapng");
        using (var writer = new RotatingPcapngWriter(path, new RotationOptions { MaxFileBytes = 1000, FlushInterval = TimeSpan.Zero }))
        {
            int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 0);
            for (int i = 0; i < 4; i++)
            {
                writer.WritePacket(id, Timestamp + i, Payload(1500, i), 1500, PacketDirection.Unknown);
            }
            Assert.Equal(4, writer.FilesStarted);
        }

        foreach (string file in new[] { "big.pcapng", "big1.pcapng", "big2.pcapng", "big3.pcapng" })
        {
            var (packets, reader) = ReadFile(Path.Combine(_directory, file));
            Assert.Null(reader.Error);
            Assert.Single(packets);
        }
    }

    [Fact]
    public void WritePacket_Ring_KeepsCountFilesHoldingTheNewestPackets()
    {
        string path = Path.Combine(_directory, "ring.pcapng");
        const int Packets = 400;
        string newest;
        using (var writer = new RotatingPcapngWriter(path, new RotationOptions { MaxFileBytes = 10_000, MaxFiles = 3, FlushInterval = TimeSpan.Zero }))
        {
            int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 0);
            for (int i = 0; i < Packets; i++)
            {
                writer.WritePacket(id, Timestamp + i, Payload(200 + i % 300, i), 500, PacketDirection.Inbound);
            }
            Assert.True(writer.FilesStarted > 6, $"{writer.FilesStarted} files started");
            newest = writer.CurrentPath;
        }

        string[] files = Directory.GetFiles(_directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        Assert.Equal(["ring0.pcapng", "ring1.pcapng", "ring2.pcapng"], files);
        // Oldest first: the two after the newest in the ring, then the newest; together the last packets, in order.
        int last = int.Parse(Path.GetFileNameWithoutExtension(newest)["ring".Length..], System.Globalization.CultureInfo.InvariantCulture);
        var timestamps = new List<long>();
        foreach (int k in new[] { (last + 1) % 3, (last + 2) % 3, last })
        {
            var (packets, reader) = ReadFile(Path.Combine(_directory, $"ring{k}.pcapng"));
            Assert.Null(reader.Error);
            Assert.InRange(new FileInfo(Path.Combine(_directory, $"ring{k}.pcapng")).Length, 1, 10_000);
            timestamps.AddRange(packets.Select(p => p.TimestampNs));
        }
        Assert.Equal(Timestamp + Packets - 1, timestamps[^1]);
        Assert.Equal(Enumerable.Range(0, timestamps.Count).Select(i => timestamps[0] + i), timestamps);
    }

    [Fact]
    public void WritePacket_TimeRotation_NewFileEverySecondOfPacketTime()
    {
        string path = Path.Combine(_directory, "timed.pcapng");
        using (var writer = new RotatingPcapngWriter(path, new RotationOptions { RotateEveryNs = 1_000_000_000, FlushInterval = TimeSpan.Zero }))
        {
            int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 0);
            for (int i = 0; i < 55; i++)
            {
                writer.WritePacket(id, Timestamp + i * 100_000_000L, Payload(80, i), 80, PacketDirection.Unknown);
            }
            Assert.Equal(6, writer.FilesStarted);
        }

        string[] names = ["timed.pcapng", "timed1.pcapng", "timed2.pcapng", "timed3.pcapng", "timed4.pcapng", "timed5.pcapng"];
        Assert.Equal(names, Directory.GetFiles(_directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        for (int f = 0; f < names.Length; f++)
        {
            // tshark's own reading of each file: ten packets a second, the last file the five left.
            string[] times = WiresharkTool.Run("tshark", ["-r", Path.Combine(_directory, names[f]), "-T", "fields", "-e", "frame.time_epoch"]);
            Assert.Equal(f < 5 ? 10 : 5, times.Length);
            Assert.Equal(WiresharkTool.EpochSeconds(Timestamp + f * 1_000_000_000L), times[0]);
        }
    }

    [Fact]
    public void WritePacket_DiskFull_StopsWithTheErrorAndEveryFileReadsToItsLastWholeBlock()
    {
        using var disk = new SmallTmpfs(256 * 1024);
        string path = disk.PathOf("full.pcapng");
        int accepted = 0;
        long keptCount;
        using (var writer = new RotatingPcapngWriter(path, new RotationOptions { MaxFileBytes = 100_000, FlushInterval = TimeSpan.Zero }))
        {
            int id = writer.AddInterface("eth0", "hop", LinkType.Ethernet, 0);
            for (int i = 0; i < 2000 && writer.Failure is null; i++)
            {
                if (writer.WritePacket(id, Timestamp + i, Payload(1400, i), 1400, PacketDirection.Outbound))
                {
                    accepted++;
                }
            }
            Assert.NotNull(writer.Failure);
            Assert.Contains("No space left on device", writer.Failure.Message);
            Assert.Equal(disk.PathOf("full2.pcapng"), writer.FailedPath);
            // After the failure every packet is dropped, none thrown.
            Assert.False(writer.WritePacket(id, Timestamp, Payload(60, 0), 60, PacketDirection.Outbound));
            Assert.True(writer.PacketsDropped >= 1);
            keptCount = writer.PacketsInFiles;
        }

        long total = 0;
        int expectedNext = 0;
        foreach (string name in new[] { "full.pcapng", "full1.pcapng", "full2.pcapng" })
        {
            string file = disk.PathOf(name);
            var (packets, reader) = ReadFile(file);
            AssertCleanEnd(reader);
            // Consecutive packets, each whole: nothing torn, nothing skipped.
            foreach (ReadPacket packet in packets)
            {
                Assert.Equal(Payload(1400, expectedNext), packet.Data);
                expectedNext++;
            }
            total += packets.Count;
            Assert.Contains($"Number of packets:   {packets.Count}", WiresharkTool.Run("capinfos", ["-c", file]));
        }
        Assert.False(File.Exists(disk.PathOf("full3.pcapng")));
        Assert.Equal(total, keptCount);
        // The third file holds what fitted of its last buffer, cut at a block: more than its headers.
        Assert.True(total > 2 * 60, $"{total} packets kept");
        Assert.True(total < accepted, $"{total} of {accepted} kept: the disk cannot hold them all");
    }

    [Fact]
    public void Dispose_Twice_AndWritesAfterwardAreDropped()
    {
        string path = Path.Combine(_directory, "closed.pcapng");
        var writer = new RotatingPcapngWriter(path, RotationOptions.None);
        int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 0);
        Assert.True(writer.WritePacket(id, Timestamp, Payload(60, 1), 60, PacketDirection.Inbound));
        writer.Dispose();
        writer.Dispose();

        Assert.False(writer.WritePacket(id, Timestamp, Payload(60, 2), 60, PacketDirection.Inbound));
        Assert.Null(writer.Failure);
        Assert.Equal(1, writer.PacketsDropped);
        Assert.Single(ReadFile(path).Packets);
    }

    [Fact]
    public void Constructor_UnwritableDirectory_Throws()
    {
        Assert.ThrowsAny<IOException>(() => new RotatingPcapngWriter(Path.Combine(_directory, "missing", "x.pcapng"), RotationOptions.None));
    }

    private static (List<ReadPacket> Packets, CaptureFileReader Reader) ReadFile(string path) =>
        ReadAll(File.ReadAllBytes(path), Path.GetFileName(path));
}
