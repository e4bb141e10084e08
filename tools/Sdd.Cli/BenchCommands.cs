using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using Sdd.Ml.StableDiffusion;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

public static class BenchCommands
{
    /// <summary>
    /// <c>bench quality</c>: the evaluation that cannot flatter (<see cref="QualityEvaluation"/>), resumable: cells already in
    /// --json are skipped, editors resume from their checkpoints under --work.
    /// </summary>
    public static int Quality(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var judgeDir = o.String("judge") ?? ModelHome.JudgeFor(teacherDir);
        var attributeList = o.String("attributes") ?? o.String("attribute");
        var d = new QualityBenchSettings { Attributes = [] };
        var seeds = (o.String("seeds") ?? string.Join(",", d.Seeds)).Split(',').Select(x => int.TryParse(x, out var v) && v > 0 ? v : throw new UsageException($"--seeds takes positive integers like 1,2,3, got '{x}'")).Distinct().ToArray();
        var json = o.String("json") ?? Path.Combine(ModelHome.Root, "docs", "results", "bench-quality.json");
        var markdown = o.String("markdown") ?? Path.ChangeExtension(json, ".md");
        var work = o.String("work") ?? Path.Combine(Path.GetTempPath(), "sdd-bench-quality");
        var readme = o.String("readme");
        if (o.Has("tables-only"))
        {
            // The tables again from the JSON alone (nothing is measured): the Markdown file, and docs/results.md's block when asked.
            o.EnsureAllUsed();
            var saved = JsonSerializer.Deserialize<QualityBenchReport>(File.ReadAllText(json), ModelFolder.Json) ?? throw new InvalidDataException($"'{json}' is empty.");
            var tables = QualityTables.Markdown(saved);
            File.WriteAllText(markdown, tables);
            if (readme is not null) File.WriteAllText(readme, QualityTables.ReplaceBlock(File.ReadAllText(readme), tables));
            Console.WriteLine($"tables of {saved.Cells.Count} cells -> {markdown}{(readme is null ? "" : $" and {readme}")}");
            return 0;
        }
        var settings = d with
        {
            Seeds = seeds,
            TestImages = o.Int("images", d.TestImages, 2, 100_000),
            DoubleEditImages = o.Int("double-images", d.DoubleEditImages, 2, 100_000),
            ReferenceImages = o.Int("reference-images", d.ReferenceImages, 2, 100_000),
            TrainImages = o.Int("train-images", d.TrainImages, 16, 1_000_000),
            Policies = (o.String("policies") ?? string.Join(",", d.Policies)).Split(',', StringSplitOptions.RemoveEmptyEntries),
            SdeditT0 = o.Has("sdedit") ? ParseInts(o.String("sdedit")!, "--sdedit") : d.SdeditT0,
            InversionT0 = o.Has("inversion") ? ParseInts(o.String("inversion")!, "--inversion") : d.InversionT0,
            BaselineGuidance = o.Double("baseline-guidance", d.BaselineGuidance, 0, 1000),
            Distill = MethodCommands.ReadDistillSettings(o),
            Sizes = MethodCommands.ReadSizes(o),
        };
        o.EnsureAllUsed();

        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        using var judge = Judge.Load(judgeDir, TorchRuntime.Device);
        settings = settings with { Attributes = attributeList is null ? teacher.Attributes.ToArray() : attributeList.Split(',', StringSplitOptions.RemoveEmptyEntries) };
        foreach (var a in settings.Attributes) { teacher.AttributeIndex(a); judge.AttributeIndex(a); }
        foreach (var p in settings.Policies)
            if (p != "hqs") TimestepSampler.Parse(p, teacher.Config.TimeSteps);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(json))!);
        Console.Error.WriteLine($"bench quality: {string.Join(", ", settings.Attributes)}; seeds {string.Join(",", seeds)}; policies {string.Join(", ", settings.Policies)}; " +
                                $"SDEdit t0 {string.Join(",", settings.SdeditT0)}; DDIM inversion t0 {string.Join(",", settings.InversionT0)}; results -> {json}, {markdown}; work {work}");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        var report = new QualityEvaluation(teacher, judge, settings, work, json, markdown, m => Console.Error.WriteLine(m)).Run(cts.Token);
        Console.WriteLine(QualityTables.Markdown(report));
        if (readme is not null) File.WriteAllText(readme, QualityTables.ReplaceBlock(File.ReadAllText(readme), QualityTables.Markdown(report)));
        Console.WriteLine($"json -> {json}; markdown -> {markdown}; grids under {work}/<attribute>/grid.png");
        return cts.IsCancellationRequested ? 130 : 0;
    }

    /// <summary>Split: test (the held-out portraits figures are reported on), validation (the ones choices are made on) or confirmation (a second test set, read once).</summary>
    public sealed record EditorsReport(string Attribute, int Images, string Judge, List<SizedQualityRow> Rows, string Split = "test");

    /// <summary><c>bench editors</c>: editors of one attribute on the same held-out portraits at each size (residual mode below it), sharpness included.</summary>
    public static int Editors(Options o)
    {
        var names = (o.String("editors") ?? throw new UsageException("missing required option --editors DIR[,DIR...]")).Split(',', StringSplitOptions.RemoveEmptyEntries);
        var judgeDir = o.String("judge") ?? ModelHome.JudgeForSize(names.Max(d => Editor.ReadConfig(d).ImageSize));
        var sizes = (o.String("sizes") ?? "128,512").Split(',').Select(x => int.TryParse(x, out var v) && v is >= 8 and <= 4096 ? v : throw new UsageException($"--sizes takes sides like 128,512, got '{x}'")).ToArray();
        int images = o.Int("images", 100, 2, 10_000);
        var json = o.String("json");
        var grid = o.String("grid");
        var split = o.String("split") ?? "test";
        int seed = split switch
        {
            "test" => HeldOutPortraits.HeldOutSeed,
            "validation" => HeldOutPortraits.ValidationSeed,
            "confirmation" => HeldOutPortraits.ConfirmationSeed,
            _ => throw new UsageException($"--split must be test, validation or confirmation, got '{split}'"),
        };
        // --gates: each masked editor once per gate (rows "NAME gate G"), to choose its gate on the validation split;
        // "own" is the gate in the editor's config (rows "NAME gate G (own)").
        var gates = o.String("gates") is { } g
            ? g.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(x => x == "own" ? double.NaN
                : double.TryParse(x, CultureInfo.InvariantCulture, out var v) && v is >= 0 and < 1 ? v
                : throw new UsageException($"--gates takes mask gates in [0, 1) or own, like 0,0.3,own; got '{x}'")).Distinct().ToArray()
            : null;
        o.EnsureAllUsed();
        using var judge = Judge.Load(judgeDir, TorchRuntime.Device);
        var editors = new List<(string Name, Editor Editor)>();
        foreach (var d in names)
        {
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(d));
            var first = Editor.Load(d, TorchRuntime.Device);
            if (gates is null || !first.Net.Masked) { editors.Add((name, first)); continue; }
            foreach (var gate in gates)
            {
                if (double.IsNaN(gate) && gates.Contains(first.Config.MaskGate)) continue; // its own gate is already a row
                var e = Editor.Load(d, TorchRuntime.Device);
                if (!double.IsNaN(gate)) e.Net.MaskGate = gate;
                editors.Add((FormattableString.Invariant($"{name} gate {e.Net.MaskGate}{(double.IsNaN(gate) ? " (own)" : "")}"), e));
            }
            first.Dispose();
        }
        try
        {
            var attribute = editors[0].Editor.Config.Attribute;
            if (editors.Any(e => e.Editor.Config.Attribute != attribute)) throw new UsageException("--editors must all edit the same attribute");
            Console.WriteLine($"editors of {attribute} on {images} {split} portraits lacking it, rendered at {string.Join(", ", sizes)} px (residual mode above an editor's size); judge {judgeDir}");
            Console.WriteLine($"{"editor",-20} {"editor px",9} {"image px",8} {"edit%",6} {"in-region",10} {"outside",8} {"whole cf",9} {"sharpness",9} {"ms/img",8}");
            var rows = EditorComparison.Run(editors, judge, attribute, sizes, images, seed, report: r =>
                Console.WriteLine($"{r.Editor,-20} {r.EditorSize,9} {r.ImageSize,8} {r.Row.Editability * 100,6:0.0} {r.Row.PsnrInRegion,10:0.00} {r.Row.PsnrOutsideRegion,8:0.00} {r.Row.PsnrCounterfactual,9:0.00} {r.Row.Sharpness,9:0.000} {r.Row.MsPerImage,8:0.0}"), grid: grid);
            if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(new EditorsReport(attribute, images, judgeDir, rows, split), ModelFolder.Json));
        }
        finally { foreach (var e in editors) e.Editor.Dispose(); }
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
        var quality = o.String("quality") ?? Path.Combine(ModelHome.Root, "docs", "results", "bench-quality.json");
        int? t0Option = o.Has("t0") ? o.Int("t0", 200, 1, 999) : null;
        double guidance = o.Double("guidance", 3.0, 0, 1000);
        var sizes = (o.String("sizes") ?? "32,256,1024,2048").Split(',').Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var json = o.String("json");
        var prompt = o.String("prompt");
        o.EnsureAllUsed();
        // A Stable Diffusion pipeline is timed as the teacher of one prompt (SDEdit under it is the baseline).
        using var teacher = StableDiffusionModel.IsPipeline(teacherDir)
            ? StableDiffusionModel.LoadTeacher(teacherDir, "prompt", prompt ?? throw new UsageException($"{teacherDir} is a Stable Diffusion pipeline: give --prompt TEXT"), device: TorchRuntime.Device)
            : Teacher.Load(teacherDir, TorchRuntime.Device);
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

    /// <summary>
    /// SDEdit's quality-matched t0 from the quality benchmark: per attribute, the SDEdit row with mean editability >= 90 %
    /// and the best in-region PSNR; of those, the smallest t0 (the cheapest SDEdit, so the least flattering ratio for SDD).
    /// </summary>
    private static (int T0, string Why) QualityMatchedT0(string qualityJson)
    {
        if (!File.Exists(qualityJson)) return (200, $"t0 = 200: {qualityJson} not found");
        var report = JsonSerializer.Deserialize<QualityBenchReport>(File.ReadAllText(qualityJson), ModelFolder.Json);
        var matched = report?.Findings.Where(f => f.QualityMatchedSdedit is not null)
            .Select(f => (f.Attribute, T0: int.Parse(f.QualityMatchedSdedit!["sdedit-".Length..], System.Globalization.CultureInfo.InvariantCulture))).ToList() ?? [];
        if (matched.Count == 0) return (200, $"t0 = 200: no SDEdit row of {Path.GetFileName(qualityJson)} edits 90 %");
        var best = matched.MinBy(m => m.T0);
        return (best.T0, $"quality-matched: the smallest of the per-attribute quality-matched SDEdit rows of {Path.GetFileName(qualityJson)} " +
                         $"({string.Join(", ", matched.Select(m => $"{m.Attribute} t0={m.T0}"))}: editability >= 90 % and the best in-region PSNR)");
    }
}
