using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

public static class TeacherCommands
{
    public static int Train(Options o)
    {
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        bool resume = o.Has("resume");
        TeacherConfig config;
        if (resume && File.Exists(Path.Combine(outDir, Teacher.ConfigFile)))
        {
            config = Teacher.ReadConfig(outDir);
            var t = config.Training ?? new TeacherTrainingSettings();
            config = config with { Training = t with { Steps = o.Int("steps", t.Steps, 1) } };
        }
        else
        {
            var set0 = LabeledImageSet.OpenFolder(datasetDir);
            var channels = (o.String("channels") ?? "32,64,96").Split(',').Select(c => int.TryParse(c, out var v) && v >= 8 && v % 8 == 0 ? v : throw new UsageException($"--channels takes multiples of 8 like 32,64,96, got '{c}'")).ToArray();
            int size = o.Int("size", 32, 8, 512);
            if (size % (1 << (channels.Length - 1)) != 0) throw new UsageException($"--size {size} must be divisible by {1 << (channels.Length - 1)}");
            config = new TeacherConfig
            {
                AttributeNames = set0.Attributes.ToArray(),
                Unet = new UNetConfig { ImageSize = size, Channels = channels, Attributes = set0.Attributes.Count, AttentionBelow = o.Int("attention-below", Math.Max(4, size / 4), 1) },
                Schedule = Enum.Parse<ScheduleKind>(o.String("schedule") ?? "linear", ignoreCase: true),
                Dataset = Path.GetFullPath(datasetDir),
                Training = new TeacherTrainingSettings
                {
                    Steps = o.Int("steps", 2000, 1),
                    BatchSize = o.Int("batch", 64, 1, 4096),
                    LearningRate = o.Double("lr", 8e-4, 1e-7, 1),
                    WarmupSteps = o.Int("warmup", 200, 0),
                    EmaDecay = o.Double("ema", 0.999, 0, 1),
                    CheckpointEvery = o.Int("checkpoint-every", 250, 1),
                    Seed = o.Int("seed", 1),
                },
            };
        }
        int limit = o.Int("limit", int.MaxValue, 1);
        o.EnsureAllUsed();

        var set = LabeledImageSet.OpenFolder(datasetDir);
        if (!set.Attributes.SequenceEqual(config.AttributeNames))
            throw new DatasetException($"The data set's attributes ({string.Join(",", set.Attributes)}) differ from the teacher's ({string.Join(",", config.AttributeNames)}).");
        var sw = Stopwatch.StartNew();
        var rows = Enumerable.Range(0, Math.Min(limit, set.Rows.Count)).ToArray();
        var (images, labels) = set.Load(config.Unet.ImageSize, rows);
        Console.Error.WriteLine($"loaded {rows.Length} images at {config.Unet.ImageSize}px in {sw.Elapsed.TotalSeconds:0.0} s; device {TorchRuntime.Device}, {get_num_threads()} threads, flush denormals {TorchRuntime.FlushDenormals}");

        using var trainer = new TeacherTrainer(outDir, config, images, labels, TorchRuntime.Device, resume);
        images.Dispose(); labels.Dispose();
        var total = config.Training!.Steps;
        Console.Error.WriteLine($"teacher: {trainer.Teacher.Net.parameters().Sum(p => p.numel()):N0} parameters, step {trainer.Step} -> {total}");
        var bar = new ProgressBar("teacher");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        trainer.Run(total, p => bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond), cts.Token);
        Console.WriteLine($"teacher at step {trainer.Step} saved to {outDir} ({sw.Elapsed.TotalMinutes:0.0} min)");
        return cts.IsCancellationRequested ? 130 : 0;
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
    public sealed record EvalReport(double Guidance, int Samples, int DdimSteps, List<AttributeRates> Attributes);

    public static int Eval(Options o)
    {
        var dir = o.String("teacher") ?? ModelHome.Teacher;
        var judgeDir = o.String("judge") ?? ModelHome.Judge;
        int samples = o.Int("samples", 64, 2, 100_000), steps = o.Int("steps", 50, 1, 1000), seed = o.Int("seed", 1);
        double guidance = o.Double("guidance", 3.0, 0, 1000);
        var json = o.String("json");
        o.EnsureAllUsed();
        using var teacher = Teacher.Load(dir, TorchRuntime.Device);
        using var judge = Judge.Load(judgeDir, TorchRuntime.Device);
        var report = Evaluate(teacher, judge, samples, steps, guidance, seed);
        Console.WriteLine($"teacher {dir} (step {teacher.Config.Step}), {samples} samples per row, guidance {guidance}, {steps} DDIM steps");
        Console.WriteLine($"{"attribute",-14} {"attr=1 judged present",22} {"attr=-1 judged absent",22}");
        foreach (var a in report.Attributes) Console.WriteLine($"{a.Name,-14} {a.PresentRate,22:P1} {a.AbsentRate,22:P1}");
        if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(report, TeacherConfig.Json));
        return 0;
    }

    public static EvalReport Evaluate(Teacher teacher, Judge judge, int samples, int steps, double guidance, int seed)
    {
        var rows = new List<AttributeRates>();
        var gen = new Generator((ulong)seed, teacher.Device);
        var bar = new ProgressBar("eval");
        var sw = Stopwatch.StartNew();
        for (int a = 0; a < teacher.Attributes.Count; a++)
        {
            var name = teacher.Attributes[a];
            int j = judge.AttributeIndex(name);
            var rate = new double[2];
            for (int sign = 0; sign < 2; sign++)
            {
                using var scope = NewDisposeScope();
                bool present = sign == 0;
                var x = teacher.Sample(AttributeCondition.Single(samples, teacher.Attributes.Count, a, present, teacher.Device), steps, guidance, gen);
                var p = judge.Probabilities(x)[.., j];
                rate[sign] = (present ? p.gt(0.5) : p.le(0.5)).to_type(ScalarType.Float32).mean().item<float>();
                bar.Report(2 * a + sign + 1, 2 * teacher.Attributes.Count, name, (2 * a + sign + 1) / sw.Elapsed.TotalSeconds);
            }
            rows.Add(new AttributeRates(name, Math.Round(rate[0], 4), Math.Round(rate[1], 4)));
        }
        return new EvalReport(guidance, samples, steps, rows);
    }
}
