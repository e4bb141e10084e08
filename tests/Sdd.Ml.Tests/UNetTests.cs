using Sdd.Ml.Diffusion;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class AttributeUNetTests
{
    internal static readonly UNetConfig Config = new() { ImageSize = 16, Channels = [16, 32], AttentionBelow = 8, Heads = 2, Attributes = 3 };

    public static TheoryData<string, long[]> Conditions() => new()
    {
        { "absent", [0, 0, 0, 0, 0, 0] },
        { "present", [1, 1, 1, 1, 1, 1] },
        { "unknown", [2, 2, 2, 2, 2, 2] },
        { "mixed", [0, 1, 2, 2, 0, 1] },
    };

    [Theory]
    [MemberData(nameof(Conditions))]
    public void Untrained_output_has_the_input_shape_and_is_exactly_zero(string name, long[] states)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        using var net = new AttributeUNet(Config);
        var x = randn(2, 3, 16, 16);
        var y = net.forward(x, tensor(new long[] { 0, 999 }), tensor(states, [2, 3]));
        Assert.Equal(x.shape, y.shape);
        Assert.True(Tiny.Finite(y), name);
        Assert.True(y.eq(0).all().item<bool>(), $"{name}: the zero-initialised output conv should give exactly zero");
    }

    [Fact]
    public void One_optimiser_step_makes_the_output_non_zero_and_later_steps_make_it_depend_on_the_condition()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        using var net = new AttributeUNet(Config);
        var opt = optim.AdamW(net.parameters(), 1e-3, 0.9, 0.999, 1e-8, 0, false);
        var x = randn(4, 3, 16, 16);
        var t = tensor(new long[] { 10, 200, 500, 900 });
        var states = tensor(new long[] { 0, 1, 2, 1, 0, 2, 2, 2, 2, 1, 1, 0 }, [4, 3]);
        var target = randn(4, 3, 16, 16);

        void Step()
        {
            using var s = NewDisposeScope();
            opt.zero_grad();
            F.mse_loss(net.forward(x, t, states), target).backward();
            opt.step();
        }

        Step();
        using (no_grad())
        {
            var y = net.forward(x, t, states);
            Assert.True(Tiny.Finite(y));
            Assert.True(y.abs().max().item<float>() > 0, "output still zero after an optimiser step");
        }
        for (int i = 0; i < 3; i++) Step();
        using (no_grad())
        {
            var xs = x[..1];
            var present = net.forward(xs, t[..1], AttributeCondition.Single(1, 3, 0, true, CPU));
            var absent = net.forward(xs, t[..1], AttributeCondition.Single(1, 3, 0, false, CPU));
            Assert.True((present - absent).abs().max().item<float>() > 1e-6f, "the condition has no effect on the output");
            var later = net.forward(xs, tensor(new long[] { 800 }), AttributeCondition.Single(1, 3, 0, true, CPU));
            Assert.True((present - later).abs().max().item<float>() > 1e-6f, "the timestep has no effect on the output");
        }
    }
}
