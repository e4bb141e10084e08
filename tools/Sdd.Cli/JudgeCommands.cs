using System.Diagnostics;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
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
        bool augment = o.String("augment") switch
        {
            null => JudgeConfig.DefaultAugmented(size),
            "yes" or "true" => true,
            "no" or "false" => false,
            var v => throw new UsageException($"--augment takes yes or no, got '{v}'"),
        };
        bool colour = o.String("colour") switch
        {
            null or "yes" or "true" => true,
            "no" or "false" => false,
            var v => throw new UsageException($"--colour takes yes or no, got '{v}'"),
        };
        o.EnsureAllUsed();
        var sw = Stopwatch.StartNew();
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var bar = new ProgressBar("judge");
        var judge = JudgeTraining.Train(set, outDir, size, steps, Path.GetFullPath(datasetDir), batch, lr, seed,
            p => bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond), augment, colour);
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

    /// <summary>
    /// `sdd judge eval`: accuracy on a labelled folder; with --vae DIR also on the same images after an encode/decode round trip
    /// through that autoencoder, the kind of image a latent teacher's samples are (is the judge fooled by the decoder's blur?).
    /// </summary>
    public static int Eval(Options o)
    {
        var dir = o.String("judge") ?? ModelHome.Judge;
        var datasetDir = o.Required("dataset");
        var vaeDir = o.String("vae");
        int limit = o.Int("limit", int.MaxValue, 1);
        o.EnsureAllUsed();
        using var judge = Judge.Load(dir, TorchRuntime.Device);
        using var ae = vaeDir is null ? null : Autoencoder.Load(vaeDir, TorchRuntime.Device);
        if (ae is not null && ae.Config.SampleSize != judge.Size)
            throw new UsageException($"the autoencoder works at {ae.Config.SampleSize}px, the judge at {judge.Size}px");
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var rows = Enumerable.Range(0, Math.Min(limit, set.Rows.Count)).ToArray();
        var (x, y) = set.Load(judge.Size, rows);
        // Evaluate on the judge's attributes, in its column order.
        var cols = judge.Config.AttributeNames.Select(set.AttributeIndex).ToArray();
        using var yy = y.index_select(1, tensor(cols.Select(c => (long)c).ToArray()));
        var acc = judge.Accuracy(x, yy);
        double[]? round = null;
        if (ae is not null)
        {
            using var recon = RoundTrip(ae, x);
            round = judge.Accuracy(recon, yy);
        }
        Console.WriteLine($"judge accuracy on {rows.Length} images of {datasetDir}:");
        if (round is not null) Console.WriteLine($"  {"attribute",-14} {"as rendered",12} {"through vae",12}");
        for (int i = 0; i < acc.Length; i++)
            Console.WriteLine(round is null
                ? $"  {judge.Config.AttributeNames[i],-14} {acc[i]:P2}"
                : $"  {judge.Config.AttributeNames[i],-14} {acc[i],12:P2} {round[i],12:P2}");
        return 0;
    }

    private static Tensor RoundTrip(Autoencoder ae, Tensor images, int chunk = 64)
    {
        var parts = new List<Tensor>();
        using (no_grad())
            for (long i = 0; i < images.shape[0]; i += chunk)
            {
                using var scope = NewDisposeScope();
                var part = images[TensorIndex.Slice(i, Math.Min(i + chunk, images.shape[0]))].to(ae.Device);
                parts.Add(ae.Decode(ae.Encode(part)).cpu().MoveToOuterDisposeScope());
            }
        var all = cat(parts);
        foreach (var p in parts) p.Dispose();
        return all;
    }
}
