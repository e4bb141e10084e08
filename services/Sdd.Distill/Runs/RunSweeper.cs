using MassTransit;
using Sdd.Contracts;
using Sdd.Data.Entities;
using Sdd.Distill.Training;

namespace Sdd.Distill.Runs;

/// <summary>
/// Picks up runs whose worker vanished or whose command was lost: every SDD_RUN_SWEEP_SECONDS, a queued or running run
/// that nobody heartbeated for SDD_RUN_STALE_SECONDS (and that was not re-sent within it) gets a "resume" command
/// (chunk 0: the chunk after its last checkpoint) on the distill queue; the chunk protocol skips what is done and the
/// lease keeps a duplicate from running twice. Never forever: a run still silent after SDD_RUN_MAX_RESENDS re-sends
/// fails with the reason. Every distill worker sweeps; a conditional UPDATE lets one of them re-send each time.
/// </summary>
public sealed class RunSweeper(IDbContextFactory<SddDbContext> databases, ISendEndpointProvider sender, IPublishEndpoint events,
    RunLedger ledger, TeacherRuns teachers, EditorRegistry editors, DistillOptions options, ILogger<RunSweeper> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.SweepSeconds <= 0) return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.SweepSeconds));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try { await SweepAsync(stoppingToken); }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogWarning("Run sweep failed: {Error}; trying again in {Seconds} s", e.Message, options.SweepSeconds);
            }
        }
    }

    /// <summary>One sweep; returns the runs re-sent and failed.</summary>
    public async Task<(int Resent, int Failed)> SweepAsync(CancellationToken ct)
    {
        List<RunLeases.StaleRun> stale;
        await using (var db = await databases.CreateDbContextAsync(ct))
            stale = await db.FindStaleAsync(options.StaleAfter, 100, ct);
        int resent = 0, failed = 0;
        // Re-sent every StaleAfter while silent: the bound is MaxResends of them.
        var giveUpAfter = options.StaleAfter * (options.MaxResends + 1);
        foreach (var run in stale)
        {
            var silent = TimeSpan.FromSeconds(run.SilentSeconds);
            if (silent >= giveUpAfter)
            {
                var error = $"Abandoned: no worker has taken the run up for {silent.TotalMinutes:0.#} min (last worker {run.Worker ?? "none"}, step {run.Step}); " +
                            $"its command was re-sent {options.MaxResends} times, every {options.StaleAfter.TotalSeconds:0} s, without effect.";
                if (!await ledger.FailAsync(run.Id, error, ct)) continue;
                if (run.TeacherId is { } t && run.Kind == nameof(RunKind.Teacher)) await teachers.FailAsync(t, ct);
                if (run.EditorVersionId is { } v && run.Kind == nameof(RunKind.Distill)) await editors.FailAsync(v, ct);
                await events.Publish(new RunFailed(run.Id, run.Kind.ToLowerInvariant(), error, DateTimeOffset.UtcNow), ct);
                log.LogError("Run {RunId} failed: {Error}", run.Id, error);
                failed++;
                continue;
            }
            bool claimed;
            await using (var db = await databases.CreateDbContextAsync(ct))
                claimed = await db.ClaimResendAsync(run.Id, options.StaleAfter, ct);
            if (!claimed) continue;
            object command = run.Kind == nameof(RunKind.Teacher)
                ? new RunTeacherChunk(run.Id, run.TeacherId ?? Guid.Empty, 0)
                : new RunDistillChunk(run.Id, run.EditorVersionId ?? Guid.Empty, 0);
            var endpoint = await sender.GetSendEndpoint(Queues.Address(Queues.Distill));
            await endpoint.Send(command, command.GetType(), ct);
            int number = Math.Max(1, (int)(silent / options.StaleAfter));
            log.LogWarning("Run {RunId} ({State}, step {Step}): no heartbeat for {Seconds:0} s (last worker {Worker}); resume command re-sent ({Number} of at most {Max})",
                run.Id, run.State, run.Step, silent.TotalSeconds, run.Worker ?? "none", number, options.MaxResends);
            resent++;
        }
        return (resent, failed);
    }
}
