using Microsoft.EntityFrameworkCore;
using Sdd.Data.Entities;

namespace Sdd.Data;

/// <summary>The registry (datasets, teachers, attributes, editors, indicator curves) and the work (runs, jobs, items, clients).</summary>
public class SddDbContext(DbContextOptions<SddDbContext> options) : DbContext(options)
{
    public DbSet<Dataset> Datasets => Set<Dataset>();
    public DbSet<Teacher> Teachers => Set<Teacher>();
    public DbSet<ImageAttribute> Attributes => Set<ImageAttribute>();
    public DbSet<EditorVersion> EditorVersions => Set<EditorVersion>();
    public DbSet<IndicatorPoint> IndicatorPoints => Set<IndicatorPoint>();
    public DbSet<TrainingRun> TrainingRuns => Set<TrainingRun>();
    public DbSet<EditJob> EditJobs => Set<EditJob>();
    public DbSet<JobItem> JobItems => Set<JobItem>();
    public DbSet<ApiClient> ApiClients => Set<ApiClient>();
    public DbSet<Upload> Uploads => Set<Upload>();
    public DbSet<SourceGrant> SourceGrants => Set<SourceGrant>();
    public DbSet<IdempotencyRecord> IdempotencyRecords => Set<IdempotencyRecord>();
    public DbSet<WebhookDelivery> WebhookDeliveries => Set<WebhookDelivery>();
    public DbSet<WorkerReport> Workers => Set<WorkerReport>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(SddDbContext).Assembly);
}
