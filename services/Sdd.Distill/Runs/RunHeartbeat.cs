namespace Sdd.Distill.Runs;

/// <summary>Stamps the run's heartbeat every few seconds while a chunk runs, so a stalled worker is visible.</summary>
public sealed class RunHeartbeat : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public RunHeartbeat(RunLedger ledger, Guid runId, TimeSpan every, ILogger log)
    {
        _loop = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(every);
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token))
                {
                    try { await ledger.HeartbeatAsync(runId, _stop.Token); }
                    catch (Exception e) when (e is not OperationCanceledException) { log.LogWarning("Heartbeat of run {RunId} failed: {Error}", runId, e.Message); }
                }
            }
            catch (OperationCanceledException) { }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
