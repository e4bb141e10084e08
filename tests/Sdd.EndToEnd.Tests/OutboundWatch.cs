using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// Watches what the services reach beyond this machine, two ways, for as long as the system runs:
/// <list type="bullet">
/// <item>a trap: the services run with HTTP_PROXY/HTTPS_PROXY pointing at a listener here (loopback addresses excepted
/// by NO_PROXY), so any HTTP(S) call to another host — telemetry, a model hub — arrives here and is recorded;</item>
/// <item>a sampler: every 100 ms, the remote address of every socket the service processes hold (/proc/PID/fd matched
/// with /proc/net/{tcp,tcp6,udp,udp6}); anything but loopback is recorded.</item>
/// </list>
/// </summary>
public sealed class OutboundWatch : IAsyncDisposable
{
    private readonly TcpListener _trap = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, byte> _seen = new();
    private readonly List<Task> _loops = [];

    public OutboundWatch(Func<IEnumerable<int?>> pids)
    {
        _trap.Start();
        _loops.Add(Task.Run(AcceptAsync));
        _loops.Add(Task.Run(() => SampleAsync(pids)));
        Started = DateTime.UtcNow;
    }

    public DateTime Started { get; }
    public string ProxyUrl => $"http://127.0.0.1:{((IPEndPoint)_trap.LocalEndpoint).Port}";
    /// <summary>What reached for the outside: "proxy: CONNECT host:443 ..." or "socket: pid → address:port".</summary>
    public IReadOnlyCollection<string> Seen => _seen.Keys.ToList();
    public int Samples { get; private set; }

    /// <summary>Environment for the services: every HTTP(S) call to a non-loopback host goes to the trap.</summary>
    public IEnumerable<KeyValuePair<string, string>> ProxyEnvironment() =>
    [
        new("HTTP_PROXY", ProxyUrl), new("HTTPS_PROXY", ProxyUrl), new("ALL_PROXY", ProxyUrl),
        new("NO_PROXY", "127.0.0.1,localhost,::1"),
    ];

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _trap.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            using (client)
            {
                try
                {
                    using var reader = new StreamReader(client.GetStream());
                    var line = await reader.ReadLineAsync(_stop.Token).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
                    _seen.TryAdd($"proxy: {line}", 0);
                    await client.GetStream().WriteAsync("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"u8.ToArray());
                }
                catch (Exception e) { _seen.TryAdd($"proxy: a connection ({e.GetType().Name})", 0); }
            }
        }
    }

    private async Task SampleAsync(Func<IEnumerable<int?>> pids)
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var remotes = Remotes();
                foreach (var pid in pids().OfType<int>())
                {
                    foreach (var inode in SocketInodes(pid))
                        if (remotes.TryGetValue(inode, out var remote) && !IsLocal(remote.Address))
                            _seen.TryAdd($"socket: pid {pid} → {remote}", 0);
                }
                Samples++;
            }
            catch (Exception) { /* a process exiting between reads */ }
            try { await Task.Delay(100, _stop.Token); } catch (OperationCanceledException) { return; }
        }
    }

    private static IEnumerable<long> SocketInodes(int pid)
    {
        string[] fds;
        try { fds = Directory.GetFileSystemEntries($"/proc/{pid}/fd"); }
        catch (Exception) { yield break; }
        foreach (var fd in fds)
        {
            string? target;
            try { target = new FileInfo(fd).LinkTarget; }
            catch (Exception) { continue; }
            if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal))
                yield return long.Parse(target[8..^1], CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Inode → remote endpoint of every connected TCP or UDP socket of this network namespace.</summary>
    private static Dictionary<long, IPEndPoint> Remotes()
    {
        var result = new Dictionary<long, IPEndPoint>();
        foreach (var table in new[] { "tcp", "tcp6", "udp", "udp6" })
        {
            string[] lines;
            try { lines = File.ReadAllLines($"/proc/net/{table}"); }
            catch (IOException) { continue; }
            foreach (var line in lines.Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 10) continue;
                var remote = Parse(f[2]);
                if (remote is null || remote.Port == 0) continue; // listening or unconnected
                result[long.Parse(f[9], CultureInfo.InvariantCulture)] = remote;
            }
        }
        return result;
    }

    private static IPEndPoint? Parse(string hexEndpoint)
    {
        var parts = hexEndpoint.Split(':');
        var hex = parts[0];
        var port = int.Parse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var bytes = Convert.FromHexString(hex);
        // /proc/net writes each 32-bit word in host (little-endian) order.
        for (int i = 0; i < bytes.Length; i += 4) Array.Reverse(bytes, i, 4);
        return new IPEndPoint(new IPAddress(bytes), port);
    }

    private static bool IsLocal(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _trap.Stop();
        try { await Task.WhenAll(_loops); } catch (Exception) { }
        _stop.Dispose();
    }
}
