using Microsoft.EntityFrameworkCore;
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
    /// Recounts the job from its items; returns done, failed, pending, the job's state after and skipped. A job with
    /// nothing pending finishes: Completed when at least one item is done or skipped (outside the editor's domain: the job
    /// did what it was asked), Failed when every item failed.
    /// </summary>
    public const string Recount = """
        UPDATE edit_jobs AS j
           SET "DoneCount" = c.done, "FailedCount" = c.failed,
               "State" = CASE WHEN c.pending = 0 AND j."State" IN ('Pending', 'Running') THEN CASE WHEN c.done = 0 AND c.skipped = 0 THEN 'Failed' ELSE 'Completed' END
                              WHEN j."State" = 'Pending' THEN 'Running' ELSE j."State" END,
               "StartedAt" = COALESCE(j."StartedAt", now()),
               "FinishedAt" = CASE WHEN c.pending = 0 AND j."State" IN ('Pending', 'Running') THEN now() ELSE j."FinishedAt" END
          FROM (SELECT count(*) FILTER (WHERE "State" = 'Done') AS done,
                       count(*) FILTER (WHERE "State" = 'Failed') AS failed,
                       count(*) FILTER (WHERE "State" = 'Pending') AS pending,
                       count(*) FILTER (WHERE "State" = 'Skipped') AS skipped
                  FROM job_items WHERE "JobId" = @job) AS c
         WHERE j."Id" = @job
        RETURNING c.done, c.failed, c.pending, j."State", c.skipped
        """;

    /// <summary>
    /// Inserts a job's items with one binary COPY on the context's connection, inside its current transaction (the job
    /// row and its items commit together): 10,000 rows in one round trip instead of thousands of INSERTs.
    /// </summary>
    public static async Task CopyItemsAsync(SddDbContext db, IEnumerable<Entities.JobItem> items, CancellationToken ct)
    {
        var connection = (Npgsql.NpgsqlConnection)db.Database.GetDbConnection();
        if (connection.State != System.Data.ConnectionState.Open) await db.Database.OpenConnectionAsync(ct);
        await using var copy = await connection.BeginBinaryImportAsync("""
            COPY job_items ("Id", "JobId", "SourceKey", "SourceBucket", "Name", "DispatchedAt", "OutputKey", "State", "Error", "Attempts", "UpdatedAt")
            FROM STDIN (FORMAT BINARY)
            """, ct);
        foreach (var i in items)
        {
            await copy.StartRowAsync(ct);
            await copy.WriteAsync(i.Id, NpgsqlTypes.NpgsqlDbType.Uuid, ct);
            await copy.WriteAsync(i.JobId, NpgsqlTypes.NpgsqlDbType.Uuid, ct);
            await copy.WriteAsync(i.SourceKey, NpgsqlTypes.NpgsqlDbType.Varchar, ct);
            await WriteOrNull(copy, i.SourceBucket, NpgsqlTypes.NpgsqlDbType.Varchar, ct);
            await WriteOrNull(copy, i.Name, NpgsqlTypes.NpgsqlDbType.Varchar, ct);
            if (i.DispatchedAt is { } d) await copy.WriteAsync(d, NpgsqlTypes.NpgsqlDbType.TimestampTz, ct); else await copy.WriteNullAsync(ct);
            await WriteOrNull(copy, i.OutputKey, NpgsqlTypes.NpgsqlDbType.Varchar, ct);
            await copy.WriteAsync(i.State.ToString(), NpgsqlTypes.NpgsqlDbType.Varchar, ct);
            await WriteOrNull(copy, i.Error, NpgsqlTypes.NpgsqlDbType.Text, ct);
            await copy.WriteAsync(i.Attempts, NpgsqlTypes.NpgsqlDbType.Integer, ct);
            if (i.UpdatedAt is { } u) await copy.WriteAsync(u, NpgsqlTypes.NpgsqlDbType.TimestampTz, ct); else await copy.WriteNullAsync(ct);
        }
        await copy.CompleteAsync(ct);
    }

    /// <summary>
    /// Fails the given items of a job that are still pending, each with <paramref name="reason"/>, and recounts the job
    /// (in one transaction, the job row locked first); returns how many items failed.
    /// </summary>
    public static async Task<int> FailItemsAsync(SddDbContext db, Guid jobId, Guid[] itemIds, string reason, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Database.ExecuteSqlRawAsync(LockJob, [new Npgsql.NpgsqlParameter("job", jobId)], ct);
        var failed = await db.Database.ExecuteSqlRawAsync("""
            UPDATE job_items SET "State" = 'Failed', "Error" = @reason, "UpdatedAt" = now()
             WHERE "JobId" = @job AND "Id" = ANY(@ids) AND "State" = 'Pending'
            """, [new Npgsql.NpgsqlParameter("job", jobId), new Npgsql.NpgsqlParameter("ids", itemIds), new Npgsql.NpgsqlParameter("reason", reason)], ct);
        await db.Database.ExecuteSqlRawAsync(Recount, [new Npgsql.NpgsqlParameter("job", jobId)], ct);
        await tx.CommitAsync(ct);
        return failed;
    }

    private static async Task WriteOrNull(Npgsql.NpgsqlBinaryImporter copy, string? value, NpgsqlTypes.NpgsqlDbType type, CancellationToken ct)
    {
        if (value is null) await copy.WriteNullAsync(ct);
        else await copy.WriteAsync(value, type, ct);
    }
}
