using System.Diagnostics;

namespace Sdd.Distill.Runs;

/// <summary>This worker no longer holds the run's lease (another worker took it over, or the run ended): it must record nothing.</summary>
public sealed class LeaseLostException(string message) : Exception(message);

/// <summary>
/// The lease of a run held by this worker while it runs a chunk: a heartbeat renews it every few seconds. When a renewal
/// finds it taken over, or no renewal succeeded for a whole lease (the database unreachable: another worker may take the
/// run over), <see cref="Lost"/> fires and the chunk stops without recording anything. <see cref="ConfirmAsync"/>
/// renews it once more right before a checkpoint is switched or the run completed.
/// </summary>
public sealed class RunLease : IAsyncDisposable
{
    private readonly RunLedger _ledger;
    private readonly Guid _runId;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _sinceRenewal = Stopwatch.StartNew();
    private readonly Task _loop;

    public RunLease(RunLedger ledger, Guid runId, DistillOptions options, ILogger log)
    {
        (_ledger, _runId, _log) = (ledger, runId, log);
        _loop = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(options.Heartbeat);
            try
            {
                while (!_lost.IsCancellationRequested && await timer.WaitForNextTickAsync(_stop.Token))
                {
                    var started = Stopwatch.StartNew();
                    try
                    {
                        if (await ledger.RenewAsync(runId, _stop.Token)) _sinceRenewal.Restart(); // conservative: counted from before the renewal
                        else Lose("another worker holds it now, or the run ended");
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        log.LogWarning("Heartbeat of run {RunId} failed: {Error}", runId, e.Message);
                        if (_sinceRenewal.Elapsed > options.Lease) Lose($"no heartbeat got through for {_sinceRenewal.Elapsed.TotalSeconds:0} s, longer than the lease");
                    }
                }
            }
            catch (OperationCanceledException) { }
        });
    }

    /// <summary>Cancelled when the lease is lost.</summary>
    public CancellationToken Lost => _lost.Token;

    public bool IsLost => _lost.IsCancellationRequested;

    /// <summary>Throws <see cref="LeaseLostException"/> once the lease is lost.</summary>
    public void ThrowIfLost()
    {
        if (IsLost) throw new LeaseLostException($"Run {_runId}: this worker lost its lease");
    }

    /// <summary>Renews the lease now; throws <see cref="LeaseLostException"/> when it is no longer this worker's.</summary>
    public async Task ConfirmAsync(CancellationToken ct)
    {
        ThrowIfLost();
        if (!await _ledger.RenewAsync(_runId, ct))
        {
            Lose("another worker holds it now, or the run ended");
            ThrowIfLost();
        }
        _sinceRenewal.Restart();
    }

    private void Lose(string why)
    {
        if (_lost.IsCancellationRequested) return;
        _log.LogWarning("Run {RunId}: worker {Worker} lost its lease ({Why}); the chunk stops without recording anything", _runId, RunLedger.WorkerName, why);
        _lost.Cancel();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
        _lost.Dispose();
    }
}
