using Microsoft.EntityFrameworkCore;

namespace Sdd.Data;

/// <summary>
/// The lease of a training run: <c>Worker</c> is its holder and <c>HeartbeatAt + lease</c> its expiry, both in
/// training_runs, changed only by single conditional UPDATEs on the database's clock (so workers with skewed clocks
/// agree). One worker runs a run's chunk at a time; a holder that stops heartbeating loses the run after the lease.
/// </summary>
public static class RunLeases
{
    /// <summary>
    /// Takes (or renews) the lease when the run is queued or running and nobody else holds it: no holder, this holder,
    /// or a holder whose last heartbeat is older than <paramref name="lease"/>. Marks the run running. True when taken.
    /// </summary>
    public static async Task<bool> TryAcquireAsync(this SddDbContext db, Guid runId, string worker, TimeSpan lease, CancellationToken ct) =>
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            UPDATE training_runs
               SET "Worker" = {worker}, "HeartbeatAt" = now(), "State" = 'Running', "StartedAt" = COALESCE("StartedAt", now())
             WHERE "Id" = {runId} AND "State" IN ('Queued', 'Running')
               AND ("Worker" IS NULL OR "Worker" = {worker} OR "HeartbeatAt" IS NULL OR "HeartbeatAt" < now() - {lease})
            """, ct) == 1;

    /// <summary>Renews the lease of its holder (the heartbeat); false when the holder lost it (taken over, or the run ended).</summary>
    public static async Task<bool> RenewAsync(this SddDbContext db, Guid runId, string worker, CancellationToken ct) =>
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            UPDATE training_runs SET "HeartbeatAt" = now()
             WHERE "Id" = {runId} AND "State" = 'Running' AND "Worker" = {worker}
            """, ct) == 1;

    /// <summary>Gives the lease up (between chunks), keeping the last heartbeat; false when this worker did not hold it.</summary>
    public static async Task<bool> ReleaseAsync(this SddDbContext db, Guid runId, string worker, CancellationToken ct) =>
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            UPDATE training_runs SET "Worker" = NULL WHERE "Id" = {runId} AND "Worker" = {worker}
            """, ct) == 1;

    /// <summary>A live run that no worker has heartbeated for a while: when, by whom, and when its command was last sent.</summary>
    public sealed record StaleRun(Guid Id, string Kind, string State, Guid? TeacherId, Guid? EditorVersionId, int Step, string? Worker,
        DateTimeOffset? HeartbeatAt, DateTimeOffset? DispatchedAt, double SilentSeconds);

    /// <summary>
    /// Queued or running runs whose command was sent (DispatchedAt set) and that nobody has heartbeated for
    /// <paramref name="staleAfter"/>, nor been re-sent within it: their worker vanished, or their command was lost.
    /// </summary>
    public static async Task<List<StaleRun>> FindStaleAsync(this SddDbContext db, TimeSpan staleAfter, int limit, CancellationToken ct) =>
        await db.Database.SqlQuery<StaleRun>($"""
            SELECT "Id", "Kind", "State", "TeacherId", "EditorVersionId", "Step", "Worker", "HeartbeatAt", "DispatchedAt",
                   EXTRACT(EPOCH FROM now() - COALESCE("HeartbeatAt", "DispatchedAt"))::float8 AS "SilentSeconds"
              FROM training_runs
             WHERE "State" IN ('Queued', 'Running') AND "DispatchedAt" IS NOT NULL
               AND COALESCE("HeartbeatAt", "DispatchedAt") < now() - {staleAfter}
               AND "DispatchedAt" < now() - {staleAfter}
             ORDER BY COALESCE("HeartbeatAt", "DispatchedAt")
             LIMIT {limit}
            """).ToListAsync(ct);

    /// <summary>
    /// Claims the re-send of a stale run's command (so that of several sweepers one sends it): stamps DispatchedAt and
    /// clears the vanished holder, only while the run is still as stale as it was seen. True when this caller won.
    /// </summary>
    public static async Task<bool> ClaimResendAsync(this SddDbContext db, Guid runId, TimeSpan staleAfter, CancellationToken ct) =>
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            UPDATE training_runs SET "DispatchedAt" = now(), "Worker" = NULL
             WHERE "Id" = {runId} AND "State" IN ('Queued', 'Running')
               AND COALESCE("HeartbeatAt", "DispatchedAt") < now() - {staleAfter}
               AND "DispatchedAt" < now() - {staleAfter}
            """, ct) == 1;
}
