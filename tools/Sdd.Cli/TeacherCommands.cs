using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Judging;
using Sdd.Ml.Procedures;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

public static class TeacherCommands
{
    /// <summary>
    /// `sdd teacher train`: the teacher, then its judge under judge/ (unless --judge-steps 0), by <see cref="TeacherTraining"/>.
    /// With --resume the checkpoint's settings hold; only --steps, --decay-from and --judge-steps may change.
    /// </summary>
    public static int Train(Options o)
    {
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        bool resume = o.Has("resume");
        if (resume && !TeacherTraining.HasCheckpoint(outDir)) throw new UsageException($"--resume was given but '{outDir}' holds no checkpoint (train/state.json)");
        var settings = resume ? ResumedSettings(o, TeacherTraining.SavedSettings(outDir)) : Settings(o);
        var vae = resume ? null : o.String("vae");
        if (settings.Kind == TeacherConfig.KindLatentDdpm && !resume && vae is null) throw new UsageException("--kind latent-ddpm needs --vae DIR (an autoencoder made by sdd vae train, or a diffusers AutoencoderKL folder)");
        if (settings.Kind != TeacherConfig.KindLatentDdpm && vae is not null) throw new UsageException("--vae is for --kind latent-ddpm");
        int limit = o.Int("limit", int.MaxValue, 1);
        o.EnsureAllUsed();
        try { settings.Validated(); }
        catch (FormatException e) { throw new UsageException(e.Message); }

        var set = LabeledImageSet.OpenFolder(datasetDir);
        var sw = Stopwatch.StartNew();
        var rows = Enumerable.Range(0, Math.Min(limit, set.Rows.Count)).ToArray();
        var (images, labels) = set.Load(settings.ImageSize, rows);
        Console.Error.WriteLine($"loaded {rows.Length} images at {settings.ImageSize}px in {sw.Elapsed.TotalSeconds:0.0} s; device {TorchRuntime.Device}, {get_num_threads()} threads, flush denormals {TorchRuntime.FlushDenormals}");

        using var run = TeacherTraining.Open(outDir, settings, set.Attributes, images, labels, resume, Path.GetFullPath(datasetDir), vae);
        images.Dispose(); labels.Dispose();
        Console.Error.WriteLine($"teacher: {run.Teacher.Net.parameters().Sum(p => p.numel()):N0} parameters, step {run.Step} -> {run.Settings.Training.Steps}");
        var bar = new ProgressBar("teacher");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        run.AdvanceToEnd(p => bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond), cts.Token);
        Console.WriteLine($"teacher at step {run.Step} saved to {outDir} ({sw.Elapsed.TotalMinutes:0.0} min)");
        if (cts.IsCancellationRequested) return 130;

        var judgeBar = new ProgressBar("judge");
        if (run.Finish(set, p => judgeBar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond)) is { } judge) JudgeCommands.Print(judge);
        return 0;
    }

    /// <summary>A new teacher's options onto <see cref="TeacherRunSettings"/>; an option not given keeps the record's default.</summary>
    private static TeacherRunSettings Settings(Options o)
    {
        var d = new TeacherRunSettings();
        var t = d.Training;
        return d with
        {
            Kind = o.String("kind") ?? d.Kind,
            ImageSize = o.Int("size", d.ImageSize),
            Channels = o.String("channels") is { } c
                ? c.Split(',').Select(v => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--channels takes whole numbers like 32,64,96, got '{v}'")).ToArray()
                : d.Channels,
            AttentionBelow = o.String("attention-below") is not null ? o.Int("attention-below", 0) : d.AttentionBelow,
            Schedule = o.String("schedule") is { } k
                ? Enum.TryParse<ScheduleKind>(k, ignoreCase: true, out var kind) && Enum.IsDefined(kind) ? kind : throw new UsageException($"--schedule takes linear or cosine, got '{k}'")
                : d.Schedule,
            Training = t with
            {
                Steps = o.Int("steps", t.Steps),
                BatchSize = o.Int("batch", t.BatchSize),
                LearningRate = o.Double("lr", t.LearningRate),
                WarmupSteps = o.Int("warmup", t.WarmupSteps),
                DecayFrom = o.String("decay-from") is not null ? o.Int("decay-from", 0) : null,
                EmaDecay = o.Double("ema", t.EmaDecay),
                CheckpointEvery = o.Int("checkpoint-every", t.CheckpointEvery),
                Seed = o.Int("seed", (int)t.Seed),
            },
            JudgeSteps = o.Int("judge-steps", d.JudgeSteps),
        };
    }

    private static readonly string[] FixedOnResume = ["kind", "vae", "size", "channels", "attention-below", "schedule", "batch", "lr", "warmup", "ema", "checkpoint-every", "seed"];

    /// <summary>
    /// A resumed teacher keeps its checkpoint's settings; only the steps (to extend the run), where the learning rate's
    /// decay starts (to anneal the steps added) and the judge's steps may be given.
    /// </summary>
    private static TeacherRunSettings ResumedSettings(Options o, TeacherRunSettings saved)
    {
        if (FixedOnResume.FirstOrDefault(o.Has) is { } given)
            throw new UsageException($"--{given} is the checkpoint's on --resume (only --steps, --decay-from and --judge-steps may be given)");
        return saved with
        {
            Training = saved.Training with
            {
                Steps = o.Int("steps", saved.Training.Steps),
                DecayFrom = o.String("decay-from") is not null ? o.Int("decay-from", 0) : saved.Training.DecayFrom,
            },
            JudgeSteps = o.Int("judge-steps", saved.JudgeSteps),
        };
    }

    public static int Sample(Options o)
    {
        var dir = o.String("teacher") ?? ModelHome.Teacher;
        var set = o.String("set") ?? "";
        int count = o.Int("count", 16, 1, 4096), steps = o.Int("steps", 50, 1, 1000), seed = o.Int("seed", 1);
        double guidance = o.Double("guidance", 3.0, 0, 1000);
        var outPath = o.Required("out");
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(dir, TorchRuntime.Device);
        var states = AttributeCondition.Parse(set, teacher.Attributes);
        using var scope = NewDisposeScope();
        var cond = tensor(states, ScalarType.Int64).to(teacher.Device).unsqueeze(0).expand(count, -1).contiguous();
        var gen = new Generator((ulong)seed, teacher.Device);
        var sw = Stopwatch.StartNew();
        var x = teacher.Sample(cond, steps, guidance, gen);
        ImageCodec.SavePng(ImageCodec.Grid(x, (int)Math.Ceiling(Math.Sqrt(count))), outPath);
        Console.WriteLine($"sampled {count} images ({set}) with guidance {guidance}, {steps} DDIM steps in {sw.Elapsed.TotalSeconds:0.0} s -> {outPath}");
        return 0;
    }

    public sealed record AttributeRates(string Name, double PresentRate, double AbsentRate);
    public sealed record EvalReport(double Guidance, int Samples, int DdimSteps, List<AttributeRates> Attributes, int? TeacherStep = null, string? Judge = null);

    public static int Eval(Options o)
    {
        var dir = o.String("teacher") ?? ModelHome.Teacher;
        var judgeDir = o.String("judge") ?? ModelHome.JudgeFor(dir);
        int samples = o.Int("samples", 64, 2, 100_000), steps = o.Int("steps", 50, 1, 1000), seed = o.Int("seed", 1);
        double guidance = o.Double("guidance", 3.0, 0, 1000);
        var json = o.String("json");
        var misses = o.String("misses");
        var only = o.String("attributes")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(dir, TorchRuntime.Device);
        using var judge = Judge.Load(judgeDir, TorchRuntime.Device);
        if (only is { Length: 0 }) throw new UsageException("--attributes names no attribute (give them as A,B)");
        foreach (var name in only ?? [])
            if (!teacher.Attributes.Contains(name)) throw new UsageException($"--attributes: the teacher has no attribute '{name}' (it has {string.Join(", ", teacher.Attributes)})");
        if (misses is not null) Directory.CreateDirectory(misses);
        var report = Evaluate(teacher, judge, samples, steps, guidance, seed, misses, only) with { Judge = judgeDir };
        Console.WriteLine($"teacher {dir} (step {teacher.Config.Step}), judge {judgeDir}, {samples} samples per row, guidance {guidance}, {steps} DDIM steps");
        Console.WriteLine($"{"attribute",-14} {"attr=1 judged present",22} {"attr=-1 judged absent",22}");
        foreach (var a in report.Attributes) Console.WriteLine($"{a.Name,-14} {a.PresentRate,22:P1} {a.AbsentRate,22:P1}");
        if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(report, TeacherConfig.Json));
        return 0;
    }

    /// <summary>
    /// Per attribute, samples asked to have it and asked not to, and the share the judge agrees with; with
    /// <paramref name="missesDir"/> the samples it disagrees with are saved there as grids (ATTRIBUTE-present.png,
    /// ATTRIBUTE-absent.png), to see whether the teacher or the judge is wrong.
    /// </summary>
    public static EvalReport Evaluate(Teacher teacher, Judge judge, int samples, int steps, double guidance, int seed, string? missesDir = null,
        IReadOnlyCollection<string>? only = null)
    {
        var rows = new List<AttributeRates>();
        var gen = new Generator((ulong)seed, teacher.Device);
        var bar = new ProgressBar("eval");
        var sw = Stopwatch.StartNew();
        for (int a = 0; a < teacher.Attributes.Count; a++)
        {
            var name = teacher.Attributes[a];
            if (only is not null && !only.Contains(name)) continue;
            int j = judge.AttributeIndex(name);
            var rate = new double[2];
            for (int sign = 0; sign < 2; sign++)
            {
                using var scope = NewDisposeScope();
                bool present = sign == 0;
                var x = teacher.Sample(AttributeCondition.Single(samples, teacher.Attributes.Count, a, present, teacher.Device), steps, guidance, gen);
                var p = judge.Probabilities(x)[.., j];
                var agreed = present ? p.gt(0.5) : p.le(0.5);
                rate[sign] = agreed.to_type(ScalarType.Float32).mean().item<float>();
                var missed = agreed.logical_not().nonzero().flatten();
                if (missesDir is not null && missed.shape[0] > 0)
                    ImageCodec.SavePng(ImageCodec.Grid(x.index_select(0, missed.to(x.device)).cpu(), (int)Math.Ceiling(Math.Sqrt(missed.shape[0]))),
                        Path.Combine(missesDir, $"{name}-{(present ? "present" : "absent")}.png"));
                bar.Report(2 * a + sign + 1, 2 * teacher.Attributes.Count, name, (2 * a + sign + 1) / sw.Elapsed.TotalSeconds);
            }
            rows.Add(new AttributeRates(name, Math.Round(rate[0], 4), Math.Round(rate[1], 4)));
        }
        return new EvalReport(guidance, samples, steps, rows, teacher.Config.Step);
    }
}
