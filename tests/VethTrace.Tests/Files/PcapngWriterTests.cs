using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using VethTrace.Capture.Files;
using VethTrace.Packets;
using Xunit.Abstractions;
using static VethTrace.Tests.Files.CaptureReading;

namespace VethTrace.Tests.Files;

/// <summary>
/// <see cref="PcapngWriter"/>: what it writes reads back through <see cref="CaptureFileReader"/> field for
/// field, every real capture survives a rewrite, tshark and capinfos read it independently, and several
/// threads can share one writer without allocating per packet.
/// </summary>
public sealed class PcapngWriterTests(ITestOutputHelper output)
{
    // What follows the section header when one interface ("eth0", description "hop", Ethernet, snaplen
    // 262144) and one inbound packet (the 20 bytes of PcapngReaderTests' vector, original length 60, at
    // 1700000000.123456789) are written. Laid out by hand from draft-ietf-opsawg-pcapng-03 sections 4.2, 4.3.
    //   0000  ff ff ff ff ff ff 02 42 ac 11 00 02 08 06 00 01   .......B........
    //   0010  08 00 06 04                                       ....
    private const string InterfaceAndPacketVector =
        "01000000 30000000 0100 0000 00000400" +                             // IDB, 48 bytes: Ethernet, reserved, snaplen 262144
        "0200 0400 65746830 0300 0300 686f7000 0900 0100 09000000" +         // if_name "eth0", if_description "hop", if_tsresol 9
        "0000 0000 30000000" +                                               // opt_endofopt, trailer
        "06000000 40000000 00000000 fe9c9717 15cd853d 14000000 3c000000" +   // EPB, 64 bytes: if 0, ts 0x17979cfe3d85cd15 ns, caplen 20, len 60
        "ffffffffffff 0242ac110002 0806 0001 0800 06 04" +
        "0200 0400 01000000 0000 0000 40000000";                             // epb_flags inbound, opt_endofopt, trailer

    private static readonly byte[] ArpPrefix = Convert.FromHexString("ffffffffffff0242ac11000208060001 08000604".Replace(" ", ""));

    private const long Timestamp = 1_700_000_000_123_456_789L;

    [Fact]
    public void WritePacket_OneInterfaceOnePacket_WritesExactBlocks()
    {
        var stream = new MemoryStream();
        using (var writer = new PcapngWriter(stream, leaveOpen: true))
        {
            int id = writer.AddInterface("eth0", "hop", LinkType.Ethernet, 262_144);
            writer.WritePacket(id, Timestamp, ArpPrefix, 60, PacketDirection.Inbound);
        }

        byte[] file = stream.ToArray();
        int sectionLength = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(4));
        Assert.Equal(InterfaceAndPacketVector.Replace(" ", "").ToLowerInvariant(), Convert.ToHexStringLower(file.AsSpan(sectionLength)));
    }

    [Fact]
    public void Constructor_SectionHeader_VersionOneUnknownLengthApplicationAndOs()
    {
        var stream = new MemoryStream();
        using (new PcapngWriter(stream, leaveOpen: true))
        {
        }

        byte[] file = stream.ToArray();
        // type, length, byte-order magic 1a2b3c4d (little-endian), version 1.0, section length -1.
        Assert.Equal("0a0d0d0a", Convert.ToHexStringLower(file.AsSpan(0, 4)));
        int length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(4));
        Assert.Equal(file.Length, length);
        Assert.Equal(0, length % 4);
        Assert.Equal(length, BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(length - 4)));
        Assert.Equal("4d3c2b1a 0100 0000 ffffffffffffffff".Replace(" ", ""), Convert.ToHexStringLower(file.AsSpan(8, 16)));
        Dictionary<ushort, string> options = ReadOptions(file.AsSpan(24, length - 28));
        Assert.Equal(PcapngWriter.UserApplication, options[4]); // shb_userappl
        Assert.Equal(RuntimeInformation.OSDescription, options[3]); // shb_os
    }

    [Fact]
    public void WritePacket_SeveralInterfacesInterleaved_ReadsBackEveryField()
    {
        var interfaces = new[]
        {
            new CaptureInterface(0, "eth0", "container side of vt-c1", LinkType.Ethernet, 262_144, 9),
            new CaptureInterface(1, "veth1eae2a7", "host side of vt-c1 (bridge port of docker0)", LinkType.Ethernet, 1514, 9),
            new CaptureInterface(2, "any", null, LinkType.LinuxSll2, 0, 9),
            new CaptureInterface(3, "vttun0", "tunnel ↔ upstream", LinkType.Raw, 65_535, 9),
        };
        var written = new List<ReadPacket>();
        var stream = new MemoryStream();
        using (var writer = new PcapngWriter(stream, leaveOpen: true))
        {
            foreach (CaptureInterface hop in interfaces)
            {
                Assert.Equal(hop.Id, writer.AddInterface(hop.Name, hop.Description, hop.LinkType, hop.SnapLength));
            }
            // Every data length modulo 4 (the padding), every direction, timestamps with odd nanoseconds,
            // one packet cut by its snaplen, empty data, and the largest packet accepted.
            for (int i = 0; i < 40; i++)
            {
                int id = (i * 7) % interfaces.Length;
                byte[] data = Payload(i == 13 ? 0 : 1 + i * 37 % 1500, i);
                // The empty one had bytes on the wire: caplen 0 with length 0 describes no packet, and reads as damage.
                int original = i % 5 == 0 || data.Length == 0 ? data.Length + 100 : data.Length;
                var direction = (PacketDirection)(i % 3);
                long timestamp = Timestamp + i * 1_000_003L;
                writer.WritePacket(id, timestamp, data, original, direction);
                written.Add(new ReadPacket(data, timestamp, id, interfaces[id].LinkType, original, direction, 0));
            }
            byte[] largest = Payload(PcapngWriter.MaxPacketLength, 7);
            writer.WritePacket(0, Timestamp + 99, largest, largest.Length, PacketDirection.Outbound);
            written.Add(new ReadPacket(largest, Timestamp + 99, 0, LinkType.Ethernet, largest.Length, PacketDirection.Outbound, 0));
            Assert.Equal(41, writer.PacketsWritten);
            Assert.Equal(4, writer.InterfaceCount);
        }

        var (packets, reader) = ReadAll(stream.ToArray());

        Assert.Null(reader.Error);
        Assert.True(reader.IsPcapng);
        Assert.Equal(interfaces, reader.Interfaces);
        // FileOffset is the reader's business: compare everything else (Data by content, not by reference).
        Assert.Equal(written.Count, packets.Count);
        for (int i = 0; i < written.Count; i++)
        {
            Assert.Equal(written[i].Data, packets[i].Data);
            Assert.Equal(written[i], packets[i] with { Data = written[i].Data, FileOffset = 0 });
        }
    }

    [Fact]
    public void WritePacket_InterfaceAddedAfterPackets_ReadsBack()
    {
        var stream = new MemoryStream();
        using (var writer = new PcapngWriter(stream, leaveOpen: true))
        {
            int first = writer.AddInterface("docker0", "bridge", LinkType.Ethernet, 0);
            writer.WritePacket(first, 1, Payload(60, 1), 60, PacketDirection.Outbound);
            int second = writer.AddInterface("vt-up0", "uplink", LinkType.Ethernet, 0);
            writer.WritePacket(second, 2, Payload(61, 2), 61, PacketDirection.Inbound);
            writer.WritePacket(first, 3, Payload(62, 3), 62, PacketDirection.Unknown);
        }

        var (packets, reader) = ReadAll(stream.ToArray());

        Assert.Null(reader.Error);
        Assert.Equal(["docker0", "vt-up0"], reader.Interfaces.Select(i => i.Name));
        Assert.Equal([0, 1, 0], packets.Select(p => p.InterfaceId));
        Assert.Equal([1L, 2L, 3L], packets.Select(p => p.TimestampNs));
    }

    [Fact]
    public void WritePacket_EveryRepositoryCapture_ReadsBackEqual()
    {
        string captures = Path.Combine(FindRepositoryRoot(), "captures");
        string[] files = Directory.GetFiles(captures, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".xz", StringComparison.OrdinalIgnoreCase) && IsCaptureName(f))
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.NotEmpty(files);

        string rewritten = TempPath("rewrite.pcapng");
        try
        {
            foreach (string file in files)
            {
                long packets = Rewrite(file, rewritten);
                AssertSamePackets(file, rewritten, packets);
                output.WriteLine($"{Path.GetRelativePath(captures, file)}: {packets} packets rewritten and read back equal");
            }
        }
        finally
        {
            File.Delete(rewritten);
        }
    }

    [Fact]
    public void Create_Tshark_ReadsInterfacesTimestampsDirectionsAndData()
    {
        string path = TempPath("tshark.pcapng");
        var expected = new List<string>();
        try
        {
            using (PcapngWriter writer = PcapngWriter.Create(path))
            {
                (string Name, string? Description)[] hops = [("eth0", "container vt-c1"), ("veth1eae2a7", "bridge port of vt-c1"), ("vt-up0", null)];
                foreach (var (name, description) in hops)
                {
                    writer.AddInterface(name, description, LinkType.Ethernet, 262_144);
                }
                for (int i = 0; i < 30; i++)
                {
                    int id = i % hops.Length;
                    byte[] data = Payload(14 + i * 13, i);
                    var direction = (PacketDirection)(i / 3 % 3);
                    long timestamp = Timestamp + i * 1_000_000_007L;
                    int original = data.Length + (i % 4 == 0 ? 8 : 0);
                    writer.WritePacket(id, timestamp, data, original, direction);
                    // tshark 4.0 prints epb_flags' direction field in hex (1 inbound, 2 outbound), and nothing when the block has no epb_flags.
                    string directionField = direction == PacketDirection.Unknown ? "" : $"0x{(int)direction:x8}";
                    expected.Add(string.Join('\t', id, hops[id].Name, hops[id].Description ?? "", WiresharkTool.EpochSeconds(timestamp), directionField,
                        original, data.Length, Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(data))));
                }
            }

            string[] lines = WiresharkTool.Run("tshark", ["-r", path, "-o", "frame.generate_md5_hash:TRUE", "-T", "fields",
                "-e", "frame.interface_id", "-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "frame.time_epoch",
                "-e", "frame.packet_flags_direction", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.md5_hash"]);

            Assert.Equal(expected, lines);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Create_Capinfos_ReadsSectionHeaderAndInterfaces()
    {
        string path = TempPath("capinfos.pcapng");
        try
        {
            using (PcapngWriter writer = PcapngWriter.Create(path))
            {
                writer.AddInterface("eth0", "container vt-c1", LinkType.Ethernet, 262_144);
                writer.AddInterface("any", null, LinkType.LinuxSll2, 0);
                writer.WritePacket(0, Timestamp, Payload(60, 1), 60, PacketDirection.Inbound);
                writer.WritePacket(1, Timestamp + 1, Payload(80, 2), 80, PacketDirection.Outbound);
            }

            string info = string.Join('\n', WiresharkTool.Run("capinfos", [path]));

            Assert.Contains("Capture application: vethtrace", info);
            Assert.Contains($"Capture oper-sys:    {RuntimeInformation.OSDescription}", info);
            Assert.Contains("Number of packets:   2", info);
            Assert.Contains("Number of interfaces in file: 2", info);
            Assert.Contains("Name = eth0", info);
            Assert.Contains("Description = container vt-c1", info);
            Assert.Contains("Name = any", info);
            Assert.Contains("Time precision = nanoseconds (9)", info);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WritePacket_FourThreads_EveryPacketReadableInOrderPerThread()
    {
        const int Threads = 4;
        const int PacketsPerThread = 10_000;
        string path = TempPath("threads.pcapng");
        try
        {
            using (PcapngWriter writer = PcapngWriter.Create(path))
            {
                using var start = new Barrier(Threads);
                var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
                {
                    int id = writer.AddInterface($"hop{t}", $"thread {t}", LinkType.Ethernet, 0);
                    byte[] data = new byte[1600];
                    start.SignalAndWait();
                    for (int i = 0; i < PacketsPerThread; i++)
                    {
                        int length = 8 + i % 1500;
                        Fill(data.AsSpan(0, length), t, i);
                        writer.WritePacket(id, Timestamp + i, data.AsSpan(0, length), length, (PacketDirection)(1 + i % 2));
                    }
                })).ToArray();
                foreach (Thread worker in workers)
                {
                    worker.Start();
                }
                foreach (Thread worker in workers)
                {
                    worker.Join();
                }
                Assert.Equal(Threads * PacketsPerThread, writer.PacketsWritten);
            }

            using CaptureFileReader reader = CaptureFileReader.Open(path);
            int[] next = new int[Threads];
            byte[] expected = new byte[1600];
            while (reader.TryReadNext(out CaptureRecord record))
            {
                int thread = int.Parse(reader.Interfaces[record.InterfaceId].Name.AsSpan(3), CultureInfo.InvariantCulture);
                int i = next[thread]++;
                int length = 8 + i % 1500;
                Fill(expected.AsSpan(0, length), thread, i);
                Assert.True(record.Data.SequenceEqual(expected.AsSpan(0, length)), $"thread {thread} packet {i}: data differs");
                Assert.Equal(Timestamp + i, record.TimestampNs);
                Assert.Equal((PacketDirection)(1 + i % 2), record.Direction);
            }
            Assert.Null(reader.Error);
            Assert.Equal(Threads * PacketsPerThread, reader.PacketsRead);
            Assert.All(next, count => Assert.Equal(PacketsPerThread, count));
        }
        finally
        {
            File.Delete(path);
        }

        // The thread and the packet's index, then a pattern, so a torn or interleaved block shows.
        static void Fill(Span<byte> data, int thread, int index)
        {
            BinaryPrimitives.WriteInt32LittleEndian(data, thread);
            BinaryPrimitives.WriteInt32LittleEndian(data[4..], index);
            for (int k = 8; k < data.Length; k++)
            {
                data[k] = (byte)(thread * 31 + index + k);
            }
        }
    }

    [Fact]
    public void Flush_BeforeDispose_EverythingWrittenIsReadable()
    {
        var stream = new MemoryStream();
        using var writer = new PcapngWriter(stream, leaveOpen: true);
        int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 0);
        writer.WritePacket(id, Timestamp, ArpPrefix, 60, PacketDirection.Unknown);
        Assert.Equal(0, stream.Length); // still in the writer's buffer

        writer.Flush();

        var (packets, reader) = ReadAll(stream.ToArray());
        Assert.Null(reader.Error);
        Assert.Equal(ArpPrefix, Assert.Single(packets).Data);
    }

    [Fact]
    public void Dispose_LeaveOpen_StreamStaysOpenAndSecondDisposeDoesNothing()
    {
        var kept = new MemoryStream();
        var writer = new PcapngWriter(kept, leaveOpen: true);
        writer.Dispose();
        writer.Dispose();
        Assert.True(kept.CanWrite);

        var closed = new MemoryStream();
        new PcapngWriter(closed).Dispose();
        Assert.False(closed.CanWrite);
    }

    [Fact]
    public void WritePacket_AfterDispose_ThrowsObjectDisposed()
    {
        var writer = new PcapngWriter(new MemoryStream());
        int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 0);
        writer.Dispose();

        Assert.Throws<ObjectDisposedException>(() => writer.WritePacket(id, Timestamp, ArpPrefix, 60, PacketDirection.Inbound));
        Assert.Throws<ObjectDisposedException>(() => writer.AddInterface("eth1", null, LinkType.Ethernet, 0));
        Assert.Throws<ObjectDisposedException>(writer.Flush);
    }

    [Fact]
    public void WritePacket_InvalidArguments_ThrowAndWriteNothing()
    {
        var stream = new MemoryStream();
        using (var writer = new PcapngWriter(stream, leaveOpen: true))
        {
            int id = writer.AddInterface("eth0", null, LinkType.Ethernet, 100);
            Assert.Throws<ArgumentOutOfRangeException>("interfaceId", () => writer.WritePacket(1, Timestamp, ArpPrefix, 60, PacketDirection.Inbound));
            Assert.Throws<ArgumentOutOfRangeException>("interfaceId", () => writer.WritePacket(-1, Timestamp, ArpPrefix, 60, PacketDirection.Inbound));
            Assert.Throws<ArgumentOutOfRangeException>("data", () => writer.WritePacket(id, Timestamp, new byte[101], 101, PacketDirection.Inbound));
            Assert.Throws<ArgumentOutOfRangeException>("data", () => writer.WritePacket(id, Timestamp, new byte[PcapngWriter.MaxPacketLength + 1], PcapngWriter.MaxPacketLength + 1, PacketDirection.Inbound));
            Assert.Throws<ArgumentOutOfRangeException>("originalLength", () => writer.WritePacket(id, Timestamp, ArpPrefix, 19, PacketDirection.Inbound));
            Assert.Throws<ArgumentOutOfRangeException>("timestampNs", () => writer.WritePacket(id, -1, ArpPrefix, 60, PacketDirection.Inbound));
            Assert.Throws<ArgumentOutOfRangeException>("direction", () => writer.WritePacket(id, Timestamp, ArpPrefix, 60, (PacketDirection)3));
            Assert.Equal(0, writer.PacketsWritten);
        }

        var (packets, reader) = ReadAll(stream.ToArray());
        Assert.Null(reader.Error);
        Assert.Empty(packets);
        Assert.Single(reader.Interfaces);
    }

    [Fact]
    public void AddInterface_InvalidArguments_Throw()
    {
        using var writer = new PcapngWriter(new MemoryStream());
        Assert.Throws<ArgumentOutOfRangeException>("linkType", () => writer.AddInterface("eth0", null, new LinkType(65_536), 0));
        Assert.Throws<ArgumentException>("name", () => writer.AddInterface("", null, LinkType.Ethernet, 0));
        Assert.Throws<ArgumentOutOfRangeException>("snapLength", () => writer.AddInterface("eth0", null, LinkType.Ethernet, -1));
        Assert.Throws<ArgumentException>("description", () => writer.AddInterface("eth0", new string('x', 65_536), LinkType.Ethernet, 0));
        Assert.Equal(0, writer.InterfaceCount);
    }

    // ---- helpers ----

    private static readonly string[] CaptureSuffixes = [".pcap", ".pcapng", ".cap", ".ntar", ".pcap.gz", ".pcapng.gz", ".cap.gz"];

    private static bool IsCaptureName(string path) => CaptureSuffixes.Any(s => path.EndsWith(s, StringComparison.OrdinalIgnoreCase));

    /// <summary>Copies every packet of <paramref name="source"/> through a <see cref="PcapngWriter"/>, declaring interfaces as they appear.</summary>
    private static long Rewrite(string source, string destination)
    {
        using CaptureFileReader reader = CaptureFileReader.Open(source);
        using PcapngWriter writer = PcapngWriter.Create(destination);
        while (reader.TryReadNext(out CaptureRecord record))
        {
            // The reader numbers interfaces globally from 0 as it meets them, as the writer does.
            while (writer.InterfaceCount < reader.Interfaces.Count)
            {
                CaptureInterface hop = reader.Interfaces[writer.InterfaceCount];
                writer.AddInterface(hop.Name, hop.Description, hop.LinkType, hop.SnapLength);
            }
            writer.WritePacket(record.InterfaceId, record.TimestampNs, record.Data, record.OriginalLength, record.Direction);
        }
        Assert.True(reader.Error is null, $"{reader.Error}");
        return reader.PacketsRead;
    }

    /// <summary>Reads the original and the rewrite side by side (memory stays flat for the 40 MB bulk capture).</summary>
    private static void AssertSamePackets(string original, string rewritten, long expectedPackets)
    {
        using CaptureFileReader expected = CaptureFileReader.Open(original);
        using CaptureFileReader actual = CaptureFileReader.Open(rewritten);
        // Each reader's record points into its own buffer, so both stay valid until that reader reads again.
        while (expected.TryReadNext(out CaptureRecord want))
        {
            long n = expected.PacketsRead;
            Assert.True(actual.TryReadNext(out CaptureRecord got), $"{original}: the rewrite ends before packet {n}: {actual.Error}");
            if (!want.Data.SequenceEqual(got.Data) || want.TimestampNs != got.TimestampNs || want.OriginalLength != got.OriginalLength
                || want.Direction != got.Direction || want.LinkType != got.LinkType || want.InterfaceId != got.InterfaceId)
            {
                Assert.Fail($"{original}: packet {n} differs after the rewrite: timestamp {want.TimestampNs} vs {got.TimestampNs}, " +
                    $"length {want.Data.Length}/{want.OriginalLength} vs {got.Data.Length}/{got.OriginalLength}, direction {want.Direction} vs {got.Direction}");
            }
            CaptureInterface wantInterface = expected.Interfaces[want.InterfaceId];
            CaptureInterface gotInterface = actual.Interfaces[got.InterfaceId];
            Assert.Equal(wantInterface.Name, gotInterface.Name);
            Assert.Equal(wantInterface.Description, gotInterface.Description);
            Assert.Equal(wantInterface.SnapLength, gotInterface.SnapLength);
        }
        Assert.False(actual.TryReadNext(out _), $"{rewritten}: more packets than {original}");
        Assert.Null(actual.Error);
        Assert.Equal(expectedPackets, actual.PacketsRead);
    }

    /// <summary>Option code to UTF-8 value, up to opt_endofopt.</summary>
    private static Dictionary<ushort, string> ReadOptions(ReadOnlySpan<byte> options)
    {
        var values = new Dictionary<ushort, string>();
        while (options.Length >= 4)
        {
            ushort code = BinaryPrimitives.ReadUInt16LittleEndian(options);
            int length = BinaryPrimitives.ReadUInt16LittleEndian(options[2..]);
            if (code == 0)
            {
                Assert.Equal(0, length);
                Assert.Equal(4, options.Length); // opt_endofopt is last
                break;
            }
            values[code] = Encoding.UTF8.GetString(options.Slice(4, length));
            Assert.True(options[(4 + length)..((4 + length + 3) & ~3)].IndexOfAnyExcept((byte)0) < 0, "option padding is not zero");
            options = options[((4 + length + 3) & ~3)..];
        }
        return values;
    }

    private static string TempPath(string name) =>
        Path.Combine(Path.GetTempPath(), $"vethtrace-writer-{Environment.ProcessId}-{Guid.NewGuid():N}-{name}");

    /// <summary>The directory holding VethTrace.sln, found by walking up from the test binaries.</summary>
    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "VethTrace.sln")))
            {
                return directory.FullName;
            }
        }
        Assert.Fail($"no VethTrace.sln above {AppContext.BaseDirectory}: cannot find captures/");
        return "";
    }
}

/// <summary>
/// <see cref="PcapngWriter.WritePacket"/> allocates nothing: writing twice the packets allocates not one byte
/// more. In the allocation collection, so no other test's JIT work lands mid-measurement.
/// </summary>
[Collection(AllocationMeasurement.Name)]
public sealed class PcapngWriterAllocationTests
{
    // One-off costs tolerated per run, whatever its length (a lazily created runtime structure on a first call).
    private const long FixedAllowance = 64 * 1024;

    [Fact]
    public void WritePacket_ToFile_AllocatesNothingPerPacket()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-writer-alloc-{Environment.ProcessId}-{Guid.NewGuid():N}.pcapng");
        try
        {
            MeasureWrites(path, 40_000); // warm up: JIT tiers, statics, first-call paths
            // The least of a few runs, as CaptureAllocationTests: a per-packet allocation shows in every run.
            long smallBytes = Enumerable.Range(0, 3).Min(_ => MeasureWrites(path, 20_000));
            long largeBytes = Enumerable.Range(0, 3).Min(_ => MeasureWrites(path, 40_000));

            Assert.InRange(smallBytes, 0, FixedAllowance);
            Assert.InRange(largeBytes, 0, FixedAllowance);
            Assert.Equal(0, largeBytes - smallBytes);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RotatingWritePacket_ToFile_AllocatesNothingPerPacket()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vethtrace-rotating-alloc-{Environment.ProcessId}-{Guid.NewGuid():N}.pcapng");
        try
        {
            MeasureRotatingWrites(path, 40_000);
            long smallBytes = Enumerable.Range(0, 3).Min(_ => MeasureRotatingWrites(path, 20_000));
            long largeBytes = Enumerable.Range(0, 3).Min(_ => MeasureRotatingWrites(path, 40_000));

            Assert.InRange(smallBytes, 0, FixedAllowance);
            Assert.InRange(largeBytes, 0, FixedAllowance);
            Assert.Equal(0, largeBytes - smallBytes);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>As <see cref="MeasureWrites"/>, through the recording writer with its flush timer running (on its own thread).</summary>
    private static long MeasureRotatingWrites(string path, int packets)
    {
        byte[] data = CaptureReading.Payload(1514, 3);
        using var writer = new RotatingPcapngWriter(path, new RotationOptions { FlushInterval = TimeSpan.FromMilliseconds(10) });
        int ethernet = writer.AddInterface("eth0", "container vt-c1", LinkType.Ethernet, 0);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < packets; i++)
        {
            writer.WritePacket(ethernet, 1_700_000_000_000_000_000L + i, data.AsSpan(0, 60 + i % 1400), 1514, (PacketDirection)(i % 3));
        }
        writer.Flush();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(packets, writer.PacketsWritten);
        return allocated;
    }

    /// <summary>Bytes allocated by the WritePacket loop and the final Flush (creating and closing the file are outside).</summary>
    private static long MeasureWrites(string path, int packets)
    {
        byte[] data = CaptureReading.Payload(1514, 3);
        using PcapngWriter writer = PcapngWriter.Create(path);
        int ethernet = writer.AddInterface("eth0", "container vt-c1", LinkType.Ethernet, 0);
        int any = writer.AddInterface("any", null, LinkType.LinuxSll2, 0);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < packets; i++)
        {
            // Every padding length and direction; the buffer fills and goes to the file about every 600 packets.
            writer.WritePacket(i % 2 == 0 ? ethernet : any, 1_700_000_000_000_000_000L + i, data.AsSpan(0, 60 + i % 1400), 1514, (PacketDirection)(i % 3));
        }
        writer.Flush();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(packets, writer.PacketsWritten);
        return allocated;
    }
}
