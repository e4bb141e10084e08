using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;
using Sdd.Messaging;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Sdd.Configuration;
using Sdd.Data;
using Sdd.Storage;

namespace Sdd.ServiceDefaults;

/// <summary>
/// What every SDD service gets from one call (the eShop habit): its settings, logging (single-line console, or JSON with
/// SDD_LOG_FORMAT=json), the database, the object store, the bus, health checks split into liveness and readiness, and tracing across HTTP,
/// the bus, PostgreSQL and S3 when an exporter is configured; and the start-up every service runs before its work.
/// </summary>
public static class SddServiceDefaults
{
    /// <summary>The tag of the checks readiness needs (the servers); liveness needs none: the process answers.</summary>
    public const string ReadyTag = "ready";

    /// <summary>
    /// Settings, logging, the database (a scoped <see cref="SddDbContext"/>, a pooled factory for singletons and an
    /// <see cref="NpgsqlDataSource"/> for hand-written SQL), the object store, the bus with the consumers
    /// <paramref name="consumers"/> adds, health checks and tracing.
    /// </summary>
    public static SddSettings AddSddDefaults(this IHostApplicationBuilder builder, string service, Action<IBusRegistrationConfigurator>? consumers = null)
    {
        var settings = SddSettings.From(builder.Configuration);
        builder.Logging.ClearProviders();
        if (string.Equals(builder.Configuration["SDD_LOG_FORMAT"], "json", StringComparison.OrdinalIgnoreCase))
            builder.Logging.AddJsonConsole(o => { o.UseUtcTimestamp = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ"; o.IncludeScopes = true; });
        else
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);

        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(_ => new ObjectStore(settings.S3));
        var connection = settings.Postgres.ConnectionString();
        builder.Services.AddPooledDbContextFactory<SddDbContext>(o => o.UseNpgsql(connection));
        builder.Services.TryAddScoped(sp => sp.GetRequiredService<IDbContextFactory<SddDbContext>>().CreateDbContext());
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connection));
        builder.Services.AddSddBus(settings, consumers);
        builder.Services.AddHealthChecks()
            .AddCheck<PostgresHealthCheck>("postgresql", tags: [ReadyTag])
            .AddCheck<S3HealthCheck>("s3", tags: [ReadyTag]);
        SddTracing.Add(builder.Services, builder.Configuration, service);
        return settings;
    }

    /// <summary>
    /// <c>/healthz/live</c> (the process answers: restart it when not), <c>/healthz/ready</c> (PostgreSQL, S3 and the bus
    /// answer: send it work when they do) and <c>/healthz</c> (every check, for people).
    /// </summary>
    public static IEndpointRouteBuilder MapSddHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponse.Write });
        app.MapHealthChecks("/healthz/ready", new HealthCheckOptions
        {
            Predicate = c => c.Tags.Contains(ReadyTag) || c.Name.StartsWith("masstransit", StringComparison.Ordinal), ResponseWriter = HealthResponse.Write,
        });
        app.MapHealthChecks("/healthz", new HealthCheckOptions { ResponseWriter = HealthResponse.Write });
        return app;
    }

    /// <summary>Before a service takes work: the schema migrated and the buckets there, waiting up to 90 s for servers still starting.</summary>
    public static async Task PrepareAsync(SddSettings settings, ObjectStore store, ILogger log, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await SddDb.MigrateAsync(settings.Postgres.ConnectionString(), ct);
                await store.EnsureBucketsAsync(ct);
                return;
            }
            catch (Exception e) when (DateTime.UtcNow < deadline && e is not OperationCanceledException)
            {
                log.LogWarning("Start-up attempt {Attempt}: {Error}; retrying", attempt, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(10, attempt * 2)), ct);
            }
        }
    }
}

/// <summary>
/// Traces: the HTTP request, the bus (MassTransit's own activity source carries the context in the message headers, so
/// the consumer's span is a child of the send), PostgreSQL (Npgsql) and S3 (the Minio client's HTTP calls). Exported by
/// OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, to the console with SDD_TRACE_CONSOLE=1, and off otherwise: then no
/// listener is registered and nothing leaves the process.
/// </summary>
public static class SddTracing
{
    public const string MassTransitSource = "MassTransit";

    public static bool Enabled(IConfiguration config) =>
        !string.IsNullOrEmpty(config["OTEL_EXPORTER_OTLP_ENDPOINT"]) || config["SDD_TRACE_CONSOLE"] is "1" or "true";

    public static void Add(IServiceCollection services, IConfiguration config, string service)
    {
        if (!Enabled(config)) return;
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(service))
            .WithTracing(t =>
            {
                Instrument(t);
                if (!string.IsNullOrEmpty(config["OTEL_EXPORTER_OTLP_ENDPOINT"])) t.AddOtlpExporter();
                if (config["SDD_TRACE_CONSOLE"] is "1" or "true") t.AddConsoleExporter();
            });
    }

    /// <summary>The sources every service traces (shared with the tests that check the tree).</summary>
    public static TracerProviderBuilder Instrument(TracerProviderBuilder t) => t
        .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsProbe(context.Request.Path))
        .AddHttpClientInstrumentation()
        .AddNpgsql()
        .AddSource(MassTransitSource);

    private static bool IsProbe(PathString path) => path.StartsWithSegments("/healthz") || path.StartsWithSegments("/metrics");
}
