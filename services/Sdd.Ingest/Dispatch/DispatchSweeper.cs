namespace Sdd.Ingest.Dispatch;

/// <summary>
/// Nothing accepted is lost: every SDD_DISPATCH_SWEEP_SECONDS, sends again the pending items of live jobs that were
/// never sent (their send failed after the commit) or that nobody touched for SDD_REDISPATCH_AFTER_SECONDS, and the
/// queued runs whose first command was never sent. Workers are idempotent, so a duplicate batch is harmless.
/// </summary>
public sealed class DispatchSweeper(IServiceScopeFactory scopes, IngestSettings settings, ILogger<DispatchSweeper> log) : BackgroundService
{
    private const int MaxItemsPerSweep = 10_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.SweepInterval > TimeSpan.Zero ? settings.SweepInterval : TimeSpan.FromSeconds(10));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogWarning(e, "Dispatch sweep failed; trying again in {Interval}", settings.SweepInterval);
            }
        }
    }

    public async Task SweepAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SddDbContext>();
        var now = DateTimeOffset.UtcNow;
        var unsentBefore = now - settings.DispatchGrace;
        var staleBefore = now - settings.RedispatchAfter;

        var due = await db.JobItems.AsNoTracking()
            .Where(i => i.State == ItemState.Pending)
            .Join(db.EditJobs.Where(j => j.State == JobState.Pending || j.State == JobState.Running), i => i.JobId, j => j.Id, (i, j) => new { Item = i, j.CreatedAt })
            .Where(x => x.Item.DispatchedAt == null
                ? x.CreatedAt < unsentBefore
                : x.Item.DispatchedAt < staleBefore && (x.Item.UpdatedAt == null || x.Item.UpdatedAt < staleBefore))
            .OrderBy(x => x.Item.JobId)
            .Select(x => new { x.Item.JobId, x.Item.Id })
            .Take(MaxItemsPerSweep)
            .ToListAsync(ct);
        if (due.Count > 0)
        {
            var edits = scope.ServiceProvider.GetRequiredService<EditDispatcher>();
            foreach (var job in due.GroupBy(x => x.JobId))
            {
                var ids = job.Select(x => x.Id).ToList();
                var sent = await edits.DispatchAsync(job.Key, ids, staleBefore, ct);
                log.LogInformation("Sweeper sent {Sent} of {Due} undelivered items of job {JobId}", sent, ids.Count, job.Key);
                if (sent < ids.Count) break; // the broker is not taking messages; next sweep
            }
        }

        var runs = await db.TrainingRuns.AsNoTracking()
            .Where(r => r.State == RunState.Queued && r.DispatchedAt == null && r.CreatedAt < unsentBefore)
            .Take(100).ToListAsync(ct);
        var distill = runs.Count > 0 ? scope.ServiceProvider.GetRequiredService<RunDispatcher>() : null;
        foreach (var run in runs)
        {
            if (!await distill!.DispatchAsync(run, ct)) break;
            log.LogInformation("Sweeper sent the command of run {RunId}", run.Id);
        }
    }
}
