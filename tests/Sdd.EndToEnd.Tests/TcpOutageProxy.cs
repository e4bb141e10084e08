using System.Net;
using System.Net.Sockets;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of one server, for one process only: <see cref="Break"/> resets every open
/// connection and refuses new ones (an outage as that process sees it), <see cref="Restore"/> lets them through again.
/// The shared server itself is never touched.
/// </summary>
public sealed class TcpOutageProxy : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _host;
    private readonly int _port;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(TcpClient Client, TcpClient Upstream)> _open = [];
    private volatile bool _down;

    public TcpOutageProxy(string host, int port)
    {
        (_host, _port) = (host, port);
        _listener.Start();
        _ = Task.Run(AcceptAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public int Refused { get; private set; }

    public void Break()
    {
        _down = true;
        lock (_open)
        {
            foreach (var (c, u) in _open) { Reset(c); Reset(u); }
            _open.Clear();
        }
    }

    public void Restore() => _down = false;

    private static void Reset(TcpClient c)
    {
        try { c.Client.LingerState = new LingerOption(true, 0); c.Close(); } catch (Exception) { }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            if (_down) { Refused++; Reset(client); continue; }
            _ = Task.Run(async () =>
            {
                var upstream = new TcpClient();
                try { await upstream.ConnectAsync(_host, _port, _stop.Token); }
                catch (Exception) { Reset(client); upstream.Dispose(); return; }
                lock (_open) _open.Add((client, upstream));
                using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                var a = client.GetStream().CopyToAsync(upstream.GetStream(), done.Token);
                var b = upstream.GetStream().CopyToAsync(client.GetStream(), done.Token);
                try { await Task.WhenAny(a, b); } catch (Exception) { }
                lock (_open) _open.Remove((client, upstream));
                Reset(client);
                Reset(upstream);
            });
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        Break();
    }
}
