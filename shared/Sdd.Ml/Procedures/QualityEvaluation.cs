using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Procedures;

/// <summary>
/// What the quality benchmark runs (one set of defaults). Three disjoint splits of the procedural portraits: editors
/// train on the training seed's portraits, every choice (the guidance scale of each timestep policy) is made on the
/// validation seed's, every figure comes from the held-out seed's. Each SDD policy is calibrated to the same target
/// editability (matched editability), once per attribute with the first seed; the other seeds train at that scale.
/// </summary>
public sealed record QualityBenchSettings
{
    public required string[] Attributes { get; init; }
    public int[] Seeds { get; init; } = [1, 2, 3];
    /// <summary>Test images lacking the attribute (the edit's inputs, with counterfactuals).</summary>
    public int TestImages { get; init; } = 100;
    /// <summary>Test images that already have it, edited again (the double edit); the first of <see cref="ReferenceImages"/>.</summary>
    public int DoubleEditImages { get; init; } = 50;
    /// <summary>Test images with the attribute the KID and FD are measured to (other faces than the edited ones).</summary>
    public int ReferenceImages { get; init; } = 200;
    /// <summary>Training portraits lacking the attribute (a quarter as many that have it join when the positive share is on).</summary>
    public int TrainImages { get; init; } = 2000;
    /// <summary>SDD timestep policies, each a row: hqs, random, fixed:T.</summary>
    public string[] Policies { get; init; } = ["hqs", "random", "fixed:500"];
    /// <summary>SDEdit rows (noise to t0, DDIM 50·t0/1000 steps under guidance).</summary>
    public int[] SdeditT0 { get; init; } = [100, 150, 200, 300, 400, 600];
    /// <summary>DDIM inversion rows (invert to t0 under the source condition, regenerate under the target; 50·t0/1000 steps each way).</summary>
    public int[] InversionT0 { get; init; } = [300, 600];
    /// <summary>Classifier-free guidance of the baselines' denoising.</summary>
    public double BaselineGuidance { get; init; } = 3.0;
    public DistillSettings Distill { get; init; } = new();
    public DistillationSizes Sizes { get; init; } = new() { CheckpointEvery = 100 };
}

/// <summary>
/// One measured cell: a method on one attribute with one seed. Double edit: the same method on test images that already
/// have the attribute: PSNR to their source and the share the judge still sees with it.
/// </summary>
public sealed record QualityCell(string Attribute, string Method, int Seed, QualityRow Row, double? DoublePsnrSource, double? DoubleKept,
    double? Scale = null, bool? ScaleReached = null, double? TrainSeconds = null, int[]? Timesteps = null, double? MaskGate = null);

public sealed record Spread(double Mean, double Std, int N);

/// <summary>A method's figures over seeds (mean and sample standard deviation).</summary>
public sealed record QualitySummary(string Attribute, string Method, Dictionary<string, Spread> Figures);

/// <summary>
/// Per attribute: the HQS selection (first seed) and its rank correlation with the gradient norm alone; SDD-HQS against the
/// method issue's targets; the quality-matched SDEdit row (editability >= 90 % and the best in-region PSNR).
/// </summary>
public sealed record AttributeFindings(string Attribute, int[] HqsSelected, double? HqsNormRankCorrelation, Dictionary<string, bool> TargetsMet,
    string? QualityMatchedSdedit);

public sealed record QualityBenchReport(string Teacher, int TeacherStep, string Judge, string Protocol, QualityBenchSettings Settings,
    List<QualityCell> Cells, List<QualitySummary> Summary, List<AttributeFindings> Findings, double ElapsedMinutes);

/// <summary>
/// The quality benchmark as a resumable procedure over a work folder and a results file: every cell (attribute, method,
/// seed) is appended to the JSON as it finishes and skipped when the file already holds it; editors keep their
/// checkpoints in the work folder, so a killed run continues where it stopped. Rows: no edit, each SDD timestep policy
/// at matched editability, SDEdit at each t0, DDIM inversion at each t0; every figure for every seed.
/// </summary>
public sealed class QualityEvaluation(Teacher teacher, Judge judge, QualityBenchSettings settings, string work, string json, string? markdown = null,
    Action<string>? log = null)
{
    public const string Protocol =
        "splits: editors train on portraits of seed 1, the guidance scale of each SDD policy is chosen on the validation seed's portraits " +
        "(smallest scale reaching the target editability; first seed, reused by the others), every figure is on the held-out seed's portraits. " +
        "edit%: judge sees the attribute on the edited test images lacking it. in-region: PSNR to the true counterfactual over the pixels where " +
        "the counterfactual differs from the source (grown 1 px); outside: PSNR to the source over the other pixels; whole: PSNR to the counterfactual. " +
        "double edit: the method on test images that already have the attribute, PSNR to their source. KID (x1000) and FD: judge features of the " +
        "edited images against other test faces that have the attribute. mean ± sample std over seeds (SDEdit: noise seed; DDIM inversion is " +
        "deterministic, one seed).";

    private readonly List<QualityCell> _cells = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private double _earlierMinutes;
    /// <summary>Rank correlations a resumed file recorded: the curve they came from may be gone with an earlier work folder.</summary>
    private readonly Dictionary<string, double> _earlierRho = [];

    public IReadOnlyList<QualityCell> Cells => _cells;

    private string Key() => JsonSerializer.Serialize(settings with { Attributes = [] }, ModelFolder.Json);

    /// <summary>Runs every cell not yet in the results file. Throws when the file was written with other settings (start a new file).</summary>
    public QualityBenchReport Run(CancellationToken cancel = default)
    {
        Directory.CreateDirectory(work);
        if (File.Exists(json))
        {
            var old = JsonSerializer.Deserialize<QualityBenchReport>(File.ReadAllText(json), ModelFolder.Json)
                      ?? throw new InvalidDataException($"'{json}' is empty.");
            if (JsonSerializer.Serialize(old.Settings with { Attributes = [] }, ModelFolder.Json) != Key())
                throw new InvalidOperationException($"'{json}' holds results of other settings: give another --json to start anew.");
            _cells.AddRange(old.Cells);
            _earlierMinutes = old.ElapsedMinutes;
            foreach (var f in old.Findings ?? []) if (f.HqsNormRankCorrelation is { } r) _earlierRho[f.Attribute] = r;
            log?.Invoke($"resuming: {old.Cells.Count} cells in {json}");
        }
        foreach (var attribute in settings.Attributes)
        {
            if (cancel.IsCancellationRequested) break;
            RunAttribute(attribute, cancel);
        }
        return Save();
    }

    private bool Has(string attribute, string method, int seed) => _cells.Any(c => c.Attribute == attribute && c.Method == method && c.Seed == seed);

    private void Add(QualityCell cell)
    {
        _cells.Add(cell);
        var r = cell.Row;
        log?.Invoke($"  {cell.Attribute} {cell.Method} seed {cell.Seed}: edit {r.Editability:P0}, in-region {r.PsnrInRegion:0.00} dB, outside {r.PsnrOutsideRegion:0.00} dB, " +
                    $"double {cell.DoublePsnrSource:0.00} dB, KID {r.Kid * 1000:0.00}e-3, {r.MsPerImage:0.0} ms/img" + (cell.Scale is { } s ? $", s={s}" : "") + (cell.MaskGate is { } g ? $", mask gate {g}" : ""));
        Save();
    }

    private QualityBenchReport Save()
    {
        var report = new QualityBenchReport($"{teacher.Config.Kind} {teacher.Size}px", teacher.Config.Step, $"judge {judge.Size}px", Protocol, settings,
            _cells.ToList(), Summarise(_cells), settings.Attributes.Select(Findings).Where(f => f is not null).Select(f => f!).ToList(),
            Math.Round(_earlierMinutes + _clock.Elapsed.TotalMinutes, 1));
        AtomicFile.Write(json, p => File.WriteAllText(p, JsonSerializer.Serialize(report, ModelFolder.Json)));
        if (markdown is not null) AtomicFile.Write(markdown, p => File.WriteAllText(p, QualityTables.Markdown(report)));
        return report;
    }

    private void RunAttribute(string attribute, CancellationToken cancel)
    {
        var dir = Path.Combine(work, attribute);
        var strips = Path.Combine(dir, "strips");
        Directory.CreateDirectory(strips);
        var judgeAttrs = judge.Config.AttributeNames;
        int a = teacher.AttributeIndex(attribute);
        using var test = RunImages.Portraits(attribute, settings.TestImages, teacher.Size, HeldOutPortraits.HeldOutSeed, judgeAttrs);
        using var having = HeldOutPortraits.Render(attribute, present: true, Math.Max(settings.ReferenceImages, settings.DoubleEditImages), teacher.Size, HeldOutPortraits.HeldOutSeed);
        using var doubles = having.Images[TensorIndex.Slice(0, settings.DoubleEditImages)].clone();
        using var doubleLabels = RunImages.Reorder(having.Labels[TensorIndex.Slice(0, settings.DoubleEditImages)], PortraitAttributes.All, teacher.Attributes);
        using var scorer = new QualityScorer(judge, attribute, test.Images, test.Labels, test.Counterfactuals, having.Images);
        using var testStates = AttributeCondition.FromLabels(RunImages.Reorder(test.Labels, judgeAttrs, teacher.Attributes));
        using var doubleStates = AttributeCondition.FromLabels(doubleLabels);
        int ja = judge.AttributeIndex(attribute);
        SaveStrip(test.Images, Path.Combine(strips, "source.png"));
        SaveStrip(test.Counterfactuals!, Path.Combine(strips, "counterfactual.png"));
        SaveStrip(doubles, Path.Combine(strips, "source-double.png"));

        void Measure(string method, int seed, Func<Tensor, Tensor, Tensor> edit, double nfe, double? scale = null, bool? reached = null, double? trainSeconds = null, int[]? timesteps = null,
            double? maskGate = null)
        {
            edit(test.Images[TensorIndex.Slice(0, 2)], testStates[TensorIndex.Slice(0, 2)]).Dispose(); // warm-up: the timing is the steady state
            var (edited, ms) = MapWithStates(test.Images, testStates, edit);
            var (again, _) = MapWithStates(doubles, doubleStates, edit);
            using (edited) using (again)
            {
                var row = scorer.Score(method, edited, ms, nfe);
                double doublePsnr, kept;
                using (var scope = NewDisposeScope())
                {
                    doublePsnr = Math.Round(ImageMetrics.Psnr(again, doubles).mean().item<float>(), 2);
                    kept = Math.Round(Judge.ShareCalledPresent(judge.Probabilities(again)[.., ja]), 4);
                }
                if (seed == settings.Seeds[0])
                {
                    SaveStrip(edited, Path.Combine(strips, $"{method}.png"));
                    SaveStrip(again, Path.Combine(strips, $"{method}-double.png"));
                }
                Add(new QualityCell(attribute, method, seed, row, doublePsnr, kept, scale, reached, trainSeconds, timesteps, maskGate));
            }
        }

        if (!Has(attribute, "no edit", 0)) Measure("no edit", 0, (x, _) => x.alias(), 0);

        // SDD: each timestep policy calibrated on the validation split (first seed), then trained with every seed.
        LabeledTensors? train = null, validation = null;
        try
        {
            foreach (var policy in settings.Policies)
            {
                var method = "sdd-" + policy.Replace(':', '-');
                double? scale = null; bool? reached = null;
                foreach (var seed in settings.Seeds)
                {
                    if (cancel.IsCancellationRequested) return;
                    var first = seed == settings.Seeds[0];
                    if (!first)
                    {
                        var c = _cells.FirstOrDefault(x => x.Attribute == attribute && x.Method == method && x.Seed == settings.Seeds[0]);
                        scale ??= c?.Scale; reached ??= c?.ScaleReached;
                    }
                    if (Has(attribute, method, seed)) continue;
                    train ??= RunImages.TrainingPortraits(attribute, settings.TrainImages, settings.Distill.PositiveShare > 0 ? settings.TrainImages / 4 : 0,
                        teacher.Size, seed: 1, teacher.Attributes);
                    var s = settings.Distill with { Timesteps = policy, Seed = seed };
                    if (!first && scale is { } chosen) s = s with { Guidance = s.Guidance with { Scale = chosen } };
                    var sw = Stopwatch.StartNew();
                    using var data = new LabeledTensors(train.Images.alias(), train.Labels.alias());
                    using var run = EditorDistillation.Open(Path.Combine(dir, $"{method}-seed{seed}"), teacher, attribute, data, s, settings.Sizes, resume: true);
                    if (run.NeedsCalibration)
                    {
                        validation ??= RunImages.Validation(null, attribute, settings.Sizes.ValidationImages, teacher.Size, teacher.Attributes);
                        run.Calibrate(judge, validation, _ => !cancel.IsCancellationRequested);
                        if (run.NeedsCalibration) return; // cancelled between probes; the probes so far are kept
                        var cal = run.Calibration!;
                        log?.Invoke($"  {attribute} {method}: scale {cal.Scale} ({(cal.Reached ? "reached" : "NOT reached")} {cal.Target:P0} on validation; probes " +
                                    string.Join(", ", cal.Probes.Select(p => FormattableString.Invariant($"{p.Scale}:{p.Editability:0.##}"))) + ")");
                        scale = cal.Scale; reached = cal.Reached;
                    }
                    scale ??= run.Effective.Guidance.RequireScale();
                    run.AdvanceToEnd(cancel: cancel);
                    if (!run.Trained) return;
                    if (run.ChoosesMaskGate)
                    {
                        validation ??= RunImages.Validation(null, attribute, settings.Sizes.ValidationImages, teacher.Size, teacher.Attributes);
                        run.ApplyMaskGate(judge, validation);
                    }
                    var editor = run.Editor;
                    Measure(method, seed, (x, _) => editor.Edit(x), 0, scale, reached, Math.Round(sw.Elapsed.TotalSeconds, 1), run.Curve?.Selected,
                        editor.Net.Masked ? editor.Net.MaskGate : null);
                }
            }
        }
        finally { train?.Dispose(); validation?.Dispose(); }

        // Baselines on the same teacher: the target condition is the source's own labels with the attribute set.
        foreach (var seed in settings.Seeds)
        foreach (var t0 in settings.SdeditT0)
        {
            var method = $"sdedit-{t0}";
            if (cancel.IsCancellationRequested) return;
            if (Has(attribute, method, seed)) continue;
            var sd = SdEditSettings.At(t0, settings.BaselineGuidance);
            var gen = new Generator((ulong)(1000 * seed + t0), teacher.Device);
            Measure(method, seed, (x, st) => teacher.SdEdit(x.to(teacher.Device), WithAttribute(st, a), sd.T0, sd.Steps, sd.Guidance, gen), sd.Nfe);
        }
        foreach (var t0 in settings.InversionT0)
        {
            var method = $"ddim-inversion-{t0}";
            if (cancel.IsCancellationRequested) return;
            if (Has(attribute, method, settings.Seeds[0])) continue;
            var sd = SdEditSettings.At(t0, settings.BaselineGuidance);
            Measure(method, settings.Seeds[0], (x, st) => teacher.InvertAndRegenerate(x.to(teacher.Device), st.to(teacher.Device), WithAttribute(st, a), t0, sd.Steps, sd.Guidance),
                sd.Steps + sd.Nfe);
        }
        SaveGrid(attribute, dir);
    }

    private Tensor WithAttribute(Tensor states, int a)
    {
        var t = states.to(teacher.Device).clone();
        t[.., a] = AttributeCondition.Present;
        return t;
    }

    /// <summary>Runs an edit over images in chunks of 32 with the matching rows of <paramref name="states"/>; milliseconds per image.</summary>
    private static (Tensor Output, double MsPerImage) MapWithStates(Tensor images, Tensor states, Func<Tensor, Tensor, Tensor> edit)
    {
        long offset = 0;
        return Timed.Map(images, 32, x =>
        {
            var st = states[TensorIndex.Slice(offset, offset + x.shape[0])];
            offset += x.shape[0];
            return edit(x, st);
        });
    }

    private const int StripImages = 8;

    private static void SaveStrip(Tensor images, string path)
    {
        using var scope = NewDisposeScope();
        var n = Math.Min(StripImages, images.shape[0]);
        ImageCodec.SavePng(ImageCodec.Grid(images[TensorIndex.Slice(0, n)].cpu(), (int)n, 0), path);
    }

    /// <summary>Before/after grid of the first seed: source, counterfactual, each method; then the double edits (3x, nearest).</summary>
    private void SaveGrid(string attribute, string dir)
    {
        var strips = Path.Combine(dir, "strips");
        var methods = _cells.Where(c => c.Attribute == attribute && (c.Seed == settings.Seeds[0] || c.Seed == 0)).Select(c => c.Method).Distinct().ToList();
        var rows = new[] { "source", "counterfactual" }.Concat(methods.Where(m => m != "no edit"))
            .Concat(["source-double"]).Concat(methods.Where(m => m != "no edit").Select(m => m + "-double"))
            .Select(m => Path.Combine(strips, m + ".png")).Where(File.Exists).ToList();
        if (rows.Count == 0) return;
        using var scope = NewDisposeScope();
        var tensors = rows.Select(p => { using var im = ImageCodec.Decode(File.ReadAllBytes(p)); return ImageCodec.ToTensor(im); }).ToArray();
        int w = (int)tensors.Max(t => t.shape[2]);
        var padded = tensors.Select(t => t.shape[2] == w ? t : F.pad(t, [0, w - t.shape[2], 0, 0], value: 1)).ToArray();
        var grid = F.interpolate(cat(padded, 1).unsqueeze(0), scale_factor: [3.0, 3.0], mode: InterpolationMode.Nearest)[0];
        ImageCodec.SavePng(grid, Path.Combine(dir, "grid.png"));
        log?.Invoke($"  {attribute}: grid ({string.Join(", ", rows.Select(Path.GetFileNameWithoutExtension))} from top) -> {Path.Combine(dir, "grid.png")}");
    }

    /// <summary>Mean and sample standard deviation over seeds of every figure of every (attribute, method).</summary>
    public static List<QualitySummary> Summarise(IEnumerable<QualityCell> cells) =>
        cells.GroupBy(c => (c.Attribute, c.Method)).Select(g =>
        {
            var figures = new Dictionary<string, Spread>();
            void Put(string name, Func<QualityCell, double?> f)
            {
                var v = g.Select(f).Where(x => x is { } d && double.IsFinite(d)).Select(x => x!.Value).ToArray();
                if (v.Length == 0) return;
                double mean = v.Average(), std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
                figures[name] = new Spread(Math.Round(mean, 4), Math.Round(std, 4), v.Length);
            }
            Put("editability", c => c.Row.Editability);
            Put("psnrInRegion", c => c.Row.PsnrInRegion);
            Put("psnrOutsideRegion", c => c.Row.PsnrOutsideRegion);
            Put("psnrCounterfactual", c => c.Row.PsnrCounterfactual);
            Put("psnrSource", c => c.Row.PsnrSource);
            Put("doublePsnrSource", c => c.DoublePsnrSource);
            Put("doubleKept", c => c.DoubleKept);
            Put("kid", c => c.Row.Kid);
            Put("fd", c => c.Row.Fd);
            Put("othersKept", c => c.Row.OthersKept);
            Put("sharpness", c => c.Row.Sharpness);
            Put("msPerImage", c => c.Row.MsPerImage);
            Put("nfe", c => c.Row.Nfe);
            Put("scale", c => c.Scale);
            Put("maskGate", c => c.MaskGate);
            Put("trainSeconds", c => c.TrainSeconds);
            return new QualitySummary(g.Key.Attribute, g.Key.Method, figures);
        }).ToList();

    private AttributeFindings? Findings(string attribute)
    {
        var summary = Summarise(_cells.Where(c => c.Attribute == attribute));
        var hqs = summary.FirstOrDefault(s => s.Method == "sdd-hqs");
        var none = summary.FirstOrDefault(s => s.Method == "no edit");
        if (hqs is null || none is null) return null;
        var first = _cells.FirstOrDefault(c => c.Attribute == attribute && c.Method == "sdd-hqs" && c.Seed == settings.Seeds[0]);
        double? rho = null;
        var curvePath = Path.Combine(work, attribute, $"sdd-hqs-seed{settings.Seeds[0]}", EditorDistillation.CurveFile);
        if (File.Exists(curvePath))
        {
            var curve = EditorDistillation.ReadCurve(curvePath);
            rho = Math.Round(RankCorrelation(curve.Points.Select(p => p.Hqs).ToArray(), curve.Points.Select(p => p.Norm).ToArray()), 3);
        }
        else if (_earlierRho.TryGetValue(attribute, out var earlier)) rho = earlier;
        double M(QualitySummary s, string k) => s.Figures.TryGetValue(k, out var v) ? v.Mean : double.NaN;
        var met = new Dictionary<string, bool>
        {
            ["editability >= 90 %"] = M(hqs, "editability") >= 0.9,
            ["in-region >= no edit + 3 dB"] = M(hqs, "psnrInRegion") >= M(none, "psnrInRegion") + 3,
            ["outside >= 40 dB"] = M(hqs, "psnrOutsideRegion") >= 40,
            ["double edit >= 35 dB"] = M(hqs, "doublePsnrSource") >= 35,
        };
        var matched = summary.Where(s => s.Method.StartsWith("sdedit-", StringComparison.Ordinal) && M(s, "editability") >= 0.9)
            .OrderByDescending(s => M(s, "psnrInRegion")).FirstOrDefault()?.Method;
        return new AttributeFindings(attribute, first?.Timesteps ?? [], rho, met, matched);
    }

    /// <summary>Spearman's rank correlation (average ranks for ties).</summary>
    public static double RankCorrelation(double[] x, double[] y)
    {
        static double[] Ranks(double[] v)
        {
            var order = v.Select((x, i) => (x, i)).OrderBy(p => p.x).ToArray();
            var r = new double[v.Length];
            for (int i = 0; i < order.Length;)
            {
                int j = i;
                while (j + 1 < order.Length && order[j + 1].x == order[i].x) j++;
                for (int k = i; k <= j; k++) r[order[k].i] = (i + j) / 2.0;
                i = j + 1;
            }
            return r;
        }
        if (x.Length != y.Length || x.Length < 2) return double.NaN;
        var rx = Ranks(x); var ry = Ranks(y);
        double mx = rx.Average(), my = ry.Average();
        double num = rx.Zip(ry).Sum(p => (p.First - mx) * (p.Second - my));
        double den = Math.Sqrt(rx.Sum(v => (v - mx) * (v - mx)) * ry.Sum(v => (v - my) * (v - my)));
        return den == 0 ? double.NaN : num / den;
    }
}
