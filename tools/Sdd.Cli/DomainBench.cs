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

/// <summary>
/// Split: which images were measured ("test": the held-out seed and other-domain seed 7, the rows the gate's design was
/// chosen on; "confirmation": seeds no choice saw). Cost: microseconds to score one image at each size, scoring alone.
/// </summary>
public sealed record DomainReport(string Method, int Grid, int Components, int FitImages, int CalibrationImages, double Threshold,
    double CalibrationPassRate, double MicrosecondsPerImage, List<DomainRow> Rows, string Split = "test", Dictionary<string, double>? MicrosecondsBySize = null);

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
        var split = o.String("split") ?? "test";
        // "test": the rows the gate's features, components and calibration were chosen on; "confirmation": fresh seeds.
        var (portraitSeed, otherSeed) = split switch
        {
            "test" => (HeldOutPortraits.HeldOutSeed, 7),
            "confirmation" => (HeldOutPortraits.ConfirmationSeed, 1_000_007),
            _ => throw new UsageException($"--split must be test or confirmation, got '{split}'"),
        };
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
        void Measure(string set, bool inDomain, int at, Tensor x) => Record(set, inDomain, at, gate.Scores(x));
        void Record(string set, bool inDomain, int at, float[] scores)
        {
            Array.Sort(scores);
            var row = new DomainRow(set, inDomain, at, scores.Length, Math.Round(scores.Count(s => gate.Passes(s)) / (double)scores.Length, 4),
                Math.Round(scores[scores.Length / 2], 3), Math.Round(scores[Math.Min(scores.Length - 1, (int)Math.Ceiling(0.99 * scores.Length) - 1)], 3));
            rows.Add(row);
            Console.WriteLine($"{set,-34} {(inDomain ? "in " : "out")} {at,5}px {row.Images,6}  pass {row.PassRate,7:P2}  median {row.MedianScore,8:0.###}  p99 {row.P99Score,8:0.###}");
        }

        foreach (var at in sizes)
        {
            // Held-out portraits lacking the attribute, and ones that already have it (a double edit), at this size.
            using (var held = RunImages.Portraits(attribute, images, at, portraitSeed, attributes)) Measure("held-out portraits", true, at, held.Images);
            using (var having = HeldOutPortraits.Render(attribute, present: true, Math.Max(8, images / 4), at, portraitSeed))
            {
                Measure($"held-out portraits with {attribute}", true, at, having.Images);
                having.Labels.Dispose(); having.Counterfactuals?.Dispose();
            }
        }
        using (var held = RunImages.Portraits(attribute, images, size, portraitSeed, attributes))
        {
            using (var jpeg = ImageCodec.JpegRoundTrip(held.Images, 92)) Measure("held-out portraits, as JPEG q92", true, size, jpeg);
            using (var jpeg = ImageCodec.JpegRoundTrip(held.Images, 60)) Measure("held-out portraits, as JPEG q60", true, size, jpeg);
        }
        foreach (var kind in OtherDomains.Kinds)
            using (var other = OtherDomains.Render(kind, Math.Max(8, images / 4), size, seed: otherSeed)) Measure($"other domain: {kind}", false, size, other);
        if (photos is not null)
        {
            var files = Directory.EnumerateFiles(photos, "*", SearchOption.AllDirectories).Where(ImageCodec.IsImageFile).Order().ToList();
            if (files.Count == 0) throw new UsageException($"--photos '{photos}' holds no image.");
            // Each at its own size, as the Edit worker scores a decoded image (a non-square one as its best square).
            var scores = files.Select(f =>
            {
                using var image = ImageCodec.Decode(File.ReadAllBytes(f));
                using var x = ImageCodec.ToTensor(image).unsqueeze(0);
                return gate.Scores(x)[0];
            }).ToArray();
            Record($"--photos: {files.Count} real images, each at its own size", false, 0, scores);
        }

        // Cost: scoring only, at the editor's size and at each photo size (the worker scores the image it has decoded,
        // whatever its size; two area resizes dominate), batches of 32.
        var bySize = new Dictionary<string, double>();
        foreach (var at in sizes.Prepend(size).Distinct())
        {
            using var timing = RunImages.Portraits(attribute, 32, at, portraitSeed, attributes);
            gate.Scores(timing.Images);
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < 5; i++) gate.Scores(timing.Images);
            bySize[at.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Math.Round(clock.Elapsed.TotalMilliseconds * 1000 / (5 * 32), 1);
            Console.WriteLine($"cost: {bySize[at.ToString(System.Globalization.CultureInfo.InvariantCulture)]} µs per {at} px image (scoring alone, batches of 32, {torch.get_num_threads()} threads)");
        }
        var us = bySize[size.ToString(System.Globalization.CultureInfo.InvariantCulture)];

        var report = new DomainReport(config.Method, config.Grid, config.Components, config.FitImages, config.CalibrationImages, config.Threshold,
            config.CalibrationPassRate, us, rows, split, bySize);
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
