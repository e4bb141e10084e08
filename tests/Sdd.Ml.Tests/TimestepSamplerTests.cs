using Sdd.Ml.Editors;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class TimestepSamplerTests
{
    private static long[] Draw(TimestepSampler s, int n = 256, ulong seed = 1)
    {
        using var scope = NewDisposeScope();
        var t = s.Sample(n, new Generator(seed), CPU);
        Assert.Equal(ScalarType.Int64, t.dtype);
        Assert.Equal(new long[] { n }, t.shape);
        return t.data<long>().ToArray();
    }

    [Fact]
    public void Fixed_always_gives_T()
    {
        var s = TimestepSampler.Parse("fixed:250", 1000);
        Assert.Equal(new[] { 250 }, s.Set!);
        Assert.All(Draw(s), t => Assert.Equal(250, t));
        Assert.All(Draw(TimestepSampler.Parse("fixed:0", 1000)), t => Assert.Equal(0, t));
        Assert.All(Draw(TimestepSampler.Parse("fixed:999", 1000)), t => Assert.Equal(999, t));
    }

    [Fact]
    public void List_gives_only_its_timesteps_and_all_of_them()
    {
        var s = TimestepSampler.Parse("list:100, 700,450", 1000);
        Assert.Equal(new[] { 100, 700, 450 }, s.Set!);
        var draws = Draw(s);
        Assert.All(draws, t => Assert.Contains(t, new long[] { 100, 450, 700 }));
        Assert.Equal(new long[] { 100, 450, 700 }, draws.Distinct().Order());
        Assert.All(Draw(TimestepSampler.FromSet([300, 500], "set")), t => Assert.True(t is 300 or 500));
    }

    [Fact]
    public void Random_stays_within_its_bounds()
    {
        var s = TimestepSampler.Parse("random:100-200", 1000);
        Assert.Null(s.Set);
        Assert.Equal((100, 200), (s.Lo, s.Hi));
        var draws = Draw(s, 2000);
        Assert.All(draws, t => Assert.InRange(t, 100, 200));
        Assert.Contains(100L, draws); // inclusive bounds
        Assert.Contains(200L, draws);
        Assert.All(Draw(TimestepSampler.Parse("random", 1000), 2000), t => Assert.InRange(t, 20, 980));
        Assert.All(Draw(TimestepSampler.Uniform(5, 5)), t => Assert.Equal(5, t));
    }

    [Fact]
    public void The_same_generator_seed_draws_the_same_timesteps()
    {
        var s = TimestepSampler.Parse("random:1-998", 1000);
        Assert.Equal(Draw(s, 64, 7), Draw(s, 64, 7));
        Assert.NotEqual(Draw(s, 64, 7), Draw(s, 64, 8));
    }

    [Theory]
    [InlineData("")]
    [InlineData("hqs")] // resolved by the caller with the indicator, not a sampler spec
    [InlineData("uniform")]
    [InlineData("fixed:")]
    [InlineData("fixed:abc")]
    [InlineData("fixed:-1")]
    [InlineData("fixed:1000")]
    [InlineData("fixed:2.5")]
    [InlineData("list:")]
    [InlineData("list:100,,300")]
    [InlineData("list:100,1000")]
    [InlineData("random:100")]
    [InlineData("random:a-b")]
    [InlineData("random:100-2000")]
    [InlineData("random:1-2-3")]
    public void Bad_specs_throw_ArgumentException(string spec) => Assert.Throws<ArgumentException>(() => TimestepSampler.Parse(spec, 1000));

    [Fact]
    public void An_empty_set_throws_ArgumentException() => Assert.Throws<ArgumentException>(() => TimestepSampler.FromSet([], "empty"));

    /// <summary>
    /// A reversed range describes no timestep: it must fail when parsed (the CLI parses the rule up front "to fail
    /// early"), not later inside the first training step with a LibTorch error about randint's bounds.
    /// </summary>
    [Fact]
    public void A_reversed_random_range_throws_ArgumentException_when_parsed()
    {
        Assert.Throws<ArgumentException>(() => TimestepSampler.Parse("random:900-100", 1000));
        Assert.Throws<ArgumentException>(() => TimestepSampler.Uniform(900, 100));
    }
}
