using MassTransit;
using Sdd.Contracts;

namespace Sdd.Ingest.Dispatch;

/// <summary>
/// Sends a job's pending items to the edit queue as <see cref="EditBatch"/> commands of SDD_EDIT_BATCH_SIZE.
/// Each batch is first claimed in the database (DispatchedAt set where it was unset or stale), so that two
/// Ingest processes do not both send it; a batch whose send fails is released for the sweeper. Sending again an item
/// that was sent before (its batch was lost) counts as one of its attempts.
/// </summary>
public sealed class EditDispatcher(SddDbContext db, ISendEndpointProvider sender, IngestSettings settings, ILogger<EditDispatcher> log)
{
    private static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Now, to the microsecond PostgreSQL keeps, so a claim read back compares equal to the one written.</summary>
    public static DateTimeOffset ClaimTime()
    {
        var now = DateTimeOffset.UtcNow;
        return new DateTimeOffset(now.Ticks - now.Ticks % 10, TimeSpan.Zero);
    }

    /// <summary>
    /// Claims the items still pending and unsent (or sent before <paramref name="staleBefore"/>, or claimed at
    /// <paramref name="ownClaim"/> by the caller itself: a job's uploads while they are stored) in one statement, then
    /// sends them in batches of <paramref name="batchSize"/> (unknown sizes: <see cref="IngestSettings.BatchSizeFor"/>), a few sends in flight; returns how many were sent. A batch whose send
    /// fails is unclaimed (DispatchedAt cleared) for the sweeper, and so is every batch after it.
    /// </summary>
    public async Task<int> DispatchAsync(Guid jobId, IReadOnlyList<Guid> itemIds, DateTimeOffset staleBefore, CancellationToken ct, int? batchSize = null,
        DateTimeOffset? ownClaim = null)
    {
        var now = ClaimTime();
        var ids = itemIds.ToArray();
        var own = ownClaim ?? DateTimeOffset.MinValue; // no item is claimed at -infinity
        var claimed = await db.Database.SqlQuery<Guid>($"""
            UPDATE job_items SET "DispatchedAt" = {now}, "Attempts" = "Attempts" + CASE WHEN "DispatchedAt" IS NULL OR "DispatchedAt" = {own} THEN 0 ELSE 1 END
            WHERE "JobId" = {jobId} AND "Id" = ANY({ids}) AND "State" = 'Pending'
              AND ("DispatchedAt" IS NULL OR "DispatchedAt" < {staleBefore} OR "DispatchedAt" = {own})
            RETURNING "Id" AS "Value"
            """).ToListAsync(ct);
        if (claimed.Count == 0) return 0;
        // Batches keep the order the items were given in (an upload's order).
        var order = ids.Select((id, k) => (id, k)).ToDictionary(x => x.id, x => x.k);
        var batches = claimed.OrderBy(id => order[id]).Chunk(Math.Max(1, batchSize ?? settings.BatchSizeFor(null))).ToList();
        int sent = 0, failedFrom = int.MaxValue;
        var endpoint = await sender.GetSendEndpoint(Queues.Address(Queues.Edit));
        await Parallel.ForEachAsync(Enumerable.Range(0, batches.Count), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (b, _) =>
        {
            if (b > Volatile.Read(ref failedFrom)) return;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(SendTimeout);
                await endpoint.Send(new EditBatch(jobId, batches[b]), timeout.Token);
                Interlocked.Add(ref sent, batches[b].Length);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                log.LogWarning(e, "Could not send a batch of {Count} items of job {JobId}; the sweeper will retry", batches[b].Length, jobId);
                InterlockedMin(ref failedFrom, b);
            }
        });
        if (failedFrom < batches.Count)
        {
            // Unclaim what was not sent (a later batch may have gone out before the failure was seen: a duplicate send is harmless).
            var unsent = batches.Skip(failedFrom).SelectMany(x => x).ToArray();
            await db.JobItems.Where(i => unsent.Contains(i.Id) && i.DispatchedAt == now)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.DispatchedAt, (DateTimeOffset?)null), CancellationToken.None);
            sent = batches.Take(failedFrom).Sum(x => x.Length);
        }
        return sent;
    }

    private static void InterlockedMin(ref int target, int value)
    {
        int seen;
        while (value < (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}

/// <summary>Sends a run's first command to the distill queue and records when; a failed send is left to the sweeper.</summary>
public sealed class RunDispatcher(SddDbContext db, ISendEndpointProvider sender, ILogger<RunDispatcher> log)
{
    public async Task<bool> DispatchAsync(TrainingRun run, CancellationToken ct)
    {
        object command = run.Kind switch
        {
            RunKind.Teacher => new TrainTeacher(run.Id, run.TeacherId ?? throw new InvalidOperationException($"Run {run.Id} has no teacher")),
            _ => new DistillEditor(run.Id, run.EditorVersionId ?? throw new InvalidOperationException($"Run {run.Id} has no editor version")),
        };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(15));
            var endpoint = await sender.GetSendEndpoint(Queues.Address(Queues.Distill));
            await endpoint.Send(command, command.GetType(), timeout.Token);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            log.LogWarning(e, "Could not send the command of run {RunId}; the sweeper will retry", run.Id);
            return false;
        }
        var now = DateTimeOffset.UtcNow;
        await db.TrainingRuns.Where(r => r.Id == run.Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.DispatchedAt, now), CancellationToken.None);
        return true;
    }
}
