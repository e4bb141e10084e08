namespace Sdd.Ingest.Dispatch;

/// <summary>
/// Nothing accepted is lost, nothing is sent forever: every SDD_DISPATCH_SWEEP_SECONDS, sends the pending items of live
/// jobs that were never sent (their send failed after the commit, or a worker released them for another attempt), and
/// the queued runs whose first command was never sent. Items sent before and untouched for SDD_REDISPATCH_AFTER_SECONDS
/// are sent again only when no message can still hold them — the edit queue has no message ready or unacknowledged —
/// so a healthy backlog is never duplicated; each such send is an attempt, and an item out of attempts (SDD_ITEM_ATTEMPTS)
/// fails for good with the reason, so its job still finishes. Workers are idempotent, so a duplicate batch is harmless.
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
        await Operations.Idempotency.ExpireAsync(db, settings, ct); // answers kept for retries have their day

        // Lost batches are only knowable when the queue is idle: a message ready or in a worker's hands may hold any item.
        bool queueIdle;
        try { queueIdle = (await scope.ServiceProvider.GetRequiredService<Operations.RabbitManagement>().QueueAsync(Contracts.Queues.Edit, ct)).Messages == 0; }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { queueIdle = false; }
        if (queueIdle) await GiveUpAsync(db, staleBefore, ct);

        var due = await db.JobItems.AsNoTracking()
            .Where(i => i.State == ItemState.Pending)
            .Join(db.EditJobs.Where(j => j.State == JobState.Pending || j.State == JobState.Running), i => i.JobId, j => j.Id, (i, j) => new { Item = i, j.CreatedAt })
            .Where(x => x.Item.DispatchedAt == null
                ? x.CreatedAt < unsentBefore
                : queueIdle && x.Item.DispatchedAt < staleBefore && (x.Item.UpdatedAt == null || x.Item.UpdatedAt < staleBefore))
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

        await SendRunsAsync(scope, db, unsentBefore, ct);
    }

    /// <summary>Lost items that have used their attempts fail for good (the job row locked first, then recounted).</summary>
    private async Task GiveUpAsync(SddDbContext db, DateTimeOffset staleBefore, CancellationToken ct)
    {
        var exhausted = await db.JobItems.AsNoTracking()
            .Where(i => i.State == ItemState.Pending && i.DispatchedAt != null && i.DispatchedAt < staleBefore
                        && (i.UpdatedAt == null || i.UpdatedAt < staleBefore) && i.Attempts + 1 >= settings.ItemAttempts)
            .Join(db.EditJobs.Where(j => j.State == JobState.Pending || j.State == JobState.Running), i => i.JobId, j => j.Id, (i, j) => i.JobId)
            .Distinct().Take(100).ToListAsync(ct);
        foreach (var jobId in exhausted)
        {
            var job = new Npgsql.NpgsqlParameter("job", jobId);
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            await db.Database.ExecuteSqlRawAsync(JobRows.LockJob, [job], ct);
            var failed = await db.Database.ExecuteSqlRawAsync("""
                UPDATE job_items
                   SET "State" = 'Failed', "Attempts" = "Attempts" + 1, "UpdatedAt" = now(),
                       "Error" = 'gave up after ' || ("Attempts" + 1) || ' attempts: ' || COALESCE("Error", 'its batch was lost (no worker finished it)')
                 WHERE "JobId" = @job AND "State" = 'Pending' AND "DispatchedAt" < @stale
                   AND ("UpdatedAt" IS NULL OR "UpdatedAt" < @stale) AND "Attempts" + 1 >= @attempts
                """, [new Npgsql.NpgsqlParameter("job", jobId), new Npgsql.NpgsqlParameter("stale", staleBefore), new Npgsql.NpgsqlParameter("attempts", settings.ItemAttempts)], ct);
            await db.Database.ExecuteSqlRawAsync(JobRows.Recount, [new Npgsql.NpgsqlParameter("job", jobId)], ct);
            await tx.CommitAsync(ct);
            log.LogWarning("Sweeper gave up on {Failed} items of job {JobId} after {Attempts} attempts", failed, jobId, settings.ItemAttempts);
        }
    }

    private async Task SendRunsAsync(AsyncServiceScope scope, SddDbContext db, DateTimeOffset unsentBefore, CancellationToken ct)
    {
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
