using System.Diagnostics;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;

namespace Sdd.Ml.Evaluation;

/// <summary>
/// One row of the quality table. Where the images have counterfactuals: PSNR to the counterfactual over the whole image,
/// inside the attribute's region (where the counterfactual differs from the source) and PSNR to the source outside it.
/// <paramref name="Kid"/> and <paramref name="Fd"/>: distances of the edited images' judge features to the reference
/// images that have the attribute.
/// </summary>
/// <paramref name="Sharpness"/>: the Laplacian energy of the edited images inside the region over the counterfactuals' (1: as sharp).
public sealed record QualityRow(string Method, double Editability, double PsnrSource, double SsimSource, double? PsnrCounterfactual,
    double? PsnrInRegion, double? PsnrOutsideRegion, double? Kid, double? Fd, double MsPerImage, double Nfe, double OthersKept, double? Sharpness = null);

/// <summary>
/// Scores edited images against their sources, counterfactuals and reference images with the attribute, all on the
/// same held-out images, so that every method (including doing nothing) is read on one scale. The reference for KID and
/// FD is <paramref name="reference"/> (other images that have the attribute: the benchmark's choice) or else the
/// counterfactuals. Without counterfactuals (real photos) the counterfactual and region figures are absent.
/// </summary>
public sealed class QualityScorer(Judge judge, string attribute, Tensor sources, Tensor labels, Tensor? counterfactuals, Tensor? reference = null)
    : IDisposable
{
    private readonly int _a = judge.AttributeIndex(attribute);
    private Tensor? _referenceFeatures;
    private readonly Tensor? _region = counterfactuals is null ? null : ImageMetrics.Region(sources, counterfactuals);

    /// <summary>The attribute's region per image ([N, 1, H, W]; null without counterfactuals).</summary>
    public Tensor? Region => _region;

    public QualityRow Score(string method, Tensor edited, double msPerImage, double nfe)
    {
        using var scope = NewDisposeScope();
        var p = judge.Probabilities(edited);
        double editability = Judge.ShareCalledPresent(p[.., _a]);
        // Other attributes kept: the judge's call on each other attribute matches the source's label.
        var others = Enumerable.Range(0, (int)labels.shape[1]).Where(i => i != _a).ToArray();
        double kept = 1;
        if (others.Length > 0)
        {
            var idx = tensor(others.Select(i => (long)i).ToArray());
            kept = p.index_select(1, idx).gt(0.5).eq(labels.index_select(1, idx).gt(0)).to_type(ScalarType.Float32).mean().item<float>();
        }
        var refImages = reference ?? counterfactuals;
        if (_referenceFeatures is null && refImages is not null && refImages.shape[0] >= 2) _referenceFeatures = judge.Features(refImages).DetachFromDisposeScope();
        Tensor? features = _referenceFeatures is not null && edited.shape[0] >= 2 ? judge.Features(edited) : null;
        double? inside = null, outside = null, sharpness = null;
        if (counterfactuals is not null && _region is not null)
        {
            inside = Round(ImageMetrics.FiniteMean(ImageMetrics.MaskedPsnr(edited, counterfactuals, _region)));
            outside = Round(ImageMetrics.FiniteMean(ImageMetrics.MaskedPsnr(edited, sources, 1 - _region)));
            double target = ImageMetrics.FiniteMean(ImageMetrics.LaplacianEnergy(counterfactuals, _region));
            double ratio = ImageMetrics.FiniteMean(ImageMetrics.LaplacianEnergy(edited, _region)) / target;
            sharpness = double.IsFinite(ratio) ? Math.Round(ratio, 3) : null;
        }
        return new QualityRow(method,
            Math.Round(editability, 4),
            Math.Round(ImageMetrics.Psnr(edited, sources).mean().item<float>(), 2),
            Math.Round(ImageMetrics.Ssim(edited, sources).mean().item<float>(), 4),
            counterfactuals is null ? null : Math.Round(ImageMetrics.Psnr(edited, counterfactuals).mean().item<float>(), 2),
            inside, outside,
            features is null ? null : Math.Round(KernelDistance.Compute(features, _referenceFeatures!), 5),
            features is null ? null : Math.Round(FrechetDistance.Compute(features, _referenceFeatures!), 3),
            Math.Round(msPerImage, 3), nfe, Math.Round(kept, 4), sharpness);
    }

    private static double? Round(double v) => double.IsFinite(v) ? Math.Round(v, 2) : null;

    public void Dispose() { _referenceFeatures?.Dispose(); _region?.Dispose(); }
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
