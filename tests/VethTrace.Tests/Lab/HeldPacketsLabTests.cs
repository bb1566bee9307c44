using System.Diagnostics;
using System.Net.NetworkInformation;
using VethTrace.Capture.Live;
using VethTrace.Capture.Topology;
using VethTrace.Tracing;

namespace VethTrace.Tests.Lab;

/// <summary>
/// Whole-host capture (one <c>any</c> handle) holding the packets of an interface that has appeared but is not attached
/// yet (<see cref="HostCapture.Expect"/>): a new container's first packets, sent as its process starts, while the
/// thread that attaches its veth is kept off the CPU. A veth pair of the test's own into a namespace of its own
/// (<c>vt16held</c>, 192.0.2.100/30); the pings go to that namespace and back only. The attach is made late on purpose,
/// well past the order slack (0.1 s), so what is measured is the holding, not a lucky race.
/// </summary>
[Trait("Category", "Lab")]
[Collection("Lab")]
public sealed class HeldPacketsLabTests : IDisposable
{
    private const string Space = "vt16held", Host = "vt16h0", Peer = "vt16h1";
    private const string HostIp = "192.0.2.101", PeerIp = "192.0.2.102";

    public HeldPacketsLabTests()
    {
        Cleanup();
        LabEnvironment.Run("bash", "-c", $"""
            set -e
            ip netns add {Space}
            ip link add {Host} type veth peer name {Peer} netns {Space}
            ip addr add {HostIp}/30 dev {Host}
            ip -n {Space} addr add {PeerIp}/30 dev {Peer}
            ip link set {Host} up; ip -n {Space} link set {Peer} up; ip -n {Space} link set lo up
            """);
    }

    public void Dispose() => Cleanup();

    private static void Cleanup()
    {
        // The veth pair goes with the namespace.
        LabEnvironment.TryRun("ip", "netns", "del", Space);
        LabEnvironment.TryRun("ip", "link", "del", Host);
    }

    private static int IndexOf(string name) =>
        NetworkInterface.GetAllNetworkInterfaces().Single(i => i.Name == name).GetIPProperties().GetIPv4Properties().Index;

    /// <summary>Three pings from the namespace to the host end: six packets on the host end (requests in, replies out).</summary>
    private static void Ping() =>
        LabEnvironment.Run("ip", "netns", "exec", Space, "busybox", "ping", "-c", "3", "-i", "0.1", "-W", "2", HostIp);

    /// <summary>Pumps as whole-host follow does, for <paramref name="time"/>.</summary>
    private static void PumpFor(HostCapture capture, TimeSpan time)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < time)
        {
            Thread.Sleep(50);
            capture.Pump();
        }
    }

    /// <summary>Pumps until <paramref name="done"/> holds, or <paramref name="limit"/> passes (the capture threads run below the rest: a busy CI host delays them).</summary>
    private static bool PumpUntil(HostCapture capture, Func<bool> done, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (!done() && clock.Elapsed < limit)
        {
            Thread.Sleep(50);
            capture.Pump();
        }
        return done();
    }

    /// <summary>
    /// Starts the capture with the pair's host end expected, sends the three pings and waits until the capture thread
    /// holds their six packets (the pump going on meanwhile: the clock must wait for what is held, or the orderer would
    /// let go past it). Returns the host end's ifindex.
    /// </summary>
    private static int StartExpectedAndHoldSix(HostCapture capture)
    {
        int ifindex = IndexOf(Host);
        capture.Start();
        Assert.True(capture.Expect(ifindex));
        Assert.True(capture.IsExpected(ifindex));
        Ping();
        Assert.True(PumpUntil(capture, () => capture.HeldNow >= 6, TimeSpan.FromSeconds(5)), $"{capture.HeldNow} held");
        return ifindex;
    }

    private static (HostCapture Capture, TraceSession Session) Open()
    {
        var session = new TraceSession(new TraceSessionOptions());
        var capture = new HostCapture(session, kernelFilter: $"icmp and host {PeerIp}", snapLength: 256, HostCapture.DefaultBufferBytes);
        return (capture, session);
    }

    [Fact]
    public void Expected_ThenAttachedHalfASecondAfterItsPackets_EveryPacketTracedInTimeOrder()
    {
        var (capture, session) = Open();
        using (capture)
        {
            int ifindex = StartExpectedAndHoldSix(capture);
            PumpFor(capture, TimeSpan.FromSeconds(0.5));
            int? id = capture.Attach(ifindex, Host, InterfaceRole.Veth, out _);
            PumpFor(capture, TimeSpan.FromSeconds(0.5));
            Ping();
            PumpFor(capture, TimeSpan.FromSeconds(0.3));
            capture.Stop();

            Assert.NotNull(id);
            Assert.False(capture.IsExpected(ifindex));
            // All twelve on the interface: six held and traced once it was attached, six after.
            Assert.Equal(12, capture.PacketsOf(id.Value));
            Assert.Equal(6, capture.HeldThenTraced);
            Assert.Equal(0, capture.HeldDropped);
            Assert.Equal(12, session.Packets);
            // In time order: nothing reached the orderer later than its slack, and no packet was late off the ring.
            Assert.Equal(0, session.PumpOvertaken);
            Assert.Equal(0, capture.LatePackets);
            // Each a journey of the correlator's (one hop each: the pair's host end is the only interface traced).
            Assert.Equal(12, session.Correlator.Journeys);
        }
    }

    /// <summary>A recording's view: each packet's interface id and stamp, and whether its interface block existed first.</summary>
    private sealed class RecordingSink : IPacketSink
    {
        public readonly System.Collections.Concurrent.ConcurrentQueue<(int Id, long Ns)> Written = new();
        public volatile int Declared = -1;
        public int WrittenBeforeDeclared;

        public void Write(int hop, VethTrace.Packets.LinkType linkType, long timestampNs, ReadOnlySpan<byte> data, int originalLength, VethTrace.Packets.PacketDirection direction)
        {
            if (Declared != hop)
            {
                Interlocked.Increment(ref WrittenBeforeDeclared);
            }
            Written.Enqueue((hop, timestampNs));
        }
    }

    [Fact]
    public void Expected_ThenAttached_HeldPacketsRecordedAfterTheInterfaceIsDeclared()
    {
        // record: the held packets are written too, with the interface's id, and only after the callback that adds its
        // interface block (before it, the first packets of a new veth were written for an interface the file did not have).
        var (capture, session) = Open();
        var sink = new RecordingSink();
        capture.Sink = sink;
        using (capture)
        {
            int ifindex = StartExpectedAndHoldSix(capture);
            Assert.Empty(sink.Written);
            int? id = capture.Attach(ifindex, Host, InterfaceRole.Veth, declared => { Thread.Sleep(200); sink.Declared = declared; }, out _);
            Assert.True(PumpUntil(capture, () => sink.Written.Count >= 6, TimeSpan.FromSeconds(5)), $"{sink.Written.Count} written");
            capture.Stop();

            Assert.Equal(0, sink.WrittenBeforeDeclared);
            Assert.Equal(6, sink.Written.Count(w => w.Id == id));
            // In the order they were read: the stamps of the held packets do not go back.
            long[] stamps = [.. sink.Written.Select(w => w.Ns)];
            Assert.Equal(stamps.Order(), stamps);
        }
    }

    [Fact]
    public void NotExpected_PacketsBeforeTheAttach_AreOtherInterfaces()
    {
        // Without Expect (before this change, and for every interface that is not a new veth): what came before the
        // attach is not traced.
        var (capture, session) = Open();
        using (capture)
        {
            int ifindex = IndexOf(Host);
            capture.Start();
            Ping();
            // The kernel filter passes the pings only: every other packet is one of them.
            Assert.True(PumpUntil(capture, () => capture.OtherPackets >= 6, TimeSpan.FromSeconds(5)), $"{capture.OtherPackets} other packets");
            int? id = capture.Attach(ifindex, Host, InterfaceRole.Veth, out _);
            Ping();
            PumpFor(capture, TimeSpan.FromSeconds(0.3));
            capture.Stop();

            Assert.Equal(6, capture.PacketsOf(id!.Value));
            Assert.Equal(0, capture.HeldThenTraced);
            Assert.Equal(6, session.Packets);
            Assert.Equal(6, capture.OtherPackets);
        }
    }

    [Fact]
    public void Expected_ThenDeclined_HeldPacketsLetGo_NotTracedEvenIfAttachedLater()
    {
        var (capture, session) = Open();
        using (capture)
        {
            int ifindex = StartExpectedAndHoldSix(capture);
            long otherBefore = capture.OtherPackets;
            capture.Decline(ifindex);
            Assert.False(capture.IsExpected(ifindex));
            // The capture thread lets go of them at its next read or quiet poll (every 0.1 s on an idle host).
            Assert.True(PumpUntil(capture, () => capture.OtherPackets >= otherBefore + 6, TimeSpan.FromSeconds(5)),
                $"{capture.OtherPackets - otherBefore} let go");
            int? id = capture.Attach(ifindex, Host, InterfaceRole.Veth, out _);
            PumpFor(capture, TimeSpan.FromSeconds(0.2));
            capture.Stop();

            Assert.Equal(0, capture.PacketsOf(id!.Value));
            Assert.Equal(0, capture.HeldThenTraced);
            Assert.Equal(0, session.Packets);
        }
    }

    [Fact]
    public void Expected_NeverDecided_HeldAtMostHoldTime_ThenTheClockGoesOn()
    {
        var (capture, session) = Open();
        using (capture)
        {
            int ifindex = StartExpectedAndHoldSix(capture);
            // Held for HoldNs (2 s) by the capture's clock, which quiet polls move on (every 0.1 s).
            Assert.Equal(0, capture.HeldDropped);
            Assert.True(PumpUntil(capture, () => capture.HeldDropped >= 6, TimeSpan.FromSeconds(6)), $"{capture.HeldDropped} let go");
            Assert.Equal(6, capture.HeldDropped);
            capture.Stop();
            Assert.Equal(0, session.Packets);
            Assert.True(capture.IsExpected(ifindex)); // still undecided: a later packet would be held again
        }
    }

    [Fact]
    public void HostWatch_AVethJoiningABridge_AnnouncedOnTheWatchersThread_BeforeWantedIsAsked()
    {
        const string bridge = "vt16hbr", veth = "vt16hv0", vethPeer = "vt16hv1";
        LabEnvironment.TryRun("ip", "link", "del", bridge);
        LabEnvironment.TryRun("ip", "link", "del", veth);
        using var watch = HostWatch.Start((VethTrace.Capture.Docker.DockerClient?)null, egress: null);
        var announced = new System.Collections.Concurrent.ConcurrentQueue<int>();
        var gone = new System.Collections.Concurrent.ConcurrentQueue<int>();
        watch.OnWantedLink(announced.Enqueue, gone.Enqueue);
        try
        {
            LabEnvironment.Run("bash", "-c", $"ip link add {bridge} type bridge; ip link add {veth} type veth peer name {vethPeer}");
            int bridgeIndex = IndexOf(bridge), vethIndex = IndexOf(veth);
            Thread.Sleep(300);
            // A bridge is wanted as it is created; a veth only once its master is a bridge.
            Assert.Contains(bridgeIndex, announced);
            Assert.DoesNotContain(vethIndex, announced);
            LabEnvironment.Run("ip", "link", "set", veth, "master", bridge);
            var clock = Stopwatch.StartNew();
            while (!announced.Contains(vethIndex) && clock.Elapsed < TimeSpan.FromSeconds(3))
            {
                Thread.Sleep(10);
            }
            Assert.Contains(vethIndex, announced);
            // Announced while the changes still wait in the queue Wanted() takes them from.
            Assert.True(watch.WaitForLinkChange(TimeSpan.Zero, CancellationToken.None));
            Assert.Contains(watch.Wanted(), l => l.Index == vethIndex && l.Role == InterfaceRole.Veth && l.Master == bridge);
            // And said gone when it is deleted (a container removed before its veth was decided).
            LabEnvironment.Run("ip", "link", "del", veth);
            clock.Restart();
            while (!gone.Contains(vethIndex) && clock.Elapsed < TimeSpan.FromSeconds(3))
            {
                Thread.Sleep(10);
            }
            Assert.Contains(vethIndex, gone);
        }
        finally
        {
            LabEnvironment.TryRun("ip", "link", "del", veth);
            LabEnvironment.TryRun("ip", "link", "del", bridge);
        }
    }
}
