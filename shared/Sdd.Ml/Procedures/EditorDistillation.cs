using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Guidance;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Procedures;

/// <summary>
/// How a host sizes a distillation run (not the method's settings): images the HQS indicator scores and how it picks,
/// held-out images the editor is evaluated on, checkpoint cadence. One set of defaults for the CLI and the worker.
/// </summary>
public sealed record DistillationSizes
{
    public int IndicatorSamples { get; init; } = 32;
    /// <summary>The k timesteps with the best HQS are selected, unless <see cref="IndicatorThreshold"/> is given.</summary>
    public int IndicatorBest { get; init; } = 5;
    /// <summary>When given, every timestep with HQS above it is selected (xi).</summary>
    public double? IndicatorThreshold { get; init; }
    public int EvalImages { get; init; } = 200;
    /// <summary>Validation images the automatic guidance scale is judged on.</summary>
    public int ValidationImages { get; init; } = 100;
    /// <summary>Checkpoint every this many steps within an advance (0: only at its end).</summary>
    public int CheckpointEvery { get; init; }
}

/// <summary>The outcome of a finished distillation: what the registry records about the editor version.</summary>
public sealed record DistilledEditor(int[] SelectedTimesteps, Dictionary<string, double> Metrics, IndicatorCurve? Curve);

/// <summary>
/// The distillation of one editor (paper Sec. 4) as a resumable procedure over a run folder, the one home of it for
/// the CLI, the quality benchmark and the distill worker. <see cref="Open"/> a folder (a fresh one, or one holding a
/// checkpoint), <see cref="SelectTimesteps"/> (the HQS indicator, once, for the "hqs" rule), <see cref="Calibrate"/>
/// (an automatic guidance scale, once), <see cref="Advance"/> within a step or time budget (checkpointing), and
/// <see cref="Finish"/> (evaluation on held-out images, metrics in the editor's config, grid.png). Files: the editor
/// (config.json, model.safetensors), train/ (checkpoint), curve.json and curve.png, calibration.json (and
/// calibration-probes.json while the search runs), grid.png.
/// </summary>
public sealed class EditorDistillation : IDisposable
{
    public const string CurveFile = "curve.json";
    public const string CurvePlotFile = "curve.png";
    public const string GridFile = "grid.png";
    public const string CalibrationFile = "calibration.json";
    public const string ProbesFile = "calibration-probes.json";
    public const string GateFile = "gate.json";
    private const string ProbeDir = "calibrate";

    private readonly Teacher _teacher;
    private readonly string? _teacherName;
    private readonly Tensor _images, _labels;
    private readonly (Tensor Images, Tensor Labels)? _positives;
    private Distillation? _run;

    public string Dir { get; }
    public string Attribute { get; }
    public DistillSettings Settings { get; }
    public DistillationSizes Sizes { get; }
    public IndicatorCurve? Curve { get; private set; }
    /// <summary>How the automatic scale was chosen, once it was (null for a given scale).</summary>
    public CalibratedScale? Calibration { get; private set; }
    /// <summary>The scale is automatic and not yet chosen: <see cref="Calibrate"/> before <see cref="Advance"/>.</summary>
    public bool NeedsCalibration => Settings.Guidance.AutoScale && Calibration is null;
    /// <summary>The settings the editor is trained with: <see cref="Settings"/> with the calibrated scale filled in.</summary>
    public DistillSettings Effective => Calibration is { } c ? Settings with { Guidance = Settings.Guidance with { Scale = c.Scale } } : Settings;
    /// <summary>Training images lacking the attribute.</summary>
    public long Images => _images.shape[0];
    /// <summary>Training images that have the attribute (drawn for <see cref="DistillSettings.PositiveShare"/> of a batch).</summary>
    public long Positives => _positives?.Images.shape[0] ?? 0;
    public int Step => _run?.Step ?? (File.Exists(StateFile(Dir)) ? TrainingState.Load(StateFile(Dir)).Step : 0);
    public bool Trained => Step >= Settings.Steps;
    /// <summary>
    /// Whether <see cref="Finish"/> chooses a mask gate on validation images (an automatic gate and a masked editor), so
    /// that callers render those images only when they are read.
    /// </summary>
    public bool ChoosesMaskGate => Settings.AutoMaskGate && Editor.Net.Masked;
    /// <summary>The editor being trained (after the timesteps are selected).</summary>
    public Editor Editor => Trainer().Editor;

    private EditorDistillation(string dir, Teacher teacher, string? teacherName, string attribute, Tensor images, Tensor labels,
        (Tensor, Tensor)? positives, DistillSettings settings, DistillationSizes sizes)
    {
        _positives = positives;
        Dir = dir;
        _teacher = teacher;
        _teacherName = teacherName;
        Attribute = attribute;
        _images = images;
        _labels = labels;
        Settings = settings;
        Sizes = sizes;
        var curvePath = Path.Combine(dir, CurveFile);
        if (File.Exists(curvePath)) Curve = ReadCurve(curvePath);
        var calibrationPath = Path.Combine(dir, CalibrationFile);
        if (File.Exists(calibrationPath)) Calibration = ReadJson<CalibratedScale>(calibrationPath);
    }

    /// <summary>Whether a run folder holds a checkpoint to resume from.</summary>
    public static bool HasCheckpoint(string dir) => File.Exists(StateFile(dir));

    private static string StateFile(string dir) => Path.Combine(dir, "train", "state.json");

    /// <summary>
    /// Opens a run folder. <paramref name="data"/>: training images with labels in the teacher's attribute order (the
    /// caller keeps them; the rows lacking the attribute are copied). With <paramref name="resume"/> a checkpoint in the
    /// folder is continued; without, the folder's previous run (if any) is discarded. <paramref name="teacherName"/>
    /// names the teacher in the editor's config (as name@step).
    /// </summary>
    public static EditorDistillation Open(string dir, Teacher teacher, string attribute, LabeledTensors data, DistillSettings settings,
        DistillationSizes? sizes = null, bool resume = true, string? teacherName = null)
    {
        settings.Validated();
        int a = teacher.AttributeIndex(attribute);
        if (settings.Timesteps != "hqs") TimestepSampler.Parse(settings.Timesteps, teacher.Config.TimeSteps); // a bad rule fails now
        if (!resume)
            foreach (var stale in new[] { Path.Combine(dir, "train"), Path.Combine(dir, CurveFile), Path.Combine(dir, CalibrationFile), Path.Combine(dir, ProbesFile), Path.Combine(dir, ProbeDir), Path.Combine(dir, GateFile) })
            {
                if (Directory.Exists(stale)) Directory.Delete(stale, recursive: true);
                else if (File.Exists(stale)) File.Delete(stale);
            }
        Directory.CreateDirectory(dir);
        var (x, y) = Lacking(data.Images, data.Labels, a);
        var positives = settings.PositiveShare > 0 ? Having(data.Images, data.Labels, a) : ((Tensor, Tensor)?)null;
        return new EditorDistillation(dir, teacher, teacherName, attribute, x, y, positives, settings, sizes ?? new DistillationSizes());
    }

    /// <summary>Rows of (images, labels) that have the attribute (label +1), as copies (possibly none).</summary>
    public static (Tensor Images, Tensor Labels) Having(Tensor images, Tensor labels, int attribute)
    {
        using var scope = NewDisposeScope();
        var idx = labels[.., attribute].gt(0).nonzero().flatten();
        return (images.index_select(0, idx).DetachFromDisposeScope(), labels.index_select(0, idx).DetachFromDisposeScope());
    }

    /// <summary>Rows of (images, labels) that lack the attribute (label -1), as copies.</summary>
    public static (Tensor Images, Tensor Labels) Lacking(Tensor images, Tensor labels, int attribute)
    {
        using var scope = NewDisposeScope();
        var idx = labels[.., attribute].lt(0).nonzero().flatten();
        if (idx.shape[0] == 0) throw new ArgumentException("No image in the data set lacks the attribute: nothing to learn the edit from.");
        return (images.index_select(0, idx).DetachFromDisposeScope(), labels.index_select(0, idx).DetachFromDisposeScope());
    }

    /// <summary>The HQS curve of a teacher and attribute over the first <paramref name="samples"/> images (paper Sec. 4.2).</summary>
    public static IndicatorCurve RunIndicator(Teacher teacher, string attribute, Tensor images, Tensor labels, DistillSettings s,
        int samples, double? xi, int k, Action<int, int>? progress = null)
    {
        using var scope = NewDisposeScope();
        long n = Math.Min(samples, images.shape[0]);
        var x = images[TensorIndex.Slice(0, n)];
        var states = AttributeCondition.FromLabels(labels[TensorIndex.Slice(0, n)]);
        return HybridQualityScore.Compute(teacher, attribute, x, states, s.Guidance, xi: xi, k: k, seed: s.Seed, progress: progress);
    }

    /// <summary>
    /// For the "hqs" rule, runs the indicator when the folder has no curve yet and writes curve.json and curve.png;
    /// returns true when it did (so a host can publish the curve). Other rules need nothing.
    /// </summary>
    public bool SelectTimesteps(Action<string, TrainingProgress>? progress = null)
    {
        if (Settings.Timesteps != "hqs" || Curve is not null) return false;
        Curve = RunIndicator(_teacher, Attribute, _images, _labels, Settings, Sizes.IndicatorSamples, Sizes.IndicatorThreshold, Sizes.IndicatorBest,
            (i, n) => progress?.Invoke("indicator", new TrainingProgress(i, n, 0, 0)));
        WriteCurve(Curve, Path.Combine(Dir, CurveFile));
        CurvePlot.Save(Curve, Path.Combine(Dir, CurvePlotFile));
        return true;
    }

    public TimestepSampler Sampler() =>
        Settings.Timesteps == "hqs"
            ? TimestepSampler.FromSet(Curve?.Selected ?? throw new InvalidOperationException("The hqs rule needs the indicator curve: call SelectTimesteps first."), "hqs")
            : TimestepSampler.Parse(Settings.Timesteps, _teacher.Config.TimeSteps);

    private EditorConfig NewConfig(DistillSettings settings, TimestepSampler sampler) => new()
    {
        Attribute = Attribute,
        ImageSize = _teacher.Size,
        Teacher = _teacherName is null ? null : $"{_teacherName}@{_teacher.Config.Step}",
        Prompt = _teacher.Config.Prompt,
        SourcePrompt = _teacher.Config.SourcePrompt,
        SelectedTimesteps = sampler.Set ?? [sampler.Lo, sampler.Hi],
        Settings = settings,
        Architecture = settings.Editor,
        Calibration = Calibration,
        Metrics = CalibrationMetrics(settings),
        MaskGate = settings.MaskGate ?? 0,
    };

    /// <summary>The scale and, when it was automatic, how it was found: metrics the registry shows beside the evaluation's.</summary>
    private Dictionary<string, double> CalibrationMetrics(DistillSettings settings)
    {
        var m = new Dictionary<string, double> { ["guidanceScale"] = settings.Guidance.RequireScale() };
        if (Calibration is { } c)
        {
            m["targetEditability"] = c.Target;
            m["calibrationReached"] = c.Reached ? 1 : 0;
            m["calibrationProbes"] = c.Probes.Count;
            if (c.Probes.FirstOrDefault(p => p.Scale == c.Scale) is { } chosen) m["validationEditability"] = chosen.Editability;
        }
        return m;
    }

    // Distillation disposes what it is given: hand it copies, this run keeps its own.
    private Distillation NewTrainer(string dir, DistillSettings settings, TimestepSampler sampler, bool resume) =>
        new(dir, _teacher, NewConfig(settings, sampler), sampler, _images.clone(), _labels.clone(), resume,
            _positives is { } p ? (p.Images.clone(), p.Labels.clone()) : null);

    private Distillation Trainer()
    {
        if (_run is not null) return _run;
        SelectTimesteps();
        if (NeedsCalibration) throw new InvalidOperationException("The guidance scale is automatic: call Calibrate (to its end) before training.");
        var settings = Effective;
        // A checkpoint written before editors had masks (its config names no architecture) resumes as what it is.
        if (HasCheckpoint(Dir) && File.Exists(Path.Combine(Dir, Teacher.ConfigFile)) && Editor.ReadConfig(Dir).Architecture is null)
            settings = settings with { Editor = EditorArchitecture.Residual };
        _run = NewTrainer(Dir, settings, Sampler(), resume: HasCheckpoint(Dir));
        return _run;
    }

    /// <summary>
    /// Chooses an automatic guidance scale (once; nothing to do for a given scale): the smallest scale of
    /// <see cref="ScaleCalibration.Grid"/> whose editor, distilled for <see cref="DistillSettings.ProbeSteps"/> steps
    /// at the selected timesteps, the judge sees with the attribute on at least <see cref="DistillSettings.TargetEditability"/>
    /// of <paramref name="validation"/> (images lacking the attribute from the validation split, labels in the teacher's order).
    /// Bounded: at most 6 probes (each grid scale once; 2 to 4 when the answer is near the reference) of ProbeSteps steps
    /// each (default a third of the run's steps: at most twice the run's steps, typically about its steps, plus one pass
    /// over the validation images per probe). Resumable between probes: each
    /// finished probe is recorded in calibration-probes.json, <paramref name="allows"/> (given the training step, 0 here)
    /// is asked before each, and a probe cut short is redone from its start, so a host's chunk must fit one probe
    /// (ProbeSteps steps and one pass over the validation images; about 40 s for 100 steps at 32 px on a CPU). A shorter probe
    /// than the full run errs toward a larger scale when editability grows with steps. Without a judge the mode's
    /// reference scale is used and recorded as such (likewise without validation images). Returns true when the scale is chosen.
    /// </summary>
    public bool Calibrate(Judge? judge, LabeledTensors? validation, Func<int, bool> allows, Action<string, TrainingProgress>? progress = null)
    {
        if (!NeedsCalibration) return true;
        var grid = ScaleCalibration.Grid(Settings.Guidance.Mode);
        CalibratedScale? found;
        var reference = GuidanceSettings.DefaultScale(Settings.Guidance.Mode);
        if (judge is null || !judge.Config.AttributeNames.Contains(Attribute))
            found = new CalibratedScale(reference, false, Settings.TargetEditability, grid, [], 0, 0, ScaleCalibration.NoJudgeMethod);
        else if (validation is null || validation.Images.shape[0] == 0)
            found = new CalibratedScale(reference, false, Settings.TargetEditability, grid, [], 0, 0, ScaleCalibration.NoValidationMethod);
        else
        {
            SelectTimesteps(progress);
            var sampler = Sampler();
            var probesPath = Path.Combine(Dir, ProbesFile);
            var known = File.Exists(probesPath) ? ReadJson<List<ScaleProbe>>(probesPath) : [];
            found = ScaleCalibration.Search(grid, Settings.TargetEditability, scale =>
            {
                if (!allows(Step)) return null;
                var e = Probe(scale, sampler, judge, validation.Images, progress);
                AtomicFile.Write(probesPath, p => File.WriteAllText(p, JsonSerializer.Serialize(known.Append(new ScaleProbe(scale, e)), ModelFolder.Json)));
                return e;
            }, known, Settings.ProbeSteps, (int)validation.Images.shape[0], refinements: Settings.CalibrationRefinements);
            if (found is null) return false;
        }
        AtomicFile.Write(Path.Combine(Dir, CalibrationFile), p => File.WriteAllText(p, JsonSerializer.Serialize(found, ModelFolder.Json)));
        if (File.Exists(Path.Combine(Dir, ProbesFile))) File.Delete(Path.Combine(Dir, ProbesFile));
        Calibration = found;
        return true;
    }

    /// <summary>One probe: a short distillation at <paramref name="scale"/> (a diverged one counts as editing nothing), then its editability.</summary>
    private double Probe(double scale, TimestepSampler sampler, Judge judge, Tensor validation, Action<string, TrainingProgress>? progress)
    {
        var dir = Path.Combine(Dir, ProbeDir);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var settings = Settings with { Steps = Settings.ProbeSteps, Guidance = Settings.Guidance with { Scale = scale } };
        using var trainer = NewTrainer(dir, settings, sampler, resume: false);
        var sw = Stopwatch.StartNew();
        bool diverged = false;
        for (int i = 0; i < settings.Steps && !diverged; i++)
        {
            var e = trainer.TrainStep();
            diverged = !double.IsFinite(e);
            progress?.Invoke($"calibrate s={scale:0.###}", new TrainingProgress(trainer.Step, settings.Steps, e, trainer.Step / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
        }
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        return diverged ? 0 : Editability(trainer.Editor, judge, Attribute, validation);
    }

    /// <summary>The share of edited images the judge sees with the attribute.</summary>
    public static double Editability(Editor editor, Judge judge, string attribute, Tensor images)
    {
        int a = judge.AttributeIndex(attribute);
        var (edited, _) = Timed.Map(images, 64, editor.Edit);
        using var _ = edited;
        using var scope = NewDisposeScope();
        return Math.Round(Judge.ShareCalledPresent(judge.Probabilities(edited)[.., a]), 4);
    }

    /// <summary>
    /// Selects the timesteps if needed, then trains while <paramref name="allows"/> the next step (given the current
    /// one) and the run is not done, and checkpoints. Returns the steps trained. A diverged run throws
    /// <see cref="InvalidOperationException"/> saying so.
    /// </summary>
    public int Advance(Func<int, bool> allows, Action<string, TrainingProgress>? progress = null)
    {
        SelectTimesteps(progress);
        if (NeedsCalibration) throw new InvalidOperationException("The guidance scale is automatic: call Calibrate (to its end) before training.");
        var run = Trainer();
        return run.Advance(allows, Settings.Steps, p => progress?.Invoke("distill", p), Sizes.CheckpointEvery);
    }

    /// <summary>Advances to the end (or until cancelled).</summary>
    public int AdvanceToEnd(Action<string, TrainingProgress>? progress = null, CancellationToken cancel = default) =>
        Advance(_ => !cancel.IsCancellationRequested, progress);

    /// <summary>
    /// Evaluates the trained editor on held-out images lacking the attribute (<paramref name="held"/>, labels in
    /// <paramref name="judge"/>'s attribute order when judged, else the teacher's): editability, fidelity and the other
    /// attributes kept as the teacher's judge sees them, the counterfactual PSNR where the images have counterfactuals,
    /// speed. Writes the metrics into the editor's config and the before/after grid.png. A masked editor's automatic gate
    /// (<see cref="DistillSettings.MaskGate"/> null) is chosen first, on <paramref name="validation"/> (images lacking the
    /// attribute, the ones the scale was calibrated on) by <see cref="MaskGating"/>'s rule at the target editability, and
    /// written to gate.json; without a judge or validation images the editor stays ungated. The evaluation is the gated editor's.
    /// </summary>
    public DistilledEditor Finish(LabeledTensors held, Judge? judge, LabeledTensors? validation = null)
    {
        if (!Trained) throw new InvalidOperationException($"The run is at step {Step} of {Settings.Steps}: advance it to the end before finishing.");
        var run = Trainer();
        var editor = run.Editor;
        var gateMetrics = ApplyMaskGate(judge, validation);
        foreach (var kv in FitDomainGate(validation, held)) gateMetrics[kv.Key] = kv.Value;
        editor.Edit(held.Images[TensorIndex.Slice(0, 1)]).Dispose(); // warm-up, so the timing is the steady state
        var (edited, ms) = Timed.Map(held.Images, 64, editor.Edit);
        using var _ = edited;
        var m = new Dictionary<string, double>
        {
            ["heldOutImages"] = held.Images.shape[0],
            ["msPerImage"] = Math.Round(ms, 3),
            ["imagesPerSecond"] = Math.Round(1000 / Math.Max(1e-6, ms), 1),
        };
        if (judge is not null && judge.Config.AttributeNames.Contains(Attribute))
        {
            using var scorer = new QualityScorer(judge, Attribute, held.Images, held.Labels, held.Counterfactuals);
            var row = scorer.Score("sdd", edited, ms, 0);
            var none = scorer.Score("identity", held.Images, 0, 0);
            m["editability"] = row.Editability;
            m["othersKept"] = row.OthersKept;
            m["psnrSource"] = row.PsnrSource;
            m["ssimSource"] = row.SsimSource;
            if (row.PsnrCounterfactual is { } cf) m["psnrCounterfactual"] = cf;
            if (none.PsnrCounterfactual is { } cf0) m["identityPsnrCounterfactual"] = cf0;
            if (row.PsnrInRegion is { } inside) m["psnrInRegion"] = inside;
            if (none.PsnrInRegion is { } inside0) m["identityPsnrInRegion"] = inside0;
            if (row.PsnrOutsideRegion is { } outside) m["psnrOutsideRegion"] = outside;
            if (row.Fd is { } fd) m["fd"] = fd;
            m["identityEditability"] = none.Editability;
            if (judge.Config.Accuracy.TryGetValue(Attribute, out var acc)) m["judgeAccuracy"] = acc;
        }
        else
        {
            using var scope = NewDisposeScope();
            m["psnrSource"] = Math.Round(ImageMetrics.Psnr(edited, held.Images).mean().item<float>(), 2);
            m["ssimSource"] = Math.Round(ImageMetrics.Ssim(edited, held.Images).mean().item<float>(), 4);
            if (held.Counterfactuals is { } c) m["psnrCounterfactual"] = Math.Round(ImageMetrics.Psnr(edited, c).mean().item<float>(), 2);
        }
        foreach (var kv in gateMetrics) m[kv.Key] = kv.Value;
        WriteGrid(held, edited, Path.Combine(Dir, GridFile));
        run.Checkpoint(m);
        // The config's metrics: the evaluation's and the guidance scale's (how it was calibrated), as the registry shows them.
        return new DistilledEditor(editor.Config.SelectedTimesteps, new Dictionary<string, double>(editor.Config.Metrics), Curve);
    }

    /// <summary>
    /// Sets the trained editor's mask gate: the automatic one chosen on <paramref name="validation"/> (see
    /// <see cref="Finish"/>, which calls this), else the given one. Returns its metrics (maskGate, and for a chosen gate the
    /// validation editability with and without it).
    /// </summary>
    public Dictionary<string, double> ApplyMaskGate(Judge? judge, LabeledTensors? validation)
    {
        if (!Trained) throw new InvalidOperationException($"The run is at step {Step} of {Settings.Steps}: the gate is chosen on the trained editor.");
        var run = Trainer();
        var path = Path.Combine(Dir, GateFile);
        if (File.Exists(path)) File.Delete(path);
        if (!ChoosesMaskGate) return new() { ["maskGate"] = run.Editor.Net.MaskGate };
        if (judge is null || !judge.Config.AttributeNames.Contains(Attribute) || validation is null || validation.Images.shape[0] == 0)
        {
            run.SetMaskGate(0);
            return new() { ["maskGate"] = 0 };
        }
        var choice = MaskGating.Choose(run.Editor, judge, Attribute, validation.Images, Settings.TargetEditability);
        run.SetMaskGate(choice.Gate);
        AtomicFile.Write(path, p => File.WriteAllText(p, JsonSerializer.Serialize(choice, ModelFolder.Json)));
        return new()
        {
            ["maskGate"] = choice.Gate,
            ["gateValidationEditability"] = Math.Round(choice.Trials.Single(t => t.Gate == choice.Gate).Editability, 4),
            ["ungatedValidationEditability"] = Math.Round(choice.Trials.Single(t => t.Gate == 0).Editability, 4),
        };
    }

    /// <summary>Validation images below which the domain gate's calibration also holds out a tenth of the training images.</summary>
    public const int MinDomainCalibration = 50;

    /// <summary>
    /// Fits the editor's <see cref="DomainGate"/> on the run's training images (with the positives, if any) and calibrates its
    /// threshold on <paramref name="validation"/>. With fewer than <see cref="MinDomainCalibration"/> validation images
    /// (none, or a small data set's split) every tenth training image is held out of the fit and calibrated on as well:
    /// a threshold set on ten images is their maximum, and about one new in-domain image in ten would be refused.
    /// Returns its metrics: the threshold, the share of the calibration images and of <paramref name="held"/> (the
    /// held-out images) that pass.
    /// </summary>
    public Dictionary<string, double> FitDomainGate(LabeledTensors? validation, LabeledTensors held)
    {
        var run = Trainer();
        using var scope = NewDisposeScope();
        var all = _positives is { } p ? cat([_images, p.Images]) : _images;
        Tensor fit = all, calibration;
        long given = validation?.Images.shape[0] ?? 0;
        string on = "validation";
        if (given >= MinDomainCalibration) calibration = validation!.Images;
        else
        {
            var tenth = arange(all.shape[0], device: all.device).remainder(10).eq(0);
            fit = all[tenth.logical_not()];
            calibration = given > 0 ? cat([validation!.Images, all[tenth]]) : all[tenth];
            on = given > 0 ? "validation+training-holdout" : "training-holdout";
        }
        var gate = DomainGate.Fit(fit);
        var config = gate.Calibrate(calibration, calibratedOn: on);
        run.SetDomain(gate);
        var heldScores = gate.Scores(held.Images);
        return new()
        {
            ["domainThreshold"] = config.Threshold,
            ["domainCalibrationPass"] = config.CalibrationPassRate,
            ["domainHeldOutPass"] = Math.Round(heldScores.Count(x => gate.Passes(x)) / (double)Math.Max(1, heldScores.Length), 4),
        };
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

    public static void WriteCurve(IndicatorCurve curve, string path) => File.WriteAllText(path, JsonSerializer.Serialize(curve, ModelFolder.Json));

    public static IndicatorCurve ReadCurve(string path) => ReadJson<IndicatorCurve>(path);

    private static T ReadJson<T>(string path) =>
        JsonSerializer.Deserialize<T>(File.ReadAllText(path), ModelFolder.Json) ?? throw new InvalidDataException($"'{path}' is empty.");

    public void Dispose()
    {
        _run?.Dispose();
        _images.Dispose();
        _labels.Dispose();
        if (_positives is { } p) { p.Images.Dispose(); p.Labels.Dispose(); }
    }
}
