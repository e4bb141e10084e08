using Npgsql;
using NpgsqlTypes;
using Sdd.Data.Entities;

namespace Sdd.Edit.Editing;

/// <summary>A job item as the worker needs it.</summary>
public sealed record PendingItem(Guid Id, string SourceBucket, string SourceKey, string? Name);

/// <summary>
/// The items of a batch still to edit, and the job they belong to. <see cref="RequestedFormat"/> is the job's output
/// format as stored (jpeg, png, webp; null keeps each input's format).
/// </summary>
/// <see cref="Withdrawn"/>: why the job's owner may no longer use its attribute (another owner's, unpublished since the job
/// was accepted), or null; checked each time a batch is picked up, so an unpublish reaches work already accepted.
public sealed record BatchWork(Guid JobId, string Owner, JobState JobState, Guid? EditorVersionId, Guid AttributeId, IReadOnlyList<PendingItem> Pending, int Skipped,
    string? RequestedFormat = null, DateTimeOffset CreatedAt = default, bool EditOutsideDomain = false, string? Withdrawn = null);

/// <summary>
/// What became of one item: done, failed for good, skipped (outside the editor's domain), or (<see cref="ItemState.Pending"/>)
/// to be tried again; with its domain score when the editor has a gate, and whether that score was outside.
/// </summary>
public sealed record ItemOutcome(Guid Id, ItemState State, string? OutputKey, string? Error, double? DomainScore = null, bool OutsideDomain = false)
{
    /// <summary>A passing failure: the item stays pending, with the reason, for its batch to be retried.</summary>
    public static ItemOutcome Retry(Guid id, string reason) => new(id, ItemState.Pending, null, reason);
}

/// <summary>
/// What recording a batch changed: items moved out of pending by this call (<see cref="Retried"/>: left pending for another
/// attempt), the job's counts from its item rows, whether this call completed the job.
/// </summary>
public sealed record RecordedBatch(int Done, int Failed, int JobDone, int JobFailed, int JobPending, bool CompletedJob, int Retried = 0, int Skipped = 0, int JobSkipped = 0);

/// <summary>
/// Job and item rows for the edit worker. Recording a batch is one database round trip (three statements in one
/// implicit transaction): lock the job row, move the batch's items out of pending (items no longer pending are left
/// alone, so a redelivered batch counts nothing twice), then recount the job from its items and complete it when
/// none is pending. The row lock serialises the batches of one job, so exactly one of them completes it; every writer
/// locks the job row before its items (one lock order: no deadlock with a cancel).
/// An item to retry stays pending (its reason noted in Error, no attempt counted): the consumer then lets the message be
/// retried, and a batch that keeps failing is the Ingest sweeper's, which counts attempts and gives up after SDD_ITEM_ATTEMPTS.
/// </summary>
public sealed class JobLedger(NpgsqlDataSource database, IDbContextFactory<SddDbContext> databases, ObjectStore store)
{
    public async Task<BatchWork?> LoadAsync(Guid jobId, IReadOnlyList<Guid> itemIds, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        var job = await db.EditJobs.AsNoTracking().Where(j => j.Id == jobId)
            .Select(j => new
            {
                j.Owner, j.State, j.EditorVersionId, j.AttributeId, j.OutputFormat, j.CreatedAt, j.StartedAt, j.OutOfDomain,
                AttributeName = j.Attribute!.Name, AttributeOwner = j.Attribute.Owner, j.Attribute.IsPublished,
            }).SingleOrDefaultAsync(ct);
        if (job is null) return null;
        // The job started when its first batch began (not when it was first recorded): one more statement, first batches only.
        if (job.StartedAt is null)
            await db.EditJobs.Where(j => j.Id == jobId && j.StartedAt == null).ExecuteUpdateAsync(s => s.SetProperty(j => j.StartedAt, DateTimeOffset.UtcNow), ct);
        var items = await db.JobItems.AsNoTracking().Where(i => i.JobId == jobId && itemIds.Contains(i.Id))
            .Select(i => new { i.Id, i.State, i.SourceBucket, i.SourceKey, i.Name }).ToListAsync(ct);
        var pending = items.Where(i => i.State == ItemState.Pending)
            .Select(i => new PendingItem(i.Id, string.IsNullOrEmpty(i.SourceBucket) ? store.JobsBucket : i.SourceBucket, i.SourceKey, i.Name))
            .ToList();
        // The same rule as the API's (the caller's own attribute, else a published one), at the time the batch is edited.
        var withdrawn = job.AttributeOwner == job.Owner || job.IsPublished ? null
            : $"The attribute '{job.AttributeName}' is another owner's and no longer published; it was withdrawn after this job was accepted.";
        return new BatchWork(jobId, job.Owner, job.State, job.EditorVersionId, job.AttributeId, pending, itemIds.Count - pending.Count, job.OutputFormat, job.CreatedAt,
            job.OutOfDomain == "edit", withdrawn);
    }

    /// <summary>The attribute's active ready version, for a job accepted without one.</summary>
    public async Task<Guid?> ActiveVersionAsync(Guid attributeId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.EditorVersions.Where(e => e.AttributeId == attributeId && e.IsActive && e.Status == EditorStatus.Ready)
            .Select(e => (Guid?)e.Id).SingleOrDefaultAsync(ct);
    }

    public async Task<RecordedBatch> RecordAsync(Guid jobId, IReadOnlyList<ItemOutcome> outcomes, CancellationToken ct)
    {
        await using var connection = await database.OpenConnectionAsync(ct);
        await using var batch = new NpgsqlBatch(connection);
        var lockJob = new NpgsqlBatchCommand(JobRows.LockJob);
        lockJob.Parameters.AddWithValue("job", jobId);
        var items = new NpgsqlBatchCommand("""
            UPDATE job_items AS i
               SET "State" = v.state, "OutputKey" = v.output, "Error" = v.error, "UpdatedAt" = now(),
                   "DomainScore" = v.score, "OutsideDomain" = v.outside,
                   "Attempts" = i."Attempts" + CASE WHEN v.state = 'Pending' THEN 0 ELSE 1 END
              FROM unnest(@ids, @states, @outputs, @errors, @scores, @outside) AS v(id, state, output, error, score, outside)
             WHERE i."Id" = v.id AND i."JobId" = @job AND i."State" = 'Pending'
            RETURNING i."State"
            """);
        items.Parameters.AddWithValue("job", jobId);
        items.Parameters.AddWithValue("ids", outcomes.Select(o => o.Id).ToArray());
        items.Parameters.AddWithValue("states", outcomes.Select(o => o.State.ToString()).ToArray());
        items.Parameters.Add(new NpgsqlParameter("outputs", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = outcomes.Select(o => (object?)o.OutputKey ?? DBNull.Value).ToArray() });
        items.Parameters.Add(new NpgsqlParameter("errors", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = outcomes.Select(o => (object?)o.Error ?? DBNull.Value).ToArray() });
        items.Parameters.Add(new NpgsqlParameter("scores", NpgsqlDbType.Array | NpgsqlDbType.Double) { Value = outcomes.Select(o => (object?)o.DomainScore ?? DBNull.Value).ToArray() });
        items.Parameters.AddWithValue("outside", outcomes.Select(o => o.OutsideDomain).ToArray());
        var job = new NpgsqlBatchCommand(JobRows.Recount);
        job.Parameters.AddWithValue("job", jobId);
        batch.BatchCommands.Add(lockJob);
        batch.BatchCommands.Add(items);
        batch.BatchCommands.Add(job);

        await using var reader = await batch.ExecuteReaderAsync(ct);
        string? before = await reader.ReadAsync(ct) ? reader.GetString(0) : null;
        await reader.NextResultAsync(ct);
        int done = 0, failed = 0, retried = 0, skipped = 0;
        while (await reader.ReadAsync(ct))
        {
            switch (reader.GetString(0))
            {
                case nameof(ItemState.Done): done++; break;
                case nameof(ItemState.Pending): retried++; break;
                case nameof(ItemState.Skipped): skipped++; break;
                default: failed++; break;
            }
        }
        await reader.NextResultAsync(ct);
        if (before is null || !await reader.ReadAsync(ct)) return new RecordedBatch(done, failed, 0, 0, 0, false, retried, skipped);
        int jobDone = (int)reader.GetInt64(0), jobFailed = (int)reader.GetInt64(1), jobPending = (int)reader.GetInt64(2);
        var after = reader.GetString(3);
        int jobSkipped = (int)reader.GetInt64(4);
        bool completed = (before is nameof(JobState.Pending) or nameof(JobState.Running)) && after is nameof(JobState.Completed) or nameof(JobState.Failed);
        return new RecordedBatch(done, failed, jobDone, jobFailed, jobPending, completed, retried, skipped, jobSkipped);
    }
}
