using Prometheus;
using Sdd.Contracts;

namespace Sdd.Ingest.Operations;

/// <summary>
/// Ingest's Prometheus metrics, read from the source of truth at each scrape and about live work only, in the API's words:
/// jobs queued and running, their items still pending (the API's counts.pending), training runs queued and running by
/// kind, and queue depths and consumers (RabbitMQ management API). Finished work is history, not a gauge; the job latency
/// histogram is the edit worker's (observed once, by the worker that completes the job), so Ingest replicas never count
/// it twice. A registry of its own, so several hosts in one process (tests) do not share series.
/// </summary>
public sealed class IngestMetrics
{
    private readonly IServiceScopeFactory _scopes;
    private readonly ILogger<IngestMetrics> _log;
    private readonly Gauge _jobs, _items, _runs, _queueMessages, _queueConsumers;
    private readonly SemaphoreSlim _refresh = new(1, 1);

    public IngestMetrics(IServiceScopeFactory scopes, ILogger<IngestMetrics> log)
    {
        _scopes = scopes;
        _log = log;
        var factory = Metrics.WithCustomRegistry(Registry);
        _jobs = factory.CreateGauge("sdd_jobs", "Edit jobs not finished, by state (queued, running).", "state");
        _items = factory.CreateGauge("sdd_job_items_pending", "Items still to edit in jobs not finished.");
        _runs = factory.CreateGauge("sdd_runs", "Training runs not finished, by kind (teacher, distill) and state (queued, running).", "kind", "state");
        _queueMessages = factory.CreateGauge("sdd_queue_messages", "Messages waiting in a RabbitMQ queue.", "queue");
        _queueConsumers = factory.CreateGauge("sdd_queue_consumers", "Consumers of a RabbitMQ queue.", "queue");
        Registry.AddBeforeCollectCallback(RefreshAsync);
    }

    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private static readonly JobState[] LiveJobs = [JobState.Pending, JobState.Running];
    private static readonly RunState[] LiveRuns = [RunState.Queued, RunState.Running];

    private async Task RefreshAsync(CancellationToken ct)
    {
        await _refresh.WaitAsync(ct);
        try
        {
            await using var scope = _scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SddDbContext>();
            try
            {
                var jobs = await db.EditJobs.Where(j => LiveJobs.Contains(j.State)).GroupBy(j => j.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
                foreach (var s in LiveJobs) _jobs.WithLabels(Sdd.Ingest.Apis.JobsApi.JobStateName(s)).Set(jobs.FirstOrDefault(j => j.Key == s)?.Count ?? 0);
                _items.Set(await db.JobItems.CountAsync(i => i.State == ItemState.Pending && db.EditJobs.Any(j => j.Id == i.JobId && LiveJobs.Contains(j.State)), ct));
                var runs = await db.TrainingRuns.Where(r => LiveRuns.Contains(r.State)).GroupBy(r => new { r.Kind, r.State }).Select(g => new { g.Key.Kind, g.Key.State, Count = g.Count() }).ToListAsync(ct);
                foreach (var kind in new[] { RunKind.Teacher, RunKind.Distill })
                    foreach (var s in LiveRuns)
                        _runs.WithLabels(kind.ToString().ToLowerInvariant(), s.ToString().ToLowerInvariant()).Set(runs.FirstOrDefault(r => r.Kind == kind && r.State == s)?.Count ?? 0);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                _log.LogWarning(e, "Metrics: PostgreSQL did not answer");
            }
            var rabbit = scope.ServiceProvider.GetRequiredService<RabbitManagement>();
            foreach (var queue in new[] { Queues.Edit, Queues.Distill })
            {
                try
                {
                    var info = await rabbit.QueueAsync(queue, ct);
                    _queueMessages.WithLabels(queue).Set(info.Messages);
                    _queueConsumers.WithLabels(queue).Set(info.Consumers);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    _log.LogWarning("Metrics: RabbitMQ management API did not answer for queue {Queue}: {Error}", queue, e.Message);
                }
            }
        }
        finally
        {
            _refresh.Release();
        }
    }
}
