using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Sdd.Configuration;
using Sdd.Storage;

namespace Sdd.ServiceDefaults;

public sealed class PostgresHealthCheck(SddSettings settings) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        try
        {
            await using var connection = new NpgsqlConnection(settings.Postgres.ConnectionString());
            await connection.OpenAsync(ct);
            await using var probe = new NpgsqlCommand("SELECT 1", connection);
            await probe.ExecuteScalarAsync(ct);
            return HealthCheckResult.Healthy();
        }
        catch (Exception e)
        {
            return HealthCheckResult.Unhealthy($"PostgreSQL does not answer: {e.Message}");
        }
    }
}

public sealed class S3HealthCheck(ObjectStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            await store.StatAsync(store.JobsBucket, "healthz/probe", timeout.Token); // null is an answer too
            return HealthCheckResult.Healthy();
        }
        catch (Exception e)
        {
            return HealthCheckResult.Unhealthy($"S3 ({store.Settings.Endpoint}) does not answer: {e.Message}");
        }
    }
}

public static class HealthResponse
{
    /// <summary>MassTransit's bus check is the RabbitMQ check: the bus is healthy only while connected to the broker.</summary>
    public static string DisplayName(string check) => check.StartsWith("masstransit", StringComparison.Ordinal) ? "rabbitmq" : check;

    public static Task Write(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        var body = new
        {
            status = report.Status.ToString().ToLowerInvariant(),
            failed = report.Entries.Where(e => e.Value.Status == HealthStatus.Unhealthy).Select(e => DisplayName(e.Key)).ToArray(),
            checks = report.Entries.ToDictionary(e => DisplayName(e.Key), e => new
            {
                status = e.Value.Status.ToString().ToLowerInvariant(),
                description = e.Value.Description,
                ms = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
            }),
        };
        return context.Response.WriteAsync(JsonSerializer.Serialize(body));
    }
}
