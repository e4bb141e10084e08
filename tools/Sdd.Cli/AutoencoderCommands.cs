using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Procedures;
using Sdd.Ml.Torch;

namespace Sdd.Cli;

/// <summary>vae train / vae eval: the image autoencoder of the latent teacher (a diffusers AutoencoderKL folder).</summary>
public static class AutoencoderCommands
{
    public static int Train(Options o)
    {
        var datasetDir = o.Required("dataset");
        var outDir = o.Required("out");
        bool resume = o.Has("resume");
        var d = new AutoencoderConfig();
        var ds = new AutoencoderTrainingSettings();
        var channels = (o.String("channels") ?? string.Join(",", d.BlockOutChannels)).Split(',')
            .Select(c => int.TryParse(c, out var v) && v >= 8 ? v : throw new UsageException($"--channels takes widths like 32,64,64, got '{c}'")).ToArray();
        int size = o.Int("size", d.SampleSize, 8, 1024);
        var config = d with
        {
            BlockOutChannels = channels,
            DownBlockTypes = [.. channels.Select(_ => AutoencoderConfig.DownBlock)],
            UpBlockTypes = [.. channels.Select(_ => AutoencoderConfig.UpBlock)],
            LayersPerBlock = o.Int("layers", d.LayersPerBlock, 1, 8),
            LatentChannels = o.Int("latent-channels", d.LatentChannels, 1, 64),
            NormNumGroups = o.Int("groups", d.NormNumGroups, 1, 64),
            SampleSize = size,
        };
        var settings = ds with
        {
            Steps = o.Int("steps", ds.Steps, 1),
            BatchSize = o.Int("batch", ds.BatchSize, 1, 4096),
            LearningRate = o.Double("lr", ds.LearningRate, 1e-7, 1),
            KlWeight = o.Double("kl", ds.KlWeight, 0, 1),
            CheckpointEvery = o.Int("checkpoint-every", ds.CheckpointEvery, 1),
            Seed = o.Int("seed", (int)ds.Seed),
        };
        int crop = o.Int("crop", 0, 0, 1024); // 0: whole images (group norms then see the statistics they will see when editing)
        int limit = o.Int("limit", int.MaxValue, 1);
        o.EnsureAllUsed();
        try { config.Validated(); }
        catch (Exception e) when (e is NotSupportedException or InvalidDataException) { throw new UsageException(e.Message); }
        if (size % config.Downsampling != 0) throw new UsageException($"--size {size} must be divisible by {config.Downsampling}");

        var set = LabeledImageSet.OpenFolder(datasetDir);
        var (train, _, test) = set.Splits();
        var sw = Stopwatch.StartNew();
        var (images, labels) = set.Load(size, train.Take(limit).ToArray());
        labels.Dispose();
        var (held, heldLabels) = set.Load(size, test.Take(200).ToArray());
        heldLabels.Dispose();
        Console.Error.WriteLine($"loaded {images.shape[0]} training and {held.shape[0]} test images at {size}px in {sw.Elapsed.TotalSeconds:0.0} s; device {TorchRuntime.Device}, {get_num_threads()} threads");
        using (images) using (held)
        using (var run = new AutoencoderTraining(outDir, config, settings, images, crop, TorchRuntime.Device, resume))
        {
            Console.Error.WriteLine($"autoencoder: {run.Autoencoder.Net.parameters().Sum(p => p.numel()):N0} parameters, latents {config.LatentChannels}x{size / config.Downsampling}x{size / config.Downsampling}, " +
                                    $"crops {(crop > 0 && crop < size ? crop : size)}px, step {run.Step} -> {run.TotalSteps}");
            var bar = new ProgressBar("vae");
            using var cts = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
            run.Advance(_ => !cts.IsCancellationRequested, p => bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:0.0000}", p.StepsPerSecond));
            if (cts.IsCancellationRequested)
            {
                Console.WriteLine($"autoencoder at step {run.Step} checkpointed in {outDir}; continue with --resume");
                return 130;
            }
            var report = run.Finish(held, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(datasetDir))));
            Console.WriteLine($"autoencoder at step {run.Step} saved to {outDir} ({sw.Elapsed.TotalMinutes:0.0} min); scaling factor {run.Autoencoder.Config.ScalingFactor}; " +
                              $"held-out reconstruction PSNR {report.Psnr} dB (worst {report.WorstPsnr} dB) on {report.Images} test images");
        }
        return 0;
    }

    public static int Eval(Options o)
    {
        var dir = o.Required("vae");
        var datasetDir = o.Required("dataset");
        int count = o.Int("images", 200, 1, 100_000);
        var json = o.String("json");
        o.EnsureAllUsed();
        using var ae = Autoencoder.Load(dir, TorchRuntime.Device);
        var set = LabeledImageSet.OpenFolder(datasetDir);
        var (_, _, test) = set.Splits();
        var (held, labels) = set.Load(ae.Config.SampleSize, test.Take(count).ToArray());
        labels.Dispose();
        using (held)
        {
            var r = AutoencoderTraining.Reconstruction(ae, held);
            Console.WriteLine($"autoencoder {dir}: held-out reconstruction PSNR {r.Psnr} dB (worst {r.WorstPsnr} dB) on {r.Images} test images at {ae.Config.SampleSize}px, {r.MsPerImage} ms/image");
            if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(r, ModelFolder.Json));
        }
        return 0;
    }
}
