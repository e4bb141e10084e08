using Sdd.Ml.Evaluation;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class ImageMetricsTests
{
    private static Tensor Noisy(Tensor x, double sigma, ulong seed) => (x + sigma * randn(x.shape, generator: new Generator(seed))).clamp(-1, 1);

    [Fact]
    public void Psnr_is_capped_for_identical_images_and_lower_for_different_ones()
    {
        using var scope = NewDisposeScope();
        var (x, _) = Tiny.Portraits(51, 0, 3, 16);
        var same = ImageMetrics.Psnr(x, x.clone());
        Assert.Equal(new long[] { 3 }, same.shape);
        Assert.All(same.data<float>().ToArray(), v => Assert.InRange(v, 99f, 100.001f));
        var negated = ImageMetrics.Psnr(x, -x);
        var slightly = ImageMetrics.Psnr(x, Noisy(x, 0.02, 1));
        var more = ImageMetrics.Psnr(x, Noisy(x, 0.2, 1));
        for (int i = 0; i < 3; i++)
        {
            Assert.True(negated[i].item<float>() < 30, $"x vs -x: {negated[i].item<float>()} dB");
            Assert.True(more[i].item<float>() < slightly[i].item<float>() && slightly[i].item<float>() < same[i].item<float>());
        }
        // A known value: a constant offset of 0.2 in [-1, 1] is 0.1 in [0, 1], MSE 0.01, PSNR 20 dB.
        var flat = zeros(1, 3, 16, 16);
        Assert.Equal(20.0, ImageMetrics.Psnr(flat, flat + 0.2)[0].item<float>(), 3);
    }

    [Fact]
    public void Ssim_is_1_for_identical_images_and_falls_with_noise()
    {
        using var scope = NewDisposeScope();
        var (x, _) = Tiny.Portraits(52, 0, 3, 16);
        var same = ImageMetrics.Ssim(x, x.clone());
        Assert.Equal(new long[] { 3 }, same.shape);
        Assert.All(same.data<float>().ToArray(), v => Assert.Equal(1.0, v, 1e-4));
        var slightly = ImageMetrics.Ssim(x, Noisy(x, 0.05, 2));
        var more = ImageMetrics.Ssim(x, Noisy(x, 0.3, 2));
        for (int i = 0; i < 3; i++)
        {
            Assert.True(slightly[i].item<float>() < 0.9999, $"slight noise: {slightly[i].item<float>()}");
            Assert.True(more[i].item<float>() < slightly[i].item<float>(), $"more noise {more[i].item<float>()} vs slight {slightly[i].item<float>()}");
        }
        Assert.True(ImageMetrics.Ssim(x, -x).max().item<float>() < 0.5);
    }
}
