using MassTransit;
using Sdd.Contracts;
using Sdd.Messaging;
using Sdd.Data.Entities;
using Sdd.Edit.Editing;

namespace Sdd.Edit.Components;

/// <summary>
/// Edits a batch of a job's images with the editor version the job names and records the items in one round trip.
/// Items already done, failed or cancelled are skipped, so a redelivered batch repeats nothing; the worker that
/// records a job's last pending item completes the job and publishes EditJobCompleted.
/// </summary>
/// <summary>A whole batch could not be worked on for a passing reason (storage unreachable): the message is retried.</summary>
public sealed class BatchUnavailableException(string message) : Exception(message);

public sealed class EditBatchConsumer(JobLedger jobs, EditorCache editors, BatchEditing editing, EditMetrics metrics, ILogger<EditBatchConsumer> log) : IConsumer<EditBatch>
{
    public async Task Consume(ConsumeContext<EditBatch> context)
    {
        var (jobId, itemIds) = (context.Message.JobId, context.Message.ItemIds);
        var ct = context.CancellationToken;
        var received = System.Diagnostics.Stopwatch.StartNew();
        var work = await jobs.LoadAsync(jobId, itemIds, ct);
        if (work is null) { log.LogWarning("Job {JobId} does not exist; batch of {Count} ignored", jobId, itemIds.Count); return; }
        if (work.Pending.Count == 0)
        {
            log.LogInformation("Job {JobId}: none of the batch's {Count} items is pending (redelivered or cancelled); skipped", jobId, itemIds.Count);
            return;
        }

        IReadOnlyList<ItemOutcome> outcomes;
        OutputFormat? format = null;
        if (work.Withdrawn is { } withdrawn)
        {
            // An unpublished attribute stops serving other owners' accepted jobs: their pending items fail with the reason.
            log.LogWarning("Job {JobId}: {Error}", jobId, withdrawn);
            outcomes = work.Pending.Select(i => new ItemOutcome(i.Id, ItemState.Failed, null, withdrawn)).ToList();
        }
        else if (work.RequestedFormat is not null && !OutputFormat.TryParse(work.RequestedFormat, out format))
        {
            // Ingest stores only jpeg, png or webp; another value will not change on a retry: the items fail with the reason.
            var reason = $"The job's output format '{work.RequestedFormat}' is not jpeg, png or webp.";
            log.LogError("Job {JobId}: {Error}", jobId, reason);
            outcomes = work.Pending.Select(i => new ItemOutcome(i.Id, ItemState.Failed, null, reason)).ToList();
        }
        else
        {
            var versionId = work.EditorVersionId ?? await jobs.ActiveVersionAsync(work.AttributeId, ct);
            try
            {
                if (versionId is null) throw new EditorUnavailableException("The job's attribute has no ready editor version.");
                using var lease = await editors.AcquireAsync(versionId.Value, ct);
                outcomes = await editing.RunAsync(jobId, work.Owner, work.Pending, lease.Editor, format, ct, work.EditOutsideDomain);
            }
            catch (EditorUnavailableException e)
            {
                // Retrying will not make the editor appear: the items fail with the reason, the job can still finish.
                log.LogError("Job {JobId}: {Error}", jobId, e.Message);
                outcomes = work.Pending.Select(i => new ItemOutcome(i.Id, ItemState.Failed, null, e.Message)).ToList();
            }
        }

        RecordedBatch recorded;
        using (metrics.Time(EditStage.Record)) recorded = await jobs.RecordAsync(jobId, outcomes, CancellationToken.None);
        metrics.Batch(work.Pending.Count, received.Elapsed, recorded.Done, recorded.Failed, recorded.Retried, recorded.Skipped);
        var now = DateTimeOffset.UtcNow;
        if (recorded.Retried > 0)
        {
            // What was done is saved; the items that failed for a passing reason (storage down, out of memory) are retried
            // with the message, with backoff, and a redelivery skips the rest. No attempt is spent on an outage.
            if (recorded.Done + recorded.Failed > 0) await Announce.EventAsync(context, new BatchEdited(jobId, recorded.Done, recorded.Failed, now), log);
            throw new BatchUnavailableException($"Job {jobId}: {recorded.Retried} of {outcomes.Count} items to retry, first: {outcomes.First(o => o.State == ItemState.Pending).Error}");
        }
        await Announce.EventAsync(context, new BatchEdited(jobId, recorded.Done, recorded.Failed, now), log);
        if (recorded.CompletedJob)
        {
            metrics.JobFinished(now - work.CreatedAt);
            var state = recorded.JobDone == 0 && recorded.JobSkipped == 0 ? "failed" : "completed"; // as JobRows.Recount decided
            await Announce.EventAsync(context, new EditJobCompleted(jobId, state, recorded.JobDone, recorded.JobFailed, now, recorded.JobSkipped), log);
            log.LogInformation("Job {JobId} {State}: {Done} done, {Failed} failed, {Skipped} skipped", jobId, state, recorded.JobDone, recorded.JobFailed, recorded.JobSkipped);
        }
    }
}
