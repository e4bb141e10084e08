using Sdd.Ml.Judging;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class FrechetDistanceTests
{
    [Fact]
    public void Identical_sets_are_at_distance_zero()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        var a = randn(200, 8);
        Assert.True(FrechetDistance.Compute(a, a.clone()) < 1e-6);
    }

    [Fact]
    public void A_shifted_set_is_at_the_squared_shift()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        var a = randn(200, 8);
        Assert.Equal(8.0, FrechetDistance.Compute(a, a + 1), 3); // |(1,...,1)|^2, same covariance
        Assert.True(FrechetDistance.Compute(a, a + 2) > FrechetDistance.Compute(a, a + 1));
    }

    [Fact]
    public void Distance_is_symmetric()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var a = randn(300, 6);
        var b = randn(300, 6) * 1.5 + 0.3;
        double ab = FrechetDistance.Compute(a, b), ba = FrechetDistance.Compute(b, a);
        Assert.True(ab > 0.5);
        Assert.Equal(ab, ba, 6);
    }

    [Fact]
    public void One_dimensional_case_matches_the_closed_form()
    {
        using var scope = NewDisposeScope();
        // mean 0, variance 2 vs mean 1, variance 8 (unbiased): 1 + 2 + 8 - 2 sqrt(16) = 3.
        var a = tensor(new float[] { -1, 1 }, [2, 1]);
        var b = tensor(new float[] { -1, 3 }, [2, 1]);
        Assert.Equal(3.0, FrechetDistance.Compute(a, b), 6);
        Assert.Throws<ArgumentException>(() => FrechetDistance.Compute(a[..1], b));
    }
}
