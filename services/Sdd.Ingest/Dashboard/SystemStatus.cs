using Sdd.ServiceDefaults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Sdd.Contracts;
using Sdd.Ingest.Operations;

namespace Sdd.Ingest.Dashboard;

/// <summary>
/// The dashboard's status strip: the health checks of /healthz (PostgreSQL, RabbitMQ, S3) and the depth and consumers of the
/// work queues from the RabbitMQ management API. Read at most every few seconds, whatever the number of open pages.
/// </summary>
public sealed class SystemStatus(IServiceScopeFactory scopes, ILogger<SystemStatus> log)
{
    public static readonly TimeSpan Freshness = TimeSpan.FromSeconds(5);

    public sealed record Check(string Name, bool Healthy, string? Description);
    /// <summary>Null counts: the management API did not answer.</summary>
    public sealed record Queue(string Name, long? Messages, long? Consumers);
    public sealed record Snapshot(IReadOnlyList<Check> Checks, IReadOnlyList<Queue> Queues, DateTimeOffset At);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Snapshot? _last;

    public async Task<Snapshot> ReadAsync(CancellationToken ct)
    {
        if (_last is { } fresh && DateTimeOffset.UtcNow - fresh.At < Freshness) return fresh;
        await _gate.WaitAsync(ct);
        try
        {
            if (_last is { } again && DateTimeOffset.UtcNow - again.At < Freshness) return again;
            return _last = await MeasureAsync(ct);
        }
        finally { _gate.Release(); }
    }

    private async Task<Snapshot> MeasureAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var report = await scope.ServiceProvider.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct);
        var checks = report.Entries.Select(e => new Check(HealthResponse.DisplayName(e.Key), e.Value.Status == HealthStatus.Healthy, e.Value.Description))
            .OrderBy(c => c.Name, StringComparer.Ordinal).ToList();
        var rabbit = scope.ServiceProvider.GetRequiredService<RabbitManagement>();
        var queues = new List<Queue>();
        foreach (var name in new[] { Queues.Edit, Queues.Distill })
        {
            try
            {
                var info = await rabbit.QueueAsync(name, ct);
                queues.Add(new Queue(name, info.Messages, info.Consumers));
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                log.LogWarning("Dashboard: the RabbitMQ management API did not answer for queue {Queue}: {Error}", name, e.Message);
                queues.Add(new Queue(name, null, null));
            }
        }
        return new Snapshot(checks, queues, DateTimeOffset.UtcNow);
    }
}
