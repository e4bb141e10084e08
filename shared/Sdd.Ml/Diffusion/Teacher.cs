using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Diffusion;

/// <summary>
/// A conditional diffusion model used as the teacher: noise prediction, classifier-free guidance and DDIM
/// sampling. Two kinds: <c>attribute-ddpm</c> works on pixels; <c>latent-ddpm</c> works on the scaled latents of a frozen
/// <see cref="Diffusion.Autoencoder"/> (the Stable Diffusion shape), so the images it takes and gives are
/// <see cref="Size"/> pixels while the UNet sees <see cref="ModelSize"/>. The noise, DDIM and guidance methods work in
/// model space (<see cref="ToModelSpace"/>, <see cref="FromModelSpace"/>); <see cref="Sample"/>, <see cref="SdEdit"/> and
/// <see cref="InvertAndRegenerate"/> take and give images. Files: <c>config.json</c> and <c>model.safetensors</c> (the EMA
/// weights), and for a latent teacher the autoencoder's folder (<c>vae/</c>).
/// </summary>
public sealed class Teacher : IDisposable
{
    public const string KindAttributeDdpm = TeacherConfig.KindAttributeDdpm;
    public const string ConfigFile = ModelFolder.ConfigFile;
    public const string WeightsFile = ModelFolder.WeightsFile;

    public const string KindLatentDdpm = TeacherConfig.KindLatentDdpm;
    public const string KindStableDiffusion = TeacherConfig.KindStableDiffusion;

    public TeacherConfig Config { get; private set; }
    /// <summary>The noise predictor ε(x_t, t, states): an <see cref="AttributeUNet"/>, or a Stable Diffusion UNet behind its prompts.</summary>
    public nn.Module<Tensor, Tensor, Tensor, Tensor> Net { get; }
    public NoiseSchedule Schedule { get; }
    public Device Device { get; }
    /// <summary>The frozen autoencoder of a latent teacher (null for a pixel teacher).</summary>
    public Autoencoder? Autoencoder { get; }
    public bool Latent => Autoencoder is not null;
    /// <summary>The side of the images the teacher takes and gives (and its editors and judge work at).</summary>
    public int Size => Config.Unet.ImageSize * (Autoencoder?.Config.Downsampling ?? 1);
    /// <summary>The side of what the UNet sees: <see cref="Size"/> for pixels, the latent's side for latents.</summary>
    public int ModelSize => Config.Unet.ImageSize;
    public IReadOnlyList<string> Attributes => Config.AttributeNames;

    /// <summary>Network evaluations per image since the counter was last reset (one per image per UNet pass).</summary>
    public long Evaluations { get; set; }

    /// <param name="autoencoder">The autoencoder of a latent teacher (the teacher owns it from here); none for a pixel teacher.</param>
    public Teacher(TeacherConfig config, Device? device = null, Autoencoder? autoencoder = null)
    {
        if (config.Kind == KindStableDiffusion)
            throw new NotSupportedException($"A {KindStableDiffusion} teacher is a user's weights with a prompt: StableDiffusionModel.Load(path).ToTeacher(attribute, prompt).");
        if (config.Kind is not (KindAttributeDdpm or KindLatentDdpm))
            throw new NotSupportedException($"Teacher kind '{config.Kind}' is not supported by this build (supported: {KindAttributeDdpm}, {KindLatentDdpm}, {KindStableDiffusion}).");
        if (config.Unet.Attributes != config.AttributeNames.Length)
            throw new ArgumentException("The UNet's attribute count does not match the attribute names.");
        if (config.Kind == KindLatentDdpm)
        {
            if (autoencoder is null) throw new ArgumentException($"A {KindLatentDdpm} teacher needs its autoencoder.");
            if (autoencoder.Config.LatentChannels != config.Unet.InChannels)
                throw new ArgumentException($"The autoencoder's latent_channels ({autoencoder.Config.LatentChannels}) differ from the UNet's in_channels ({config.Unet.InChannels}).");
            foreach (var p in autoencoder.Net.parameters()) p.requires_grad = false; // frozen: gradients flow through it, not into it
            Autoencoder = autoencoder;
        }
        else if (autoencoder is not null) throw new ArgumentException($"A {KindAttributeDdpm} teacher works on pixels: it takes no autoencoder.");
        else if (config.Unet.InChannels != 3) throw new ArgumentException($"A {KindAttributeDdpm} teacher sees RGB pixels: in_channels must be 3, got {config.Unet.InChannels}.");
        Config = config;
        Device = device ?? CPU;
        Schedule = new NoiseSchedule(config.Schedule, config.TimeSteps, config.BetaStart, config.BetaEnd);
        Net = new AttributeUNet(config.Unet);
        Net.to(Device);
        Net.eval();
    }

    /// <summary>
    /// A latent teacher around a noise predictor built elsewhere (a Stable Diffusion pipeline's UNet behind its prompts,
    /// <c>StableDiffusionModel.ToTeacher</c>); the teacher owns the network and the autoencoder from here.
    /// </summary>
    public Teacher(TeacherConfig config, nn.Module<Tensor, Tensor, Tensor, Tensor> net, Autoencoder autoencoder, Device? device = null)
    {
        if (config.Kind != KindStableDiffusion) throw new ArgumentException($"Only a {KindStableDiffusion} teacher takes a network built elsewhere.");
        if (config.Unet.Attributes != config.AttributeNames.Length) throw new ArgumentException("The UNet's attribute count does not match the attribute names.");
        if (autoencoder.Config.LatentChannels != config.Unet.InChannels)
            throw new ArgumentException($"The autoencoder's latent_channels ({autoencoder.Config.LatentChannels}) differ from the UNet's in_channels ({config.Unet.InChannels}).");
        foreach (var p in autoencoder.Net.parameters()) p.requires_grad = false;
        foreach (var p in net.parameters()) p.requires_grad = false;
        Config = config;
        Device = device ?? CPU;
        Schedule = new NoiseSchedule(config.Schedule, config.TimeSteps, config.BetaStart, config.BetaEnd);
        Autoencoder = autoencoder;
        autoencoder.Net.to(Device);
        Net = net;
        Net.to(Device);
        Net.eval();
    }

    public int AttributeIndex(string attribute)
    {
        int i = Array.IndexOf(Config.AttributeNames, attribute);
        if (i < 0) throw new ArgumentException($"The teacher has no attribute '{attribute}' (it has: {string.Join(", ", Config.AttributeNames)}).");
        return i;
    }

    /// <summary>
    /// Images in [-1, 1] to what the UNet sees: themselves for a pixel teacher, the autoencoder's scaled posterior mean for
    /// a latent one (differentiable: the gradient flows back through the frozen encoder into the images).
    /// </summary>
    public Tensor ToModelSpace(Tensor images) => Autoencoder is { } ae ? ae.Encode(images) : images.alias();

    /// <summary>What the UNet sees back to images in [-1, 1] (the decoder for a latent teacher).</summary>
    public Tensor FromModelSpace(Tensor x) => Autoencoder is { } ae ? ae.Decode(x) : x.alias();

    /// <summary>The model-space shape of a batch of images shaped <paramref name="imageShape"/>.</summary>
    public long[] ModelShape(long[] imageShape) =>
        Autoencoder is { } ae ? [imageShape[0], Config.Unet.InChannels, imageShape[2] / ae.Config.Downsampling, imageShape[3] / ae.Config.Downsampling] : imageShape;

    public Tensor PredictNoise(Tensor xt, Tensor t, Tensor states)
    {
        Evaluations += xt.shape[0];
        return Net.forward(xt, t, states);
    }

    /// <summary>Classifier-free guidance: eps(null) + s (eps(c) - eps(null)) (Ho and Salimans 2022, eq. 6), one batched pass.</summary>
    public Tensor GuidedNoise(Tensor xt, Tensor t, Tensor states, double guidance)
    {
        if (guidance == 1.0) return PredictNoise(xt, t, states);
        var nul = AttributeCondition.Null((int)xt.shape[0], Attributes.Count, xt.device);
        var both = PredictNoise(cat([xt, xt]), cat([t, t]), cat([states, nul])).chunk(2);
        return both[1] + guidance * (both[0] - both[1]);
    }

    /// <summary>
    /// Deterministic DDIM (Song et al. 2021, eq. 12 with sigma = 0) from x at timestep <paramref name="fromT"/> to
    /// a clean image in <paramref name="steps"/> steps, under guidance; x_0 predictions are clipped to [-1, 1].
    /// </summary>
    public Tensor Ddim(Tensor x, Tensor states, int fromT, int steps, double guidance)
    {
        steps = Math.Max(1, steps);
        var ts = Enumerable.Range(0, steps).Select(i => (int)Math.Round((double)fromT * (steps - i) / steps)).Distinct().ToArray();
        using (no_grad())
        {
            for (int i = 0; i < ts.Length; i++)
            {
                using var scope = NewDisposeScope();
                int t = ts[i];
                double ab = Schedule.AlphaBars[t], abPrev = i + 1 < ts.Length ? Schedule.AlphaBars[ts[i + 1]] : 1.0;
                var tt = full([x.shape[0]], t, ScalarType.Int64, x.device);
                var eps = GuidedNoise(x, tt, states, guidance);
                var x0 = ((x - Math.Sqrt(1 - ab) * eps) / Math.Sqrt(ab)).clamp(-1, 1);
                eps = (x - Math.Sqrt(ab) * x0) / Math.Sqrt(1 - ab);
                var next = Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * eps;
                x = next.MoveToOuterDisposeScope();
            }
        }
        return x;
    }

    /// <summary>Samples images for the given states from pure noise.</summary>
    public Tensor Sample(Tensor states, int steps, double guidance, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn([states.shape[0], Config.Unet.InChannels, ModelSize, ModelSize], generator: generator, device: Device);
        return FromModelSpace(Ddim(x, states, Config.TimeSteps - 1, steps, guidance)).MoveToOuterDisposeScope();
    }

    /// <summary>SDEdit (Meng et al. 2022): noise the source to t0, then denoise under the target condition (in model space).</summary>
    public Tensor SdEdit(Tensor source, Tensor states, int t0, int steps, double guidance, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x0 = ToModelSpace(source);
        var eps = randn(x0.shape, generator: generator, device: x0.device);
        var t = full([x0.shape[0]], t0, ScalarType.Int64, x0.device);
        var xt = Schedule.AddNoise(x0, t, eps);
        return FromModelSpace(Ddim(xt, states, t0, steps, guidance)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DDIM inversion (Song et al. 2021, Sec. 4.3; as in Mokady et al. 2023), in model space: the deterministic DDIM update run
    /// backwards from the clean image (or latent) to timestep <paramref name="toT"/> under <paramref name="states"/> (the image's own
    /// condition) and <paramref name="guidance"/>, on the grid <see cref="Ddim"/> walks down (so that regenerating under the
    /// same condition returns close to the source). The noise at each step is predicted at the next, higher timestep.
    /// </summary>
    public Tensor DdimInvert(Tensor x, Tensor states, int toT, int steps, double guidance = 1.0)
    {
        steps = Math.Max(1, steps);
        var down = Enumerable.Range(0, steps).Select(i => (int)Math.Round((double)toT * (steps - i) / steps)).Distinct().ToArray();
        var up = down.Reverse().ToArray();
        using (no_grad())
        {
            x = x.alias();
            for (int i = 0; i < up.Length; i++)
            {
                using var scope = NewDisposeScope();
                double abCur = i == 0 ? 1.0 : Schedule.AlphaBars[up[i - 1]], abNext = Schedule.AlphaBars[up[i]];
                var tt = full([x.shape[0]], up[i], ScalarType.Int64, x.device);
                var eps = GuidedNoise(x, tt, states, guidance);
                var x0 = (x - Math.Sqrt(1 - abCur) * eps) / Math.Sqrt(abCur);
                var next = Math.Sqrt(abNext) * x0 + Math.Sqrt(1 - abNext) * eps;
                x.Dispose();
                x = next.MoveToOuterDisposeScope();
            }
        }
        return x;
    }

    /// <summary>
    /// DDIM inversion under the source's condition (no guidance) to <paramref name="t0"/>, then DDIM regeneration under
    /// the target condition with classifier-free guidance: an edit that keeps what the inversion recovers of the source.
    /// </summary>
    public Tensor InvertAndRegenerate(Tensor source, Tensor sourceStates, Tensor targetStates, int t0, int steps, double guidance)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var xt = DdimInvert(ToModelSpace(source), sourceStates, t0, steps);
        return FromModelSpace(Ddim(xt, targetStates, t0, steps, guidance)).MoveToOuterDisposeScope();
    }

    public void Save(string dir, TeacherConfig? config = null)
    {
        if (Config.Kind == KindStableDiffusion) throw new InvalidOperationException("A Stable Diffusion teacher is its user's weights; it is loaded from them, never saved.");
        Directory.CreateDirectory(dir);
        if (config is not null) Config = config;
        Net.save_safetensors(Path.Combine(dir, WeightsFile));
        File.WriteAllText(Path.Combine(dir, ConfigFile), ModelFolder.Serialize(Config));
        if (Autoencoder is { } ae) ae.Save(AutoencoderDir(dir, Config));
    }

    public static TeacherConfig ReadConfig(string dir) => ModelFolder.ReadTeacher(dir);

    /// <summary>Where a latent teacher's autoencoder lives (<c>vae/</c> beside its config unless the config names another folder inside it).</summary>
    public static string AutoencoderDir(string dir, TeacherConfig config)
    {
        var name = config.Autoencoder ?? TeacherConfig.DefaultAutoencoderFolder;
        var full = Path.GetFullPath(Path.Combine(dir, name));
        if (Path.IsPathRooted(name) || !full.StartsWith(Path.GetFullPath(dir), StringComparison.Ordinal))
            throw new InvalidDataException($"The teacher's autoencoder folder '{name}' must be inside the teacher's folder.");
        return full;
    }

    public static Teacher Load(string dir, Device? device = null)
    {
        var config = ReadConfig(dir);
        var ae = config.Kind == KindLatentDdpm ? Diffusion.Autoencoder.Load(AutoencoderDir(dir, config), device) : null;
        Teacher teacher;
        try { teacher = new Teacher(config, device, ae); }
        catch { ae?.Dispose(); throw; } // a refused pairing leaves no autoencoder behind
        var weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights)) throw new FileNotFoundException($"No teacher weights at '{weights}'.", weights);
        teacher.Net.load_safetensors(weights, strict: true);
        teacher.Net.to(teacher.Device);
        return teacher;
    }

    public void Dispose()
    {
        Net.Dispose();
        Autoencoder?.Dispose();
    }
}
