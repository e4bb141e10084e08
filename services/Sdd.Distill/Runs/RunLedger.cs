using Sdd.Data.Entities;

namespace Sdd.Distill.Runs;

/// <summary>The training_runs row of a run: what the API shows as its state, step, checkpoint and heartbeat.</summary>
public sealed class RunLedger(IDbContextFactory<SddDbContext> databases)
{
    /// <summary>This process, as it appears in the Worker column.</summary>
    public static string WorkerName { get; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    public static bool IsFinished(RunState state) => state is RunState.Completed or RunState.Failed or RunState.Cancelled;

    public async Task<TrainingRun?> FindAsync(Guid runId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.TrainingRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == runId, ct);
    }

    public async Task MarkRunningAsync(Guid runId, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.TrainingRuns.Where(r => r.Id == runId && (r.State == RunState.Queued || r.State == RunState.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.State, RunState.Running)
                .SetProperty(r => r.Worker, WorkerName)
                .SetProperty(r => r.HeartbeatAt, now)
                .SetProperty(r => r.StartedAt, r => r.StartedAt ?? now), ct);
    }

    public async Task HeartbeatAsync(Guid runId, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.TrainingRuns.Where(r => r.Id == runId && r.State == RunState.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.HeartbeatAt, now).SetProperty(r => r.Worker, WorkerName), ct);
    }

    /// <summary>Records a saved checkpoint; the step never goes backwards (a late duplicate cannot rewind it).</summary>
    public async Task RecordCheckpointAsync(Guid runId, int step, string checkpointKey, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.TrainingRuns.Where(r => r.Id == runId && r.Step <= step && r.State != RunState.Failed && r.State != RunState.Cancelled)
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.Step, step)
                .SetProperty(r => r.CheckpointKey, checkpointKey)
                .SetProperty(r => r.HeartbeatAt, now), ct);
    }

    /// <summary>Marks the run failed with a reason a person can act on; returns false when it had already finished.</summary>
    public async Task<bool> FailAsync(Guid runId, string error, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        if (error.Length > 4000) error = error[..4000];
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.TrainingRuns.Where(r => r.Id == runId && r.State != RunState.Completed && r.State != RunState.Failed && r.State != RunState.Cancelled)
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.State, RunState.Failed)
                .SetProperty(r => r.Error, error)
                .SetProperty(r => r.FinishedAt, now)
                .SetProperty(r => r.HeartbeatAt, now), ct) > 0;
    }
}
