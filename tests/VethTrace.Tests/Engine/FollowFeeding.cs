using VethTrace.Capture.Files;
using VethTrace.Tracing;

namespace VethTrace.Tests.Engine;

/// <summary>A capture fed to a <see cref="TraceSession"/> the way follow feeds it, for tests of the live path.</summary>
internal static class FollowFeeding
{
    /// <summary>
    /// One concurrent feed per interface, named as replay names them (the interfaces declared before the first packet,
    /// then each as its first packet comes), pumped every 64 packets, then finished. Returns the feeds by interface.
    /// <paramref name="captured"/>: whether an interface (by name) is captured at all (whole-host follow captures only
    /// the host side: no container's eth0); the others are declared and fed nothing.
    /// </summary>
    public static List<(PacketFeed Feed, int Id)> Feed(TraceSession session, string path, Func<string, bool>? captured = null)
    {
        var feeds = new List<(PacketFeed Feed, int Id)>();
        using (var reader = CaptureFileReader.Open(path))
        {
            void Declare(int count)
            {
                while (feeds.Count < count)
                {
                    string name = reader.Interfaces[feeds.Count].Name;
                    feeds.Add((session.OpenConcurrentFeed(), session.Interfaces.Add(name, InterfaceRoles.FromName(name), RoleSource.Name)));
                }
            }
            Declare(reader.Interfaces.Count);
            long read = 0;
            while (reader.TryReadNext(out CaptureRecord record))
            {
                Declare(record.InterfaceId + 1);
                if (captured is not null && !captured(reader.Interfaces[record.InterfaceId].Name))
                {
                    continue;
                }
                var (feed, id) = feeds[record.InterfaceId];
                feed.Arrive(id, record.TimestampNs, record.Data, record.OriginalLength, record.LinkType, record.Direction);
                if (++read % 64 == 0)
                {
                    session.Pump(record.TimestampNs);
                }
            }
            Assert.Null(reader.Error);
        }
        session.Finish(long.MinValue);
        return feeds;
    }
}
