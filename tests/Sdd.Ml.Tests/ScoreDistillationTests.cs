using Sdd.Ml.Diffusion;
using Sdd.Ml.Guidance;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class ScoreDistillationTests
{
    private const int S = MethodSupport.Size;

    /// <summary>Target: smiling present (others unknown); source: smiling absent, white hair present.</summary>
    private static (Tensor Target, Tensor Source) Conditions(int b)
    {
        var target = AttributeCondition.Single(b, 5, 0, present: true, CPU);
        var source = AttributeCondition.Single(b, 5, 0, present: false, CPU);
        source[.., 1] = AttributeCondition.Present;
        return (target, source);
    }

    /// <summary>x_t = sqrt(ab_t) y + sqrt(1 - ab_t) eps and w(t) = 1 - ab_t, from the schedule's doubles.</summary>
    private static (Tensor Xt, Tensor W) ByHand(NoiseSchedule schedule, Tensor y, long[] t, Tensor eps)
    {
        var ab = tensor(t.Select(v => schedule.AlphaBars[v]).ToArray()).to_type(ScalarType.Float32).view(-1, 1, 1, 1);
        return (ab.sqrt() * y + (1 - ab).sqrt() * eps, 1 - ab);
    }

    [Fact]
    public void Gradient_has_the_image_shape_no_graph_and_leaves_the_teacher_without_grad()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(21);
        var y = MethodSupport.Images(1, 2, 3, S, S).requires_grad_(true);
        var t = tensor(new long[] { 300, 700 });
        var eps = randn([2, 3, S, S], generator: new Generator(2));
        var (target, source) = Conditions(2);
        foreach (var mode in new[] { GuidanceMode.Sds, GuidanceMode.Delta })
        {
            var g = ScoreDistillation.Gradient(teacher, y, t, eps, target, source, new GuidanceSettings { Mode = mode, Scale = 7.5 });
            Assert.Equal(y.shape, g.shape);
            Assert.False(g.requires_grad, $"{mode}: the gradient must carry no autograd graph");
            Assert.True(Tiny.Finite(g));
            Assert.True(g.abs().max().item<float>() > 0, $"{mode}: a perturbed teacher should give a non-zero gradient");
            // Applied the way distillation applies it: only y receives a gradient.
            y.grad?.zero_();
            (g * y).sum().backward();
            Assert.True(Tiny.BitEqual(y.grad!, g));
            Assert.All(teacher.Net.parameters(), p => Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0, "the teacher got a gradient"));
        }
    }

    [Fact]
    public void Sds_with_scale_1_is_w_times_the_teacher_noise_minus_eps()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(22);
        var y = MethodSupport.Images(3, 3, 3, S, S);
        long[] ts = [50, 400, 950];
        var t = tensor(ts);
        var eps = randn([3, 3, S, S], generator: new Generator(4));
        var (target, _) = Conditions(3);
        using var _ = no_grad();
        var g = ScoreDistillation.Gradient(teacher, y, t, eps, target, null, new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 1 });
        var (xt, w) = ByHand(teacher.Schedule, y, ts, eps);
        var expected = w * (teacher.Net.forward(xt, t, target) - eps);
        Assert.True(g.allclose(expected, rtol: 1e-4, atol: 1e-5), $"max diff {(g - expected).abs().max().item<float>()}");
        Assert.True(ScoreDistillation.Weight(teacher.Schedule, t).allclose(w, rtol: 1e-6, atol: 1e-7));
    }

    [Fact]
    public void Sds_with_guidance_uses_classifier_free_guidance()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(23);
        var y = MethodSupport.Images(5, 2, 3, S, S);
        long[] ts = [250, 800];
        var t = tensor(ts);
        var eps = randn([2, 3, S, S], generator: new Generator(6));
        var (target, _) = Conditions(2);
        using var _ = no_grad();
        var g = ScoreDistillation.Gradient(teacher, y, t, eps, target, null, new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 7.5 });
        var (xt, w) = ByHand(teacher.Schedule, y, ts, eps);
        var cond = teacher.Net.forward(xt, t, target);
        var nul = teacher.Net.forward(xt, t, AttributeCondition.Null(2, 5, CPU));
        var expected = w * (nul + 7.5 * (cond - nul) - eps);
        Assert.True(g.allclose(expected, rtol: 1e-4, atol: 1e-4), $"max diff {(g - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void Delta_is_w_s_times_the_difference_of_target_and_source_predictions_and_zero_when_they_match()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(24);
        var y = MethodSupport.Images(7, 2, 3, S, S);
        long[] ts = [300, 500];
        var t = tensor(ts);
        var eps = randn([2, 3, S, S], generator: new Generator(8));
        var (target, source) = Conditions(2);
        using var _ = no_grad();
        var settings = new GuidanceSettings { Mode = GuidanceMode.Delta, Scale = 10 };

        var same = ScoreDistillation.Gradient(teacher, y, t, eps, target, target.clone(), settings);
        Assert.Equal(0f, same.abs().max().item<float>());

        var g = ScoreDistillation.Gradient(teacher, y, t, eps, target, source, settings);
        var (xt, w) = ByHand(teacher.Schedule, y, ts, eps);
        var expected = w * 10 * (teacher.Net.forward(xt, t, target) - teacher.Net.forward(xt, t, source));
        Assert.True(g.abs().max().item<float>() > 0);
        Assert.True(g.allclose(expected, rtol: 1e-4, atol: 1e-4), $"max diff {(g - expected).abs().max().item<float>()}");

        Assert.Throws<ArgumentException>(() => ScoreDistillation.Gradient(teacher, y, t, eps, target, null, settings));
    }

    [Fact]
    public void Cfg_is_w_s_times_target_minus_the_source_with_the_attribute_unknown_and_zero_when_they_match()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(24);
        var y = MethodSupport.Images(9, 2, 3, S, S);
        long[] ts = [300, 500];
        var t = tensor(ts);
        var eps = randn([2, 3, S, S], generator: new Generator(10));
        // As distillation states them: the image's own labels, and the same with the attribute (0) present.
        var source = AttributeCondition.Single(2, 5, 0, present: false, CPU);
        source[.., 1] = AttributeCondition.Present;
        source[.., 3] = AttributeCondition.Absent;
        var target = source.clone();
        target[.., 0] = AttributeCondition.Present;
        using var _ = no_grad();
        var settings = new GuidanceSettings { Mode = GuidanceMode.Cfg, Scale = 10 };

        Assert.Equal(0f, ScoreDistillation.Gradient(teacher, y, t, eps, target, target.clone(), settings).abs().max().item<float>());

        var g = ScoreDistillation.Gradient(teacher, y, t, eps, target, source, settings);
        var (xt, w) = ByHand(teacher.Schedule, y, ts, eps);
        var unknown = source.clone();
        unknown[.., 0] = AttributeCondition.Unknown; // only the attribute; the other labels stay stated
        var expected = w * 10 * (teacher.Net.forward(xt, t, target) - teacher.Net.forward(xt, t, unknown));
        Assert.True(g.abs().max().item<float>() > 0);
        Assert.True(g.allclose(expected, rtol: 1e-4, atol: 1e-4), $"max diff {(g - expected).abs().max().item<float>()}");
        var delta = ScoreDistillation.Gradient(teacher, y, t, eps, target, source, settings with { Mode = GuidanceMode.Delta });
        Assert.False(g.allclose(delta, rtol: 1e-3, atol: 1e-3), "cfg is not the delta score");
        Assert.Throws<ArgumentException>(() => ScoreDistillation.Gradient(teacher, y, t, eps, target, null, settings));
    }

    [Fact]
    public void TopK_keeps_exactly_the_k_largest_magnitudes()
    {
        using var scope = NewDisposeScope();
        var g = randn([2, 3, 4, 4], generator: new Generator(9)); // 96 distinct values
        var kept = ScoreDistillation.TopK(g, 7);
        Assert.Equal(g.shape, kept.shape);
        Assert.Equal(7L, kept.count_nonzero().item<long>());
        var largest = g.abs().flatten().topk(7).values;
        var keptAbs = kept.abs().flatten();
        var keptValues = keptAbs.index_select(0, keptAbs.nonzero().flatten()).sort(descending: true).Values;
        Assert.True(Tiny.BitEqual(largest, keptValues));
        // The kept entries keep their sign and value.
        var mask = kept.ne(0);
        Assert.True(Tiny.BitEqual(kept.masked_select(mask), g.masked_select(mask)));
        // k at or above the size keeps everything.
        Assert.True(Tiny.BitEqual(ScoreDistillation.TopK(g, 96), g));
        Assert.True(Tiny.BitEqual(ScoreDistillation.TopK(g, 1000), g));
    }

    [Fact]
    public void Gradient_with_top_k_keeps_k_values_of_the_batch()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(25);
        var y = MethodSupport.Images(9, 2, 3, S, S);
        var eps = randn([2, 3, S, S], generator: new Generator(10));
        var (target, _) = Conditions(2);
        var g = ScoreDistillation.Gradient(teacher, y, tensor(new long[] { 400, 400 }), eps, target, null,
            new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 3, TopK = 50 });
        Assert.Equal(50L, g.count_nonzero().item<long>());
    }
}
