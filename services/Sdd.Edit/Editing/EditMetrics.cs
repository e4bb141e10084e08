using System.Diagnostics;
using Prometheus;

namespace Sdd.Edit.Editing;

/// <summary>The stages of a batch, as timed in <see cref="EditMetrics.Stage"/>.</summary>
public static class EditStage
{
    public const string Download = "download", Decode = "decode", Edit = "edit", Encode = "encode", Upload = "upload", Record = "record", Trim = "trim", Domain = "domain";
    public static readonly string[] All = [Download, Decode, Domain, Edit, Encode, Upload, Record, Trim];
}

/// <summary>
/// The edit worker's Prometheus metrics (served at /metrics with the process's own, e.g. process_working_set_bytes):
/// items by outcome (their rate is the worker's images per second), batch latency and size, the wall seconds each stage of a
/// batch took (download, decode, the domain gate's scoring, edit, encode, upload, record, and the trim of the native heap after it; batches overlap, so the sums may exceed the elapsed time),
/// the wait for the forward-pass gate, editor cache hits and loads, and each job's accepted-to-finished latency, observed
/// once by the worker that completes the job (so replicas never count it twice).
/// </summary>
public sealed class EditMetrics
{
    private readonly Counter _items, _editors;
    private readonly Histogram _batchSeconds, _batchImages, _stageSeconds, _gateWait, _jobLatency;

    public EditMetrics(CollectorRegistry? registry = null)
    {
        var factory = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry);
        _items = factory.CreateCounter("sdd_edit_items_total", "Job items this worker finished, by outcome (done, failed, skipped: outside the editor's domain; retry: left pending for another attempt).", "outcome");
        _batchSeconds = factory.CreateHistogram("sdd_edit_batch_seconds", "Batch latency: message received to items recorded.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.01, 2, 16) });
        _batchImages = factory.CreateHistogram("sdd_edit_batch_images", "Images of a batch still to edit when it arrived.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 10) });
        _stageSeconds = factory.CreateHistogram("sdd_edit_stage_seconds", "Seconds a batch spent in each stage (download, decode, edit, encode, upload, record; trim: the native heap handed back after a batch).",
            new HistogramConfiguration { LabelNames = ["stage"], Buckets = Histogram.ExponentialBuckets(0.001, 2, 18) });
        _gateWait = factory.CreateHistogram("sdd_edit_gate_wait_seconds", "Wait of a batch's images for the forward pass (another batch editing).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 18) });
        _editors = factory.CreateCounter("sdd_editor_cache_total", "Editor lookups: hit (already loaded) or load (read from storage).", "result");
        _jobLatency = factory.CreateHistogram("sdd_edit_job_latency_seconds", "Edit job latency: accepted to finished, observed once per job.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.5, 2, 16) });
        foreach (var stage in EditStage.All) _stageSeconds.WithLabels(stage);
        foreach (var outcome in new[] { "done", "failed", "retry" }) _items.WithLabels(outcome);
        foreach (var result in new[] { "hit", "load" }) _editors.WithLabels(result);
    }

    public void Stage(string stage, TimeSpan duration) => _stageSeconds.WithLabels(stage).Observe(duration.TotalSeconds);

    /// <summary>Times <paramref name="stage"/> from now until the returned scope is disposed.</summary>
    public StageTimer Time(string stage) => new(this, stage);

    public void GateWait(TimeSpan wait) => _gateWait.Observe(wait.TotalSeconds);

    public void Batch(int images, TimeSpan duration, int done, int failed, int retried, int skipped = 0)
    {
        if (skipped > 0) _items.WithLabels("skipped").Inc(skipped);
        _batchImages.Observe(images);
        _batchSeconds.Observe(duration.TotalSeconds);
        if (done > 0) _items.WithLabels("done").Inc(done);
        if (failed > 0) _items.WithLabels("failed").Inc(failed);
        if (retried > 0) _items.WithLabels("retry").Inc(retried);
    }

    public void Editor(bool hit) => _editors.WithLabels(hit ? "hit" : "load").Inc();

    public void JobFinished(TimeSpan latency) => _jobLatency.Observe(Math.Max(0, latency.TotalSeconds));

    public readonly struct StageTimer(EditMetrics metrics, string stage) : IDisposable
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        public void Dispose() => metrics.Stage(stage, Stopwatch.GetElapsedTime(_start));
    }
}
