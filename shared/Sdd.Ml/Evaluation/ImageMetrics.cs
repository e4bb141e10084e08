namespace Sdd.Ml.Evaluation;

/// <summary>Per-image fidelity metrics on batches in [-1, 1].</summary>
public static class ImageMetrics
{
    /// <summary>PSNR in dB per image, for images scaled to [0, 1] (peak 1); capped at 100 dB for identical images.</summary>
    public static Tensor Psnr(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var mse = ((a - b) / 2).pow(2).flatten(1).mean([1]).clamp_min(1e-10);
        return (-10 * mse.log10()).MoveToOuterDisposeScope();
    }

    /// <summary>SSIM per image (Wang et al. 2004) with a 7x7 Gaussian window (sigma 1.5), channels averaged.</summary>
    public static Tensor Ssim(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var x = (a + 1) / 2; var y = (b + 1) / 2;
        const int k = 7; const double sigma = 1.5;
        var g = exp(-(arange(k, dtype: ScalarType.Float32) - k / 2).pow(2) / (2 * sigma * sigma));
        g = g / g.sum();
        var w = g.unsqueeze(1).matmul(g.unsqueeze(0)).expand(3, 1, k, k).contiguous().to(a.device);
        Tensor Blur(Tensor v) => F.conv2d(v, w, groups: 3);
        var mx = Blur(x); var my = Blur(y);
        var sxx = Blur(x * x) - mx * mx; var syy = Blur(y * y) - my * my; var sxy = Blur(x * y) - mx * my;
        const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
        var map = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
        return map.flatten(1).mean([1]).MoveToOuterDisposeScope();
    }
}
