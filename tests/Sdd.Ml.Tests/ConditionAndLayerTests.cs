using Sdd.Ml.Diffusion;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class AttributeConditionTests
{
    private static readonly IReadOnlyList<string> Names = PortraitAttributes.All;

    [Fact]
    public void Parse_sets_named_attributes_and_leaves_the_rest_unknown()
    {
        Assert.Equal(new[] { AttributeCondition.Present, AttributeCondition.Unknown, AttributeCondition.Unknown, AttributeCondition.Absent, AttributeCondition.Unknown },
            AttributeCondition.Parse("smiling=1,hat=-1", Names));
        Assert.Equal(new[] { AttributeCondition.Absent, AttributeCondition.Present, AttributeCondition.Unknown, AttributeCondition.Unknown, AttributeCondition.Present },
            AttributeCondition.Parse(" smiling = no , white_hair=present, eyeglasses=?, beard=yes ", Names));
        Assert.All(AttributeCondition.Parse("", Names), s => Assert.Equal(AttributeCondition.Unknown, s));
    }

    [Theory]
    [InlineData("freckles=1", "freckles")]
    [InlineData("smiling=maybe", "maybe")]
    [InlineData("smiling", "smiling")]
    public void Parse_refuses_unknown_names_and_values(string spec, string named)
    {
        var e = Assert.Throws<ArgumentException>(() => AttributeCondition.Parse(spec, Names));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void FromLabels_maps_plus_minus_zero_to_present_absent_unknown()
    {
        using var scope = NewDisposeScope();
        var states = AttributeCondition.FromLabels(tensor(new float[] { 1, -1, 0, -1, 1, 1 }, [2, 3]));
        Assert.Equal(ScalarType.Int64, states.dtype);
        Assert.Equal(new long[] { 1, 0, 2, 0, 1, 1 }, states.data<long>().ToArray());
    }

    [Fact]
    public void Null_and_Single_build_the_expected_states()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(Enumerable.Repeat(2L, 6), AttributeCondition.Null(2, 3, CPU).data<long>().ToArray());
        Assert.Equal(new long[] { 2, 0, 2, 2, 0, 2 }, AttributeCondition.Single(2, 3, 1, present: false, CPU).data<long>().ToArray());
        Assert.Equal(new long[] { 1, 2, 2 }, AttributeCondition.Single(1, 3, 0, present: true, CPU).data<long>().ToArray());
    }

    [Fact]
    public void Dropout_of_one_makes_everything_unknown_and_of_zero_keeps_the_states()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        var states = randint(0, 2, [64, 5], generator: g, dtype: ScalarType.Int64);
        Assert.True(AttributeCondition.Dropout(states, 1.0, 0.0, g).eq(AttributeCondition.Unknown).all().item<bool>());
        Assert.True(AttributeCondition.Dropout(states, 0.0, 1.0, g).eq(AttributeCondition.Unknown).all().item<bool>());
        Assert.True(Tiny.BitEqual(states, AttributeCondition.Dropout(states, 0.0, 0.0, g)));

        var half = AttributeCondition.Dropout(randint(0, 2, [2000, 5], generator: g, dtype: ScalarType.Int64), 0.5, 0.0, g);
        Assert.InRange(half.eq(AttributeCondition.Unknown).to_type(ScalarType.Float32).mean().item<float>(), 0.45f, 0.55f);
    }

    [Fact]
    public void Dropout_all_drops_whole_rows()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(6);
        var d = AttributeCondition.Dropout(zeros([4000, 5], ScalarType.Int64), 0.0, 0.3, g);
        var unknownPerRow = d.eq(AttributeCondition.Unknown).sum(1);
        Assert.True(unknownPerRow.eq(0).logical_or(unknownPerRow.eq(5)).all().item<bool>(), "a row is either kept or dropped whole");
        Assert.InRange(unknownPerRow.eq(5).to_type(ScalarType.Float32).mean().item<float>(), 0.26f, 0.34f);
    }
}

[Collection(TorchCollection.Name)]
public sealed class LayerTests
{
    private static List<GroupNorm> GroupNorms(nn.Module m) => m.modules().OfType<GroupNorm>().ToList();

    private static void AssertInitialised(GroupNorm gn)
    {
        Assert.True(gn.weight!.eq(1).all().item<bool>(), "GroupNorm weight is not all ones");
        Assert.True(gn.bias!.eq(0).all().item<bool>(), "GroupNorm bias is not all zeros");
    }

    [Fact]
    public void GroupNorm_starts_as_plain_normalisation()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        var gn = Layers.GroupNorm(8, 32);
        AssertInitialised(gn);
        var x = randn(2, 32, 4, 4) * 5 + 3;
        var y = gn.forward(x);
        Assert.True(Tiny.Finite(y));
        Assert.True(y.mean().abs().item<float>() < 1e-4f);
        Assert.InRange(y.std().item<float>(), 0.95f, 1.05f);
        Assert.True(Tiny.Finite(Layers.GroupNorm(8, 4).forward(randn(1, 4, 3, 3)))); // groups are capped at the channel count
    }

    [Fact]
    public void Every_GroupNorm_in_the_UNet_and_judge_is_initialised()
    {
        using var scope = NewDisposeScope();
        using var unet = new AttributeUNet(new UNetConfig { ImageSize = 16, Channels = [16, 32], AttentionBelow = 8, Heads = 2, Attributes = 3 });
        var unetNorms = GroupNorms(unet);
        Assert.True(unetNorms.Count >= 10, $"expected the UNet's GroupNorms to be visible, found {unetNorms.Count}");
        unetNorms.ForEach(AssertInitialised);
        Assert.All(unet.parameters(), p => Assert.True(Tiny.Finite(p)));

        using var judge = new JudgeNet(5, [16, 32]);
        var judgeNorms = GroupNorms(judge);
        Assert.Equal(3, judgeNorms.Count);
        judgeNorms.ForEach(AssertInitialised);
        Assert.All(judge.parameters(), p => Assert.True(Tiny.Finite(p)));
    }

    [Fact]
    public void Attention_that_trains_is_the_fused_kernels_function_with_gradients_of_the_double_precision_reference()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        foreach (var causal in new[] { false, true })
        {
            var q = randn(2, 3, 7, 8).requires_grad_(); var k = randn(2, 3, 5, 8).requires_grad_(); var v = randn(2, 3, 5, 8).requires_grad_();
            if (causal) { k = randn(2, 3, 7, 8).requires_grad_(); v = randn(2, 3, 7, 8).requires_grad_(); }
            var upstream = randn(2, 3, 7, 8);
            var y = Attention.Scaled(q, k, v, causal);
            Tensor fused;
            using (no_grad()) fused = Attention.Scaled(q, k, v, causal); // no gradient: the fused kernel
            Assert.True(y.allclose(fused, rtol: 1e-4, atol: 1e-5), $"causal {causal}: the training path and the fused kernel differ");
            var (gq, gk, gv) = Gradients(y, upstream, q, k, v);

            var qd = q.detach().to_type(ScalarType.Float64).requires_grad_();
            var kd = k.detach().to_type(ScalarType.Float64).requires_grad_();
            var vd = v.detach().to_type(ScalarType.Float64).requires_grad_();
            var s = matmul(qd, kd.transpose(-2, -1)) / Math.Sqrt(8);
            if (causal) s = s.masked_fill(ones(7, 7, dtype: ScalarType.Bool).triu(1), double.NegativeInfinity);
            var reference = matmul(s.softmax(-1), vd);
            var (rq, rk, rv) = Gradients(reference, upstream.to_type(ScalarType.Float64), qd, kd, vd);
            Assert.True(gq.to_type(ScalarType.Float64).allclose(rq, rtol: 1e-4, atol: 1e-5), $"causal {causal}: dq");
            Assert.True(gk.to_type(ScalarType.Float64).allclose(rk, rtol: 1e-4, atol: 1e-5), $"causal {causal}: dk");
            Assert.True(gv.to_type(ScalarType.Float64).allclose(rv, rtol: 1e-4, atol: 1e-5), $"causal {causal}: dv");
        }

        // What diverged on CI: a zero gradient arriving (a zero-initialised projection after the attention) must give
        // zero, finite gradients to q, k and v.
        var q0 = randn(1, 2, 16, 4).requires_grad_(); var k0 = randn(1, 2, 16, 4).requires_grad_(); var v0 = randn(1, 2, 16, 4).requires_grad_();
        var (z1, z2, z3) = Gradients(Attention.Scaled(q0, k0, v0), zeros(1, 2, 16, 4), q0, k0, v0);
        foreach (var g in new[] { z1, z2, z3 }) Assert.True(g.eq(0).all().item<bool>(), "a zero upstream gradient gave a non-zero or NaN gradient");
    }

    private static (Tensor, Tensor, Tensor) Gradients(Tensor y, Tensor upstream, Tensor q, Tensor k, Tensor v)
    {
        var g = torch.autograd.grad([y], [q, k, v], [upstream]);
        return (g[0], g[1], g[2]);
    }

    [Fact]
    public void ZeroConv_outputs_zero()
    {
        using var scope = NewDisposeScope();
        var c = Layers.ZeroConv(4, 3);
        Assert.True(c.forward(randn(1, 4, 5, 5)).eq(0).all().item<bool>());
    }

    [Fact]
    public void Ema_update_moves_toward_the_source_by_one_minus_decay()
    {
        using var scope = NewDisposeScope();
        var target = nn.Linear(3, 2);
        var source = nn.Linear(3, 2);
        var before = target.weight!.clone();
        Ema.Update(target, source, 0.75);
        Assert.True(target.weight!.allclose(before * 0.75 + source.weight!.detach() * 0.25, rtol: 1e-6, atol: 1e-7));
        Ema.Copy(target, source);
        Assert.True(Tiny.BitEqual(target.weight!, source.weight!));
        Assert.Equal(0.1, Ema.Decay(0.999, 0), 12);
        Assert.Equal(0.999, Ema.Decay(0.999, 1_000_000));
    }

    [Fact]
    public void TrainingState_restores_the_generator()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(9);
        rand(10, generator: g);
        var state = TrainingState.Capture(42, g, 0.5);
        var expected = rand(10, generator: g);
        using var dir = new TempDir();
        state.Save(dir["state.json"]);
        var loaded = TrainingState.Load(dir["state.json"]);
        Assert.Equal(42, loaded.Step);
        var g2 = new Generator(1234);
        loaded.Restore(g2);
        Assert.True(Tiny.BitEqual(expected, rand(10, generator: g2)));

        // Before the first step the smoothed loss is NaN: saved and read back as NaN, not an exception.
        TrainingState.Capture(0, g, double.NaN).Save(dir["first.json"]);
        Assert.True(double.IsNaN(TrainingState.Load(dir["first.json"]).SmoothedLoss));
    }
}
