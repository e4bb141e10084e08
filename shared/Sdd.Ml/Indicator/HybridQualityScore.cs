using Sdd.Ml.Diffusion;
using Sdd.Ml.Guidance;

namespace Sdd.Ml.Indicator;

/// <summary>One timestep of the indicator curve: means and spreads over the sample images.</summary>
public sealed record IndicatorPoint(int T, double Entropy, double EntropyStd, double Norm, double NormStd, double Hqs, double HqsStd);

/// <summary>The whole curve and the timesteps it selects.</summary>
public sealed record IndicatorCurve(string Attribute, int Samples, IReadOnlyList<IndicatorPoint> Points, int[] Selected, string Rule, GuidanceSettings Guidance);

/// <summary>
/// The Hybrid Quality Score (paper Sec. 4.2, Alg. 1). For each timestep and image: the guidance gradient map,
/// its entropy H = -sum p log p with p = |grad| / sum |grad| over pixels (channels averaged), and its L1 norm N;
/// H and N are min-max normalised across timesteps per image, and HQS_t = mean over images (N_norm - H_norm).
/// Higher is better: the gradient is strong and concentrated on a region. Unlike the paper's softmax (which is near
/// uniform for small gradients and so depends on the guidance scale), the normalised map makes H scale-invariant: H
/// says only where the gradient is, N how strong it is; with the delta gradient (linear in s) the whole curve and its
/// choice do not depend on s. The curve keeps raw H and N beside HQS.
/// </summary>
public static class HybridQualityScore
{
    public static readonly int[] DefaultGrid = Enumerable.Range(0, 17).Select(i => 100 + 50 * i).ToArray();

    /// <summary>
    /// Entropy of p = |g| / sum |g| (channels averaged; in nats, at most ln(pixels)) and L1 norm of each gradient map in a
    /// batch (B, C, H, W). A zero map counts as uniform (the largest entropy): it is concentrated nowhere.
    /// </summary>
    public static (Tensor Entropy, Tensor Norm) Measure(Tensor grad)
    {
        using var scope = NewDisposeScope();
        var a = grad.abs();
        var norm = a.flatten(1).sum(1);
        var m = a.mean([1]).flatten(1).to_type(ScalarType.Float64);
        var total = m.sum(1, keepdim: true);
        var p = where(total.gt(0), m / total.clamp_min(1e-300), full_like(m, 1.0 / m.shape[1]));
        var entropy = -(p * p.clamp_min(1e-300).log()).sum(1).to_type(grad.dtype);
        return (entropy.MoveToOuterDisposeScope(), norm.MoveToOuterDisposeScope());
    }

    /// <summary>Min-max normalisation along dimension 1 (timesteps) of (images, timesteps); a flat row becomes 0.</summary>
    public static Tensor MinMax(Tensor v)
    {
        var lo = v.amin([1], keepdim: true);
        var hi = v.amax([1], keepdim: true);
        return (v - lo) / (hi - lo).clamp_min(1e-12);
    }

    /// <summary>HQS per (image, timestep) from raw entropies and norms shaped (images, timesteps).</summary>
    public static Tensor Score(Tensor entropy, Tensor norm) => MinMax(norm) - MinMax(entropy);

    /// <summary>Timesteps whose HQS is above <paramref name="xi"/>.</summary>
    public static int[] SelectAbove(IReadOnlyList<IndicatorPoint> points, double xi) =>
        points.Where(p => p.Hqs > xi).Select(p => p.T).ToArray();

    /// <summary>The <paramref name="k"/> timesteps with the highest HQS, in increasing t.</summary>
    public static int[] SelectBest(IReadOnlyList<IndicatorPoint> points, int k) =>
        points.OrderByDescending(p => p.Hqs).Take(Math.Max(1, k)).Select(p => p.T).Order().ToArray();

    /// <summary>
    /// Computes the curve on <paramref name="images"/> (N, 3, S, S) lacking the attribute (gradient maps in the teacher's model space), with their states
    /// <paramref name="sourceStates"/> (N, A). One noise draw per image is shared by all timesteps.
    /// Select with <paramref name="xi"/> when given, else the <paramref name="k"/> best.
    /// </summary>
    public static IndicatorCurve Compute(Teacher teacher, string attribute, Tensor images, Tensor sourceStates, GuidanceSettings guidance,
        int[]? grid = null, double? xi = null, int k = 5, long seed = 1, int batch = 32, Action<int, int>? progress = null)
    {
        grid ??= DefaultGrid;
        guidance = guidance.WithReferenceScale(); // an automatic scale: the curve is computed at the mode's reference scale
        int a = teacher.AttributeIndex(attribute);
        long n = images.shape[0];
        var gen = new Generator((ulong)seed, teacher.Device);
        var ent = zeros(n, grid.Length, dtype: ScalarType.Float64);
        var nrm = zeros(n, grid.Length, dtype: ScalarType.Float64);
        int done = 0;
        for (long i = 0; i < n; i += batch)
        {
            using var scope = NewDisposeScope();
            Tensor x;
            using (no_grad()) x = teacher.ToModelSpace(images[TensorIndex.Slice(i, Math.Min(i + batch, n))].to(teacher.Device)); // latents for a latent teacher
            var src = sourceStates[TensorIndex.Slice(i, Math.Min(i + batch, n))].to(teacher.Device);
            var target = GuidanceSettings.FromSource(guidance.Mode) ? src.clone() : AttributeCondition.Null((int)x.shape[0], teacher.Attributes.Count, teacher.Device);
            target[.., a] = AttributeCondition.Present;
            var eps = randn(x.shape, generator: gen, device: teacher.Device);
            for (int j = 0; j < grid.Length; j++)
            {
                var t = full([x.shape[0]], grid[j], ScalarType.Int64, teacher.Device);
                var g = ScoreDistillation.Gradient(teacher, x, t, eps, target, src, guidance with { TopK = 0 });
                var (h, l1) = Measure(g);
                ent[TensorIndex.Slice(i, i + x.shape[0]), j] = h.to_type(ScalarType.Float64).cpu();
                nrm[TensorIndex.Slice(i, i + x.shape[0]), j] = l1.to_type(ScalarType.Float64).cpu();
                progress?.Invoke(++done, (int)((n + batch - 1) / batch) * grid.Length);
            }
        }
        var hqs = Score(ent, nrm);
        var points = new List<IndicatorPoint>();
        for (int j = 0; j < grid.Length; j++)
        {
            points.Add(new IndicatorPoint(grid[j],
                ent[.., j].mean().item<double>(), ent[.., j].std(unbiased: n > 1).item<double>(),
                nrm[.., j].mean().item<double>(), nrm[.., j].std(unbiased: n > 1).item<double>(),
                hqs[.., j].mean().item<double>(), hqs[.., j].std(unbiased: n > 1).item<double>()));
        }
        ent.Dispose(); nrm.Dispose(); hqs.Dispose();
        var selected = xi is { } x0 ? SelectAbove(points, x0) : SelectBest(points, k);
        if (selected.Length == 0) selected = SelectBest(points, 1); // a threshold above every point keeps the single best
        return new IndicatorCurve(attribute, (int)n, points, selected, xi is { } v ? $"hqs > {v}" : $"top {k}", guidance);
    }
}
