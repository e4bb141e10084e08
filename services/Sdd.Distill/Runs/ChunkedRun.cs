using System.Diagnostics;
using System.Globalization;
using MassTransit;
using Sdd.Contracts;
using Sdd.Data.Entities;
using Sdd.Messaging;

namespace Sdd.Distill.Runs;

/// <summary>What a run's consumer supplies to <see cref="ChunkedRun"/>: how to find, run, finish and fail it.</summary>
public interface IChunkedWork
{
    /// <summary>"teacher" or "distill", as in the events.</summary>
    string Kind { get; }
    /// <summary>Resolves the run's target; returns its model folder in the models bucket and its total steps.</summary>
    Task<(string Prefix, int TotalSteps)> ResolveAsync(CancellationToken ct);
    /// <summary>
    /// Runs one chunk from the checkpoint <paramref name="from"/> (null: from the start), uploads it as a new generation and
    /// switches to it while <paramref name="lease"/> is held; the last chunk also publishes the finished model.
    /// </summary>
    Task<Training.ChunkResult> RunChunkAsync(int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping);
    /// <summary>Records the finished run's result (teacher ready, editor version published); returns the result's id.</summary>
    Task<Guid> CompleteAsync(Training.ChunkResult result, CancellationToken ct);
    /// <summary>Marks the run's target failed (teacher or editor version).</summary>
    Task FailTargetAsync(CancellationToken ct);
    /// <summary>The command for a chunk (0: the chunk after the last checkpoint).</summary>
    object NextChunk(int chunk);
}

/// <summary>
/// The chunk protocol shared by teacher and editor runs. Under the run's lease (one worker at a time): skip what is
/// already done (redelivery, duplicates), resume from the switched checkpoint, run one bounded chunk with a heartbeat
/// renewing the lease, switch its checkpoint, record it, release the lease, then send the next chunk to this same
/// queue or finish the run. A delivery for a run whose lease another live worker holds is dropped after at most one
/// lease (that worker carries the run on; <see cref="RunSweeper"/> re-sends it should it vanish). Errors that retrying
/// will not fix fail the run with the reason; others are retried with backoff, by re-sending the command after a delay
/// (no message is held longer than the delay), for <see cref="DistillOptions.RetryMinutes"/>.
/// </summary>
public sealed class ChunkedRun(RunLedger ledger, CheckpointStore checkpoints, DistillOptions options, DistillMetrics metrics, ILogger<ChunkedRun> log)
{
    /// <summary>Headers of a command re-sent after a transient error: its retry number and when the first attempt failed.</summary>
    public const string RetryAttemptHeader = "Sdd-Run-Retry-Attempt";
    public const string RetrySinceHeader = "Sdd-Run-Retry-Since";

    public async Task ExecuteAsync(ConsumeContext context, Guid runId, int chunk, IChunkedWork work)
    {
        var ct = context.CancellationToken;
        try
        {
            var run = await ledger.FindAsync(runId, ct);
            if (run is null) { log.LogWarning("{Kind} chunk {Chunk}: run {RunId} does not exist; ignored", work.Kind, chunk, runId); return; }
            if (RunLedger.IsFinished(run.State))
            {
                log.LogInformation("Run {RunId} is {State}: chunk {Chunk} skipped", runId, run.State, chunk);
                if (run.State == RunState.Cancelled) await CleanUpCancelledAsync(runId, work, ct);
                return;
            }
            if (!await AcquireAsync(runId, chunk, ct)) return;

            var (prefix, total) = await work.ResolveAsync(ct);
            var progress = await checkpoints.ReadProgressAsync(prefix, ct);
            if (chunk == 0)
            {
                chunk = progress is null ? 1 : progress.Step >= total ? progress.Chunk : progress.Chunk + 1;
                log.LogInformation("Run {RunId}: resumed (re-sent) at chunk {Chunk}", runId, chunk);
            }
            if (progress is { } p && p.Chunk >= chunk && p.Step < total)
            {
                // Done before: a redelivery or a duplicate. The row may lag the checkpoint if the worker died in between.
                await ledger.CatchUpAsync(runId, p.Step, CheckpointStore.GenerationKey(prefix, p), ct);
                bool again = context.ReceiveContext.Redelivered || RetryAttempt(context) > 0;
                await ledger.ReleaseAsync(runId, ct);
                if (p.Chunk == chunk && again)
                {
                    // The original delivery may have died before sending the next chunk; a fresh duplicate is skipped above.
                    await SendAsync(context, work.NextChunk(chunk + 1), null);
                    log.LogInformation("Run {RunId}: chunk {Chunk} was already done (step {Step}); next chunk re-sent", runId, chunk, p.Step);
                }
                else log.LogInformation("Run {RunId}: chunk {Chunk} was already done (checkpoint chunk {Done}, step {Step}); skipped", runId, chunk, p.Chunk, p.Step);
                return;
            }

            Training.ChunkResult result;
            await using (var lease = new RunLease(ledger, runId, options, log))
            {
                var timer = System.Diagnostics.Stopwatch.StartNew();
                result = await work.RunChunkAsync(chunk, progress, lease, ct);
                metrics.Chunk(work.Kind, result.Step - (progress?.Step ?? 0), timer.Elapsed);
                if (!await ledger.RecordCheckpointAsync(runId, result.Step, result.Checkpoint ?? prefix, CancellationToken.None))
                    throw new LeaseLostException($"Run {runId}: lease lost before chunk {chunk} was recorded");
                await Announce.EventAsync(context, new RunProgressed(runId, work.Kind, result.Step, result.TotalSteps, DateTimeOffset.UtcNow), log);
                if (result.Finished)
                {
                    await lease.ConfirmAsync(CancellationToken.None);
                    var id = await work.CompleteAsync(result, CancellationToken.None);
                    await Announce.EventAsync(context, new RunCompleted(runId, work.Kind, id, DateTimeOffset.UtcNow), log);
                    metrics.Finished(work.Kind, "completed");
                    log.LogInformation("Run {RunId} ({Kind}) completed at step {Step}: {ResultId}", runId, work.Kind, result.Step, id);
                    return;
                }
            }
            await ledger.ReleaseAsync(runId, CancellationToken.None);
            await SendAsync(context, work.NextChunk(chunk + 1), null);
        }
        catch (Exception e) when (RunFailure.IsPermanent(e))
        {
            try { await FailAsync(context, runId, work, e.Message); }
            catch (Exception f) when (!RunFailure.IsPermanent(f)) { await RetryLaterAsync(context, runId, chunk, work, f); } // the failure is recorded on the next attempt
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw; // the host is stopping: the message goes back to the queue
        }
        catch (Exception e)
        {
            await RetryLaterAsync(context, runId, chunk, work, e);
        }
    }

    /// <summary>
    /// A cancelled run's command (the one queued when it was cancelled, or its abandoned chunk sent again): what the run
    /// was making is marked failed once more and an import's copied weights are deleted (<see cref="IChunkedWork.FailTargetAsync"/>).
    /// </summary>
    private async Task CleanUpCancelledAsync(Guid runId, IChunkedWork work, CancellationToken ct)
    {
        try
        {
            await work.ResolveAsync(ct);
            await work.FailTargetAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning("Run {RunId} was cancelled; cleaning up what it made failed: {Error}", runId, e.Message);
        }
    }

    /// <summary>
    /// Takes the run's lease. While another worker holds it, tries again for one lease: a dead holder's lease expires
    /// within it, a holder between chunks releases it. A holder that kept heartbeating throughout is alive and runs
    /// the run: this delivery is a duplicate and is dropped (false).
    /// </summary>
    private async Task<bool> AcquireAsync(Guid runId, int chunk, CancellationToken ct)
    {
        if (await ledger.TryAcquireAsync(runId, ct)) return true;
        var held = await ledger.FindAsync(runId, ct);
        log.LogInformation("Run {RunId}: chunk {Chunk} waits for the lease held by {Holder} (heartbeat {Heartbeat:O})", runId, chunk, held?.Worker, held?.HeartbeatAt);
        var wait = Stopwatch.StartNew();
        var poll = TimeSpan.FromSeconds(Math.Clamp(options.Heartbeat.TotalSeconds / 2, 0.2, 1));
        while (wait.Elapsed < options.Lease + options.Heartbeat)
        {
            await Task.Delay(poll, ct);
            if (await ledger.TryAcquireAsync(runId, ct))
            {
                log.LogInformation("Run {RunId}: chunk {Chunk} took the lease over after {Seconds:0.0} s", runId, chunk, wait.Elapsed.TotalSeconds);
                return true;
            }
            if (await ledger.FindAsync(runId, ct) is { } r && RunLedger.IsFinished(r.State))
            {
                log.LogInformation("Run {RunId} is {State}: chunk {Chunk} skipped", runId, r.State, chunk);
                return false;
            }
        }
        var now = await ledger.FindAsync(runId, ct);
        log.LogInformation("Run {RunId}: chunk {Chunk} dropped: {Holder} holds the run and is alive (heartbeat {Heartbeat:O}, state {State})",
            runId, chunk, now?.Worker, now?.HeartbeatAt, now?.State);
        return false;
    }

    /// <summary>
    /// A transient error (S3, PostgreSQL, RabbitMQ, a lost lease): the lease is released and, after an exponential delay
    /// (2 s doubling to 60 s), the same command is sent again with the retry count; past the retry window the run fails.
    /// </summary>
    private async Task RetryLaterAsync(ConsumeContext context, Guid runId, int chunk, IChunkedWork work, Exception e)
    {
        int attempt = RetryAttempt(context);
        var since = RetrySince(context) ?? DateTimeOffset.UtcNow;
        var elapsed = DateTimeOffset.UtcNow - since;
        string error = $"{e.GetType().Name}: {e.Message}";
        if (elapsed >= options.RetryWindow)
        {
            try
            {
                await FailAsync(context, runId, work, $"Gave up after {attempt + 1} attempts over {elapsed.TotalMinutes:0.0} min of transient errors; the last: {error}");
                return;
            }
            catch (Exception f)
            {
                log.LogWarning("Run {RunId}: could not record its failure ({Error}); trying again later", runId, f.Message);
            }
        }
        try { await ledger.ReleaseAsync(runId, CancellationToken.None); }
        catch (Exception r) { log.LogDebug("Run {RunId}: lease not released ({Error}); it expires", runId, r.Message); }
        var delay = TimeSpan.FromSeconds(Math.Min(60, 2 * Math.Pow(2, Math.Min(attempt, 10))));
        if (e is LeaseLostException) log.LogWarning("Run {RunId}: chunk {Chunk} abandoned: {Error}; sent again in {Delay:0} s", runId, chunk, e.Message, delay.TotalSeconds);
        else log.LogWarning("Run {RunId}: chunk {Chunk} attempt {Attempt} failed: {Error}; retried in {Delay:0} s (for up to {Window:0.#} min since {Since:O})",
            runId, chunk, attempt + 1, error, delay.TotalSeconds, options.RetryWindow.TotalMinutes, since);
        await Task.Delay(delay, context.CancellationToken);
        await SendAsync(context, work.NextChunk(chunk), (attempt + 1, since));
    }

    private static int RetryAttempt(ConsumeContext context) =>
        context.Headers.TryGetHeader(RetryAttemptHeader, out var v) && int.TryParse(v?.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;

    private static DateTimeOffset? RetrySince(ConsumeContext context) =>
        context.Headers.TryGetHeader(RetrySinceHeader, out var v) && DateTimeOffset.TryParse(v?.ToString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : null;

    /// <summary>Sends a chunk's command to the queue this one came from (as its own type, not object), with retry headers when given.</summary>
    /// <summary>
    /// Sends the run's next command to this queue, waiting at most <see cref="Announce.Patience"/> (see there why): a
    /// command that cannot be sent is left to the run sweeper, which resumes a run whose heartbeat stops.
    /// </summary>
    private async Task SendAsync(ConsumeContext context, object command, (int Attempt, DateTimeOffset Since)? retry)
    {
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        patience.CancelAfter(Announce.Patience);
        try
        {
            var endpoint = await context.GetSendEndpoint(context.ReceiveContext.InputAddress);
            await endpoint.Send(command, command.GetType(), Pipe.Execute<SendContext>(send =>
            {
                if (retry is not { } r) return;
                send.Headers.Set(RetryAttemptHeader, r.Attempt.ToString(CultureInfo.InvariantCulture));
                send.Headers.Set(RetrySinceHeader, r.Since.ToString("O", CultureInfo.InvariantCulture));
            }), patience.Token);
        }
        catch (Exception e) when (e is OperationCanceledException || patience.IsCancellationRequested)
        {
            log.LogWarning("{Command} not sent within {Seconds} s (broker down or endpoint stopping); the run sweeper will resume the run",
                command.GetType().Name, Announce.Patience.TotalSeconds);
        }
    }

    private async Task FailAsync(ConsumeContext context, Guid runId, IChunkedWork work, string error)
    {
        log.LogError("Run {RunId} ({Kind}) failed: {Error}", runId, work.Kind, error);
        if (!await ledger.FailAsync(runId, error, CancellationToken.None)) return;
        metrics.Finished(work.Kind, "failed");
        await work.FailTargetAsync(CancellationToken.None);
        await Announce.EventAsync(context, new RunFailed(runId, work.Kind, error, DateTimeOffset.UtcNow), log);
    }
}
