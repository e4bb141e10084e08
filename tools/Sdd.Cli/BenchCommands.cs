using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

public static class BenchCommands
{
    public sealed record QualityReport(string Attribute, int Images, int StepsPerEditor, DistillSettings Settings, double SdeditGuidance,
        List<QualityRow> Rows, int[] SelectedTimesteps, IndicatorCurve? Curve, Dictionary<string, double> TrainSeconds, Dictionary<string, double> SpeedRatio);

    public static int Quality(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var judgeDir = o.String("judge") ?? ModelHome.Judge;
        var attribute = o.Required("attribute");
        int n = o.Int("images", 200, 2, 100_000);
        int trainCount = o.Int("train-images", 2000, 16, 1_000_000);
        var datasetDir = o.String("dataset");
        var json = o.String("json");
        var work = o.String("work") ?? Path.Combine(Path.GetTempPath(), $"sdd-bench-{attribute}");
        var gridPath = o.String("grid") ?? Path.Combine(work, "grid.png");
        int[] fixedTs = ParseInts(o.String("fixed") ?? "200,500,800", "--fixed");
        int[] sdeditTs = ParseInts(o.String("sdedit") ?? "200,400,600,800", "--sdedit");
        double sdGuidance = o.Double("sdedit-guidance", 3.0, 0, 1000);
        bool compareSds = o.Has("compare-sds");
        var sizes = MethodCommands.ReadSizes(o);
        var s = MethodCommands.ReadDistillSettings(o);
        o.EnsureAllUsed();

        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        using var judge = Judge.Load(judgeDir, TorchRuntime.Device);
        int a = teacher.AttributeIndex(attribute);
        Directory.CreateDirectory(work);
        var total = Stopwatch.StartNew();

        // Training images for the editors: the given data set, else portraits from the teacher's training distribution.
        Tensor trainX, trainY;
        if (datasetDir is not null)
        {
            var set = LabeledImageSet.OpenFolder(datasetDir);
            var rows = set.Splits().Train.Take(trainCount).ToArray();
            (trainX, var y) = set.Load(teacher.Size, rows);
            using var colIdx = tensor(teacher.Attributes.Select(x => (long)set.AttributeIndex(x)).ToArray());
            trainY = y.index_select(1, colIdx);
        }
        else
        {
            using var tb = RunImages.TrainingPortraits(attribute, trainCount, s.PositiveShare > 0 ? trainCount / 4 : 0, teacher.Size, seed: 1, PortraitAttributes.All);
            trainX = tb.Images.clone(); trainY = tb.Labels.clone();
        }
        // Held-out evaluation images lacking the attribute, with ground-truth counterfactuals.
        using var held = HeldOutPortraits.Render(attribute, present: false, n, teacher.Size);
        var scorer = new QualityScorer(judge, attribute, held.Images, held.Labels, held.Counterfactuals);
        var rowsOut = new List<QualityRow>();
        var outputs = new Dictionary<string, Tensor>();
        var trainSeconds = new Dictionary<string, double>();
        void Add(QualityRow r, Tensor edited)
        {
            rowsOut.Add(r); outputs[r.Method] = edited;
            Console.Error.WriteLine($"  {r.Method}: editability {r.Editability:P0}, PSNR cf {r.PsnrCounterfactual:0.00} dB");
        }

        Console.Error.WriteLine($"bench quality: {attribute}, {n} held-out images, editors trained {s.Steps} steps each ({s.Guidance.Mode}, s={s.Guidance.Scale?.ToString() ?? "auto"}, lambda={s.Lambda})");
        Add(scorer.Score("identity", held.Images, 0, 0), held.Images);

        IndicatorCurve? curve = null;
        LabeledTensors? validation = null;
        var scales = new Dictionary<string, double>();
        void Edit(string name, DistillSettings settings)
        {
            var bar = new ProgressBar(name);
            var sw = Stopwatch.StartNew();
            using var train = new LabeledTensors(trainX.alias(), trainY.alias());
            using var run = EditorDistillation.Open(Path.Combine(work, name), teacher, attribute, train, settings, sizes, resume: false);
            if (run.NeedsCalibration)
            {
                // Each policy calibrated to the same target editability on the validation split, so rows compare at matched editability.
                validation ??= RunImages.Validation(datasetDir is null ? null : LoadedDataset.OpenFolder(datasetDir), attribute, sizes.ValidationImages, teacher.Size, teacher.Attributes);
                run.Calibrate(judge, validation, _ => true, (phase, p) => bar.Report(p.Step, p.TotalSteps, phase, p.StepsPerSecond));
                var c = run.Calibration!;
                Console.Error.WriteLine($"  {name}: scale {c.Scale} ({(c.Reached ? "reached" : "NOT reached")} {c.Target:P0} on validation; probes " +
                                        string.Join(", ", c.Probes.Select(p => FormattableString.Invariant($"{p.Scale}:{p.Editability:0.##}"))) + ")");
            }
            scales[name] = run.Effective.Guidance.RequireScale();
            run.AdvanceToEnd((phase, p) => bar.Report(p.Step, p.TotalSteps, phase, p.StepsPerSecond > 0 ? p.StepsPerSecond : p.Step / sw.Elapsed.TotalSeconds));
            trainSeconds[name] = Math.Round(sw.Elapsed.TotalSeconds, 1);
            curve ??= run.Curve;
            var editor = run.Editor;
            editor.Edit(held.Images[TensorIndex.Slice(0, 2)]).Dispose(); // warm-up
            var (edited, ms) = Timed.Map(held.Images, 32, editor.Edit);
            Add(scorer.Score(name, edited, ms, 0), edited);
        }

        Edit("sdd-hqs", s with { Timesteps = "hqs" });
        Edit("sdd-random", s with { Timesteps = "random" });
        foreach (var t in fixedTs) Edit($"sdd-fixed-{t}", s with { Timesteps = $"fixed:{t}" });
        if (compareSds) Edit("sdd-hqs-sds", s with { Timesteps = "hqs", Guidance = new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 30 } });

        // SDEdit with the same teacher, conditioned on the source's attributes with the target set (as SDD's delta gradient).
        var sourceStates = AttributeCondition.FromLabels(held.Labels);
        sourceStates[.., a] = AttributeCondition.Present;
        foreach (var t0 in sdeditTs)
        {
            var sd = SdEditSettings.At(t0, sdGuidance);
            var gen = new Generator(7, teacher.Device);
            long offset = 0;
            var (edited, ms) = Timed.Map(held.Images, 32, x =>
            {
                var st = sourceStates[TensorIndex.Slice(offset, offset + x.shape[0])].to(teacher.Device);
                offset += x.shape[0];
                return teacher.SdEdit(x.to(teacher.Device), st, sd.T0, sd.Steps, sd.Guidance, gen);
            });
            Add(scorer.Score($"sdedit-{t0}", edited, ms, sd.Nfe), edited);
        }

        var sdd = rowsOut.First(r => r.Method == "sdd-hqs");
        var ratios = rowsOut.Where(r => r.Method.StartsWith("sdedit-", StringComparison.Ordinal))
            .ToDictionary(r => r.Method, r => Math.Round(r.MsPerImage / Math.Max(1e-9, sdd.MsPerImage), 1));

        Console.WriteLine($"quality benchmark: attribute {attribute}, {n} held-out portraits lacking it; teacher step {teacher.Config.Step}; " +
                          $"editors: {s.Steps} steps, batch {s.BatchSize}, {s.Guidance.Mode} s={(s.Guidance.Scale is { } given ? given.ToString() : "auto: " + string.Join(", ", scales.Select(kv => $"{kv.Key} {kv.Value}")))}, lambda={s.Lambda}; SDEdit CFG {sdGuidance}, DDIM 50*t0/1000 steps");
        if (curve is not null) Console.WriteLine($"HQS-selected timesteps: {string.Join(", ", curve.Selected)} ({curve.Rule} of {string.Join(",", curve.Points.Select(p => p.T))})");
        Console.WriteLine($"{"method",-16} {"edit%",6} {"PSNR src",9} {"SSIM src",9} {"PSNR cf",8} {"FD",8} {"others",7} {"ms/img",9} {"NFE",5}");
        foreach (var r in rowsOut)
            Console.WriteLine($"{r.Method,-16} {r.Editability * 100,6:0.0} {r.PsnrSource,9:0.00} {r.SsimSource,9:0.000} {r.PsnrCounterfactual,8:0.00} {r.Fd,8:0.00} {r.OthersKept * 100,6:0.0}% {r.MsPerImage,9:0.000} {r.Nfe,5:0}");
        foreach (var (m, ratio) in ratios) Console.WriteLine($"speed: sdd-hqs is {ratio:0}x faster than {m}");
        Console.WriteLine($"editor training time (s): {string.Join(", ", trainSeconds.Select(kv => $"{kv.Key} {kv.Value}"))}; total {total.Elapsed.TotalMinutes:0.0} min");

        // Before/after grid: columns are images; rows: source, counterfactual, then methods.
        var show = new[] { "identity" }.Concat(["counterfactual"]).Concat(rowsOut.Select(r => r.Method).Where(m => m != "identity")).ToList();
        outputs["counterfactual"] = held.Counterfactuals;
        int cols = Math.Min(8, n);
        using (var scope = NewDisposeScope())
        {
            var tiles = cat(show.Select(m => outputs[m][TensorIndex.Slice(0, cols)]).ToArray());
            tiles = nn.functional.interpolate(tiles, scale_factor: [3.0, 3.0], mode: InterpolationMode.Nearest);
            ImageCodec.SavePng(ImageCodec.Grid(tiles, cols, 2), gridPath);
        }
        Console.WriteLine($"grid ({string.Join(", ", show)} from top) -> {gridPath}");
        if (json is not null)
        {
            var report = new QualityReport(attribute, n, s.Steps, s, sdGuidance, rowsOut, curve?.Selected ?? [], curve, trainSeconds, ratios);
            File.WriteAllText(json, JsonSerializer.Serialize(report, TeacherConfig.Json));
            Console.WriteLine($"json -> {json}");
        }
        validation?.Dispose();
        return 0;
    }

    private static int[] ParseInts(string s, string name) =>
        s.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => int.TryParse(v, out var i) && i > 0 && i < 1000 ? i : throw new UsageException($"{name} takes timesteps like 200,500,800")).ToArray();

    public sealed record SpeedRow(int Size, int Batch, double SddImagesPerS, double SdeditImagesPerS, double Ratio);
    public sealed record SpeedReport(string Device, int Threads, long EditorParameters, long TeacherParameters, SdEditSettings Sdedit, List<SpeedRow> Rows);

    public static int Speed(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var editorDir = o.String("editor");
        int repeats = o.Int("repeats", 5, 1, 1000), t0 = o.Int("t0", 600, 1, 999);
        double guidance = o.Double("guidance", 3.0, 0, 1000);
        int big = o.Int("large", 256, 8, 4096);
        var json = o.String("json");
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        using var editor = editorDir is not null ? Editor.Load(editorDir, TorchRuntime.Device)
                                                 : new Editor(new EditorConfig { Attribute = teacher.Attributes[0], ImageSize = teacher.Size }, TorchRuntime.Device);
        var sd = SdEditSettings.At(t0, guidance);
        var rows = new List<SpeedRow>();
        Console.Error.WriteLine($"bench speed: editor {editor.ParameterCount:N0} params vs SDEdit (t0={sd.T0}, {sd.Steps} DDIM steps, CFG {guidance}: {sd.Nfe} teacher evaluations per image); median of {repeats}");
        foreach (var size in new[] { teacher.Size, big })
        foreach (var batch in new[] { 1, 32 })
        {
            using var scope = NewDisposeScope();
            var images = stack(Enumerable.Range(0, batch).Select(i =>
                ImageCodec.ToTensor(PortraitRenderer.RenderRgb24(Sdd.Ml.Portraits.PortraitDataset.Portrait(HeldOutPortraits.HeldOutSeed, i), size, size > 64 ? 1 : 4), size, size)).ToArray()).to(teacher.Device);
            var states = AttributeCondition.Single(batch, teacher.Attributes.Count, 0, true, teacher.Device);
            var gen = new Generator(3, teacher.Device);
            double Median(Action run)
            {
                run(); // warm-up
                var times = new List<double>();
                for (int r = 0; r < repeats; r++) { var sw = Stopwatch.StartNew(); run(); times.Add(sw.Elapsed.TotalSeconds); }
                times.Sort();
                return times[times.Count / 2];
            }
            double sddS = Median(() => { using var s2 = NewDisposeScope(); editor.Edit(images); });
            double sdS = Median(() =>
            {
                using var s2 = NewDisposeScope();
                using var _ = no_grad();
                ResidualMode.Apply(images, teacher.Size, x => teacher.SdEdit(x, states, sd.T0, sd.Steps, sd.Guidance, gen));
            });
            var row = new SpeedRow(size, batch, Math.Round(batch / sddS, 1), Math.Round(batch / sdS, 2), Math.Round(sdS / sddS, 1));
            rows.Add(row);
            Console.Error.WriteLine($"  {size}px batch {batch}: SDD {row.SddImagesPerS} img/s, SDEdit {row.SdeditImagesPerS} img/s");
        }
        Console.WriteLine($"speed benchmark on {TorchRuntime.Device} with {get_num_threads()} threads; editor {editor.ParameterCount:N0} params, teacher {teacher.Net.parameters().Sum(p => p.numel()):N0} params;");
        Console.WriteLine($"SDEdit: t0={sd.T0}, {sd.Steps} DDIM steps, CFG {guidance} = {sd.Nfe} teacher evaluations per image; larger sizes in residual mode for both; median of {repeats} runs, model time only");
        Console.WriteLine($"{"size",5} {"batch",6} {"SDD img/s",11} {"SDEdit img/s",13} {"ratio",8}");
        foreach (var r in rows) Console.WriteLine($"{r.Size,5} {r.Batch,6} {r.SddImagesPerS,11:0.0} {r.SdeditImagesPerS,13:0.00} {r.Ratio,7:0.0}x");
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(new SpeedReport(TorchRuntime.Device.ToString(), get_num_threads(), editor.ParameterCount,
                teacher.Net.parameters().Sum(p => p.numel()), sd, rows), TeacherConfig.Json));
            Console.WriteLine($"json -> {json}");
        }
        return 0;
    }
}
