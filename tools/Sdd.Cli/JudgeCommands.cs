using System.Diagnostics;
using Sdd.Ml.Data;
using Sdd.Ml.Judging;
using Sdd.Ml.Procedures;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

public static class JudgeCommands
{
    /// <summary>`sdd judge train`: a standalone judge, trained as a teacher run's last stage trains one (<see cref="JudgeTraining"/>).</summary>
    public static int Train(Options o)
    {
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        int steps = o.Int("steps", TeacherRunSettings.DefaultJudgeSteps, 1), size = o.Int("size", UNetConfig.DefaultImageSize, 8, 512),
            seed = o.Int("seed", 1);
        int batch = o.Int("batch", Judge.DefaultBatchFor(size), 2);
        double lr = o.Double("lr", Judge.DefaultLearningRate, 1e-7, 1);
        o.EnsureAllUsed();
        var sw = Stopwatch.StartNew();
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var bar = new ProgressBar("judge");
        var judge = JudgeTraining.Train(set, outDir, size, steps, Path.GetFullPath(datasetDir), batch, lr, seed,
            p => bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond));
        Print(judge);
        Console.WriteLine($"in {sw.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    /// <summary>What a trained judge scored, one attribute a line.</summary>
    public static void Print(TrainedJudge judge)
    {
        Console.WriteLine(judge.HeldOutImages > 0
            ? $"judge trained on {judge.TrainImages} images, held-out accuracy on {judge.HeldOutImages}:"
            : $"judge trained on {judge.TrainImages} images (too few to hold any out), accuracy on them:");
        foreach (var (attribute, accuracy) in judge.Accuracy) Console.WriteLine($"  {attribute,-14} {accuracy:P2}");
        Console.WriteLine($"judge saved to {judge.Dir}");
    }

    public static int Eval(Options o)
    {
        var dir = o.String("judge") ?? ModelHome.Judge;
        var datasetDir = o.Required("dataset");
        int limit = o.Int("limit", int.MaxValue, 1);
        o.EnsureAllUsed();
        using var judge = Judge.Load(dir, TorchRuntime.Device);
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var rows = Enumerable.Range(0, Math.Min(limit, set.Rows.Count)).ToArray();
        var (x, y) = set.Load(judge.Size, rows);
        // Evaluate on the judge's attributes, in its column order.
        var cols = judge.Config.AttributeNames.Select(set.AttributeIndex).ToArray();
        using var yy = y.index_select(1, tensor(cols.Select(c => (long)c).ToArray()));
        var acc = judge.Accuracy(x, yy);
        Console.WriteLine($"judge accuracy on {rows.Length} images of {datasetDir}:");
        for (int i = 0; i < acc.Length; i++) Console.WriteLine($"  {judge.Config.AttributeNames[i],-14} {acc[i]:P2}");
        return 0;
    }
}
