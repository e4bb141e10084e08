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

    /// <summary>Sends the items in batches; returns how many were sent (the rest are left to the sweeper).</summary>
    public async Task<int> DispatchAsync(Guid jobId, IReadOnlyList<Guid> itemIds, DateTimeOffset staleBefore, CancellationToken ct)
    {
        int sent = 0;
        foreach (var chunk in itemIds.Chunk(Math.Max(1, settings.EditBatchSize)))
        {
            var now = DateTimeOffset.UtcNow;
            var ids = chunk.ToArray();
            var claimed = await db.Database.SqlQuery<Guid>($"""
                UPDATE job_items SET "DispatchedAt" = {now}, "Attempts" = "Attempts" + CASE WHEN "DispatchedAt" IS NULL THEN 0 ELSE 1 END
                WHERE "JobId" = {jobId} AND "Id" = ANY({ids}) AND "State" = 'Pending'
                  AND ("DispatchedAt" IS NULL OR "DispatchedAt" < {staleBefore})
                RETURNING "Id" AS "Value"
                """).ToListAsync(ct);
            if (claimed.Count == 0) continue;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(SendTimeout);
                var endpoint = await sender.GetSendEndpoint(Queues.Address(Queues.Edit));
                await endpoint.Send(new EditBatch(jobId, claimed), timeout.Token);
                sent += claimed.Count;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                log.LogWarning(e, "Could not send a batch of {Count} items of job {JobId}; the sweeper will retry", claimed.Count, jobId);
                await db.JobItems.Where(i => claimed.Contains(i.Id) && i.DispatchedAt == now)
                    .ExecuteUpdateAsync(s => s.SetProperty(i => i.DispatchedAt, (DateTimeOffset?)null), CancellationToken.None);
                break;
            }
        }
        return sent;
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
