using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using Sdd.Configuration;

namespace Sdd.Cli;

/// <summary>One row of <c>bench domain</c>: a set of images and the share the gate lets through.</summary>
public sealed record DomainRow(string Set, bool InDomain, int Size, int Images, double PassRate, double MedianScore, double P99Score);

public sealed record DomainReport(string Method, int Grid, int Components, int FitImages, int CalibrationImages, double Threshold,
    double CalibrationPassRate, double MicrosecondsPerImage, List<DomainRow> Rows);

/// <summary>
/// <c>bench domain</c>: the domain gate as an editor run makes it (fitted on the run's training portraits, calibrated on
/// the validation split), measured on held-out portraits (the test seed, at the editor's size and at photo sizes) and on
/// images of other domains (<see cref="OtherDomains"/>, and with --photos a folder of real photographs).
/// </summary>
public static class DomainBench
{
    public static int Run(Options o)
    {
        int size = o.Int("size", 128, 16, 1024);
        int train = o.Int("train-images", 2500, 16, 100_000);
        int validation = o.Int("validation-images", 200, 8, 100_000);
        int images = o.Int("images", 1000, 8, 100_000);
        var sizes = (o.String("sizes") ?? $"{size},512").Split(',').Select(s => int.Parse(s)).ToArray();
        var photos = o.String("photos");
        var attribute = o.String("attribute") ?? PortraitAttributes.Smiling;
        var json = o.String("json");
        int k = o.Int("components", DomainGate.DefaultComponents, 1, 1024);
        o.EnsureAllUsed();

        var attributes = PortraitAttributes.All;
        var sw = Stopwatch.StartNew();
        // The worker's training data for a portrait editor: lacking the attribute, plus a quarter as many that have it.
        using var data = RunImages.TrainingPortraits(attribute, train, train / 4, size, seed: 1, attributes);
        using var val = RunImages.Portraits(attribute, validation, size, HeldOutPortraits.ValidationSeed, attributes);
        using var gate = DomainGate.Fit(data.Images, components: k);
        var config = gate.Calibrate(val.Images);
        Console.WriteLine($"{k} components: fitted on {data.Images.shape[0]} training portraits, calibrated on {validation} validation portraits in {sw.Elapsed.TotalSeconds:0.0} s: threshold {config.Threshold}");

        var rows = new List<DomainRow>();
        void Measure(string set, bool inDomain, int at, Tensor x)
        {
            var scores = gate.Scores(x);
            Array.Sort(scores);
            var row = new DomainRow(set, inDomain, at, scores.Length, Math.Round(scores.Count(s => gate.Passes(s)) / (double)scores.Length, 4),
                Math.Round(scores[scores.Length / 2], 3), Math.Round(scores[Math.Min(scores.Length - 1, (int)Math.Ceiling(0.99 * scores.Length) - 1)], 3));
            rows.Add(row);
            Console.WriteLine($"{set,-34} {(inDomain ? "in " : "out")} {at,5}px {row.Images,6}  pass {row.PassRate,7:P2}  median {row.MedianScore,8:0.###}  p99 {row.P99Score,8:0.###}");
        }

        foreach (var at in sizes)
        {
            // Held-out portraits lacking the attribute, and ones that already have it (a double edit), at this size.
            using (var held = RunImages.Portraits(attribute, images, at, HeldOutPortraits.HeldOutSeed, attributes)) Measure("held-out portraits", true, at, held.Images);
            using (var having = HeldOutPortraits.Render(attribute, present: true, Math.Max(8, images / 4), at, HeldOutPortraits.HeldOutSeed))
            {
                Measure($"held-out portraits with {attribute}", true, at, having.Images);
                having.Labels.Dispose(); having.Counterfactuals?.Dispose();
            }
        }
        using (var held = RunImages.Portraits(attribute, images, size, HeldOutPortraits.HeldOutSeed, attributes))
        {
            using (var jpeg = ImageCodec.JpegRoundTrip(held.Images, 92)) Measure("held-out portraits, as JPEG q92", true, size, jpeg);
            using (var jpeg = ImageCodec.JpegRoundTrip(held.Images, 60)) Measure("held-out portraits, as JPEG q60", true, size, jpeg);
        }
        foreach (var kind in OtherDomains.Kinds)
            using (var other = OtherDomains.Render(kind, Math.Max(8, images / 4), size, seed: 7)) Measure($"other domain: {kind}", false, size, other);
        if (photos is not null)
        {
            var files = Directory.EnumerateFiles(photos, "*", SearchOption.AllDirectories).Where(ImageCodec.IsImageFile).Order().ToList();
            if (files.Count == 0) throw new UsageException($"--photos '{photos}' holds no image.");
            using var x = stack(files.Select(f => ImageCodec.LoadTensor(f, size)).ToArray());
            Measure($"--photos: {files.Count} real images", false, size, x);
        }

        // Cost: scoring only, at the editor's size (the worker scores the image it has decoded, whatever its size).
        using var timing = RunImages.Portraits(attribute, 256, size, HeldOutPortraits.HeldOutSeed, attributes);
        gate.Scores(timing.Images);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++) gate.Scores(timing.Images);
        var us = Math.Round(clock.Elapsed.TotalMilliseconds * 1000 / (5 * 256), 1);
        Console.WriteLine($"cost: {us} µs per {size} px image (scoring alone, batches of 256, {torch.get_num_threads()} threads)");

        var report = new DomainReport(config.Method, config.Grid, config.Components, config.FitImages, config.CalibrationImages, config.Threshold,
            config.CalibrationPassRate, us, rows);
        if (json is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(json))!);
            File.WriteAllText(json, JsonSerializer.Serialize(report, ModelFolder.Json));
            Console.WriteLine($"json -> {json}");
        }
        return 0;
    }

    /// <summary>Each image through the worker's JPEG encoder and back.</summary>
}
