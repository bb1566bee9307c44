using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using VethTrace.Capture.Topology;
using VethTrace.Tests.Lab;
using Xunit.Abstractions;

namespace VethTrace.Tests.Topology;

/// <summary>
/// The link watcher on real links: in a namespace of the test's own (vt-host-lw-PID, removed at the end) and on the
/// host while the lab's dockerd starts and removes a container of the test's own. Expected ifindexes and names come
/// from <c>ip</c>, <c>/sys/class/net</c> and <c>docker</c>, never from VethTrace.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class LinkWatcherLabTests(ITestOutputHelper output) : IDisposable
{
    private const string Image = "vethtrace/busybox:lab";
    /// <summary>The latency the issue asks for is "within a second"; the kernel delivers in microseconds.</summary>
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(1);

    private readonly string _ns = $"vt-host-lw-{Environment.ProcessId}";
    private readonly string _container = $"vt-host-lw-{Environment.ProcessId}";

    public void Dispose()
    {
        LabEnvironment.TryRun("ip", "netns", "del", _ns);
        LabEnvironment.TryRun("docker", "rm", "-f", _container);
    }

    private void CreateNamespace()
    {
        LabEnvironment.TryRun("ip", "netns", "del", _ns);
        LabEnvironment.Run("ip", "netns", "add", _ns);
    }

    private int IndexInNamespace(string name) =>
        int.Parse(LabEnvironment.Run("ip", "netns", "exec", _ns, "cat", $"/sys/class/net/{name}/ifindex").Trim(), CultureInfo.InvariantCulture);

    /// <summary>Runs <c>ip -n NS args</c>, then waits for the first change that <paramref name="match"/> accepts; returns it and the delay from the command's start.</summary>
    private (LinkChange Change, TimeSpan Delay) Expect(LinkWatcher watcher, Func<LinkChange, bool> match, string what, params string[] ipArguments)
    {
        DateTimeOffset started = DateTimeOffset.UtcNow;
        LabEnvironment.Run("ip", ["-n", _ns, .. ipArguments]);
        LinkChange change = WaitFor(watcher.Changes, match, what);
        TimeSpan delay = change.ReceivedAt - started;
        output.WriteLine($"{what}: {change.Kind} ifindex {change.Index} {change.Link.Name} after {delay.TotalMilliseconds:0.0} ms (ip included)");
        return (change, delay);
    }

    private static LinkChange WaitFor(ChannelReader<LinkChange> changes, Func<LinkChange, bool> match, string what, int timeoutSeconds = 10)
    {
        var seen = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            while (true)
            {
                LinkChange change = changes.ReadAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
                if (match(change))
                {
                    return change;
                }
                seen.Add($"{change.Kind} {change.Index} {change.Link.Name}");
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no change for {what} within {timeoutSeconds} s; saw: {string.Join("; ", seen)}");
            throw;
        }
    }

    [Fact]
    public void Start_NamespaceWithBridge_InitialListingHasTheBridgeAndItsPort()
    {
        CreateNamespace();
        LabEnvironment.Run("ip", "-n", _ns, "link", "add", "vt-br", "type", "bridge");
        LabEnvironment.Run("ip", "-n", _ns, "link", "add", "vt-p0", "type", "veth", "peer", "name", "vt-p0b");
        LabEnvironment.Run("ip", "-n", _ns, "link", "set", "vt-p0", "master", "vt-br");

        using LinkWatcher watcher = LinkWatcher.Start(NetworkNamespace.FromName(_ns));

        HostInterface bridge = Assert.Single(watcher.InitialInterfaces.Interfaces, i => i.Name == "vt-br");
        Assert.Equal(("bridge", IndexInNamespace("vt-br")), (bridge.Kind, bridge.Index));
        HostInterface port = Assert.Single(watcher.InitialInterfaces.Interfaces, i => i.Name == "vt-p0");
        Assert.Equal(("veth", "vt-br", IndexInNamespace("vt-p0")), (port.Kind, port.Master, port.Index));
        Assert.Null(Assert.Single(watcher.InitialInterfaces.Interfaces, i => i.Name == "vt-p0b").Master);
    }

    [Fact]
    public void Changes_AddEnslaveRenameReleaseDelete_EachReportedByIfindexWithinASecond()
    {
        CreateNamespace();
        LabEnvironment.Run("ip", "-n", _ns, "link", "add", "vt-br", "type", "bridge");
        int bridge = IndexInNamespace("vt-br");
        using LinkWatcher watcher = LinkWatcher.Start(NetworkNamespace.FromName(_ns));
        var delays = new List<TimeSpan>();

        DateTimeOffset started = DateTimeOffset.UtcNow;
        LabEnvironment.Run("ip", "-n", _ns, "link", "add", "vt-a", "type", "veth", "peer", "name", "vt-b");
        // The kernel announces the two ends in either order.
        var pair = new Dictionary<string, LinkChange>();
        while (pair.Count < 2)
        {
            LinkChange change = WaitFor(watcher.Changes, c => c.Kind == LinkChangeKind.Added && c.Link.Name is "vt-a" or "vt-b", "veth pair added");
            pair[change.Link.Name] = change;
        }
        int a = IndexInNamespace("vt-a"), b = IndexInNamespace("vt-b");
        LinkChange added = pair["vt-a"];
        TimeSpan delay = pair.Values.Max(c => c.ReceivedAt) - started;
        delays.Add(delay);
        output.WriteLine($"veth pair added: ifindex {a} and {b} after {delay.TotalMilliseconds:0.0} ms (ip included)");
        Assert.Equal((a, "veth", (int?)null), (added.Index, added.Link.Kind, added.Link.MasterIndex));
        // The end registered first is announced before its peer exists (IFLA_LINK 0); the second names the first.
        Assert.Equal((b, "veth"), (pair["vt-b"].Index, pair["vt-b"].Link.Kind));
        Assert.Contains(pair.Values, c => c.Link.LinkIndex == (c.Index == a ? b : a));

        (LinkChange enslaved, delay) = Expect(watcher, c => c.Kind == LinkChangeKind.MasterChanged && c.Index == a, "joins the bridge",
            "link", "set", "vt-a", "master", "vt-br");
        delays.Add(delay);
        Assert.Equal(((int?)bridge, "vt-br", (int?)null), (enslaved.Link.MasterIndex, enslaved.MasterName, enslaved.PreviousMasterIndex));

        (LinkChange renamed, delay) = Expect(watcher, c => c.Kind == LinkChangeKind.Renamed && c.Index == a, "renamed",
            "link", "set", "vt-a", "name", "vt-renamed");
        delays.Add(delay);
        Assert.Equal(("vt-renamed", "vt-a", (int?)bridge), (renamed.Link.Name, renamed.PreviousName, renamed.Link.MasterIndex));

        (LinkChange released, delay) = Expect(watcher, c => c.Kind == LinkChangeKind.MasterChanged && c.Index == a, "leaves the bridge",
            "link", "set", "vt-renamed", "nomaster");
        delays.Add(delay);
        Assert.Equal(((int?)null, (int?)bridge, "vt-br"), (released.Link.MasterIndex, released.PreviousMasterIndex, released.PreviousMasterName));

        (LinkChange removed, delay) = Expect(watcher, c => c.Kind == LinkChangeKind.Removed && c.Index == a, "deleted",
            "link", "del", "vt-renamed");
        delays.Add(delay);
        Assert.Equal("vt-renamed", removed.Link.Name);
        // Deleting one end of a veth deletes the other (announced before or after this one).
        if (watcher.CurrentLinks.Any(l => l.Index == b))
        {
            WaitFor(watcher.Changes, c => c.Kind == LinkChangeKind.Removed && c.Index == b, "peer deleted");
        }

        Assert.All(delays, d => Assert.True(d < Prompt, $"a change arrived {d.TotalMilliseconds:0} ms after its command started"));
        Assert.Equal(["lo", "vt-br"], watcher.CurrentLinks.Select(l => l.Name).Order(StringComparer.Ordinal));
        Assert.Equal(0, watcher.Malformed);
    }

    [Fact]
    public void Changes_SlowConsumerAndABurstOf60Bridges_NoneLostAndTableMatchesIp()
    {
        CreateNamespace();
        using LinkWatcher watcher = LinkWatcher.Start(NetworkNamespace.FromName(_ns), capacity: 4);
        string batch = string.Concat(Enumerable.Range(0, 60).Select(i => $"link add vt-d{i} type bridge\n"));
        string file = Path.Combine(Path.GetTempPath(), $"vt-host-lw-{Environment.ProcessId}.batch");
        File.WriteAllText(file, batch);
        try
        {
            LabEnvironment.Run("ip", "-n", _ns, "-batch", file);
        }
        finally
        {
            File.Delete(file);
        }
        // Nothing was read while the burst went in: the reader waited on the full queue.
        Thread.Sleep(300);

        var added = new HashSet<string>(StringComparer.Ordinal);
        while (added.Count < 60)
        {
            LinkChange change = WaitFor(watcher.Changes, c => c.Kind == LinkChangeKind.Added, $"bridge #{added.Count}");
            added.Add(change.Link.Name);
        }

        Assert.Equal(Enumerable.Range(0, 60).Select(i => $"vt-d{i}").Order(StringComparer.Ordinal), added.Order(StringComparer.Ordinal));
        string[] expected = [.. LabEnvironment.Run("ip", "-n", _ns, "-o", "link", "show").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':')[1].Trim()).Order(StringComparer.Ordinal)];
        Assert.Equal(expected, watcher.CurrentLinks.Select(l => l.Name).Order(StringComparer.Ordinal));
        output.WriteLine($"overruns: {watcher.Overruns}");
    }

    [Fact]
    public void Dispose_WhileIdle_ReaderThreadEndsPromptlyAndChangesComplete()
    {
        CreateNamespace();
        int threadsBefore = Process.GetCurrentProcess().Threads.Count;
        LinkWatcher watcher = LinkWatcher.Start(NetworkNamespace.FromName(_ns));
        Assert.True(watcher.IsReading);
        Thread.Sleep(250);

        var clock = Stopwatch.StartNew();
        watcher.Dispose();
        clock.Stop();

        Assert.False(watcher.IsReading);
        Assert.True(watcher.Changes.Completion.IsCompleted);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"Dispose took {clock.ElapsedMilliseconds} ms");
        output.WriteLine($"Dispose took {clock.Elapsed.TotalMilliseconds:0.0} ms; threads {threadsBefore} before, {Process.GetCurrentProcess().Threads.Count} after");
        watcher.Dispose();
    }

    [Fact]
    public void Changes_DockerRunAndRemove_ContainersVethJoinsDocker0ThenGoes()
    {
        var lab = LabEnvironment.Load();
        int docker0 = int.Parse(lab["BRIDGE_IFINDEX"], CultureInfo.InvariantCulture);
        LabEnvironment.TryRun("docker", "rm", "-f", _container);
        using LinkWatcher watcher = LinkWatcher.Start(NetworkNamespace.Current);
        Assert.Contains(watcher.InitialInterfaces.Interfaces, i => i.Index == docker0 && i.Kind == "bridge");

        LabEnvironment.Run("docker", "run", "-d", "--name", _container, Image, "sleep", "300");
        DateTimeOffset running = DateTimeOffset.UtcNow;
        int veth = DockerEventLabTests.HostVethOf(_container);
        string vethName = File.ReadAllLines("/proc/net/dev").Select(l => l.Split(':')[0].Trim())
            .Single(name => File.Exists($"/sys/class/net/{name}/ifindex") && File.ReadAllText($"/sys/class/net/{name}/ifindex").Trim() == veth.ToString(CultureInfo.InvariantCulture));

        LinkChange joined = WaitFor(watcher.Changes, c => c.Index == veth && c.Link.MasterIndex == docker0 && c.Kind is LinkChangeKind.Added or LinkChangeKind.MasterChanged, "veth on docker0");
        Assert.Equal((vethName, "veth", "docker0"), (joined.Link.Name, joined.Link.Kind, joined.MasterName));
        Assert.True(joined.ReceivedAt <= running + Prompt, $"seen {(joined.ReceivedAt - running).TotalMilliseconds:0} ms after docker run returned");

        DateTimeOffset removing = DateTimeOffset.UtcNow;
        LabEnvironment.Run("docker", "rm", "-f", _container);
        LinkChange gone = WaitFor(watcher.Changes, c => c.Index == veth && c.Kind == LinkChangeKind.Removed, "veth removed");
        Assert.Equal(vethName, gone.Link.Name);
        output.WriteLine($"{vethName} (ifindex {veth}) joined docker0; removed {(gone.ReceivedAt - removing).TotalMilliseconds:0} ms after docker rm -f started");
        Assert.DoesNotContain(watcher.CurrentLinks, l => l.Index == veth);
    }
}
