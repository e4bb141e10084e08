using System.Diagnostics;
using Sdd.Configuration;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Procedures;
using Sdd.Ml.StableDiffusion;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

/// <summary>indicator, distill and edit: the method's commands.</summary>
public static class MethodCommands
{
    /// <summary>
    /// The distillation settings from --steps, --mode, --scale auto|N (absent = auto), --target, --calibration-steps,
    /// --positive-share, --editor masked|residual, --mask-sparsity, --mask-smoothness, ...; every default is
    /// <see cref="DistillSettings"/>'s own.
    /// </summary>
    public static DistillSettings ReadDistillSettings(Options o)
    {
        var d = new DistillSettings();
        var mode = (o.String("mode") ?? d.Guidance.Mode.ToString()).ToLowerInvariant() switch
        {
            "delta" => GuidanceMode.Delta,
            "sds" => GuidanceMode.Sds,
            "cfg" => GuidanceMode.Cfg,
            var m => throw new UsageException($"--mode must be delta, cfg or sds, got '{m}'"),
        };
        var scaleArg = o.String("scale");
        double? scale = scaleArg is null || scaleArg.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null
            : double.TryParse(scaleArg, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && v is > 0 and <= 1e6 ? v
            : throw new UsageException($"--scale must be auto or a number in (0, 1e6], got '{scaleArg}'");
        var editor = (o.String("editor") ?? d.Editor.ToString()).ToLowerInvariant() switch
        {
            "masked" => EditorArchitecture.Masked,
            "residual" => EditorArchitecture.Residual,
            var e => throw new UsageException($"--editor must be masked or residual, got '{e}'"),
        };
        var s = new DistillSettings
        {
            Steps = o.Int("steps", d.Steps, 1, DistillSettings.MaxSteps),
            BatchSize = o.Int("batch", d.BatchSize, 1, 1024),
            LearningRate = o.Double("lr", d.LearningRate, 1e-7, 1),
            WeightDecay = o.Double("weight-decay", d.WeightDecay, 0, 1),
            Lambda = o.Double("lambda", d.Lambda, 0, 1e6),
            Guidance = new GuidanceSettings { Mode = mode, Scale = scale, TopK = o.Int("topk", d.Guidance.TopK, 0) },
            Timesteps = o.String("timesteps") ?? d.Timesteps,
            Seed = o.Int("seed", (int)d.Seed),
            TargetEditability = o.Double("target", d.TargetEditability, 1e-6, 1),
            CalibrationSteps = o.Has("calibration-steps") ? o.Int("calibration-steps", 1, 1, DistillSettings.MaxSteps) : d.CalibrationSteps,
            CalibrationRefinements = o.Int("calibration-refinements", d.CalibrationRefinements, 0, 6),
            PositiveShare = o.Double("positive-share", DistillSettings.DefaultPositiveShare(mode), 0, 0.99),
            Editor = editor,
            MaskSparsity = o.Double("mask-sparsity", d.MaskSparsity, 0, 1e6),
            MaskSmoothness = o.Double("mask-smoothness", d.MaskSmoothness, 0, 1e6),
            MaskGate = o.String("gate") is not { } gateArg || gateArg.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null
                : double.TryParse(gateArg, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var gate) && gate is >= 0 and < 1 ? gate
                : throw new UsageException($"--gate must be auto or a number in [0, 1), got '{gateArg}'"),
            LatentGradient = o.String("latent-gradient") switch
            {
                null => d.LatentGradient,
                "encoder" => LatentGradient.Encoder,
                "decoder" => LatentGradient.Decoder,
                var g => throw new UsageException($"--latent-gradient must be encoder or decoder, got '{g}'"),
            },
            DecoderStep = o.Has("decoder-step") ? o.Double("decoder-step", 3, 1e-6, 100) : null,
        };
        try { return s.Validated(); }
        catch (FormatException e) { throw new UsageException(e.Message); }
    }

    /// <summary>How much the indicator scores and the evaluation reads, from --samples, --k, --xi, --eval-images, --checkpoint-every.</summary>
    public static DistillationSizes ReadSizes(Options o)
    {
        var d = new DistillationSizes();
        return new DistillationSizes
        {
            IndicatorSamples = o.Int("samples", d.IndicatorSamples, 1, 100_000),
            IndicatorBest = o.Int("k", d.IndicatorBest, 1, 100),
            IndicatorThreshold = o.Has("xi") ? o.Double("xi", 0, -2, 2) : d.IndicatorThreshold,
            EvalImages = o.Int("eval-images", d.EvalImages, 1, 100_000),
            ValidationImages = o.Int("validation-images", d.ValidationImages, 1, 100_000),
            CheckpointEvery = o.Int("checkpoint-every", 100, 1),
        };
    }

    public static int Indicator(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var attribute = o.Required("attribute");
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        var sizes = ReadSizes(o);
        var s = ReadDistillSettings(o);
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        using var data = RunImages.Training(LoadedDataset.OpenFolder(datasetDir), teacher.Size, teacher.Attributes);
        var (lx, ly) = EditorDistillation.Lacking(data.Images, data.Labels, teacher.AttributeIndex(attribute));
        using (lx) using (ly)
        {
            var bar = new ProgressBar("indicator");
            var sw = Stopwatch.StartNew();
            var curve = EditorDistillation.RunIndicator(teacher, attribute, lx, ly, s, sizes.IndicatorSamples, sizes.IndicatorThreshold, sizes.IndicatorBest,
                (i, n) => bar.Report(i, n, "", i / sw.Elapsed.TotalSeconds));
            Directory.CreateDirectory(outDir);
            EditorDistillation.WriteCurve(curve, Path.Combine(outDir, EditorDistillation.CurveFile));
            CurvePlot.Save(curve, Path.Combine(outDir, EditorDistillation.CurvePlotFile));
            PrintCurve(curve);
        }
        Console.WriteLine($"wrote {Path.Combine(outDir, EditorDistillation.CurveFile)} and {EditorDistillation.CurvePlotFile}");
        return 0;
    }

    public static void PrintCurve(IndicatorCurve c)
    {
        Console.WriteLine($"HQS curve for {c.Attribute} over {c.Samples} images ({c.Guidance.Mode}, s={c.Guidance.Scale?.ToString() ?? "auto"}); selected ({c.Rule}): {string.Join(", ", c.Selected)}");
        Console.WriteLine($"{"t",5} {"entropy",10} {"±",8} {"norm",12} {"±",10} {"HQS",7} {"±",6}");
        foreach (var p in c.Points)
            Console.WriteLine($"{p.T,5} {p.Entropy,10:0.0000} {p.EntropyStd,8:0.0000} {p.Norm,12:0.0} {p.NormStd,10:0.0} {p.Hqs,7:0.000} {p.HqsStd,6:0.000}{(c.Selected.Contains(p.T) ? "  *" : "")}");
    }

    public static int Distill(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var judgeArg = o.String("judge");
        var attribute = o.Required("attribute");
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        int limit = o.Int("limit", int.MaxValue, 1);
        bool resume = o.Has("resume");
        // A Stable Diffusion teacher (a diffusers folder or one .safetensors file) edits by a text prompt, on plain photos.
        var prompt = o.String("prompt");
        var sourcePrompt = o.String("source-prompt");
        var sdConfig = o.String("config");
        var sizes = ReadSizes(o);
        var s = ReadDistillSettings(o);
        o.EnsureAllUsed();
        bool sd = StableDiffusionModel.IsPipeline(teacherDir);
        if (sd && string.IsNullOrWhiteSpace(prompt)) throw new UsageException($"{teacherDir} is a Stable Diffusion pipeline: give the attribute's text with --prompt \"a photo of a smiling person\"");
        if (!sd && (prompt ?? sourcePrompt ?? sdConfig) is not null) throw new UsageException($"--prompt, --source-prompt and --config go with a Stable Diffusion teacher; {teacherDir} is an attribute teacher");
        // The shipped judges know SDD's portraits, not a prompt on photos: an SD run is judged only by a judge given by hand.
        var judgeDir = judgeArg ?? (sd ? null : ModelHome.JudgeFor(teacherDir));

        using var teacher = sd ? StableDiffusionModel.LoadTeacher(teacherDir, attribute, prompt!, sourcePrompt, sdConfig, TorchRuntime.Device) : Teacher.Load(teacherDir, TorchRuntime.Device);
        // A prompt attribute needs plain photos only: a labels.csv beside them is ignored.
        var dataset = sd ? LoadedDataset.OpenPlainFolder(datasetDir, attribute) : LoadedDataset.OpenFolder(datasetDir);
        var sw = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        using var data = RunImages.Training(dataset, teacher.Size, teacher.Attributes, limit);
        using var run = EditorDistillation.Open(outDir, teacher, attribute, data, s, sizes, resume, teacherName: Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(teacherDir))));
        using var judge = judgeDir is not null && File.Exists(Path.Combine(judgeDir, ModelFolder.WeightsFile)) ? Judge.Load(judgeDir, TorchRuntime.Device) : null;
        var bars = new Dictionary<string, ProgressBar>();
        void Progress(string phase, TrainingProgress p)
        {
            if (!bars.TryGetValue(phase, out var bar)) bars[phase] = bar = new ProgressBar(phase);
            bar.Report(p.Step, p.TotalSteps, phase == "indicator" ? "" : $"edit {p.Loss:0.0000}", p.StepsPerSecond > 0 ? p.StepsPerSecond : p.Step / sw.Elapsed.TotalSeconds);
        }
        if (run.NeedsCalibration)
        {
            using var validation = judge is null ? null : RunImages.Validation(dataset, attribute, sizes.ValidationImages, teacher.Size, teacher.Attributes);
            if (!run.Calibrate(judge, validation, _ => !cts.IsCancellationRequested, Progress)) return 130;
        }
        if (run.Calibration is { } c)
            Console.WriteLine($"guidance scale {c.Scale} ({c.Method}; target editability {c.Target}{(c.Reached ? "" : ", NOT reached")}): " +
                              string.Join(", ", c.Probes.Select(p => FormattableString.Invariant($"s={p.Scale} -> {p.Editability:0.###}"))));
        run.AdvanceToEnd(Progress, cts.Token);
        if (run.Curve is not null) PrintCurve(run.Curve);
        var editor = run.Editor;
        Console.WriteLine($"editor for {attribute} ({editor.ParameterCount:N0} parameters, t from {s.Timesteps}: {string.Join(",", editor.Config.SelectedTimesteps)}) " +
                          $"trained {run.Step} of {s.Steps} steps in {sw.Elapsed.TotalSeconds:0} s -> {outDir}");
        if (cts.IsCancellationRequested) return 130;

        IReadOnlyList<string> columns = judge is not null && judge.Config.AttributeNames.Contains(attribute) ? judge.Config.AttributeNames : teacher.Attributes;
        using var held = RunImages.Evaluation(dataset, attribute, sizes.EvalImages, teacher.Size, columns);
        // The validation images choose the automatic mask gate (with a judge) and calibrate the domain gate (always).
        using var gateImages = RunImages.Validation(dataset, attribute, sizes.ValidationImages, teacher.Size, teacher.Attributes);
        var result = run.Finish(held, judge, gateImages);
        if (run.Editor.Net.Masked)
            Console.WriteLine(s.AutoMaskGate && File.Exists(Path.Combine(outDir, EditorDistillation.GateFile))
                ? FormattableString.Invariant($"mask gate {result.Metrics["maskGate"]} (automatic: the largest keeping editability >= {s.TargetEditability} on {gateImages!.Images.shape[0]} validation images; {result.Metrics["gateValidationEditability"]} there, ungated {result.Metrics["ungatedValidationEditability"]})")
                : FormattableString.Invariant($"mask gate {result.Metrics["maskGate"]} ({(s.AutoMaskGate ? "automatic, but no judge or validation images: off" : "as given")})"));
        Console.WriteLine($"evaluated on {held.Images.shape[0]} held-out images{(judge is null ? " (no judge)" : "")}: " +
                          string.Join(", ", result.Metrics.Select(kv => FormattableString.Invariant($"{kv.Key} {kv.Value}"))) + $"; {EditorDistillation.GridFile} written");
        return 0;
    }

    /// <summary>
    /// <c>editor gate</c>: sets a masked editor's mask gate in its folder, given (--gate G) or chosen (--auto) on the
    /// validation portraits lacking the attribute: the largest gate that keeps the judge's editability at --target.
    /// </summary>
    public static int Gate(Options o)
    {
        var dir = o.Required("editor");
        var text = o.String("gate");
        bool auto = o.Has("auto");
        if (auto == (text is not null)) throw new UsageException("give either --gate G or --auto");
        if (!auto && new[] { "judge", "target", "images" }.FirstOrDefault(o.Has) is { } unused)
            throw new UsageException($"--{unused} only goes with --auto; --gate G sets the gate as given");
        var judgeDir = o.String("judge") ?? ModelHome.JudgeForSize(Editor.ReadConfig(dir).ImageSize);
        double target = o.Double("target", 0.95, 0.01, 1);
        int images = o.Int("images", 100, 8, 10_000);
        o.EnsureAllUsed();
        var before = Editor.ReadConfig(dir).MaskGate;
        double gate;
        if (text is not null)
        {
            if (!double.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out gate) || gate is < 0 or >= 1)
                throw new UsageException($"--gate takes a number in [0, 1), got '{text}'");
        }
        else
        {
            using var editor = Editor.Load(dir, TorchRuntime.Device);
            if (!editor.Net.Masked) throw new UsageException($"{dir} is a {editor.Config.Network.ToString().ToLowerInvariant()} editor; only a masked editor has a mask to gate.");
            using var judge = Judge.Load(judgeDir, TorchRuntime.Device);
            var attribute = editor.Config.Attribute;
            using var held = HeldOutPortraits.Render(attribute, present: false, images, editor.Size, HeldOutPortraits.ValidationSeed);
            var choice = MaskGating.Choose(editor, judge, attribute, held.Images, target);
            Console.WriteLine($"{images} validation portraits lacking {attribute}, at {editor.Size} px; judge {judgeDir}; target editability {target:P0}");
            foreach (var t in choice.Trials) Console.WriteLine(FormattableString.Invariant($"  gate {t.Gate,4:0.00}: editability {t.Editability * 100,5:0.0} %"));
            gate = choice.Gate;
        }
        try { Editor.SetGate(dir, gate); }
        catch (InvalidDataException e) { throw new UsageException(e.Message); }
        Console.WriteLine(FormattableString.Invariant($"{dir}: mask gate {before} -> {gate}"));
        return 0;
    }

    public static int Edit(Options o)
    {
        var editorDir = o.Required("editor");
        var outDir = o.Required("out");
        int batch = o.Int("batch", 32, 1, 4096);
        var formatArg = o.String("format");
        OutputFormat? format = null;
        if (formatArg is not null && !OutputFormat.TryParse(formatArg, out format)) throw new UsageException($"--format {formatArg}: use jpeg, png or webp");
        var inputs = new List<string>();
        var inArg = o.String("in");
        if (inArg is not null) inputs.Add(inArg);
        bool editOutside = o.Has("edit-outside-domain");
        inputs.AddRange(o.Positional);
        o.EnsureAllUsed();
        if (inputs.Count == 0) throw new UsageException("give images with --in DIR or as file names");
        var files = new List<string>();
        foreach (var p in inputs)
        {
            if (Directory.Exists(p)) files.AddRange(Directory.EnumerateFiles(p).Where(ImageCodec.IsImageFile).Order());
            else if (File.Exists(p)) files.Add(p);
            else throw new UsageException($"'{p}' is neither a file nor a folder");
        }
        files = files.Distinct().ToList();
        using var editor = Editor.Load(editorDir, TorchRuntime.Device);
        Directory.CreateDirectory(outDir);
        // Each output in --format, or in its input's (JPEG, PNG, WebP kept; the rest become PNG), named for it.
        var formats = files.ToDictionary(f => f, f => format ?? ImageCodec.KeptFormat(f));
        var outputNames = OutputNames(files, f => formats[f]);
        var sw = Stopwatch.StartNew();
        var failures = new List<(string File, string Reason)>();
        var skipped = new List<(string File, string Reason)>();
        int done = 0;
        var bar = new ProgressBar("edit");
        // Decode everything that decodes; batch images of one size together.
        foreach (var chunk in files.Chunk(batch * 4))
        {
            var decoded = new List<(string File, Tensor Image, KeptMetadata Kept)>();
            foreach (var f in chunk)
            {
                try
                {
                    using var image = ImageCodec.Decode(File.ReadAllBytes(f), out var kept);
                    decoded.Add((f, ImageCodec.ToTensor(image), kept));
                }
                catch (ImageDecodeException e) { failures.Add((f, e.Message)); }
                catch (IOException e) { failures.Add((f, e.Message)); }
            }
            foreach (var group in decoded.GroupBy(d => (d.Image.shape[1], d.Image.shape[2])))
                foreach (var all in group.Chunk(batch))
                {
                    using var scope = NewDisposeScope();
                    var part = all;
                    if (editor.Domain is { } gate)
                    {
                        // The editor's domain gate, as the Edit worker applies it: an image outside is skipped with its score.
                        var scores = gate.Scores(stack(all.Select(p => p.Image)));
                        var outside = Enumerable.Range(0, all.Length).Where(i => !gate.Passes(scores[i])).ToList();
                        if (!editOutside)
                        {
                            skipped.AddRange(outside.Select(i => (all[i].File, gate.Reason(scores[i]))));
                            part = all.Where((_, i) => !outside.Contains(i)).ToArray();
                        }
                        else foreach (var i in outside) Console.Error.WriteLine($"edited anyway {all[i].File}: {gate.Reason(scores[i])}");
                        if (part.Length == 0) continue;
                    }
                    var edited = editor.Edit(stack(part.Select(p => p.Image)));
                    for (int i = 0; i < part.Length; i++)
                        File.WriteAllBytes(Path.Combine(outDir, outputNames[part[i].File]), ImageCodec.Encode(edited[i], formats[part[i].File], part[i].Kept));
                    done += part.Length;
                    bar.Report(done + failures.Count + skipped.Count, files.Count, "", (done + failures.Count + skipped.Count) / sw.Elapsed.TotalSeconds);
                }
            foreach (var d in decoded) d.Image.Dispose();
        }
        foreach (var (f, reason) in failures) Console.Error.WriteLine($"failed {f}: {reason}");
        foreach (var (f, reason) in skipped) Console.Error.WriteLine($"skipped {f}: {reason}");
        Console.WriteLine($"edited {done} image(s) with the {editor.Config.Attribute} editor in {sw.Elapsed.TotalSeconds:0.00} s ({done / Math.Max(1e-9, sw.Elapsed.TotalSeconds):0.0} images/s) -> {outDir}; failed {failures.Count}" +
                          (skipped.Count > 0 ? $"; skipped {skipped.Count} outside the editor's domain (--edit-outside-domain edits them)" : ""));
        return failures.Count == 0 && skipped.Count == 0 ? 0 : 1;
    }

    /// <summary>
    /// Output file names: the input's stem + its output format's extension (face.jpg, face.bmp -> face.png); when two
    /// inputs would get the same name (face.png, face.bmp) the full name is kept (face.bmp.png), and a numbered suffix
    /// settles any remaining clash, so nothing is overwritten.
    /// </summary>
    public static Dictionary<string, string> OutputNames(IReadOnlyList<string> files, Func<string, OutputFormat> formatOf)
    {
        string Plain(string f) => $"{Path.GetFileNameWithoutExtension(f)}.{formatOf(f).Extension}";
        var counts = files.Distinct().GroupBy(Plain, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Count(), StringComparer.OrdinalIgnoreCase);
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var names = new Dictionary<string, string>();
        foreach (var f in files)
        {
            if (names.ContainsKey(f)) continue;
            var ext = formatOf(f).Extension;
            var name = counts[Plain(f)] > 1 ? $"{Path.GetFileName(f)}.{ext}" : Plain(f);
            for (int i = 2; !taken.Add(name); i++) name = $"{Path.GetFileNameWithoutExtension(name)}-{i}.{ext}";
            names[f] = name;
        }
        return names;
    }
}
