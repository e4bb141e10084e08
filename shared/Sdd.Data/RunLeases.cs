using Microsoft.EntityFrameworkCore;
using Sdd.Data.Entities;

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

    /// <summary>
    /// Marks the run completed at <paramref name="step"/>, only while <paramref name="worker"/> still holds it running: a
    /// run cancelled (or taken over) meanwhile stays as it is. Run it in the transaction that publishes the run's result,
    /// and roll that back when it answers false.
    /// </summary>
    public static async Task<bool> CompleteAsync(this SddDbContext db, Guid runId, string worker, int step, string checkpointKey, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        return await db.TrainingRuns.Where(r => r.Id == runId && r.State == RunState.Running && r.Worker == worker)
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.State, RunState.Completed).SetProperty(r => r.Step, step).SetProperty(r => r.CheckpointKey, checkpointKey)
                .SetProperty(r => r.HeartbeatAt, now).SetProperty(r => r.FinishedAt, now).SetProperty(r => r.Error, (string?)null), ct) == 1;
    }

    /// <summary>
    /// Cancels a queued or running run, with <paramref name="reason"/> as its error, and fails what it was making (a
    /// teacher run's teacher, a distillation's editor version) unless that is ready. Its worker's next heartbeat finds the
    /// lease gone (<see cref="RenewAsync"/> needs a running run), so the chunk stops without recording anything and the
    /// chunk's re-sent command finds the run finished. False when the run had already finished.
    /// </summary>
    public static async Task<bool> CancelAsync(this SddDbContext db, Guid runId, string reason, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var run = await db.TrainingRuns.AsNoTracking().Where(r => r.Id == runId).Select(r => new { r.Kind, r.TeacherId, r.EditorVersionId }).SingleOrDefaultAsync(ct);
        if (run is null) return false;
        bool cancelled = await db.TrainingRuns.Where(r => r.Id == runId && (r.State == RunState.Queued || r.State == RunState.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.State, RunState.Cancelled).SetProperty(r => r.Error, reason).SetProperty(r => r.Worker, (string?)null)
                .SetProperty(r => r.FinishedAt, now).SetProperty(r => r.HeartbeatAt, now), ct) == 1;
        if (!cancelled) return false;
        if (run.Kind == RunKind.Teacher && run.TeacherId is { } teacher)
            await db.Teachers.Where(t => t.Id == teacher && t.Status != TeacherStatus.Ready)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.Status, TeacherStatus.Failed), ct);
        if (run.Kind == RunKind.Distill && run.EditorVersionId is { } version)
            await db.EditorVersions.Where(v => v.Id == version && v.Status != EditorStatus.Ready)
                .ExecuteUpdateAsync(s => s.SetProperty(v => v.Status, EditorStatus.Failed), ct);
        await tx.CommitAsync(ct);
        return true;
    }
}
