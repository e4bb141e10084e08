using System.Diagnostics;
using Sdd.Data.Entities;
using Sdd.Distill.Runs;
using TeacherRow = Sdd.Data.Entities.Teacher;

namespace Sdd.Distill.Training;

/// <summary>A teacher run: the teacher's row, its stored settings and its model folder's prefix in the models bucket.</summary>
public sealed record TeacherRequest(TeacherRow Teacher, TeacherRunSettings Settings, string Prefix)
{
    public int Steps => Settings.Training.Steps;
    public int ImageSize => Settings.ImageSize;
}

/// <summary>
/// The worker's side of a teacher run: the procedure itself is <see cref="TeacherTraining"/> (the CLI's too); around
/// each chunk this downloads the run folder's checkpoint, loads the data set (kept for the run's next chunk), advances
/// the procedure within the chunk's budget, finishes it on the last chunk (the judge under judge/), uploads the folder
/// and publishes the finished teacher, and keeps the teacher's status.
/// </summary>
public sealed class TeacherRuns(CheckpointStore checkpoints, DatasetSource datasets, IDbContextFactory<SddDbContext> databases,
    DistillOptions options, ILogger<TeacherRuns> log) : IDisposable
{
    private (Guid DatasetId, LoadedDataset Data, int Size, Tensor Images, Tensor Labels)? _data;

    /// <summary>The teacher and its stored settings (the API's { steps, imageSize }; the judge's steps default to SDD_JUDGE_STEPS).</summary>
    public async Task<TeacherRequest> ResolveAsync(Guid teacherId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        var teacher = await db.Teachers.AsNoTracking().SingleOrDefaultAsync(t => t.Id == teacherId, ct)
                      ?? throw new RunFailure($"Teacher {teacherId} does not exist.");
        if (teacher.DatasetId is null) throw new RunFailure($"Teacher '{teacher.Name}' names no data set to train on.");
        var defaults = new TeacherRunSettings { JudgeSteps = options.JudgeSteps };
        if (teacher.Resolution > 0) defaults = defaults with { ImageSize = teacher.Resolution };
        TeacherRunSettings settings;
        try { settings = TeacherRunSettings.FromJson(teacher.SettingsJson, defaults); }
        catch (FormatException e) { throw new RunFailure($"Teacher '{teacher.Name}': {e.Message}", e); }
        return new TeacherRequest(teacher, settings, KeyLayout.Teacher(teacher.IsBuiltin ? null : teacher.Owner, teacher.Id));
    }

    public async Task<ChunkResult> RunChunkAsync(Guid runId, TeacherRequest r, int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping)
    {
        var dir = Path.Combine(options.WorkDir, "runs", runId.ToString("N"));
        if (from is not null) await checkpoints.DownloadAsync(r.Prefix, from, dir, stopping);
        else if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var (data, images, labels) = await DataAsync(r, stopping);
        await SetStatusAsync(r.Teacher.Id, TeacherStatus.Training, stopping);

        var (step, finished) = await Task.Factory.StartNew(() =>
        {
            using var run = TeacherTraining.Open(dir, r.Settings, data.Set.Attributes, images, labels, resume: true, dataset: data.Name);
            int start = run.Step;
            log.LogInformation("Run {RunId}: teacher chunk {Chunk} from step {Step} of {Total}", runId, chunk, start, r.Steps);
            var budget = new ChunkBudget(options, start, stopping, lease);
            run.Advance(budget.Allows);
            log.LogInformation("Run {RunId}: teacher chunk {Chunk} trained steps {From}..{To} in {Seconds:0.0} s", runId, chunk, start, run.Step, budget.Elapsed.TotalSeconds);
            if (run.Trained)
            {
                var sw = Stopwatch.StartNew();
                if (run.Finish(data.Set) is { } judge)
                    log.LogInformation("Run {RunId}: judge trained {Steps} steps in {Seconds:0.0} s; held-out accuracy {Accuracy}", runId, run.Settings.JudgeSteps,
                        sw.Elapsed.TotalSeconds, string.Join(", ", judge.Accuracy.Select(a => $"{a.Key} {a.Value:0.000}")));
            }
            return (run.Step, run.Trained);
        }, stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        lease.ThrowIfLost();
        var switched = await checkpoints.SwitchAsync(dir, r.Prefix, chunk, step, lease, CancellationToken.None);
        if (finished) await checkpoints.PublishAsync(dir, r.Prefix, CancellationToken.None); // config, weights and judge/ where the registry reads them
        return new ChunkResult(step, r.Steps, finished, CheckpointStore.GenerationKey(r.Prefix, switched));
    }

    public async Task CompleteAsync(Guid runId, TeacherRequest r, int step, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Teachers.Where(t => t.Id == r.Teacher.Id).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.Status, TeacherStatus.Ready)
            .SetProperty(t => t.WeightsKey, r.Prefix)
            .SetProperty(t => t.Resolution, r.ImageSize), ct);
        if (!await db.CompleteAsync(runId, RunLedger.WorkerName, step, r.Prefix, ct))
            throw new LeaseLostException($"Run {runId} was cancelled or taken over before its teacher was ready");
        await tx.CommitAsync(ct);
        Forget();
    }

    public Task FailAsync(Guid teacherId, CancellationToken ct) => SetStatusAsync(teacherId, TeacherStatus.Failed, ct);

    private async Task SetStatusAsync(Guid teacherId, TeacherStatus status, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.Teachers.Where(t => t.Id == teacherId && t.Status != TeacherStatus.Ready).ExecuteUpdateAsync(s => s.SetProperty(t => t.Status, status), ct);
    }

    private async Task<(LoadedDataset Data, Tensor Images, Tensor Labels)> DataAsync(TeacherRequest r, CancellationToken ct)
    {
        var id = r.Teacher.DatasetId!.Value;
        if (_data is { } d && d.DatasetId == id && d.Size == r.ImageSize) return (d.Data, d.Images, d.Labels);
        Forget();
        var sw = Stopwatch.StartNew();
        var data = await datasets.LoadAsync(id, ct);
        var (x, y) = data.Set.Load(r.ImageSize);
        log.LogInformation("Teacher {Teacher}: loaded {Count} images of {Dataset} at {Size}px in {Seconds:0.0} s", r.Teacher.Name, data.Set.Rows.Count, data.Name, r.ImageSize, sw.Elapsed.TotalSeconds);
        _data = (id, data, r.ImageSize, x, y);
        return (data, x, y);
    }

    private void Forget()
    {
        if (_data is { } d) { d.Images.Dispose(); d.Labels.Dispose(); _data = null; }
    }

    public void Dispose() => Forget();
}
