using System.Diagnostics;
using Sdd.Configuration;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using Sdd.Ml.Indicator;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

/// <summary>indicator, distill and edit: the method's commands.</summary>
public static class MethodCommands
{
    public static DistillSettings ReadDistillSettings(Options o, int defaultSteps = 400)
    {
        var mode = (o.String("mode") ?? "delta").ToLowerInvariant() switch
        {
            "delta" => GuidanceMode.Delta,
            "sds" => GuidanceMode.Sds,
            var m => throw new UsageException($"--mode must be delta or sds, got '{m}'"),
        };
        return new DistillSettings
        {
            Steps = o.Int("steps", defaultSteps, 1),
            BatchSize = o.Int("batch", 16, 1, 1024),
            LearningRate = o.Double("lr", 5e-4, 1e-7, 1),
            WeightDecay = o.Double("weight-decay", 1e-4, 0, 1),
            Lambda = o.Double("lambda", 1.0, 0, 1e6),
            Guidance = new GuidanceSettings { Mode = mode, Scale = o.Double("scale", mode == GuidanceMode.Delta ? 10 : 30, 0, 1e6), TopK = o.Int("topk", 0, 0) },
            Timesteps = o.String("timesteps") ?? "hqs",
            CheckpointEvery = o.Int("checkpoint-every", 100, 1),
            Seed = o.Int("seed", 1),
        };
    }

    private static (Tensor Images, Tensor Labels) LoadTrainRows(string datasetDir, Teacher teacher, int limit)
    {
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var (train, _) = set.Split();
        var rows = train.Take(limit).ToArray();
        var (x, y) = set.Load(teacher.Size, rows);
        // Columns in the teacher's attribute order.
        var cols = teacher.Attributes.Select(a => (long)set.AttributeIndex(a)).ToArray();
        using var idx = tensor(cols);
        var yy = y.index_select(1, idx);
        y.Dispose();
        return (x, yy);
    }

    public static int Indicator(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var attribute = o.Required("attribute");
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        int samples = o.Int("samples", 32, 1, 100_000), k = o.Int("k", 5, 1, 100);
        double? xi = o.Has("xi") ? o.Double("xi", 0, -2, 2) : null;
        var s = ReadDistillSettings(o);
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        var (x, y) = LoadTrainRows(datasetDir, teacher, int.MaxValue);
        var (lx, ly) = EditorRecipe.Lacking(x, y, teacher.AttributeIndex(attribute));
        var bar = new ProgressBar("indicator");
        var sw = Stopwatch.StartNew();
        var curve = EditorRecipe.RunIndicator(teacher, attribute, lx, ly, s, samples, xi, k, (i, n) => bar.Report(i, n, "", i / sw.Elapsed.TotalSeconds));
        Directory.CreateDirectory(outDir);
        EditorRecipe.WriteCurve(curve, Path.Combine(outDir, "curve.json"));
        CurvePlot.Save(curve, Path.Combine(outDir, "curve.png"));
        PrintCurve(curve);
        Console.WriteLine($"wrote {Path.Combine(outDir, "curve.json")} and curve.png");
        return 0;
    }

    public static void PrintCurve(IndicatorCurve c)
    {
        Console.WriteLine($"HQS curve for {c.Attribute} over {c.Samples} images ({c.Guidance.Mode}, s={c.Guidance.Scale}); selected ({c.Rule}): {string.Join(", ", c.Selected)}");
        Console.WriteLine($"{"t",5} {"entropy",10} {"±",8} {"norm",12} {"±",10} {"HQS",7} {"±",6}");
        foreach (var p in c.Points)
            Console.WriteLine($"{p.T,5} {p.Entropy,10:0.0000} {p.EntropyStd,8:0.0000} {p.Norm,12:0.0} {p.NormStd,10:0.0} {p.Hqs,7:0.000} {p.HqsStd,6:0.000}{(c.Selected.Contains(p.T) ? "  *" : "")}");
    }

    public static int Distill(Options o)
    {
        var teacherDir = o.String("teacher") ?? ModelHome.Teacher;
        var attribute = o.Required("attribute");
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        int samples = o.Int("samples", 32, 1, 100_000), k = o.Int("k", 5, 1, 100), limit = o.Int("limit", int.MaxValue, 1);
        double? xi = o.Has("xi") ? o.Double("xi", 0, -2, 2) : null;
        bool resume = o.Has("resume");
        var s = ReadDistillSettings(o);
        o.EnsureAllUsed();
        if (s.Timesteps != "hqs") TimestepSampler.Parse(s.Timesteps, 1000); // fail early on a bad rule

        using var teacher = Teacher.Load(teacherDir, TorchRuntime.Device);
        var (x, y) = LoadTrainRows(datasetDir, teacher, limit);
        var bars = new Dictionary<string, ProgressBar>();
        var sw = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        var trained = EditorRecipe.Train(teacher, attribute, x, y, s, outDir, samples, xi, k, resume, (phase, p) =>
        {
            if (!bars.TryGetValue(phase, out var bar)) bars[phase] = bar = new ProgressBar(phase);
            bar.Report(p.Step, p.TotalSteps, phase == "distill" ? $"edit {p.Loss:0.0000}" : "", p.StepsPerSecond > 0 ? p.StepsPerSecond : p.Step / sw.Elapsed.TotalSeconds);
        }, cts.Token);
        if (trained.Curve is not null)
        {
            CurvePlot.Save(trained.Curve, Path.Combine(outDir, "curve.png"));
            PrintCurve(trained.Curve);
        }
        Console.WriteLine($"editor for {attribute} ({trained.Editor.ParameterCount:N0} parameters, t from {s.Timesteps}: {string.Join(",", trained.Editor.Config.SelectedTimesteps)}) " +
                          $"trained {trained.Editor.Config.Step} steps in {trained.Seconds:0} s -> {outDir}");
        return cts.IsCancellationRequested ? 130 : 0;
    }

    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tga", ".tif", ".tiff"];

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
        inputs.AddRange(o.Positional);
        o.EnsureAllUsed();
        if (inputs.Count == 0) throw new UsageException("give images with --in DIR or as file names");
        var files = new List<string>();
        foreach (var p in inputs)
        {
            if (Directory.Exists(p)) files.AddRange(Directory.EnumerateFiles(p).Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order());
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
                foreach (var part in group.Chunk(batch))
                {
                    using var scope = NewDisposeScope();
                    var edited = editor.Edit(stack(part.Select(p => p.Image)));
                    for (int i = 0; i < part.Length; i++)
                        File.WriteAllBytes(Path.Combine(outDir, outputNames[part[i].File]), ImageCodec.Encode(edited[i], formats[part[i].File], part[i].Kept));
                    done += part.Length;
                    bar.Report(done + failures.Count, files.Count, "", (done + failures.Count) / sw.Elapsed.TotalSeconds);
                }
            foreach (var d in decoded) d.Image.Dispose();
        }
        foreach (var (f, reason) in failures) Console.Error.WriteLine($"failed {f}: {reason}");
        Console.WriteLine($"edited {done} image(s) with the {editor.Config.Attribute} editor in {sw.Elapsed.TotalSeconds:0.00} s ({done / Math.Max(1e-9, sw.Elapsed.TotalSeconds):0.0} images/s) -> {outDir}; failed {failures.Count}");
        return failures.Count == 0 ? 0 : 1;
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
