using Sdd.Ml.StableDiffusion;

namespace Sdd.Cli;

/// <summary>`sdd sd …` (also `sdd lab sd …`): Stable Diffusion weights a user has on disk.</summary>
public static class SdCommands
{
    /// <summary>
    /// Writes the numerics of a loaded SD pipeline as .npy files, for comparison with another implementation:
    /// input_ids (int64 [1, 77]), text_embeddings (float32 [1, 77, D]), eps (the UNet's output for every latent at the
    /// timestep, conditioned on the prompt), decoded (the VAE decode of latents / scaling factor, unclamped) and, with
    /// --image, encoded_mean (the posterior mean × scaling factor).
    /// </summary>
    /// <summary>Writes a tiny random SD 1.x pipeline as a diffusers folder: the prompt path end to end without real weights (its edits mean nothing).</summary>
    public static int Tiny(Options o)
    {
        var outDir = o.Required("out");
        long seed = o.Int("seed", 1, 0);
        bool sd15 = o.Has("sd15-shapes");
        o.EnsureAllUsed();
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()) throw new UsageException($"--out {outDir} is not empty");
        var shapes = TinyPipeline.Sd15Configs();
        using var pipeline = sd15 ? TinyPipeline.Write(outDir, seed, shapes.UNet, shapes.Vae, shapes.Text) : TinyPipeline.Write(outDir, seed);
        long parameters = new nn.Module[] { pipeline.UNet, pipeline.Vae.Net, pipeline.Text }.Sum(m => m.parameters().Sum(p => p.numel()));
        Console.WriteLine($"{outDir}: a tiny random Stable Diffusion 1.x pipeline ({parameters:N0} parameters, {pipeline.UNet.Config.SampleSize * pipeline.Vae.Config.Downsampling} px images, seed {seed}); its edits mean nothing");
        return 0;
    }

    public static int Probe(Options o)
    {
        var teacher = o.Required("teacher");
        var prompt = o.Required("prompt");
        var latentsPath = o.Required("latents");
        var timestepArg = o.Required("timestep");
        var outDir = o.Required("out");
        var imagePath = o.String("image");
        var configDir = o.String("config");
        o.EnsureAllUsed();
        if (!long.TryParse(timestepArg, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long timestep))
            throw new UsageException($"--timestep must be a whole number, got '{timestepArg}'");
        using var model = StableDiffusionModel.Load(teacher, configDir);
        foreach (var a in model.Assumptions) Console.Error.WriteLine($"sdd: assumed {a} (not stored in a single file; --config DIR to read it)");
        if (timestep < 0 || timestep >= model.Schedule.TrainTimesteps)
            throw new UsageException($"--timestep must be between 0 and {model.Schedule.TrainTimesteps - 1}, got {timestep}");
        Directory.CreateDirectory(outDir);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = model.PromptIds(prompt);
        Npy.WriteInt64(Path.Combine(outDir, "input_ids.npy"), ids);
        var text = model.TextEncoder.forward(ids);
        Npy.WriteFloat32(Path.Combine(outDir, "text_embeddings.npy"), text);
        // random:B,h,w — standard normal latents from seed 1, written beside the outputs (latents.npy) for the comparison.
        Tensor latents;
        if (latentsPath.StartsWith("random:", StringComparison.Ordinal))
        {
            var dims = latentsPath[7..].Split(',').Select(d => long.TryParse(d, out var v) && v is > 0 and <= 256 ? v : throw new UsageException($"--latents {latentsPath}: random:B,h,w with each 1 to 256")).ToArray();
            if (dims.Length != 3) throw new UsageException($"--latents {latentsPath}: random:B,h,w");
            latents = randn([dims[0], model.UNet.Config.InChannels, dims[1], dims[2]], generator: new Generator(1));
            Npy.WriteFloat32(Path.Combine(outDir, "latents.npy"), latents);
        }
        else latents = Npy.ReadFloat32(latentsPath);
        int channels = model.UNet.Config.InChannels, factor = model.Vae.Config.Downsampling;
        if (latents.dim() != 4 || latents.shape[1] != channels || latents.shape[0] is < 1 or > 64)
            throw new UsageException($"--latents {latentsPath}: [{string.Join(", ", latents.shape)}]; [B, {channels}, h, w] with B ≤ 64 expected");
        var eps = model.PredictNoise(latents, timestep, text);
        Npy.WriteFloat32(Path.Combine(outDir, "eps.npy"), eps);
        var decoded = model.DecodeLatents(latents);
        Npy.WriteFloat32(Path.Combine(outDir, "decoded.npy"), decoded);
        Console.WriteLine($"{model.Source}: ids [{string.Join(", ", ids.shape)}], text [{string.Join(", ", text.shape)}], " +
            $"eps [{string.Join(", ", eps.shape)}] at t = {timestep} ({model.Schedule.PredictionType}), decoded [{string.Join(", ", decoded.shape)}]");
        if (imagePath is not null)
        {
            var image = Npy.ReadFloat32(imagePath);
            if (image.dim() != 4 || image.shape[0] != 1 || image.shape[1] != model.Vae.Config.InChannels || image.shape[2] % factor != 0 || image.shape[3] % factor != 0)
                throw new UsageException($"--image {imagePath}: [{string.Join(", ", image.shape)}]; [1, {model.Vae.Config.InChannels}, H, W] with H and W multiples of {factor} expected");
            var mean = model.EncodeMean(image);
            Npy.WriteFloat32(Path.Combine(outDir, "encoded_mean.npy"), mean);
            Console.WriteLine($"encoded_mean [{string.Join(", ", mean.shape)}] (posterior mean × {model.ScalingFactor})");
        }
        Console.WriteLine($"wrote {outDir}");
        return 0;
    }
}
