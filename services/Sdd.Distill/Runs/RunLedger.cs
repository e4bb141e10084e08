using Sdd.Data.Entities;

namespace Sdd.Distill.Runs;

/// <summary>The training_runs row of a run: what the API shows as its state, step, checkpoint and heartbeat, and its lease.</summary>
public sealed class RunLedger(IDbContextFactory<SddDbContext> databases, DistillOptions options)
{
    /// <summary>This process, as it appears in the Worker column (the lease holder): unique per start, also in a container whose pid is always 1.</summary>
    public static string WorkerName { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";

    public static bool IsFinished(RunState state) => state is RunState.Completed or RunState.Failed or RunState.Cancelled;

    public async Task<TrainingRun?> FindAsync(Guid runId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.TrainingRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == runId, ct);
    }

    /// <summary>Takes the run's lease (see <see cref="RunLeases.TryAcquireAsync"/>) and marks it running; false while another worker holds it.</summary>
    public async Task<bool> TryAcquireAsync(Guid runId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.TryAcquireAsync(runId, WorkerName, options.Lease, ct);
    }

    /// <summary>The heartbeat: renews this worker's lease; false when it lost it.</summary>
    public async Task<bool> RenewAsync(Guid runId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.RenewAsync(runId, WorkerName, ct);
    }

    /// <summary>Gives the lease up, so that the next chunk can run on any worker at once.</summary>
    public async Task ReleaseAsync(Guid runId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.ReleaseAsync(runId, WorkerName, ct);
    }

    /// <summary>
    /// Records a switched checkpoint while this worker holds the lease; the step never goes backwards (a late duplicate
    /// cannot rewind it). False when the lease was lost (the checkpoint itself is complete and stays usable).
    /// </summary>
    public async Task<bool> RecordCheckpointAsync(Guid runId, int step, string checkpointKey, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = await databases.CreateDbContextAsync(ct);
        return await db.TrainingRuns.Where(r => r.Id == runId && r.Worker == WorkerName && r.Step <= step && r.State == RunState.Running)
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.Step, step)
                .SetProperty(r => r.CheckpointKey, checkpointKey)
                .SetProperty(r => r.HeartbeatAt, now), ct) > 0;
    }

    /// <summary>Brings a lagging row up to a checkpoint found done (its worker died between the switch and the row).</summary>
    public async Task CatchUpAsync(Guid runId, int step, string checkpointKey, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.TrainingRuns.Where(r => r.Id == runId && r.Step < step && r.State == RunState.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Step, step).SetProperty(r => r.CheckpointKey, checkpointKey), ct);
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
