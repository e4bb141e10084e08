using Prometheus;
using Sdd.Contracts;

namespace Sdd.Ingest.Operations;

/// <summary>
/// Prometheus metrics read from the source of truth at each scrape: jobs and items by state (PostgreSQL), queue depths
/// (RabbitMQ management API), and an edit latency histogram fed with each job's accepted → finished time as jobs finish.
/// A registry of its own, so several hosts in one process (tests) do not share series.
/// </summary>
public sealed class IngestMetrics
{
    private readonly IServiceScopeFactory _scopes;
    private readonly ILogger<IngestMetrics> _log;
    private readonly Gauge _jobs, _items, _queueMessages, _queueConsumers;
    private readonly Histogram _jobLatency;
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private DateTimeOffset _observedUntil = DateTimeOffset.UtcNow;

    public IngestMetrics(IServiceScopeFactory scopes, ILogger<IngestMetrics> log)
    {
        _scopes = scopes;
        _log = log;
        var factory = Metrics.WithCustomRegistry(Registry);
        _jobs = factory.CreateGauge("sdd_jobs", "Edit jobs by state.", "state");
        _items = factory.CreateGauge("sdd_job_items", "Edit job items by state.", "state");
        _queueMessages = factory.CreateGauge("sdd_queue_messages", "Messages waiting in a RabbitMQ queue.", "queue");
        _queueConsumers = factory.CreateGauge("sdd_queue_consumers", "Consumers of a RabbitMQ queue.", "queue");
        _jobLatency = factory.CreateHistogram("sdd_edit_job_latency_seconds", "Edit job latency: accepted to finished.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.5, 2, 16) });
        Registry.AddBeforeCollectCallback(RefreshAsync);
    }

    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private async Task RefreshAsync(CancellationToken ct)
    {
        await _refresh.WaitAsync(ct);
        try
        {
            await using var scope = _scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SddDbContext>();
            try
            {
                var jobs = await db.EditJobs.GroupBy(j => j.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
                foreach (var s in Enum.GetValues<JobState>()) _jobs.WithLabels(s.ToString().ToLowerInvariant()).Set(jobs.FirstOrDefault(j => j.Key == s)?.Count ?? 0);
                var items = await db.JobItems.GroupBy(i => i.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
                foreach (var s in Enum.GetValues<ItemState>()) _items.WithLabels(s.ToString().ToLowerInvariant()).Set(items.FirstOrDefault(i => i.Key == s)?.Count ?? 0);

                var since = _observedUntil;
                var finished = await db.EditJobs.Where(j => j.FinishedAt != null && j.FinishedAt > since && j.State != JobState.Cancelled)
                    .Select(j => new { j.CreatedAt, FinishedAt = j.FinishedAt!.Value }).ToListAsync(ct);
                foreach (var j in finished) _jobLatency.Observe(Math.Max(0, (j.FinishedAt - j.CreatedAt).TotalSeconds));
                if (finished.Count > 0) _observedUntil = finished.Max(j => j.FinishedAt);
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
