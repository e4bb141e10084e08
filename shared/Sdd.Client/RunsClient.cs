namespace Sdd.Client;

public enum RunKind { Teacher, Distill }
public enum RunState { Queued, Running, Succeeded, Failed, Cancelled }

/// <summary>A training run (a teacher's or an editor version's distillation), trained in checkpointed chunks.</summary>
public sealed record Run(Guid Id, RunKind Kind, RunState State, int Step, int TotalSteps, string? CheckpointKey, DateTimeOffset? HeartbeatAt, string? Error)
{
    [JsonIgnore] public bool IsFinished => State is RunState.Succeeded or RunState.Failed or RunState.Cancelled;
}

/// <summary><c>/v1/runs</c>: training runs and their webhook deliveries.</summary>
public sealed class RunsClient
{
    private readonly ApiTransport _api;
    internal RunsClient(ApiTransport api) => _api = api;

    public Task<Run> GetAsync(Guid id, CancellationToken ct = default) => _api.GetAsync<Run>($"/v1/runs/{id}", ct);

    /// <summary>Cancels a queued or running run (yours, or any as an admin): its worker stops within a heartbeat and what it was making fails.</summary>
    public Task<Run> CancelAsync(Guid id, CancellationToken ct = default) => _api.SendAsync<Run>(HttpMethod.Post, $"/v1/runs/{id}/cancel", ct);

    public Task<Page<Run>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<Run>("/v1/runs", cursor, limit, ct);

    public IAsyncEnumerable<Run> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    public Task<Page<WebhookDelivery>> ListWebhooksAsync(Guid id, string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<WebhookDelivery>($"/v1/runs/{id}/webhooks", cursor, limit, ct);

    public IAsyncEnumerable<WebhookDelivery> ListAllWebhooksAsync(Guid id, CancellationToken ct = default) =>
        Pages.AllAsync((c, t) => ListWebhooksAsync(id, c, null, t), ct);

    /// <summary>Polls until the run succeeded, failed or was cancelled (returned either way), reporting each state seen.</summary>
    public async Task<Run> WaitAsync(Guid id, IProgress<Run>? progress = null, CancellationToken ct = default)
    {
        while (true)
        {
            var run = await GetAsync(id, ct);
            progress?.Report(run);
            if (run.IsFinished) return run;
            await Task.Delay(_api.Options.PollInterval, ct);
        }
    }
}
