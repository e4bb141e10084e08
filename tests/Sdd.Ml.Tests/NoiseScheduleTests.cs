using Sdd.Ml.Diffusion;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class NoiseScheduleTests
{
    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void Alpha_bars_decrease_strictly_inside_zero_one(ScheduleKind kind)
    {
        var s = new NoiseSchedule(kind);
        Assert.Equal(1000, s.AlphaBars.Length);
        for (int t = 0; t < s.Steps; t++)
        {
            Assert.InRange(s.AlphaBars[t], double.Epsilon, 1.0);
            Assert.True(s.AlphaBars[t] < 1.0, $"ab[{t}] = 1");
            Assert.True(s.AlphaBars[t] > 0.0, $"ab[{t}] = 0");
            if (t > 0) Assert.True(s.AlphaBars[t] < s.AlphaBars[t - 1], $"ab[{t}] = {s.AlphaBars[t]} is not below ab[{t - 1}] = {s.AlphaBars[t - 1]}");
        }
        Assert.True(s.AlphaBars[0] > 0.999, "the first step should barely add noise");
        Assert.True(s.AlphaBars[^1] < 0.01, "the last step should be almost pure noise");
    }

    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void Signal_and_noise_scales_square_to_one(ScheduleKind kind)
    {
        using var scope = NewDisposeScope();
        var s = new NoiseSchedule(kind);
        var ab = s.AlphaBar(arange(s.Steps, dtype: ScalarType.Int64)).to_type(ScalarType.Float64);
        var sum = ab.sqrt().pow(2) + (1 - ab).sqrt().pow(2);
        Assert.True(sum.sub(1).abs().max().item<double>() < 1e-6);
    }

    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void AddNoise_uses_each_samples_own_timestep(ScheduleKind kind)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        var s = new NoiseSchedule(kind);
        var x0 = rand(4, 3, 8, 8) * 2 - 1;
        var eps = randn(4, 3, 8, 8);
        long[] ts = [0, 250, 600, 999];
        var xt = s.AddNoise(x0, tensor(ts), eps);
        for (int i = 0; i < ts.Length; i++)
        {
            double ab = s.AlphaBars[ts[i]];
            var expected = Math.Sqrt(ab) * x0[i] + Math.Sqrt(1 - ab) * eps[i];
            Assert.True(xt[i].allclose(expected, rtol: 1e-5, atol: 1e-5), $"sample {i} (t = {ts[i]})");
        }
    }

    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    public void AddNoise_at_the_first_step_stays_near_x0_and_at_the_last_forgets_it(ScheduleKind kind)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        var s = new NoiseSchedule(kind);
        var x0 = rand(8, 3, 16, 16) * 2 - 1;
        var eps = randn(8, 3, 16, 16);
        var early = s.AddNoise(x0, zeros(8, dtype: ScalarType.Int64), eps);
        Assert.True((early - x0).abs().mean().item<float>() < 0.02f);
        var late = s.AddNoise(x0, full(8, s.Steps - 1, dtype: ScalarType.Int64), eps);
        Assert.True((late - eps).abs().mean().item<float>() < 0.1f);
        Assert.True((late - x0).abs().mean().item<float>() > 0.5f);
    }

    [Theory]
    [InlineData(ScheduleKind.Linear, 100)]
    [InlineData(ScheduleKind.Linear, 500)]
    [InlineData(ScheduleKind.Cosine, 300)]
    [InlineData(ScheduleKind.Cosine, 900)]
    public void Noised_zero_image_has_std_sqrt_one_minus_alpha_bar(ScheduleKind kind, int t)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var s = new NoiseSchedule(kind);
        const int n = 64;
        var eps = randn(n, 3, 16, 16);
        var xt = s.AddNoise(zeros(n, 3, 16, 16), full(n, t, dtype: ScalarType.Int64), eps);
        double std = xt.std().item<float>(), expected = Math.Sqrt(1 - s.AlphaBars[t]);
        Assert.InRange(std, expected * 0.97, expected * 1.03);
    }
}
