using Sdd.Ml.Torch;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Editors;

/// <summary>
/// What an editor's domain gate keeps in its config (beside the statistics in <see cref="DomainGate.WeightsFile"/>): how
/// the score is made, the threshold above which an image is outside, and how that threshold was calibrated.
/// </summary>
public sealed record DomainGateConfig
{
    public const string ThumbnailPca = "thumbnail-pca";

    public string Method { get; init; } = ThumbnailPca;
    /// <summary>The feature grid's side: every image, whatever its size, is area-averaged to Grid x Grid (colour and edges) first.</summary>
    public int Grid { get; init; } = DomainGate.DefaultGrid;
    /// <summary>
    /// The side the grey image's edges are measured at (4 x Grid, or the training images' side when smaller): every image
    /// is resized to it first, so a photo larger than the training renders shows the same edges they did, not sharper ones.
    /// </summary>
    public int EdgeSize { get; init; } = 4 * DomainGate.DefaultGrid;
    /// <summary>Principal components of the training images' features the score measures in (the rest is the residual).</summary>
    public int Components { get; init; } = DomainGate.DefaultComponents;
    /// <summary>The training images' mean residual energy, so the residual term is 1 on average in the domain.</summary>
    public double ResidualMean { get; init; }
    /// <summary>Scores above it are outside the domain.</summary>
    public double Threshold { get; init; }
    /// <summary>The quantile of the calibration images' scores the threshold sits at (before <see cref="Margin"/>).</summary>
    public double Quantile { get; init; }
    public double Margin { get; init; }
    /// <summary>The images fitted on (not counting their JPEG copies).</summary>
    public int FitImages { get; init; }
    /// <summary>Whether a JPEG copy of every fit and calibration image joined it (<see cref="DomainGate.CompressedQualities"/>).</summary>
    public bool Compressed { get; init; }
    /// <summary>
    /// Which images the threshold was calibrated on and how many: "validation" (the run's validation split),
    /// "validation+training-holdout" (a small split with every tenth training image held out of the fit) or "training-holdout".
    /// </summary>
    public string CalibratedOn { get; init; } = "validation";
    public int CalibrationImages { get; init; }
    /// <summary>The share of the calibration images (and their JPEG copies, when compressed) that pass at the threshold.</summary>
    public double CalibrationPassRate { get; init; }
}

/// <summary>
/// The domain gate: a compact summary of the images an editor was trained on, and a score saying how far a new image is
/// from them. Features (1,024 numbers, the same for a 32 px render and a 12 MP photo of it): the image area-averaged to a
/// 16 x 16 colour thumbnail (768) and its grey gradient magnitude, taken at <see cref="DomainGateConfig.EdgeSize"/> px,
/// pooled to 16 x 16 and divided by its mean (256: where the edges are, not how sharp; colours alone let half of the
/// photographs tried through). Each feature is z-scored on the training images and their JPEG copies (its spread floored
/// at a tenth of the median spread), their leading principal components are kept, and an image's score is the larger of
/// two classic novelty terms, each 1 on average in the domain: Hotelling's T^2 in the components (T^2 / k: unusual along
/// the directions the domain varies in) and the residual energy outside them (Q / mean Q: a structure the domain never
/// has). In-domain images score about 1; a photograph, a house or a texture scores tens to thousands. The threshold is
/// calibrated on the validation split (<see cref="Calibrate"/>). Cost: two area resizes, a gradient and a 1,024 x k
/// product per image (about 0.15 ms at 128 px; the editor's forward pass is milliseconds). It judges layout, colours and
/// edges, not meaning: an image built to look like the domain at 16 x 16 passes (docs/results/bench-domain.json).
/// </summary>
public sealed class DomainGate : IDisposable
{
    public const string WeightsFile = "domain.safetensors";
    public const int DefaultGrid = 16;
    public const int DefaultComponents = 96;
    /// <summary>The calibration quantile and its margin: the 99.5th percentile of validation scores, times 1.25.</summary>
    public const double DefaultQuantile = 0.995, DefaultMargin = 1.25;

    /// <summary>The statistics as a module, so they are saved and loaded (strict) like every other model's weights.</summary>
    private sealed class Stats : nn.Module
    {
        public readonly Parameter mean, scale, basis, variance;

        public Stats(int dims, int k) : base("DomainGate")
        {
            // The gate lives as long as its editor, not as long as the dispose scope it was fitted or loaded in: a scope
            // around the fit (EditorDistillation.FitDomainGate) disposed these, and the next save wrote what was left.
            mean = Kept(new Parameter(zeros(dims), requires_grad: false));
            scale = Kept(new Parameter(ones(dims), requires_grad: false));
            basis = Kept(new Parameter(zeros(k, dims), requires_grad: false));
            variance = Kept(new Parameter(ones(k), requires_grad: false));
            RegisterComponents();
        }

        private static Parameter Kept(Parameter p)
        {
            p.DetachFromDisposeScope();
            return p;
        }
    }

    private readonly Stats _stats;

    public DomainGateConfig Config { get; private set; }

    private DomainGate(DomainGateConfig config, Stats stats) { Config = config; _stats = stats; }

    /// <summary>JPEG qualities the fit and the calibration add copies at (<see cref="Fit"/>, <see cref="Calibrate"/>).</summary>
    public static readonly int[] CompressedQualities = [60, 75, 90];

    private const int FitChunk = 256;

    /// <summary>
    /// Fits the summary on <paramref name="images"/> (B, 3, H, W) in [-1, 1]: their features' mean, spread and principal
    /// components. With <paramref name="compressed"/> (the default) a JPEG copy of each image joins them (qualities 60, 75,
    /// 90 in turn): rendered training images have no compression artefacts and the photos people send all have them
    /// (without it, 19.5 % of held-out portraits saved as JPEG at quality 92 were refused).
    /// </summary>
    public static DomainGate Fit(Tensor images, int grid = DefaultGrid, int components = DefaultComponents, bool compressed = true)
    {
        long count = images.shape[0];
        if (count < 2) throw new ArgumentException($"A domain gate needs at least 2 images to fit, got {count}.");
        using var scope = NewDisposeScope(); // the statistics' tensors are detached from it (Stats)
        using var _ = no_grad();
        int edgeSize = (int)Math.Max(grid, Math.Min(4 * grid, Math.Min(images.shape[2], images.shape[3])));
        // Features a chunk at a time, each chunk's JPEG copy made and dropped in turn: only features are held for all.
        var square = CentreSquare(images);
        var parts = new List<Tensor>();
        for (long i = 0; i < count; i += FitChunk)
        {
            var chunk = square[TensorIndex.Slice(i, Math.Min(count, i + FitChunk))];
            parts.Add(Features(chunk, grid, edgeSize));
            if (compressed)
                using (var copies = Data.ImageCodec.JpegRoundTrip(chunk, CompressedQualities)) parts.Add(Features(copies, grid, edgeSize));
        }
        var x = cat(parts);
        long n = x.shape[0], d = x.shape[1];
        // At most one component per ten images: with fewer images per direction the variances along the last ones are
        // noise, and T^2 of a new image explodes along them (162 images and 96 components: held-out median 6, not 1).
        int k = (int)Math.Max(1, Math.Min(components, Math.Min((n - 1) / 10, d)));
        var stats = new Stats((int)d, k);
        // Each feature standardised (its training mean and spread, the spread floored at a tenth of the median one), so
        // the colours and the edges weigh alike and the residual is in units of the domain's own variation.
        var mean = x.mean([0]);
        var spread = x.std([0]);
        spread = spread.clamp_min(spread.median().item<float>() * 0.1 + 1e-6);
        var centred = (x - mean) / spread;
        // The components from the d x d covariance (d = 1,024): cheaper than an SVD of n x d for thousands of images.
        var covariance = centred.t().matmul(centred) / (n - 1);
        var (values, vectors) = linalg.eigh(covariance);
        var top = arange(d - 1, d - 1 - k, -1, dtype: ScalarType.Int64);
        var basis = vectors.index_select(1, top).t().contiguous();
        // A floor on the variances, so a direction the training set hardly varies in does not make T^2 explode.
        var variance = values.index_select(0, top).clamp_min(values.max().item<float>() * 1e-4 + 1e-8);
        stats.mean.copy_(mean);
        stats.scale.copy_(spread);
        stats.basis.copy_(basis);
        stats.variance.copy_(variance);
        var gate = new DomainGate(new DomainGateConfig { Grid = grid, EdgeSize = edgeSize, Components = k, FitImages = (int)count, Compressed = compressed, ResidualMean = 1 }, stats);
        var (_, q) = gate.Terms(x);
        gate.Config = gate.Config with { ResidualMean = Math.Max(1e-12, q.mean().item<float>()) };
        return gate;
    }

    /// <summary>
    /// Each image's features, (B, 4 * Grid^2): its Grid x Grid colour thumbnail (where the colours are) and its Grid x Grid
    /// edge map (the mean gradient magnitude of the grey image at <paramref name="edgeSize"/>, pooled and divided by its
    /// mean: where the outlines are and how they are spread; a portrait's are on the face, a photograph's everywhere).
    /// </summary>
    public static Tensor Features(Tensor images, int grid, int edgeSize)
    {
        using var scope = NewDisposeScope();
        var x = images.to_type(ScalarType.Float32).cpu();
        if (x.shape[1] != 3) throw new ArgumentException($"A domain gate scores colour images (3 channels), got {x.shape[1]}.");
        Tensor Resize(Tensor t, int side) => t.shape[2] == side && t.shape[3] == side ? t
            : F.interpolate(t, size: [side, side], mode: t.shape[2] >= side && t.shape[3] >= side ? InterpolationMode.Area : InterpolationMode.Bilinear, align_corners: t.shape[2] >= side && t.shape[3] >= side ? null : false);
        var colour = Resize(x, grid).flatten(1);
        var grey = Resize(x, edgeSize).mean([1], keepdim: true);
        var gx = F.pad(grey[.., .., .., 1..] - grey[.., .., .., ..^1], [0, 1, 0, 0]);
        var gy = F.pad(grey[.., .., 1.., ..] - grey[.., .., ..^1, ..], [0, 0, 0, 1]);
        var edges = F.adaptive_avg_pool2d((gx.pow(2) + gy.pow(2) + 1e-8).sqrt(), [grid, grid]).flatten(1);
        // Where the edges are, not how sharp: each map over its mean (plus a floor, so a blank image stays near zero), so
        // a softer or crisper copy of the same picture (another camera, training images upscaled) keeps its features.
        edges = edges / (edges.mean([1], keepdim: true) + 0.01);
        return cat([colour, edges], 1).MoveToOuterDisposeScope();
    }

    /// <summary>T^2 / k and the raw residual energy Q of thumbnails.</summary>
    private (Tensor T2, Tensor Q) Terms(Tensor features)
    {
        var centred = (features - _stats.mean) / _stats.scale;
        var projected = centred.matmul(_stats.basis.t());
        var t2 = (projected.pow(2) / _stats.variance).sum([1]) / _stats.basis.shape[0];
        var q = (centred - projected.matmul(_stats.basis)).pow(2).sum([1]);
        return (t2, q);
    }

    /// <summary>
    /// Every image's score (B), about 1 in the domain. The domain's images are square; a wider or taller one is scored as
    /// three squares along its long side (start, centre, end) and keeps the lowest: an image passes when some square of
    /// it looks like the domain (a portrait with a band of sky beside it does; the editor edits the whole image either way).
    /// </summary>
    public Tensor Score(Tensor images)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long h = images.shape[2], w = images.shape[3], side = Math.Min(h, w), extra = Math.Max(h, w) - side;
        var scores = new[] { 0, extra / 2, extra }.Distinct().Select(o => SquareScore(h > w
            ? images[.., .., TensorIndex.Slice(o, o + side), ..]
            : images[.., .., .., TensorIndex.Slice(o, o + side)])).ToArray();
        return (scores.Length == 1 ? scores[0] : stack(scores).amin([0])).MoveToOuterDisposeScope();
    }

    private Tensor SquareScore(Tensor squares)
    {
        var (t2, q) = Terms(Features(squares, Config.Grid, Config.EdgeSize));
        return maximum(t2, q / Config.ResidualMean);
    }

    /// <summary>The centred square of each image (the images themselves when square).</summary>
    private static Tensor CentreSquare(Tensor images)
    {
        long h = images.shape[2], w = images.shape[3], side = Math.Min(h, w);
        if (h == w) return images;
        return h > w ? images[.., .., TensorIndex.Slice((h - side) / 2, (h - side) / 2 + side), ..]
                     : images[.., .., .., TensorIndex.Slice((w - side) / 2, (w - side) / 2 + side)];
    }

    public float[] Scores(Tensor images)
    {
        using var s = Score(images);
        return s.data<float>().ToArray();
    }

    /// <summary>
    /// Sets the threshold from in-domain images the gate was not fitted on (the validation split): the
    /// <paramref name="quantile"/> of their scores times <paramref name="margin"/>, recording the share of them that pass.
    /// The quantile is the larger of the empirical one (nearest rank) and a prediction bound for one more in-domain image
    /// under a log-normal fit of the scores (exp(mean + t · sd · sqrt(1 + 1/n)) of the log scores, t Student's at n − 1
    /// degrees of freedom): with 200 validation images the two agree, with 10 the empirical one is merely their maximum
    /// (about 91 % of new images below it) and the bound keeps the pass rate near the quantile asked for.
    /// </summary>
    public DomainGateConfig Calibrate(Tensor validation, double quantile = DefaultQuantile, double margin = DefaultMargin, string calibratedOn = "validation",
        bool compressed = true)
    {
        var scores = Scores(validation);
        if (compressed)
        {
            // The validation images and a JPEG copy of each, as the fit saw them.
            using var copies = Data.ImageCodec.JpegRoundTrip(validation, CompressedQualities);
            scores = [.. scores, .. Scores(copies)];
        }
        if (scores.Length == 0) throw new ArgumentException("A domain gate is calibrated on at least one image.");
        Array.Sort(scores);
        // The nearest-rank quantile (the smallest score with at least that share at or below it).
        var rank = Math.Clamp((int)Math.Ceiling(quantile * scores.Length) - 1, 0, scores.Length - 1);
        double q = scores[rank];
        if (scores.Length >= 3)
        {
            var logs = scores.Select(x => Math.Log(Math.Max(x, 1e-6))).ToArray();
            double mu = logs.Average(), sd = Math.Sqrt(logs.Sum(l => (l - mu) * (l - mu)) / (logs.Length - 1));
            q = Math.Max(q, Math.Exp(mu + StudentQuantile(quantile, logs.Length - 1) * sd * Math.Sqrt(1 + 1.0 / logs.Length)));
        }
        var threshold = Math.Round(q * margin, 4);
        Config = Config with
        {
            Threshold = threshold, Quantile = quantile, Margin = margin, CalibratedOn = calibratedOn, CalibrationImages = (int)validation.shape[0],
            CalibrationPassRate = Math.Round(scores.Count(s => s <= threshold) / (double)scores.Length, 4),
        };
        return Config;
    }

    /// <summary>Student's t quantile at <paramref name="p"/> with <paramref name="df"/> degrees of freedom (Cornish-Fisher from the normal one; within 1 % from 3 df).</summary>
    public static double StudentQuantile(double p, int df)
    {
        double z = NormalQuantile(p), v = df, z2 = z * z;
        return z + z * (z2 + 1) / (4 * v) + z * ((5 * z2 + 16) * z2 + 3) / (96 * v * v)
                 + z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / (384 * v * v * v);
    }

    /// <summary>The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9).</summary>
    public static double NormalQuantile(double p)
    {
        if (p is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(p), p, "a probability strictly between 0 and 1");
        double[] a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        double[] b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        double[] c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        double[] d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        const double low = 0.02425;
        if (p < low || p > 1 - low)
        {
            double qt = Math.Sqrt(-2 * Math.Log(p < low ? p : 1 - p));
            double x = (((((c[0] * qt + c[1]) * qt + c[2]) * qt + c[3]) * qt + c[4]) * qt + c[5]) / ((((d[0] * qt + d[1]) * qt + d[2]) * qt + d[3]) * qt + 1);
            return p < low ? x : -x;
        }
        double q = p - 0.5, r = q * q;
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }

    /// <summary>Whether a score is inside the domain.</summary>
    public bool Passes(double score) => score <= Config.Threshold;

    /// <summary>The reason an item outside is not edited, as the job's items and the CLI show it.</summary>
    public string Reason(double score) => FormattableString.Invariant($"outside the editor's domain (score {score:0.##}, threshold {Config.Threshold:0.##})");

    /// <summary>Writes the statistics into an editor's folder (the config goes in the editor's config.json).</summary>
    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.Write(Path.Combine(dir, WeightsFile), p => _stats.save_safetensors(p));
    }

    public static DomainGate Load(DomainGateConfig config, string path)
    {
        if (config.Method != DomainGateConfig.ThumbnailPca) throw new InvalidDataException($"Unknown domain gate method '{config.Method}'.");
        if (config.Grid is < 2 or > 32 || config.EdgeSize < config.Grid || config.EdgeSize > 4 * config.Grid || config.Components < 1 || !(config.ResidualMean > 0) || !double.IsFinite(config.Threshold))
            throw new InvalidDataException($"The domain gate's config is not valid (grid {config.Grid}, components {config.Components}, residual mean {config.ResidualMean}, threshold {config.Threshold}).");
        var stats = new Stats(4 * config.Grid * config.Grid, config.Components);
        stats.load_safetensors(path, strict: true);
        return new DomainGate(config, stats);
    }

    /// <summary>Loads from the statistics' bytes (object storage).</summary>
    public static DomainGate Load(DomainGateConfig config, byte[] weights)
    {
        var tmp = Path.Combine(Path.GetTempPath(), $"sdd-domain-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(tmp, weights);
            return Load(config, tmp);
        }
        finally { File.Delete(tmp); }
    }

    public void Dispose() => _stats.Dispose();
}
