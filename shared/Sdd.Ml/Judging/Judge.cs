using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Judging;

public sealed record JudgeConfig
{
    public required string[] AttributeNames { get; init; }
    public int ImageSize { get; init; } = 32;
    /// <summary>Channels per level, each level after the first halving the side (see <see cref="DefaultChannels"/>).</summary>
    public int[] Channels { get; init; } = [32, 64, 128];

    /// <summary>
    /// The channels a judge of <paramref name="imageSize"/> gets: three levels at 32 px; from 64 px a thin full-size level
    /// and one more halving, so a 128 px judge costs about a third of the 32 px layout run at 128 px (0.35 against 0.93
    /// GFLOP an image) and still ends on a 16x16 map.
    /// </summary>
    public static int[] DefaultChannels(int imageSize) => imageSize < 64 ? [32, 64, 128] : [16, 32, 64, 128];

    /// <summary>
    /// Whether a new judge of <paramref name="imageSize"/> trains on distorted images: from 64 px, where it judges a latent
    /// teacher's decoded samples (a 128 px judge of clean renders called 50-60 % of plainly smiling samples not smiling);
    /// the 32 px judges keep the recipe they were measured with.
    /// </summary>
    public static bool DefaultAugmented(int imageSize) => imageSize >= 64;
    public int Step { get; init; }
    /// <summary>Trained on randomly distorted images (<see cref="Judge.Augment"/>): geometry, blur, noise, contrast.</summary>
    public bool Augmented { get; init; }
    /// <summary>
    /// With <see cref="Augmented"/>: the distortions also shift hue and saturation (<see cref="Judge.ColourJitter"/>). A judge
    /// trained without them called 27 of 64 hat samples of the latent teacher hatless, every one of them a hat in a duller colour
    /// than the renderer paints. New augmented judges get it; judges saved before it existed read false.
    /// </summary>
    public bool ColourJitter { get; init; }
    public string? Dataset { get; init; }
    /// <summary>Held-out accuracy per attribute.</summary>
    public Dictionary<string, double> Accuracy { get; init; } = [];
}

/// <summary>A small CNN attribute classifier: one logit per attribute; its pooled features serve the Fréchet distance.</summary>
public sealed class JudgeNet : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> body;
    private readonly Linear head;

    public JudgeNet(int attributes, int[] ch) : base(nameof(JudgeNet))
    {
        var layers = new List<nn.Module<Tensor, Tensor>> { Layers.Conv3x3(3, ch[0]), Layers.GroupNorm(8, ch[0]), nn.SiLU() };
        int prev = ch[0];
        foreach (var c in ch.Skip(1))
        {
            layers.AddRange([Layers.Conv3x3(prev, c, stride: 2), Layers.GroupNorm(8, c), nn.SiLU(), Layers.Conv3x3(c, c), Layers.GroupNorm(8, c), nn.SiLU()]);
            prev = c;
        }
        body = nn.Sequential(layers);
        head = nn.Linear(prev, attributes);
        RegisterComponents();
    }

    /// <summary>Penultimate features: global average of the last feature map.</summary>
    public Tensor Features(Tensor x) => body.forward(x).mean([2, 3]);

    public override Tensor forward(Tensor x) => head.forward(Features(x));
}

/// <summary>The judge: says which attributes an image has; files <c>config.json</c> + <c>model.safetensors</c>.</summary>
public sealed class Judge : IDisposable
{
    public const int DefaultBatch = 128;

    /// <summary>Images per training step: <see cref="DefaultBatch"/> up to 32 px, half of it from 64 px.</summary>
    public static int DefaultBatchFor(int imageSize) => imageSize < 64 ? DefaultBatch : DefaultBatch / 2;
    public const double DefaultLearningRate = 2e-3;

    public JudgeConfig Config { get; private set; }
    public JudgeNet Net { get; }
    public Device Device { get; }
    public int Size => Config.ImageSize;

    public Judge(JudgeConfig config, Device? device = null)
    {
        Config = config;
        Device = device ?? CPU;
        Net = new JudgeNet(config.AttributeNames.Length, config.Channels);
        Net.to(Device);
        Net.eval();
    }

    public int AttributeIndex(string attribute)
    {
        int i = Array.IndexOf(Config.AttributeNames, attribute);
        if (i < 0) throw new ArgumentException($"The judge has no attribute '{attribute}' (it has: {string.Join(", ", Config.AttributeNames)}).");
        return i;
    }

    private Tensor Prepare(Tensor images) =>
        images.shape[^1] == Size ? images.to(Device) : F.interpolate(images.to(Device), size: [Size, Size], mode: InterpolationMode.Area);

    /// <summary>Probability that each attribute is present, (B, A), computed in chunks.</summary>
    public Tensor Probabilities(Tensor images, int chunk = 256) => Map(images, chunk, x => sigmoid(Net.forward(x)));

    /// <summary>
    /// The share of probabilities above 0.5, exactly as a count over a total in double precision: 95 of 100 is 0.95, where a
    /// float32 mean is 0.9499999881 and fails a 0.95 target.
    /// </summary>
    public static double ShareCalledPresent(Tensor probabilities) =>
        probabilities.numel() == 0 ? double.NaN : probabilities.gt(0.5).sum().item<long>() / (double)probabilities.numel();

    /// <summary>Penultimate features (B, D).</summary>
    public Tensor Features(Tensor images, int chunk = 256) => Map(images, chunk, x => Net.Features(x));

    private Tensor Map(Tensor images, int chunk, Func<Tensor, Tensor> f)
    {
        using var _ = no_grad();
        var parts = new List<Tensor>();
        for (long i = 0; i < images.shape[0]; i += chunk)
        {
            using var scope = NewDisposeScope();
            parts.Add(f(Prepare(images[TensorIndex.Slice(i, Math.Min(i + chunk, images.shape[0]))])).cpu().MoveToOuterDisposeScope());
        }
        var all = cat(parts);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    /// <summary>Accuracy per attribute against +1/-1 labels (0 = unknown is skipped).</summary>
    public double[] Accuracy(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var pred = Probabilities(images).gt(0.5);
        var known = labels.ne(0);
        var right = pred.eq(labels.gt(0)).logical_and(known).to_type(ScalarType.Float32).sum(dim: 0);
        var count = known.to_type(ScalarType.Float32).sum(dim: 0).clamp_min(1);
        return (right / count).data<float>().ToArray().Select(v => (double)v).ToArray();
    }

    public void Save(string dir, JudgeConfig? config = null)
    {
        Directory.CreateDirectory(dir);
        if (config is not null) Config = config;
        Net.save_safetensors(Path.Combine(dir, Teacher.WeightsFile));
        File.WriteAllText(Path.Combine(dir, Teacher.ConfigFile), ModelFolder.Serialize(Config));
    }

    public static Judge Load(string dir, Device? device = null)
    {
        var config = ModelFolder.ReadConfig<JudgeConfig>(dir, "judge");
        var judge = new Judge(config, device);
        judge.Net.load_safetensors(Path.Combine(dir, Teacher.WeightsFile), strict: true);
        judge.Net.to(judge.Device);
        return judge;
    }

    /// <summary>Trains a judge with binary cross-entropy on +1/-1 labels; unknown labels are masked out.</summary>
    /// <remarks>
    /// With <see cref="JudgeConfig.Augmented"/> each training image is distorted at random (<see cref="Augment"/>), so the
    /// judge decides by the attribute and not by the exact strokes of the renderer: a judge trained on clean renders only
    /// can miss an attribute that is plainly there in a generated sample whose face is a little narrower or softer.
    /// </remarks>
    public static Judge Train(JudgeConfig config, Tensor images, Tensor labels, int steps, int batch = DefaultBatch, double lr = DefaultLearningRate, long seed = 1,
        Device? device = null, Action<TrainingProgress>? progress = null)
    {
        device ??= CPU;
        random.manual_seed(seed);
        var judge = new Judge(config, device);
        var gen = new Generator((ulong)seed, device);
        var opt = optim.AdamW(judge.Net.parameters(), lr, 0.9, 0.999, 1e-8, 1e-4, false);
        using var x = images.to(device);
        using var y = labels.to(device);
        var sw = Stopwatch.StartNew();
        double smoothed = double.NaN;
        judge.Net.train();
        for (int step = 1; step <= steps; step++)
        {
            using var scope = NewDisposeScope();
            var idx = randint(0, x.shape[0], [batch], generator: gen, dtype: ScalarType.Int64, device: device);
            var xb = x.index_select(0, idx);
            var flip = rand([batch, 1, 1, 1], generator: gen, device: device).lt(0.5);
            xb = where(flip, xb.flip(3), xb);
            if (config.Augmented) xb = Augment(xb, gen, config.ColourJitter);
            var yb = y.index_select(0, idx);
            var mask = yb.ne(0).to_type(ScalarType.Float32);
            foreach (var g in opt.ParamGroups) g.LearningRate = lr * 0.5 * (1 + Math.Cos(Math.PI * step / steps));
            opt.zero_grad();
            var loss = (F.binary_cross_entropy_with_logits(judge.Net.forward(xb), yb.gt(0).to_type(ScalarType.Float32), reduction: nn.Reduction.None) * mask).sum() / mask.sum().clamp_min(1);
            loss.backward();
            opt.step();
            var l = loss.item<float>();
            smoothed = double.IsNaN(smoothed) ? l : 0.95 * smoothed + 0.05 * l;
            progress?.Invoke(new TrainingProgress(step, steps, smoothed, step / sw.Elapsed.TotalSeconds));
        }
        judge.Net.eval();
        judge.Config = config with { Step = steps };
        return judge;
    }

    /// <summary>
    /// Random distortions of images in [-1, 1], each its own: scale by 0.88-1.12 along each axis (so the aspect changes
    /// too), rotation by up to 6 degrees, shift by up to 6 % of the side; for half of them a blur (down to 50-90 % of the
    /// side and back); noise of up to 0.04; contrast 0.85-1.15 and brightness up to 0.1; with <paramref name="colour"/> first a
    /// hue and saturation change (<see cref="ColourJitter"/>). The attributes survive all of it.
    /// </summary>
    public static Tensor Augment(Tensor x, Generator gen, bool colour = false)
    {
        if (colour) x = ColourJitter(x, gen);
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        var dev = x.device;
        Tensor U(double lo, double hi, params long[] shape) => rand(shape, generator: gen, device: dev) * (hi - lo) + lo;
        var sx = U(0.88, 1.12, b); var sy = U(0.88, 1.12, b);
        var angle = U(-6, 6, b) * (Math.PI / 180);
        var tx = U(-0.12, 0.12, b); var ty = U(-0.12, 0.12, b); // grid units: the side is 2
        var (cos, sin) = (angle.cos(), angle.sin());
        var theta = stack([stack([cos / sx, -sin / sx, tx], 1), stack([sin / sy, cos / sy, ty], 1)], 1);
        var grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners: false);
        var y = F.grid_sample(x, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);

        double f = U(0.5, 0.9, 1).item<float>();
        var small = F.interpolate(y, size: [Math.Max(4, (long)(h * f)), Math.Max(4, (long)(w * f))], mode: InterpolationMode.Bilinear, align_corners: false);
        var blurred = F.interpolate(small, size: [h, w], mode: InterpolationMode.Bilinear, align_corners: false);
        y = where(rand([b, 1, 1, 1], generator: gen, device: dev).lt(0.5), blurred, y);

        y = y + randn(y.shape, generator: gen, device: dev) * U(0, 0.04, b, 1, 1, 1);
        y = y * U(0.85, 1.15, b, 1, 1, 1) + U(-0.1, 0.1, b, 1, 1, 1);
        return y.clamp(-1, 1);
    }

    /// <summary>
    /// Each image's chroma turned by up to 30 degrees of hue and scaled by 0.5-1.3 in saturation, its luminance kept: one 3x3
    /// matrix an image, YIQ's luminance and chroma planes (gray stays gray, so white hair stays white and the [-1, 1] offset
    /// does not matter). Hats, clothes and backgrounds change colour; nothing an attribute is made of changes shape.
    /// </summary>
    public static Tensor ColourJitter(Tensor x, Generator gen, double maxHueDegrees = 30, double minSaturation = 0.5, double maxSaturation = 1.3)
    {
        long b = x.shape[0];
        var dev = x.device;
        using var scope = NewDisposeScope();
        var toYiq = tensor(new float[] { 0.299f, 0.587f, 0.114f, 0.596f, -0.274f, -0.322f, 0.211f, -0.523f, 0.312f }, [3, 3], device: dev);
        var fromYiq = linalg.inv(toYiq);
        var hue = (rand([b], generator: gen, device: dev) * 2 - 1) * (maxHueDegrees * Math.PI / 180);
        var sat = rand([b], generator: gen, device: dev) * (maxSaturation - minSaturation) + minSaturation;
        var (cos, sin) = (hue.cos() * sat, hue.sin() * sat);
        var one = ones([b], device: dev);
        var zero = zeros([b], device: dev);
        var chroma = stack([stack([one, zero, zero], 1), stack([zero, cos, -sin], 1), stack([zero, sin, cos], 1)], 1); // [b, 3, 3]
        var m = fromYiq.matmul(chroma).matmul(toYiq); // per image: RGB -> YIQ -> turn and scale IQ -> RGB
        var y = einsum("bij,bjhw->bihw", m, x).clamp(-1, 1);
        return y.MoveToOuterDisposeScope();
    }

    public void Dispose() => Net.Dispose();
}
