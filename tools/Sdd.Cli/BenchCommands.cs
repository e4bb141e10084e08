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

    /// <summary>
    /// One size and batch: images/s of the editor and of SDEdit, model only (tensors in memory, at the model's size with
    /// residual mode above it) and whole (JPEG decode → tensor → edit → JPEG encode, the work a worker does per image).
    /// </summary>
    public sealed record SpeedRow(int Size, int Batch, int ModelRunsAt, double SddModelImagesPerS, double SdeditModelImagesPerS, double ModelRatio,
        double SddWholeImagesPerS, double SdeditWholeImagesPerS, double WholeRatio);
    public sealed record SpeedReport(string Device, int Threads, long EditorParameters, long TeacherParameters, SdEditSettings Sdedit, string SdeditChoice,
        List<SpeedRow> Rows, string Timed);

    public static int Speed(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var editorDir = o.String("editor");
        int repeats = o.Int("repeats", 5, 1, 1000);
        var quality = o.String("quality") ?? Path.Combine(ModelHome.Root, "docs", "results", "bench-smiling.json");
        int? t0Option = o.Has("t0") ? o.Int("t0", 200, 1, 999) : null;
        double guidance = o.Double("guidance", 3.0, 0, 1000);
        var sizes = (o.String("sizes") ?? "32,256,1024,2048").Split(',').Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var json = o.String("json");
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        using var editor = editorDir is not null ? Editor.Load(editorDir, TorchRuntime.Device)
                                                 : new Editor(new EditorConfig { Attribute = teacher.Attributes[0], ImageSize = teacher.Size }, TorchRuntime.Device);
        // SDEdit at its quality-matched setting: the row of the quality benchmark with editability >= 90 % and the best
        // PSNR to the counterfactual (t0 = 200 when the file is absent or --t0 says otherwise).
        var (t0, choice) = t0Option is { } given ? (given, $"t0 = {given} (--t0)") : QualityMatchedT0(quality);
        var sd = SdEditSettings.At(t0, guidance);
        var rows = new List<SpeedRow>();
        Console.Error.WriteLine($"bench speed: editor {editor.ParameterCount:N0} params vs SDEdit (t0={sd.T0}, {sd.Steps} DDIM steps, CFG {guidance}: {sd.Nfe} teacher evaluations per image; {choice}); median of {repeats}");
        foreach (var size in sizes)
        foreach (var batch in size <= 256 ? new[] { 1, 32 } : size <= 1024 ? new[] { 1, 4 } : new[] { 1 })
        {
            using var scope = NewDisposeScope();
            var jpegs = Enumerable.Range(0, batch).Select(i =>
            {
                var rgb = PortraitRenderer.RenderRgb24(Sdd.Ml.Portraits.PortraitDataset.Portrait(HeldOutPortraits.HeldOutSeed, i), Math.Min(size, 256), size > 64 ? 1 : 4);
                using var image = SixLabors.ImageSharp.Image.LoadPixelData<SixLabors.ImageSharp.PixelFormats.Rgb24>(rgb, Math.Min(size, 256), Math.Min(size, 256));
                if (size > 256) SixLabors.ImageSharp.Processing.ProcessingExtensions.Mutate(image, x => SixLabors.ImageSharp.Processing.ResizeExtensions.Resize(x, size, size));
                using var ms = new MemoryStream();
                SixLabors.ImageSharp.ImageExtensions.SaveAsJpeg(image, ms, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 92 });
                return ms.ToArray();
            }).ToArray();
            var images = stack(jpegs.Select(b => { using var im = ImageCodec.Decode(b); return ImageCodec.ToTensor(im); }).ToArray()).to(teacher.Device);
            var states = AttributeCondition.Single(batch, teacher.Attributes.Count, 0, true, teacher.Device);
            var gen = new Generator(3, teacher.Device);
            int reps = size >= 1024 ? Math.Min(repeats, 3) : repeats;
            double Median(Action run)
            {
                run(); // warm-up
                var times = new List<double>();
                for (int r = 0; r < reps; r++) { var sw = Stopwatch.StartNew(); run(); times.Add(sw.Elapsed.TotalSeconds); }
                times.Sort();
                return times[times.Count / 2];
            }
            Tensor SdEdit(Tensor x)
            {
                using var _ = no_grad();
                return ResidualMode.Apply(x, teacher.Size, y => teacher.SdEdit(y, states, sd.T0, sd.Steps, sd.Guidance, gen));
            }
            // Whole: what a worker does per image (decode with EXIF orientation, to tensor, edit, encode as JPEG q92).
            void Whole(Func<Tensor, Tensor> edit)
            {
                using var s2 = NewDisposeScope();
                var kept = new KeptMetadata[batch];
                var input = stack(Enumerable.Range(0, batch).Select(k => { using var im = ImageCodec.Decode(jpegs[k], out kept[k]); return ImageCodec.ToTensor(im); }).ToArray());
                var output = edit(input);
                for (int k = 0; k < batch; k++) _ = ImageCodec.Encode(output[k], Sdd.Configuration.OutputFormat.Jpeg, kept[k]);
            }
            double sddModel = Median(() => { using var s2 = NewDisposeScope(); editor.Edit(images); });
            double sdModel = Median(() => { using var s2 = NewDisposeScope(); SdEdit(images); });
            double sddWhole = Median(() => Whole(editor.Edit));
            double sdWhole = Median(() => Whole(SdEdit));
            var row = new SpeedRow(size, batch, Math.Min(size, teacher.Size), Math.Round(batch / sddModel, 1), Math.Round(batch / sdModel, 2), Math.Round(sdModel / sddModel, 1),
                Math.Round(batch / sddWhole, 1), Math.Round(batch / sdWhole, 2), Math.Round(sdWhole / sddWhole, 1));
            rows.Add(row);
            Console.Error.WriteLine($"  {size}px batch {batch}: model only SDD {row.SddModelImagesPerS} / SDEdit {row.SdeditModelImagesPerS} img/s ({row.ModelRatio}x); " +
                $"decode→encode SDD {row.SddWholeImagesPerS} / SDEdit {row.SdeditWholeImagesPerS} img/s ({row.WholeRatio}x)");
        }
        const string timed = "model only: the forward pass on decoded tensors in memory (the model runs at its own size; larger photos in residual mode: " +
            "resized to the model's size, edited, the difference upsampled and added, for both methods); decode→encode: JPEG bytes in memory → decode (EXIF orientation) → " +
            "tensor → edit → JPEG quality 92 bytes, no storage; median of the repeats after one warm-up";
        Console.WriteLine($"speed benchmark on {TorchRuntime.Device} with {get_num_threads()} threads; editor {editor.ParameterCount:N0} params, teacher {teacher.Net.parameters().Sum(p => p.numel()):N0} params;");
        Console.WriteLine($"SDEdit: t0={sd.T0}, {sd.Steps} DDIM steps, CFG {guidance} = {sd.Nfe} teacher evaluations per image ({choice})");
        Console.WriteLine(timed);
        Console.WriteLine($"{"size",5} {"batch",6} {"model@",7} {"SDD model",10} {"SDEdit model",13} {"ratio",7} {"SDD whole",10} {"SDEdit whole",13} {"ratio",7}");
        foreach (var r in rows)
            Console.WriteLine($"{r.Size,5} {r.Batch,6} {r.ModelRunsAt,7} {r.SddModelImagesPerS,10:0.0} {r.SdeditModelImagesPerS,13:0.00} {r.ModelRatio,6:0.0}x {r.SddWholeImagesPerS,10:0.0} {r.SdeditWholeImagesPerS,13:0.00} {r.WholeRatio,6:0.0}x");
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(new SpeedReport(TorchRuntime.Device.ToString(), get_num_threads(), editor.ParameterCount,
                teacher.Net.parameters().Sum(p => p.numel()), sd, choice, rows, timed), TeacherConfig.Json));
            Console.WriteLine($"json -> {json}");
        }
        return 0;
    }

    /// <summary>The SDEdit t0 of the quality benchmark's row with editability >= 90 % and the best PSNR to the counterfactual.</summary>
    private static (int T0, string Why) QualityMatchedT0(string qualityJson)
    {
        if (!File.Exists(qualityJson)) return (200, $"t0 = 200: {qualityJson} not found");
        using var doc = JsonDocument.Parse(File.ReadAllText(qualityJson));
        var best = doc.RootElement.GetProperty("rows").EnumerateArray()
            .Where(r => r.GetProperty("method").GetString()!.StartsWith("sdedit-", StringComparison.Ordinal) && r.GetProperty("editability").GetDouble() >= 0.9)
            .OrderByDescending(r => r.GetProperty("psnr_counterfactual").GetDouble()).FirstOrDefault();
        if (best.ValueKind == JsonValueKind.Undefined) return (200, $"t0 = 200: no SDEdit row of {Path.GetFileName(qualityJson)} edits 90 %");
        var method = best.GetProperty("method").GetString()!;
        return (int.Parse(method["sdedit-".Length..], System.Globalization.CultureInfo.InvariantCulture),
            $"quality-matched: {method} of {Path.GetFileName(qualityJson)} edits {best.GetProperty("editability").GetDouble():P1} at {best.GetProperty("psnr_counterfactual").GetDouble():0.00} dB to the counterfactual, the best SDEdit row editing >= 90 %");
    }
}
