using System.Text.Json;
using Npgsql;
using Sdd.Data.Entities;
using Sdd.Distill.Runs;
using Sdd.Ml.Indicator;

namespace Sdd.Distill.Training;

/// <summary>The editor registry rows a distillation writes: the indicator curve, then the published version.</summary>
public sealed class EditorRegistry(IDbContextFactory<SddDbContext> databases)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The version with its attribute (target, data set) and teacher.</summary>
    public async Task<EditorVersion?> FindVersionAsync(Guid id, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.EditorVersions.AsNoTracking().Include(e => e.Attribute).Include(e => e.Teacher).SingleOrDefaultAsync(e => e.Id == id, ct);
    }

    public async Task MarkDistillingAsync(Guid id, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.EditorVersions.Where(e => e.Id == id && (e.Status == EditorStatus.Pending || e.Status == EditorStatus.Selecting))
            .ExecuteUpdateAsync(s => s.SetProperty(e => e.Status, EditorStatus.Distilling), ct);
    }

    /// <summary>Replaces the version's indicator points with the curve (raw entropy and norm beside HQS) and records the chosen timesteps.</summary>
    public async Task RecordCurveAsync(Guid id, IndicatorCurve curve, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.IndicatorPoints.Where(p => p.EditorVersionId == id).ExecuteDeleteAsync(ct);
        db.IndicatorPoints.AddRange(curve.Points.Select(p => new Data.Entities.IndicatorPoint
        {
            EditorVersionId = id, T = p.T, Entropy = p.Entropy, Norm = p.Norm, Hqs = p.Hqs,
            EntropySpread = p.EntropyStd, NormSpread = p.NormStd, HqsSpread = p.HqsStd,
        }));
        await db.SaveChangesAsync(ct);
        var selected = curve.Selected.ToList();
        // A top-k choice has no threshold of its own: record the lowest selected score, the xi that would choose the same set.
        double threshold = curve.Points.Where(p => curve.Selected.Contains(p.T)).Min(p => p.Hqs);
        await db.EditorVersions.Where(e => e.Id == id).ExecuteUpdateAsync(s => s
            .SetProperty(e => e.SelectedTimesteps, selected)
            .SetProperty(e => e.Threshold, threshold)
            .SetProperty(e => e.Status, EditorStatus.Distilling), ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// Publishes the version (ready, metrics, timesteps, weights prefix), makes it active when its attribute has no
    /// active version, and completes the run, in one transaction. Returns whether it became active.
    /// </summary>
    public async Task<bool> PublishAsync(Guid runId, Guid versionId, string prefix, DistilledEditor editor, int step, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            await using var db = await databases.CreateDbContextAsync(ct);
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var version = await db.EditorVersions.SingleAsync(e => e.Id == versionId, ct);
            bool activate = attempt == 0 && !await db.EditorVersions.AnyAsync(e => e.AttributeId == version.AttributeId && e.IsActive && e.Id != versionId, ct);
            version.Status = EditorStatus.Ready;
            version.SelectedTimesteps = editor.SelectedTimesteps.ToList();
            version.MetricsJson = JsonSerializer.Serialize(editor.Metrics, Json);
            version.WeightsKey = prefix;
            version.IsActive = version.IsActive || activate;
            try
            {
                // One statement, not a tracked row: the run's lease heartbeat may touch the row (and its xmin) meanwhile.
                if (!await db.CompleteAsync(runId, RunLedger.WorkerName, step, prefix, ct))
                    throw new LeaseLostException($"Run {runId} was cancelled or taken over before its editor was published");
                await db.SaveChangesAsync(ct);
                await tx.CommitAsync(ct);
                return version.IsActive;
            }
            catch (DbUpdateException e) when (attempt == 0 && e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
            {
                // Another version of the attribute became active meanwhile: publish this one inactive.
            }
        }
    }

    public async Task FailAsync(Guid versionId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.EditorVersions.Where(e => e.Id == versionId && e.Status != EditorStatus.Ready)
            .ExecuteUpdateAsync(s => s.SetProperty(e => e.Status, EditorStatus.Failed), ct);
    }
}
