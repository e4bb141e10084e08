using System.Diagnostics;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;

namespace Sdd.Ml.Evaluation;

/// <summary>One row of the quality table.</summary>
public sealed record QualityRow(string Method, double Editability, double PsnrSource, double SsimSource, double? PsnrCounterfactual,
    double? Fd, double MsPerImage, double Nfe, double OthersKept);

/// <summary>
/// Scores edited images against their sources, counterfactuals and real images with the attribute, all on the
/// same held-out images, so that every method (including doing nothing) is read on one scale. Without ground-truth
/// counterfactuals (real photos) the counterfactual PSNR is absent and the Fréchet distance is taken to
/// <paramref name="realWithAttribute"/>.
/// </summary>
public sealed class QualityScorer(Judge judge, string attribute, Tensor sources, Tensor labels, Tensor? counterfactuals, Tensor? realWithAttribute = null)
{
    private readonly int _a = judge.AttributeIndex(attribute);
    private Tensor? _realFeatures;

    public QualityRow Score(string method, Tensor edited, double msPerImage, double nfe)
    {
        using var scope = NewDisposeScope();
        var p = judge.Probabilities(edited);
        double editability = p[.., _a].gt(0.5).to_type(ScalarType.Float32).mean().item<float>();
        // Other attributes kept: the judge's call on each other attribute matches the source's label.
        var others = Enumerable.Range(0, (int)labels.shape[1]).Where(i => i != _a).ToArray();
        double kept = 1;
        if (others.Length > 0)
        {
            var idx = tensor(others.Select(i => (long)i).ToArray());
            kept = p.index_select(1, idx).gt(0.5).eq(labels.index_select(1, idx).gt(0)).to_type(ScalarType.Float32).mean().item<float>();
        }
        var reference = realWithAttribute ?? counterfactuals;
        if (_realFeatures is null && reference is not null && reference.shape[0] >= 2) _realFeatures = judge.Features(reference).DetachFromDisposeScope();
        return new QualityRow(method,
            Math.Round(editability, 4),
            Math.Round(ImageMetrics.Psnr(edited, sources).mean().item<float>(), 2),
            Math.Round(ImageMetrics.Ssim(edited, sources).mean().item<float>(), 4),
            counterfactuals is null ? null : Math.Round(ImageMetrics.Psnr(edited, counterfactuals).mean().item<float>(), 2),
            _realFeatures is null || edited.shape[0] < 2 ? null : Math.Round(FrechetDistance.Compute(judge.Features(edited), _realFeatures), 3),
            Math.Round(msPerImage, 3), nfe, Math.Round(kept, 4));
    }
}

/// <summary>Runs a method over a batch in chunks and reports milliseconds per image.</summary>
public static class Timed
{
    public static (Tensor Output, double MsPerImage) Map(Tensor images, int chunk, Func<Tensor, Tensor> f)
    {
        var parts = new List<Tensor>();
        var sw = Stopwatch.StartNew();
        for (long i = 0; i < images.shape[0]; i += chunk)
        {
            using var scope = NewDisposeScope();
            parts.Add(f(images[TensorIndex.Slice(i, Math.Min(i + chunk, images.shape[0]))]).cpu().MoveToOuterDisposeScope());
        }
        var ms = sw.Elapsed.TotalMilliseconds / images.shape[0];
        var all = cat(parts);
        foreach (var p in parts) p.Dispose();
        return (all, ms);
    }
}

/// <summary>SDEdit settings used as the baseline: noise to t0, then DDIM under the target condition.</summary>
public sealed record SdEditSettings(int T0, int Steps, double Guidance)
{
    /// <summary>DDIM steps proportional to t0 (50 for the full chain).</summary>
    public static SdEditSettings At(int t0, double guidance = 3.0, int fullSteps = 50) => new(t0, Math.Max(1, (int)Math.Round(fullSteps * t0 / 1000.0)), guidance);

    /// <summary>Teacher evaluations per image (two per step under classifier-free guidance).</summary>
    public double Nfe => Guidance == 1.0 ? Steps : 2 * Steps;
}
