using System.Diagnostics;
using Sdd.Ml.Data;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

public static class JudgeCommands
{
    public static int Train(Options o)
    {
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        int steps = o.Int("steps", 1500, 1), size = o.Int("size", 32, 8, 512), batch = o.Int("batch", 128, 2), seed = o.Int("seed", 1);
        double lr = o.Double("lr", 2e-3, 1e-7, 1);
        o.EnsureAllUsed();
        var sw = Stopwatch.StartNew();
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var (train, held) = set.Split();
        var (x, y) = set.Load(size, train);
        var (hx, hy) = set.Load(size, held);
        var config = new JudgeConfig { AttributeNames = set.Attributes.ToArray(), ImageSize = size, Dataset = Path.GetFullPath(datasetDir) };
        var bar = new ProgressBar("judge");
        using var judge = Judge.Train(config, x, y, steps, batch, lr, seed, TorchRuntime.Device, p => bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond));
        var acc = judge.Accuracy(hx, hy);
        judge.Save(outDir, judge.Config with { Accuracy = set.Attributes.Select((a, i) => (a, i)).ToDictionary(p => p.a, p => Math.Round(acc[p.i], 4)) });
        Console.WriteLine($"judge trained on {train.Length} images, held-out accuracy on {held.Length}:");
        for (int i = 0; i < acc.Length; i++) Console.WriteLine($"  {set.Attributes[i],-14} {acc[i]:P2}");
        Console.WriteLine($"saved to {outDir} in {sw.Elapsed.TotalSeconds:0} s");
        return 0;
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
