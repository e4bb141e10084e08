using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;

namespace Sdd.Infrastructure.Tests;

/// <summary>A virtual host of its own on the stack's real RabbitMQ, made and removed through the management HTTP API.</summary>
public sealed class RabbitVirtualHost : IAsyncLifetime
{
    public string Name { get; } = Stack.UniqueName("sdd-test-");
    public RabbitMqSettings Settings => Stack.Settings.RabbitMq with { VirtualHost = Name };
    public HttpClient Management { get; } = ManagementClient(Stack.Settings.RabbitMq);

    public async Task InitializeAsync()
    {
        var vhost = Uri.EscapeDataString(Name);
        (await Management.PutAsync($"api/vhosts/{vhost}", null)).EnsureSuccessStatusCode();
        (await Management.PutAsJsonAsync($"api/permissions/{vhost}/{Uri.EscapeDataString(Settings.User)}",
            new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
    }

    public async Task DisposeAsync()
    {
        await Management.DeleteAsync($"api/vhosts/{Uri.EscapeDataString(Name)}");
        Management.Dispose();
    }

    /// <summary>True when the broker has a queue of that name in this virtual host.</summary>
    public async Task<bool> QueueExists(string queue)
    {
        using var response = await Management.GetAsync($"api/queues/{Uri.EscapeDataString(Name)}/{Uri.EscapeDataString(queue)}");
        return response.StatusCode == HttpStatusCode.OK;
    }

    private static HttpClient ManagementClient(RabbitMqSettings s)
    {
        var http = new HttpClient { BaseAddress = s.ManagementUri, Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{s.User}:{s.Password}")));
        return http;
    }
}
