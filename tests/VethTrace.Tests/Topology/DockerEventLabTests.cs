using System.Globalization;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using VethTrace.Capture.Docker;
using VethTrace.Capture.Topology;
using VethTrace.Tests.Lab;
using Xunit.Abstractions;

namespace VethTrace.Tests.Topology;

/// <summary>
/// The event stream and the veth-to-container map on the lab's real dockerd, with a container of the test's own
/// (vt-host-ev-PID, removed at the end). Expected IDs, names and ifindexes come from the docker CLI, nsenter and
/// the lab's state file, never from VethTrace.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class DockerEventLabTests(ITestOutputHelper output) : IDisposable
{
    private const string Image = "vethtrace/busybox:lab";
    private readonly string _name = $"vt-host-ev-{Environment.ProcessId}";

    public void Dispose()
    {
        LabEnvironment.TryRun("docker", "rm", "-f", _name);
        LabEnvironment.TryRun("docker", "rm", "-f", _name + "-b");
    }

    private static long NowNano() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    private static async Task<DockerEvent> WaitForAsync(ChannelReader<DockerEvent> events, Func<DockerEvent, bool> match, string what)
    {
        var seen = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (true)
            {
                DockerEvent item = await events.ReadAsync(timeout.Token);
                if (match(item))
                {
                    return item;
                }
                seen.Add($"{item.Kind} {item.ContainerName ?? item.ContainerId}");
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no {what} within 20 s; saw: {string.Join("; ", seen)}");
            throw;
        }
    }

    /// <summary>The host end of the container's eth0: the peer index <c>ip</c> prints inside (<c>eth0@if34</c>).</summary>
    public static int HostVethOf(string container)
    {
        string pid = LabEnvironment.Run("docker", "inspect", "-f", "{{.State.Pid}}", container).Trim();
        string line = LabEnvironment.Run("nsenter", $"--net=/proc/{pid}/ns/net", "ip", "-o", "link", "show", "eth0");
        Match peer = Regex.Match(line, @"eth0@if(\d+):");
        Assert.True(peer.Success, $"no peer index in: {line}");
        return int.Parse(peer.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task ReadAsync_RunRenameStopRemove_EachEventOnceWithIdsAndNames()
    {
        LabEnvironment.TryRun("docker", "rm", "-f", _name);
        LabEnvironment.TryRun("docker", "rm", "-f", _name + "-b");
        using DockerClient docker = DockerClient.FromEnvironment();
        var stream = new DockerEventStream(docker);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var events = Channel.CreateUnbounded<DockerEvent>();
        long since = NowNano();
        Task pump = Task.Run(async () =>
        {
            await foreach (DockerEvent item in stream.ReadAsync(since, stop.Token))
            {
                await events.Writer.WriteAsync(item);
            }
            events.Writer.Complete();
        });

        string id = LabEnvironment.Run("docker", "run", "-d", "--name", _name, Image, "sleep", "300").Trim();
        DockerEvent connect = await WaitForAsync(events.Reader, e => e.Kind == DockerEventKind.NetworkConnect && e.ContainerId == id, "network connect");
        Assert.Equal("bridge", connect.NetworkName);
        DockerEvent start = await WaitForAsync(events.Reader, e => e.Kind == DockerEventKind.ContainerStart && e.ContainerId == id, "start");
        Assert.Equal(_name, start.ContainerName);

        LabEnvironment.Run("docker", "rename", _name, _name + "-b");
        DockerEvent rename = await WaitForAsync(events.Reader, e => e.Kind == DockerEventKind.ContainerRename && e.ContainerId == id, "rename");
        Assert.Equal((_name + "-b", _name), (rename.ContainerName, rename.OldName));

        LabEnvironment.Run("docker", "stop", "-t", "1", _name + "-b");
        DockerEvent die = await WaitForAsync(events.Reader, e => e.Kind == DockerEventKind.ContainerDie && e.ContainerId == id, "die");
        string exitCode = LabEnvironment.Run("docker", "inspect", "-f", "{{.State.ExitCode}}", _name + "-b").Trim();
        Assert.Equal(exitCode, die.Detail);
        await WaitForAsync(events.Reader, e => e.Kind == DockerEventKind.NetworkDisconnect && e.ContainerId == id, "network disconnect");

        LabEnvironment.Run("docker", "rm", _name + "-b");
        await WaitForAsync(events.Reader, e => e.Kind == DockerEventKind.ContainerDestroy && e.ContainerId == id, "destroy");

        await stop.CancelAsync();
        await pump.WaitAsync(TimeSpan.FromSeconds(5));
        // Nothing after destroy repeats an event of this container, and the stream never broke.
        var rest = new List<DockerEvent>();
        while (events.Reader.TryRead(out DockerEvent? item))
        {
            rest.Add(item);
        }
        Assert.DoesNotContain(rest, e => e.ContainerId == id);
        Assert.Equal((0L, 0L), (stream.Malformed, stream.Reconnections));
    }

    [Fact]
    public async Task LookupAsync_LabContainersVeth_NameNetworkAndInsideInterface()
    {
        var lab = LabEnvironment.Load();
        using DockerClient docker = DockerClient.FromEnvironment();
        var map = new VethContainerMap(docker);

        VethContainer? found = await map.LookupAsync(int.Parse(lab["C1_VETH_IFINDEX"], CultureInfo.InvariantCulture));

        Assert.NotNull(found);
        Assert.Equal((lab["C1_NAME"], lab["C1_ID"], "bridge", lab["C1_IF"], lab["C1_VETH"], lab["BRIDGE"]),
            (found.ContainerName, found.ContainerId, found.Network, found.InterfaceInside, found.HostName, found.Bridge));
        // One lookup maps every running container: C2's veth is now known without another inspect.
        VethContainer? c2 = map.Find(int.Parse(lab["C2_VETH_IFINDEX"], CultureInfo.InvariantCulture));
        Assert.Equal(lab["C2_NAME"], c2?.ContainerName);
        Assert.Null(await map.LookupAsync(int.Parse(lab["BRIDGE_IFINDEX"], CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task ApplyAsync_StartRenameDieFromTheStream_MapFollowsTheContainer()
    {
        LabEnvironment.TryRun("docker", "rm", "-f", _name);
        LabEnvironment.TryRun("docker", "rm", "-f", _name + "-b");
        using DockerClient docker = DockerClient.FromEnvironment();
        var map = new VethContainerMap(docker);
        var stream = new DockerEventStream(docker);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var applied = Channel.CreateUnbounded<DockerEvent>();
        long since = NowNano();
        Task pump = Task.Run(async () =>
        {
            await foreach (DockerEvent item in stream.ReadAsync(since, stop.Token))
            {
                string? problem = await map.ApplyAsync(item, stop.Token);
                Assert.Null(problem);
                await applied.Writer.WriteAsync(item);
            }
        });

        string id = LabEnvironment.Run("docker", "run", "-d", "--name", _name, Image, "sleep", "300").Trim();
        int veth = HostVethOf(_name);
        await WaitForAsync(applied.Reader, e => e.Kind == DockerEventKind.ContainerStart && e.ContainerId == id, "start");
        VethContainer? mapped = map.Find(veth);
        Assert.Equal((id, _name, "bridge", "eth0", "docker0"), (mapped?.ContainerId, mapped?.ContainerName, mapped?.Network, mapped?.InterfaceInside, mapped?.Bridge));

        LabEnvironment.Run("docker", "rename", _name, _name + "-b");
        await WaitForAsync(applied.Reader, e => e.Kind == DockerEventKind.ContainerRename && e.ContainerId == id, "rename");
        Assert.Equal(_name + "-b", map.Find(veth)?.ContainerName);

        LabEnvironment.Run("docker", "rm", "-f", _name + "-b");
        await WaitForAsync(applied.Reader, e => e.Kind == DockerEventKind.ContainerDie && e.ContainerId == id, "die");
        Assert.Null(map.Find(veth));
        await WaitForAsync(applied.Reader, e => e.Kind == DockerEventKind.ContainerDestroy && e.ContainerId == id, "destroy");
        Assert.Null(map.Find(veth));

        await stop.CancelAsync();
        await pump.WaitAsync(TimeSpan.FromSeconds(5));
        output.WriteLine($"mapped {map.Count} veths at the end (the lab's own containers are not loaded by this test)");
    }
}
