using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sdd.Data;
using Sdd.Data.Entities;

namespace Sdd.ServiceDefaults;

/// <summary>What a worker can run, as it reports it (<see cref="WorkerReport"/>).</summary>
public sealed record WorkerCapability(string Service, string Device, long MemoryBytes, IReadOnlyList<string> TeacherKinds, int StableDiffusionMaxImageSize = 0);

/// <summary>Renews this worker's <see cref="WorkerReport"/> every <see cref="Interval"/> while it runs; a report older than <see cref="LiveWithin"/> is a dead worker's.</summary>
public sealed class WorkerReporter(string name, WorkerCapability capability, IDbContextFactory<SddDbContext> databases, ILogger<WorkerReporter> log) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan LiveWithin = TimeSpan.FromMinutes(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = DateTimeOffset.UtcNow;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var db = await databases.CreateDbContextAsync(stoppingToken);
                var now = DateTimeOffset.UtcNow;
                var row = await db.Workers.SingleOrDefaultAsync(w => w.Name == name, stoppingToken);
                if (row is null)
                    db.Workers.Add(row = new WorkerReport { Name = name, Service = capability.Service, Device = capability.Device, StartedAt = started });
                row.Device = capability.Device;
                row.MemoryBytes = capability.MemoryBytes;
                row.TeacherKinds = [.. capability.TeacherKinds];
                row.StableDiffusionMaxImageSize = capability.StableDiffusionMaxImageSize;
                row.HeartbeatAt = now;
                await db.SaveChangesAsync(stoppingToken);
                // A worker gone for a day is forgotten.
                await db.Workers.Where(w => w.HeartbeatAt < now.AddDays(-1)).ExecuteDeleteAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogWarning(e, "Could not report what worker {Worker} can run; trying again in {Seconds} s", name, Interval.TotalSeconds);
            }
            try { await Task.Delay(Interval, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }
}

public static class WorkerReportsExtensions
{
    /// <summary>Registers the reporter of this worker process's capability.</summary>
    public static IServiceCollection AddWorkerReport(this IServiceCollection services, string name, WorkerCapability capability) =>
        services.AddHostedService(sp => new WorkerReporter(name, capability, sp.GetRequiredService<IDbContextFactory<SddDbContext>>(), sp.GetRequiredService<ILogger<WorkerReporter>>()));
}
