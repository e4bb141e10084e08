using Prometheus;

namespace Sdd.Distill.Runs;

/// <summary>
/// The distill worker's Prometheus metrics (served at /metrics): training steps done (their rate is the step rate),
/// chunk durations, runs finished, each labelled by kind (teacher or editor).
/// </summary>
public sealed class DistillMetrics
{
    private readonly Counter _steps, _runs;
    private readonly Histogram _chunks;

    public DistillMetrics(CollectorRegistry? registry = null)
    {
        var factory = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry);
        _steps = factory.CreateCounter("sdd_distill_steps_total", "Training steps done by this worker (rate: the step rate).", "kind");
        _chunks = factory.CreateHistogram("sdd_distill_chunk_seconds", "Duration of one chunk of a run, from resume to checkpoint switched.",
            new HistogramConfiguration { LabelNames = ["kind"], Buckets = Histogram.ExponentialBuckets(1, 2, 12) });
        _runs = factory.CreateCounter("sdd_distill_runs_finished_total", "Runs this worker finished, by kind and outcome.", "kind", "outcome");
        // Every series exported from the start, at zero until it counts.
        foreach (var kind in new[] { "teacher", "distill" })
        {
            _steps.WithLabels(kind);
            _chunks.WithLabels(kind);
            foreach (var outcome in new[] { "completed", "failed" }) _runs.WithLabels(kind, outcome);
        }
    }

    public void Chunk(string kind, int steps, TimeSpan duration)
    {
        if (steps > 0) _steps.WithLabels(kind).Inc(steps);
        _chunks.WithLabels(kind).Observe(duration.TotalSeconds);
    }

    public void Finished(string kind, string outcome) => _runs.WithLabels(kind, outcome).Inc();
}
