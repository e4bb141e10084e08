using System.Net;
using System.Net.Sockets;

namespace Sdd.Ingest.Webhooks;

/// <summary>
/// Where a webhook may connect: checked on the address actually connected to, not on the host string a client wrote
/// (<c>2130706433</c>, <c>0x7f.0.0.1</c>, a name resolving to 10.0.0.5 all reach the same inside). Refused: loopback,
/// private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local and cloud metadata (169.254/16, fe80::/10), carrier-grade
/// NAT (100.64/10), unspecified, multicast, broadcast and the documentation and benchmark ranges; ports outside
/// SDD_WEBHOOK_PORTS. SDD_WEBHOOK_ALLOW names trusted internal receivers that pass anyway: a <c>host</c> or <c>host:port</c>
/// matches the URL's host as written (a name, or an address as <c>Uri</c> normalises it), a CIDR <c>10.1.0.0/16</c> the
/// addresses connected to. The check runs when a webhook is accepted (literal addresses and names that
/// resolve) and again at connect time (<see cref="ConnectAsync"/>, DNS rebinding included): every resolved address must pass.
/// </summary>
public sealed class WebhookEgress(IngestSettings settings)
{
    private static readonly (IPAddress Network, int Bits)[] Refused =
    [
        (IPAddress.Parse("0.0.0.0"), 8), (IPAddress.Parse("10.0.0.0"), 8), (IPAddress.Parse("100.64.0.0"), 10), (IPAddress.Parse("127.0.0.0"), 8),
        (IPAddress.Parse("169.254.0.0"), 16), (IPAddress.Parse("172.16.0.0"), 12), (IPAddress.Parse("192.0.0.0"), 24), (IPAddress.Parse("192.0.2.0"), 24),
        (IPAddress.Parse("192.168.0.0"), 16), (IPAddress.Parse("198.18.0.0"), 15), (IPAddress.Parse("198.51.100.0"), 24), (IPAddress.Parse("203.0.113.0"), 24),
        (IPAddress.Parse("224.0.0.0"), 4), (IPAddress.Parse("240.0.0.0"), 4),
        (IPAddress.Parse("::"), 128), (IPAddress.Parse("::1"), 128), (IPAddress.Parse("fc00::"), 7), (IPAddress.Parse("fe80::"), 10), (IPAddress.Parse("ff00::"), 8),
        (IPAddress.Parse("64:ff9b::"), 96), (IPAddress.Parse("2001:db8::"), 32),
    ];

    /// <summary>Why an address may not be called, or null when it may.</summary>
    public string? Refusal(string host, IPAddress address, int port)
    {
        var ip = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        if (Allowed(host, ip, port)) return null;
        foreach (var (network, bits) in Refused)
            if (InRange(ip, network, bits))
                return $"{ip} is a loopback, private, link-local or reserved address (allow a trusted receiver with SDD_WEBHOOK_ALLOW)";
        if (!PortAllowed(port)) return $"port {port} is not one webhooks may use (SDD_WEBHOOK_PORTS: {settings.WebhookPorts})";
        return null;
    }

    /// <summary>The check of an accepted webhook URL: a literal address, or every address its name resolves to now.</summary>
    public async Task<string?> CheckAsync(Uri uri, CancellationToken ct)
    {
        var host = uri.IdnHost.Trim('[', ']');
        IPAddress[] addresses;
        if (IPAddress.TryParse(host, out var literal)) addresses = [literal];
        else
        {
            try { addresses = await Dns.GetHostAddressesAsync(host, ct); }
            catch (SocketException) { return null; } // not resolvable now: the delivery's own check decides when it is
        }
        foreach (var a in addresses)
            if (Refusal(host, a, uri.Port) is { } why) return why;
        return null;
    }

    /// <summary>The connect of the webhook client: resolves the host, refuses any address <see cref="Refusal"/> refuses, connects to the checked one.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var (host, port) = (context.DnsEndPoint.Host.Trim('[', ']'), context.DnsEndPoint.Port);
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        if (addresses.Length == 0) throw new WebhookRefusedException($"{host} resolves to no address");
        foreach (var a in addresses)
            if (Refusal(host, a, port) is { } why) throw new WebhookRefusedException(why);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private bool Allowed(string host, IPAddress ip, int port)
    {
        foreach (var entry in settings.WebhookAllow)
        {
            var (name, entryPort) = SplitPort(entry);
            if (entryPort is { } p && p != port) continue;
            if (string.Equals(name, host, StringComparison.OrdinalIgnoreCase)) return true;
            var slash = name.IndexOf('/');
            if (slash > 0 && IPAddress.TryParse(name[..slash], out var net) && int.TryParse(name[(slash + 1)..], out var bits) && InRange(ip, net, bits)) return true;
        }
        return false;
    }

    /// <summary>"host:port", "[v6]:port", "v6", "cidr" → the name and the port when given.</summary>
    private static (string Name, int? Port) SplitPort(string entry)
    {
        if (entry.StartsWith('['))
        {
            var close = entry.IndexOf(']');
            return close > 0 && entry.Length > close + 2 && entry[close + 1] == ':' && int.TryParse(entry[(close + 2)..], out var p6) ? (entry[1..close], p6) : (entry.Trim('[', ']'), null);
        }
        var colon = entry.LastIndexOf(':');
        return colon > 0 && entry.IndexOf(':') == colon && int.TryParse(entry[(colon + 1)..], out var p) ? (entry[..colon], p) : (entry, null);
    }

    private bool PortAllowed(int port)
    {
        foreach (var part in settings.WebhookPorts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-');
            if (dash > 0 ? int.TryParse(part[..dash], out var lo) && int.TryParse(part[(dash + 1)..], out var hi) && port >= lo && port <= hi
                : int.TryParse(part, out var one) && one == port) return true;
        }
        return false;
    }

    private static bool InRange(IPAddress ip, IPAddress network, int bits)
    {
        if (ip.AddressFamily != network.AddressFamily) return false;
        var a = ip.GetAddressBytes();
        var n = network.GetAddressBytes();
        for (int i = 0; i < a.Length && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xFF : 0xFF << (8 - bits) & 0xFF;
            if ((a[i] & mask) != (n[i] & mask)) return false;
        }
        return true;
    }
}

/// <summary>A webhook the egress policy refuses to connect to.</summary>
public sealed class WebhookRefusedException(string message) : IOException(message);
