using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;

namespace Sdd.Ingest.Operations;

/// <summary>The RabbitMQ management HTTP API, for queue depths.</summary>
public sealed class RabbitManagement(HttpClient http, SddSettings settings)
{
    public sealed record QueueInfo(long Messages, long Consumers);

    public static void Configure(HttpClient http, RabbitMqSettings s)
    {
        http.BaseAddress = s.ManagementUri;
        http.Timeout = TimeSpan.FromSeconds(5);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{s.User}:{s.Password}")));
    }

    /// <summary>Messages waiting and consumers of a queue in the configured virtual host; zeros when the queue does not exist yet.</summary>
    public async Task<QueueInfo> QueueAsync(string queue, CancellationToken ct)
    {
        using var response = await http.GetAsync($"api/queues/{Uri.EscapeDataString(settings.RabbitMq.VirtualHost)}/{Uri.EscapeDataString(queue)}", ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return new QueueInfo(0, 0);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<Dictionary<string, System.Text.Json.JsonElement>>(ct);
        long Get(string name) => body is not null && body.TryGetValue(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number ? v.GetInt64() : 0;
        return new QueueInfo(Get("messages"), Get("consumers"));
    }
}
