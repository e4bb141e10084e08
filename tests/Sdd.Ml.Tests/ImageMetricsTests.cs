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
    public void Every_metric_gives_the_same_values_on_chunks_of_images_as_on_the_whole_batch()
    {
        using var scope = NewDisposeScope();
        var (x, _) = Tiny.Portraits(53, 0, 7, 16);
        var y = Noisy(x, 0.1, 3);
        var mask = ImageMetrics.Region(x, Noisy(x, 0.03, 4));
        long threeImages = 3 * 16 * 16; // chunks of 3, 3 and 1 images
        var metrics = new (string Name, Tensor[] Inputs, Func<Tensor[], Tensor> Metric)[]
        {
            ("psnr", [x, y], t => ImageMetrics.Psnr(t[0], t[1])),
            ("ssim", [x, y], t => ImageMetrics.Ssim(t[0], t[1])),
            ("masked psnr", [x, y, mask], t => ImageMetrics.MaskedPsnr(t[0], t[1], t[2])),
            ("laplacian energy", [y, mask], t => ImageMetrics.LaplacianEnergy(t[0], t[1])),
            ("region", [x, y], t => ImageMetrics.Region(t[0], t[1]).flatten(1).sum([1])),
        };
        foreach (var (name, inputs, metric) in metrics)
        {
            var whole = metric(inputs);
            var chunked = ImageMetrics.PerImage(inputs, metric, threeImages);
            Assert.Equal(new long[] { 7 }, chunked.shape);
            Assert.True(whole.allclose(chunked, rtol: 1e-5, atol: 1e-5, equal_nan: true), $"{name}: {string.Join(",", whole.data<float>().ToArray())} vs {string.Join(",", chunked.data<float>().ToArray())}");
            // Per image: each image's value is the metric of that image alone.
            Assert.Equal(whole[6].item<float>(), metric(inputs.Select(t => t[6..7]).ToArray())[0].item<float>(), 4);
        }
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
