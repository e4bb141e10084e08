namespace Sdd.Ml.Evaluation;

/// <summary>Per-image fidelity metrics on batches in [-1, 1].</summary>
public static class ImageMetrics
{
    /// <summary>A pixel differs between source and counterfactual when a channel moves by more than this (1 % of the range).</summary>
    public const double RegionThreshold = 0.02;

    /// <summary>
    /// About this many pixels (per channel) in each chunk of images a metric works on. Every metric here is per image,
    /// and each holds its temporaries until it returns: SSIM holds some 25 of them, each the size of its input, so 100
    /// images at 512 px (315 MB each) took 8 GB at once, and `bench editors` at 512 px reached 20 GB.
    /// </summary>
    public const long ChunkPixels = 1L << 21;

    /// <summary>
    /// <paramref name="metric"/> (per image: one value per image of the batch, the images independent) on chunks of
    /// about <paramref name="chunkPixels"/> pixels of the batches <paramref name="inputs"/> (the same number of images
    /// each), concatenated: the same values, with the temporaries of one chunk alive at a time.
    /// </summary>
    public static Tensor PerImage(Tensor[] inputs, Func<Tensor[], Tensor> metric, long chunkPixels = ChunkPixels)
    {
        long n = inputs[0].shape[0];
        long chunk = Math.Max(1, chunkPixels / Math.Max(1, inputs[0].shape[^1] * inputs[0].shape[^2]));
        if (n <= chunk) return metric(inputs);
        var parts = new List<Tensor>();
        try
        {
            for (long i = 0; i < n; i += chunk)
            {
                using var scope = NewDisposeScope();
                var slice = TensorIndex.Slice(i, Math.Min(i + chunk, n));
                parts.Add(metric(inputs.Select(t => t[slice]).ToArray()).MoveToOuterDisposeScope());
            }
            return cat(parts);
        }
        finally { foreach (var p in parts) p.Dispose(); }
    }

    /// <summary>PSNR in dB per image, for images scaled to [0, 1] (peak 1); capped at 100 dB for identical images.</summary>
    public static Tensor Psnr(Tensor a, Tensor b) => PerImage([a, b], t => PsnrOf(t[0], t[1]));

    private static Tensor PsnrOf(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var mse = ((a - b) / 2).pow(2).flatten(1).mean([1]).clamp_min(1e-10);
        return (-10 * mse.log10()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Where an attribute lives in each image: the pixels where the counterfactual differs from the source by more than
    /// <see cref="RegionThreshold"/> in some channel, grown by <paramref name="grow"/> pixels (the renderer's anti-aliased
    /// edges). [N, 1, H, W], 1 inside.
    /// </summary>
    public static Tensor Region(Tensor source, Tensor counterfactual, int grow = 1) => PerImage([source, counterfactual], t => RegionOf(t[0], t[1], grow));

    private static Tensor RegionOf(Tensor source, Tensor counterfactual, int grow)
    {
        using var scope = NewDisposeScope();
        var m = (source - counterfactual).abs().amax([1], keepdim: true).gt(RegionThreshold).to_type(ScalarType.Float32);
        if (grow > 0) m = F.max_pool2d(m, 2 * grow + 1, 1, grow);
        return m.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// PSNR in dB per image over the pixels where <paramref name="mask"/> ([N, 1, H, W], 0/1) is 1 (NaN for an image whose
    /// mask is empty); capped at 100 dB.
    /// </summary>
    public static Tensor MaskedPsnr(Tensor a, Tensor b, Tensor mask) => PerImage([a, b, mask], t => MaskedPsnrOf(t[0], t[1], t[2]));

    private static Tensor MaskedPsnrOf(Tensor a, Tensor b, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var pixels = mask.flatten(1).sum([1]) * a.shape[1];
        var se = (((a - b) / 2).pow(2) * mask).flatten(1).sum([1]);
        var mse = (se / pixels.clamp_min(1)).clamp_min(1e-10);
        var psnr = -10 * mse.log10();
        return where(pixels.gt(0), psnr, full_like(psnr, double.NaN)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Laplacian energy per image inside <paramref name="mask"/>: the mean over the masked pixels (channels averaged) of the
    /// squared 3x3 Laplacian of the image in [0, 1]; NaN for an empty mask. A blurred edit has less of it than a sharp one.
    /// </summary>
    public static Tensor LaplacianEnergy(Tensor images, Tensor mask) => PerImage([images, mask], t => LaplacianEnergyOf(t[0], t[1]));

    private static Tensor LaplacianEnergyOf(Tensor images, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var k = tensor(new float[] { 0, 1, 0, 1, -4, 1, 0, 1, 0 }, [1, 1, 3, 3]).to(images.device).expand(images.shape[1], 1, 3, 3).contiguous();
        var lap = F.conv2d(F.pad((images + 1) / 2, [1, 1, 1, 1], PaddingModes.Replicate), k, groups: images.shape[1]);
        var energy = lap.pow(2).mean([1], keepdim: true);
        var pixels = mask.flatten(1).sum([1]);
        var mean = (energy * mask).flatten(1).sum([1]) / pixels.clamp_min(1);
        return where(pixels.gt(0), mean, full_like(mean, double.NaN)).MoveToOuterDisposeScope();
    }

    /// <summary>The mean of the finite entries (NaN when there are none).</summary>
    public static double FiniteMean(Tensor v)
    {
        using var scope = NewDisposeScope();
        var ok = v.isfinite();
        return ok.any().item<bool>() ? v.masked_select(ok).mean().item<float>() : double.NaN;
    }

    /// <summary>SSIM per image (Wang et al. 2004) with a 7x7 Gaussian window (sigma 1.5), channels averaged.</summary>
    public static Tensor Ssim(Tensor a, Tensor b) => PerImage([a, b], t => SsimOf(t[0], t[1]));

    private static Tensor SsimOf(Tensor a, Tensor b)
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
