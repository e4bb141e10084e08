using System.Diagnostics;
using Sdd.Distill.Runs;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;
using TeacherModel = Sdd.Ml.Diffusion.Teacher;

namespace Sdd.Distill.Training;

/// <summary>What one chunk of a run achieved; <paramref name="Checkpoint"/> is the models-bucket key of the generation it switched to.</summary>
public sealed record ChunkResult(int Step, int TotalSteps, bool Finished, string? Checkpoint = null);

/// <summary>
/// The worker's side of an editor distillation: the procedure itself is <see cref="EditorDistillation"/> (the CLI's too);
/// around each chunk this downloads the run folder's checkpoint, loads the teacher and the training images (kept for the
/// run's next chunk), publishes the HQS curve when the procedure computes it, calibrates an automatic guidance scale
/// (with the teacher's judge and the validation split, within the chunk's budget; the probes done travel with the
/// folder to the next chunk), advances the procedure within the chunk's budget, finishes it on the last chunk (with the
/// teacher's judge), and uploads the folder.
/// </summary>
public sealed class EditorDistiller(
    CheckpointStore checkpoints, ModelCache models, DatasetSource datasets, EditorRegistry registry,
    DistillOptions options, ILogger<EditorDistiller> log) : IDisposable
{
    private (Guid RunId, LabeledTensors Data, LoadedDataset? Dataset)? _data;

    public async Task<DistillRequest> ResolveAsync(Guid runId, Guid editorVersionId, CancellationToken ct)
    {
        var version = await registry.FindVersionAsync(editorVersionId, ct) ?? throw new RunFailure($"Editor version {editorVersionId} of run {runId} does not exist.");
        DistillSettings settings;
        try { settings = DistillSettings.FromApiJson(version.SettingsJson); }
        catch (FormatException e) { throw new RunFailure($"Editor version {version.Version}: {e.Message}", e); }
        var attribute = version.Attribute!;
        // The attribute's name is its key in the registry; the teacher attribute it turns on may be named differently.
        var target = attribute.TargetAttribute is { Length: > 0 } t ? t : attribute.Name;
        var owner = attribute.Owner ?? throw new RunFailure($"Attribute '{attribute.Name}' has no owner.");
        // Checked at every chunk, by the API's rule (one's own teacher, or a published one): an unpublish reaches a run
        // already accepted, and a run that has not finished stops distilling another owner's model.
        if (version.Teacher is { } teacher && teacher.Owner != owner && !teacher.IsPublished)
            throw new RunFailure($"The teacher '{teacher.Name}' is another owner's and no longer published; it was withdrawn after this run was accepted.");
        return new DistillRequest(version.Id, target, version.Version, version.Teacher!, attribute.DatasetId, settings, KeyLayout.Editor(owner, attribute.Name, version.Version),
            attribute.Prompt, attribute.SourcePrompt);
    }

    public async Task<(ChunkResult Result, DistilledEditor? Editor)> RunChunkAsync(Guid runId, DistillRequest r, int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping)
    {
        var dir = Path.Combine(options.WorkDir, "runs", runId.ToString("N"));
        if (from is not null) await checkpoints.DownloadAsync(r.Prefix, from, dir, stopping);
        else if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var teacher = await models.TeacherAsync(r.Teacher, stopping, r.Attribute, r.Prompt, r.SourcePrompt);
        teacher.AttributeIndex(r.Attribute); // an attribute the teacher does not know fails the run here
        var data = await TrainingDataAsync(runId, r, teacher, stopping);
        var judgeDir = ModelCache.JudgeDir(await models.TeacherDirAsync(r.Teacher, stopping));

        using var run = EditorDistillation.Open(dir, teacher, r.Attribute, data, r.Settings, options.Sizes, resume: true, teacherName: r.Teacher.Name);
        var sw = Stopwatch.StartNew();
        if (await OnWorkerThread(() => run.SelectTimesteps(), stopping))
        {
            var curve = run.Curve!;
            await checkpoints.PutFileAsync(Path.Combine(dir, EditorDistillation.CurveFile), r.Prefix + EditorDistillation.CurveFile, stopping);
            await checkpoints.PutFileAsync(Path.Combine(dir, EditorDistillation.CurvePlotFile), r.Prefix + EditorDistillation.CurvePlotFile, stopping);
            await registry.RecordCurveAsync(r.EditorVersionId, curve, stopping);
            log.LogInformation("Run {RunId}: HQS indicator for {Attribute} over {Samples} images in {Seconds:0.0} s selected t = {Selected}",
                runId, r.Attribute, curve.Samples, sw.Elapsed.TotalSeconds, string.Join(",", curve.Selected));
        }
        else if (run.Curve is null) await registry.MarkDistillingAsync(r.EditorVersionId, stopping);

        var budget = new ChunkBudget(options, run.Step, stopping, lease);
        if (run.NeedsCalibration)
        {
            var dataset = _data is { } d0 && d0.RunId == runId ? d0.Dataset : null;
            var calibrated = await OnWorkerThread(() =>
            {
                using var judge = judgeDir is null ? null : Judge.Load(judgeDir, TorchRuntime.Device);
                using var validation = judge is null ? null : RunImages.Validation(dataset, r.Attribute, options.Sizes.ValidationImages, teacher.Size, teacher.Attributes);
                return run.Calibrate(judge, validation, budget.Allows);
            }, stopping);
            var c = run.Calibration;
            log.LogInformation("Run {RunId}: guidance scale {State} for {Attribute}: {Scale} ({Method}, target {Target}, reached {Reached}); probes {Probes}",
                runId, calibrated ? "calibrated" : "search continues next chunk", r.Attribute, c?.Scale, c?.Method, r.Settings.TargetEditability, c?.Reached,
                c is null ? "-" : string.Join(", ", c.Probes.Select(p => $"{p.Scale}:{p.Editability}")));
        }

        int start = run.Step;
        if (start > 0) log.LogInformation("Run {RunId}: chunk {Chunk} resumes from checkpoint step {Step}", runId, chunk, start);
        else log.LogInformation("Run {RunId}: chunk {Chunk} starts at step 0 of {Total}", runId, chunk, r.Settings.Steps);
        if (!run.NeedsCalibration) await OnWorkerThread(() => run.Advance(budget.Allows), stopping);
        log.LogInformation("Run {RunId}: chunk {Chunk} trained steps {From}..{To} of {Total} in {Seconds:0.0} s",
            runId, chunk, start, run.Step, r.Settings.Steps, budget.Elapsed.TotalSeconds);

        DistilledEditor? result = null;
        if (run.Trained)
        {
            var dataset = _data is { } d && d.RunId == runId ? d.Dataset : null;
            result = await OnWorkerThread(() =>
            {
                var clock = Stopwatch.StartNew();
                using var judge = judgeDir is null ? null : Judge.Load(judgeDir, TorchRuntime.Device);
                IReadOnlyList<string> columns = judge is not null && judge.Config.AttributeNames.Contains(r.Attribute) ? judge.Config.AttributeNames : teacher.Attributes;
                using var held = RunImages.Evaluation(dataset, r.Attribute, options.Sizes.EvalImages, teacher.Size, columns);
                // The validation images choose the automatic mask gate (with a judge) and calibrate the domain gate (always).
                using var gateImages = RunImages.Validation(dataset, r.Attribute, options.Sizes.ValidationImages, teacher.Size, teacher.Attributes);
                var editor = run.Finish(held, judge, gateImages);
                log.LogInformation("Run {RunId}: evaluated the {Attribute} editor on {Count} held-out images in {Seconds:0.0} s: {Metrics}",
                    runId, r.Attribute, held.Images.shape[0], clock.Elapsed.TotalSeconds, string.Join(", ", editor.Metrics.Select(kv => $"{kv.Key} {kv.Value}")));
                return editor;
            }, stopping);
        }
        int step = run.Step;
        lease.ThrowIfLost();
        var switched = await checkpoints.SwitchAsync(dir, r.Prefix, chunk, step, lease, CancellationToken.None);
        if (result is not null)
        {
            await checkpoints.PublishAsync(dir, r.Prefix, CancellationToken.None);
            Forget(runId);
        }
        return (new ChunkResult(step, r.Settings.Steps, result is not null, CheckpointStore.GenerationKey(r.Prefix, switched)), result);
    }

    /// <summary>Torch work runs on its own thread, off the thread pool.</summary>
    private static Task<T> OnWorkerThread<T>(Func<T> work, CancellationToken ct) =>
        Task.Factory.StartNew(work, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>The run's training images (labels in the teacher's order): the data set's training split, else rendered portraits.</summary>
    private async Task<LabeledTensors> TrainingDataAsync(Guid runId, DistillRequest r, TeacherModel teacher, CancellationToken ct)
    {
        if (_data is { } d && d.RunId == runId) return d.Data;
        Forget(null);
        var sw = Stopwatch.StartNew();
        LoadedDataset? dataset = null;
        LabeledTensors data;
        if (r.DatasetId is { } id)
        {
            dataset = await datasets.LoadAsync(id, ct);
            // A prompt attribute reads plain photos: every image lacks the attribute, whatever labels.csv says.
            if (r.Prompted) dataset = dataset with { Set = dataset.Set.AsPlain(r.Attribute), Synthetic = false };
            dataset.Set.AttributeIndex(r.Attribute);
            data = RunImages.Training(dataset, teacher.Size, teacher.Attributes);
        }
        // With positives in the batches, a quarter as many portraits that already have the attribute.
        else data = RunImages.TrainingPortraits(r.Attribute, options.RenderImages, r.Settings.PositiveShare > 0 ? options.RenderImages / 4 : 0,
            teacher.Size, seed: 1, teacher.Attributes);
        log.LogInformation("Run {RunId}: {Count} training images for {Attribute} from {Source} in {Seconds:0.0} s",
            runId, data.Images.shape[0], r.Attribute, dataset?.Name ?? "rendered portraits", sw.Elapsed.TotalSeconds);
        _data = (runId, data, dataset);
        return data;
    }

    private void Forget(Guid? runId)
    {
        if (_data is { } d && (runId is null || d.RunId == runId)) { d.Data.Dispose(); _data = null; }
    }

    public void Dispose() => Forget(null);
}
