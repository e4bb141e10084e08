using MassTransit;
using Sdd.Contracts;

namespace Sdd.Distill.Runs;

/// <summary>What a run's consumer supplies to <see cref="ChunkedRun"/>: how to find, run, finish and fail it.</summary>
public interface IChunkedWork
{
    /// <summary>"teacher" or "distill", as in the events.</summary>
    string Kind { get; }
    /// <summary>Resolves the run's target; returns its checkpoint prefix in the models bucket and its total steps.</summary>
    Task<(string Prefix, int TotalSteps)> ResolveAsync(CancellationToken ct);
    /// <summary>Runs one chunk from the checkpoint (when there is one), uploads it and the progress marker.</summary>
    Task<Training.ChunkResult> RunChunkAsync(int chunk, bool hasCheckpoint, CancellationToken stopping);
    /// <summary>Records the finished run's result (teacher ready, editor version published); returns the result's id.</summary>
    Task<Guid> CompleteAsync(Training.ChunkResult result, CancellationToken ct);
    /// <summary>Marks the run's target failed (teacher or editor version).</summary>
    Task FailTargetAsync(CancellationToken ct);
    /// <summary>The command for the next chunk.</summary>
    object NextChunk(int chunk);
}

/// <summary>
/// The chunk protocol shared by teacher and editor runs: skip what is already done (redelivery, duplicates), resume
/// from the last uploaded checkpoint, run one bounded chunk with a heartbeat, record it, then send the next chunk to
/// this same queue or finish the run. Errors that retrying will not fix fail the run with the reason.
/// </summary>
public sealed class ChunkedRun(RunLedger ledger, CheckpointStore checkpoints, DistillOptions options, ILogger<ChunkedRun> log)
{
    /// <summary>Retries of a chunk (by the consumer's retry policy) before the run is failed.</summary>
    public const int Retries = 3;

    public async Task ExecuteAsync(ConsumeContext context, Guid runId, int chunk, IChunkedWork work)
    {
        var ct = context.CancellationToken;
        var run = await ledger.FindAsync(runId, ct);
        if (run is null) { log.LogWarning("{Kind} chunk {Chunk}: run {RunId} does not exist; ignored", work.Kind, chunk, runId); return; }
        if (RunLedger.IsFinished(run.State)) { log.LogInformation("Run {RunId} is {State}: chunk {Chunk} skipped", runId, run.State, chunk); return; }

        try
        {
            var (prefix, total) = await work.ResolveAsync(ct);
            var progress = await checkpoints.ReadProgressAsync(prefix, ct);
            if (progress is { } p && p.Chunk >= chunk && p.Step < total)
            {
                // Done before: a redelivery or a duplicate. The row may lag the checkpoint if the worker died in between.
                if (run.Step < p.Step) await ledger.RecordCheckpointAsync(runId, p.Step, prefix, ct);
                bool again = context.ReceiveContext.Redelivered || context.GetRetryAttempt() > 0;
                if (p.Chunk == chunk && again)
                {
                    // The original delivery may have died before sending the next chunk; a fresh duplicate is skipped above.
                    await SendNextAsync(context, work.NextChunk(chunk + 1));
                    log.LogInformation("Run {RunId}: chunk {Chunk} was already done (step {Step}); next chunk re-sent", runId, chunk, p.Step);
                }
                else log.LogInformation("Run {RunId}: chunk {Chunk} was already done (checkpoint chunk {Done}, step {Step}); skipped", runId, chunk, p.Chunk, p.Step);
                return;
            }

            await ledger.MarkRunningAsync(runId, ct);
            Training.ChunkResult result;
            await using (new RunHeartbeat(ledger, runId, TimeSpan.FromSeconds(Math.Max(1, options.HeartbeatSeconds)), log))
                result = await work.RunChunkAsync(chunk, progress is not null, ct);

            await ledger.RecordCheckpointAsync(runId, result.Step, prefix, CancellationToken.None);
            await context.Publish(new RunProgressed(runId, work.Kind, result.Step, result.TotalSteps, DateTimeOffset.UtcNow), CancellationToken.None);
            if (result.Finished)
            {
                var id = await work.CompleteAsync(result, CancellationToken.None);
                await context.Publish(new RunCompleted(runId, work.Kind, id, DateTimeOffset.UtcNow), CancellationToken.None);
                log.LogInformation("Run {RunId} ({Kind}) completed at step {Step}: {ResultId}", runId, work.Kind, result.Step, id);
            }
            else
            {
                await SendNextAsync(context, work.NextChunk(chunk + 1));
            }
        }
        catch (Exception e) when (RunFailure.IsPermanent(e))
        {
            await FailAsync(context, runId, work, e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException && context.GetRetryAttempt() >= Retries)
        {
            await FailAsync(context, runId, work, $"Gave up after {Retries + 1} attempts: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Sends the next chunk's command to the queue this one came from (as its own type, not object).</summary>
    private static async Task SendNextAsync(ConsumeContext context, object command)
    {
        var endpoint = await context.GetSendEndpoint(context.ReceiveContext.InputAddress);
        await endpoint.Send(command, command.GetType(), CancellationToken.None);
    }

    private async Task FailAsync(ConsumeContext context, Guid runId, IChunkedWork work, string error)
    {
        log.LogError("Run {RunId} ({Kind}) failed: {Error}", runId, work.Kind, error);
        if (!await ledger.FailAsync(runId, error, CancellationToken.None)) return;
        await work.FailTargetAsync(CancellationToken.None);
        await context.Publish(new RunFailed(runId, work.Kind, error, DateTimeOffset.UtcNow), CancellationToken.None);
    }
}
