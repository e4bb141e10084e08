using System.Diagnostics;
using System.Text.Json;
using Sdd.Distill.Runs;
using Sdd.Ml.Data;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;
using TeacherModel = Sdd.Ml.Diffusion.Teacher;

namespace Sdd.Distill.Training;

/// <summary>What one chunk of a run achieved; <paramref name="Checkpoint"/> is the models-bucket key of the generation it switched to.</summary>
public sealed record ChunkResult(int Step, int TotalSteps, bool Finished, string? Checkpoint = null);

/// <summary>The outcome of a finished distillation: what the registry records about the editor version.</summary>
public sealed record DistilledEditor(int[] SelectedTimesteps, Dictionary<string, double> Metrics, IndicatorCurve? Curve);

/// <summary>
/// One chunk of an editor distillation (paper Sec. 4): on the first chunk, the HQS indicator chooses the timesteps;
/// every chunk resumes the editor from the checkpoint folder, trains until the chunk's budget, checkpoints and
/// uploads; the last one evaluates the editor with the teacher's judge on held-out images and draws a grid.
/// </summary>
public sealed class EditorDistiller(
    CheckpointStore checkpoints, ModelCache models, DatasetSource datasets, EditorRegistry registry,
    DistillOptions options, ILogger<EditorDistiller> log) : IDisposable
{
    private (Guid RunId, LabeledTensors Lacking, LoadedDataset? Dataset)? _data;

    public async Task<DistillRequest> ResolveAsync(Guid runId, Guid editorVersionId, int totalSteps, CancellationToken ct)
    {
        var version = await registry.FindVersionAsync(editorVersionId, ct) ?? throw new RunFailure($"Editor version {editorVersionId} of run {runId} does not exist.");
        var settings = DistillRequest.ParseSettings(version.SettingsJson, totalSteps);
        var attribute = version.Attribute!;
        // The attribute's name is its key in the registry; the teacher attribute it turns on may be named differently.
        var target = attribute.TargetAttribute is { Length: > 0 } t ? t : attribute.Name;
        var owner = attribute.Owner ?? throw new RunFailure($"Attribute '{attribute.Name}' has no owner.");
        return new DistillRequest(version.Id, target, version.Version, version.Teacher!, attribute.DatasetId, settings, KeyLayout.Editor(owner, attribute.Name, version.Version));
    }

    public async Task<(ChunkResult Result, DistilledEditor? Editor)> RunChunkAsync(Guid runId, DistillRequest r, int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping)
    {
        var dir = Path.Combine(options.WorkDir, "runs", runId.ToString("N"));
        if (from is not null) await checkpoints.DownloadAsync(r.Prefix, from, dir, stopping);
        else
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            Directory.CreateDirectory(dir);
        }
        var teacher = await models.TeacherAsync(r.Teacher, stopping);
        teacher.AttributeIndex(r.Attribute); // an attribute the teacher does not know fails the run here
        var lacking = await TrainingDataAsync(runId, r, teacher, stopping);

        IndicatorCurve? curve = null;
        var curvePath = Path.Combine(dir, "curve.json");
        if (r.Settings.Timesteps == "hqs")
        {
            if (File.Exists(curvePath)) curve = EditorRecipe.ReadCurve(curvePath);
            else
            {
                var sw = Stopwatch.StartNew();
                curve = await Task.Factory.StartNew(() => EditorRecipe.RunIndicator(teacher, r.Attribute, lacking.Images, lacking.Labels, r.Settings,
                    options.IndicatorSamples, xi: null, k: 5), stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                EditorRecipe.WriteCurve(curve, curvePath);
                CurvePlot.Save(curve, Path.Combine(dir, "curve.png"));
                await checkpoints.PutFileAsync(curvePath, r.Prefix + "curve.json", stopping);
                await checkpoints.PutFileAsync(Path.Combine(dir, "curve.png"), r.Prefix + "curve.png", stopping);
                await registry.RecordCurveAsync(r.EditorVersionId, curve, stopping);
                log.LogInformation("Run {RunId}: HQS indicator for {Attribute} over {Samples} images in {Seconds:0.0} s selected t = {Selected}",
                    runId, r.Attribute, curve.Samples, sw.Elapsed.TotalSeconds, string.Join(",", curve.Selected));
            }
        }
        else await registry.MarkDistillingAsync(r.EditorVersionId, stopping);

        var sampler = EditorRecipe.Sampler(r.Settings.Timesteps, curve, teacher.Config.TimeSteps);
        var config = new EditorConfig
        {
            Attribute = r.Attribute,
            ImageSize = teacher.Size,
            Teacher = $"{r.Teacher.Name}@{teacher.Config.Step}",
            SelectedTimesteps = sampler.Set ?? [sampler.Lo, sampler.Hi],
            Settings = r.Settings,
        };
        bool resume = File.Exists(Path.Combine(dir, "train", "state.json"));
        var (step, finished, editorDir) = await Task.Factory.StartNew(() =>
        {
            // Distillation owns (and disposes) the tensors it is given: hand it copies of the cached ones.
            using var images = lacking.Images.clone();
            using var labels = lacking.Labels.clone();
            using var run = new Distillation(dir, teacher, config, sampler, images, labels, resume);
            if (resume) log.LogInformation("Run {RunId}: chunk {Chunk} resumes from checkpoint step {Step}", runId, chunk, run.Step);
            else log.LogInformation("Run {RunId}: chunk {Chunk} starts at step 0 of {Total}", runId, chunk, r.Settings.Steps);
            int start = run.Step;
            var budget = new ChunkBudget(options, start, stopping, lease);
            while (run.Step < r.Settings.Steps && budget.Allows(run.Step))
            {
                var e = run.TrainStep();
                if (!double.IsFinite(e)) throw new RunFailure($"Distillation diverged at step {run.Step} (edit size {e}); lower the scale or raise lambda.");
            }
            run.Checkpoint();
            log.LogInformation("Run {RunId}: chunk {Chunk} trained steps {From}..{To} of {Total} in {Seconds:0.0} s",
                runId, chunk, start, run.Step, r.Settings.Steps, budget.Elapsed.TotalSeconds);
            return (run.Step, run.Step >= r.Settings.Steps, dir);
        }, stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        DistilledEditor? result = null;
        if (finished)
        {
            var metrics = await EvaluateAsync(runId, r, teacher, editorDir, stopping);
            // The editor's own config carries its metrics too.
            var saved = Editor.ReadConfig(editorDir);
            File.WriteAllText(Path.Combine(editorDir, TeacherModel.ConfigFile), JsonSerializer.Serialize(saved with { Metrics = metrics }, Ml.Diffusion.TeacherConfig.Json));
            result = new DistilledEditor(config.SelectedTimesteps, metrics, curve);
        }
        lease.ThrowIfLost();
        var switched = await checkpoints.SwitchAsync(editorDir, r.Prefix, chunk, step, lease, CancellationToken.None);
        if (finished)
        {
            await checkpoints.PublishAsync(editorDir, r.Prefix, CancellationToken.None);
            Forget(runId);
        }
        return (new ChunkResult(step, r.Settings.Steps, finished, CheckpointStore.GenerationKey(r.Prefix, switched)), result);
    }

    private async Task<LabeledTensors> TrainingDataAsync(Guid runId, DistillRequest r, TeacherModel teacher, CancellationToken ct)
    {
        if (_data is { } d && d.RunId == runId) return d.Lacking;
        Forget(null);
        var sw = Stopwatch.StartNew();
        LoadedDataset? dataset = null;
        LabeledTensors lacking;
        if (r.DatasetId is { } id)
        {
            dataset = await datasets.LoadAsync(id, ct);
            dataset.Set.AttributeIndex(r.Attribute);
            using var all = TrainingImages.FromDataset(dataset, teacher.Size, teacher.Attributes);
            var (x, y) = EditorRecipe.Lacking(all.Images, all.Labels, teacher.AttributeIndex(r.Attribute));
            lacking = new LabeledTensors(x, y);
        }
        else
        {
            lacking = TrainingImages.Portraits(r.Attribute, options.RenderImages, teacher.Size, seed: 1, teacher.Attributes);
        }
        log.LogInformation("Run {RunId}: {Count} training images lacking {Attribute} from {Source} in {Seconds:0.0} s",
            runId, lacking.Images.shape[0], r.Attribute, dataset?.Name ?? "rendered portraits", sw.Elapsed.TotalSeconds);
        _data = (runId, lacking, dataset);
        return lacking;
    }

    private void Forget(Guid? runId)
    {
        if (_data is { } d && (runId is null || d.RunId == runId)) { d.Lacking.Dispose(); _data = null; }
    }

    /// <summary>
    /// Editability, fidelity and the other attributes kept, on held-out images lacking the attribute, judged by the
    /// teacher's judge; the counterfactual PSNR where the images are synthetic portraits. Writes grid.png.
    /// </summary>
    private async Task<Dictionary<string, double>> EvaluateAsync(Guid runId, DistillRequest r, TeacherModel teacher, string dir, CancellationToken ct)
    {
        var dataset = _data is { } d && d.RunId == runId ? d.Dataset : null;
        var judgeDir = ModelCache.JudgeDir(await models.TeacherDirAsync(r.Teacher, ct));
        return await Task.Factory.StartNew(() =>
        {
            var sw = Stopwatch.StartNew();
            using var judge = judgeDir is null ? null : Judge.Load(judgeDir, TorchRuntime.Device);
            bool judged = judge is not null && judge.Config.AttributeNames.Contains(r.Attribute);
            IReadOnlyList<string> columns = judged ? judge!.Config.AttributeNames : teacher.Attributes;
            using var held = dataset is null || dataset.Synthetic
                ? TrainingImages.Portraits(r.Attribute, options.EvalImages, teacher.Size, HeldOutPortraits.HeldOutSeed, columns)
                : TrainingImages.HeldOutLacking(dataset, r.Attribute, options.EvalImages, teacher.Size, columns);
            using var editor = Editor.Load(dir, TorchRuntime.Device);
            editor.Edit(held.Images[TensorIndex.Slice(0, 1)]).Dispose(); // warm-up, so the timing is the steady state
            var (edited, ms) = Timed.Map(held.Images, 64, editor.Edit);
            using var _ = edited;
            var m = new Dictionary<string, double>
            {
                ["heldOutImages"] = held.Images.shape[0],
                ["msPerImage"] = Math.Round(ms, 3),
                ["imagesPerSecond"] = Math.Round(1000 / Math.Max(1e-6, ms), 1),
            };
            if (judged)
            {
                var scorer = new QualityScorer(judge!, r.Attribute, held.Images, held.Labels, held.Counterfactuals);
                var row = scorer.Score("sdd", edited, ms, 0);
                var none = scorer.Score("identity", held.Images, 0, 0);
                m["editability"] = row.Editability;
                m["othersKept"] = row.OthersKept;
                m["psnrSource"] = row.PsnrSource;
                m["ssimSource"] = row.SsimSource;
                if (row.PsnrCounterfactual is { } cf) m["psnrCounterfactual"] = cf;
                if (none.PsnrCounterfactual is { } cf0) m["identityPsnrCounterfactual"] = cf0;
                if (row.Fd is { } fd) m["fd"] = fd;
                m["identityEditability"] = none.Editability;
                if (judge!.Config.Accuracy.TryGetValue(r.Attribute, out var acc)) m["judgeAccuracy"] = acc;
            }
            else
            {
                using var scope = NewDisposeScope();
                m["psnrSource"] = Math.Round(ImageMetrics.Psnr(edited, held.Images).mean().item<float>(), 2);
                m["ssimSource"] = Math.Round(ImageMetrics.Ssim(edited, held.Images).mean().item<float>(), 4);
                if (held.Counterfactuals is { } c) m["psnrCounterfactual"] = Math.Round(ImageMetrics.Psnr(edited, c).mean().item<float>(), 2);
            }
            WriteGrid(held, edited, Path.Combine(dir, "grid.png"));
            log.LogInformation("Run {RunId}: evaluated the {Attribute} editor on {Count} held-out images in {Seconds:0.0} s: {Metrics}",
                runId, r.Attribute, held.Images.shape[0], sw.Elapsed.TotalSeconds, string.Join(", ", m.Select(kv => $"{kv.Key} {kv.Value}")));
            return m;
        }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Before/after grid: sources on top, the edits below, the true counterfactuals last when known; 8 columns, 3x.</summary>
    private static void WriteGrid(LabeledTensors held, Tensor edited, string path)
    {
        using var scope = NewDisposeScope();
        long n = Math.Min(8, held.Images.shape[0]);
        var rows = new List<Tensor> { held.Images[TensorIndex.Slice(0, n)], edited[TensorIndex.Slice(0, n)] };
        if (held.Counterfactuals is { } c) rows.Add(c[TensorIndex.Slice(0, n)]);
        var tiles = F.interpolate(cat(rows.ToArray()), scale_factor: [3.0, 3.0], mode: InterpolationMode.Nearest);
        ImageCodec.SavePng(ImageCodec.Grid(tiles, (int)n, 2), path);
    }

    public void Dispose() => Forget(null);
}
