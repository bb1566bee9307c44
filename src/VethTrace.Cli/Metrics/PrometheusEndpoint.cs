using System.Globalization;
using System.Net;
using System.Net.Sockets;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace VethTrace.Cli.Metrics;

/// <summary>
/// <c>follow --prometheus [ADDR:]PORT</c>: serves <c>/metrics</c> in the Prometheus text format, for as long as the
/// follow runs, through the OpenTelemetry .NET SDK and its Prometheus exporter (a stand-alone
/// <see cref="HttpListener"/>, no ASP.NET Core), which read the <see cref="FollowMetrics"/> instruments. Every series
/// carries <c>host</c> (the machine's name or <c>--host-label</c>), as a resource attribute the exporter copies onto
/// each one; the exporter's own scope labels and <c>target_info</c> are left out.
/// </summary>
public sealed class PrometheusEndpoint : IDisposable
{
    private readonly MeterProvider _provider;

    private PrometheusEndpoint(MeterProvider provider, IPEndPoint bound)
    {
        _provider = provider;
        Bound = bound;
    }

    /// <summary>Where it listens.</summary>
    public IPEndPoint Bound { get; }

    /// <summary>
    /// Parses <c>PORT</c>, <c>ADDR:PORT</c> or <c>[IPv6]:PORT</c>; without an address, 127.0.0.1 (listening elsewhere is
    /// the user's explicit choice). Null with <paramref name="problem"/> set when it is not one of those.
    /// </summary>
    public static IPEndPoint? Parse(string text, out string? problem)
    {
        problem = null;
        string address = "127.0.0.1", port = text;
        int colon = text.LastIndexOf(':');
        if (colon >= 0)
        {
            address = text[..colon].Trim('[', ']');
            port = text[(colon + 1)..];
        }
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number is < 1 or > 65535)
        {
            problem = $"--prometheus expects [ADDR:]PORT with a port from 1 to 65535, such as 9417 or 0.0.0.0:9417; got '{text}'";
            return null;
        }
        // IPAddress also takes the old short forms (1.2.3 is 1.2.0.3): an IPv4 address here has its four parts.
        if (!IPAddress.TryParse(address, out IPAddress? ip) || ip.AddressFamily == AddressFamily.InterNetwork && address.Count(c => c == '.') != 3)
        {
            problem = $"--prometheus expects an IP address before the port (127.0.0.1, 0.0.0.0, [::1]); got '{address}'";
            return null;
        }
        return new IPEndPoint(ip, number);
    }

    /// <summary>
    /// Starts serving. The port is tried first with a socket of our own, so a port in use is one clear line
    /// (<paramref name="problem"/>) rather than an exporter that logs the failure and serves nothing.
    /// </summary>
    public static PrometheusEndpoint? Start(IPEndPoint endpoint, string host, FollowMetrics metrics, out string? problem)
    {
        problem = null;
        try
        {
            using var probe = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(endpoint);
        }
        catch (SocketException e)
        {
            problem = $"cannot listen on {endpoint} for --prometheus: {e.Message}";
            return null;
        }
        // HttpListener's prefix: '*' for every address, an IPv6 address in brackets.
        string listenHost = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any) ? "*"
            : endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]" : endpoint.Address.ToString();
        MeterProvider provider;
        try
        {
            provider = Sdk.CreateMeterProviderBuilder()
                .AddMeter(metrics.MeterName, metrics.MeterName + ".Container.*")
                .ConfigureResource(resource => resource.Clear().AddAttributes([new KeyValuePair<string, object>("host", host)]))
                .AddView(FollowMetrics.LatencyName, new ExplicitBucketHistogramConfiguration { Boundaries = FollowMetrics.LatencyBuckets, RecordMinMax = false })
                .AddPrometheusHttpListener(options =>
                {
                    options.Host = listenHost;
                    options.Port = endpoint.Port;
                    options.ScopeInfoEnabled = false;
                    options.TargetInfoEnabled = false;
                    options.ResourceConstantLabels = key => key == "host";
                    // Every scrape reads the current snapshot: two Prometheus servers scraping at once get the same.
                    options.ScrapeResponseCacheDurationMilliseconds = 0;
                })
                .Build();
        }
        catch (Exception e) when (e is HttpListenerException or InvalidOperationException)
        {
            problem = $"cannot listen on {endpoint} for --prometheus: {e.Message}";
            return null;
        }
        return new PrometheusEndpoint(provider, endpoint);
    }

    public void Dispose() => _provider.Dispose();
}
