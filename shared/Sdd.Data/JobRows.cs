namespace Sdd.Data;

/// <summary>
/// The SQL every writer of a job's item states shares (the edit worker recording a batch, the Ingest sweeper giving up
/// on lost items, a cancel): one lock order — the job row first, then its items — and one recount of the job from its
/// item rows, which completes it when none is pending. Each takes the parameter <c>@job</c>.
/// </summary>
public static class JobRows
{
    /// <summary>Locks the job row for the rest of the transaction; returns its state before the change.</summary>
    public const string LockJob = """SELECT "State" FROM edit_jobs WHERE "Id" = @job FOR UPDATE""";

    /// <summary>
    /// Recounts the job from its items; returns done, failed, pending and the job's state after. A job with nothing
    /// pending finishes: Completed when at least one item is done, Failed when none is.
    /// </summary>
    public const string Recount = """
        UPDATE edit_jobs AS j
           SET "DoneCount" = c.done, "FailedCount" = c.failed,
               "State" = CASE WHEN c.pending = 0 AND j."State" IN ('Pending', 'Running') THEN CASE WHEN c.done = 0 THEN 'Failed' ELSE 'Completed' END
                              WHEN j."State" = 'Pending' THEN 'Running' ELSE j."State" END,
               "StartedAt" = COALESCE(j."StartedAt", now()),
               "FinishedAt" = CASE WHEN c.pending = 0 AND j."State" IN ('Pending', 'Running') THEN now() ELSE j."FinishedAt" END
          FROM (SELECT count(*) FILTER (WHERE "State" = 'Done') AS done,
                       count(*) FILTER (WHERE "State" = 'Failed') AS failed,
                       count(*) FILTER (WHERE "State" = 'Pending') AS pending
                  FROM job_items WHERE "JobId" = @job) AS c
         WHERE j."Id" = @job
        RETURNING c.done, c.failed, c.pending, j."State"
        """;
}
