namespace Sdd.Ml.Judging;

/// <summary>
/// Kernel Inception Distance (Bińkowski et al. 2018) on any features: the unbiased estimate of the squared MMD with the
/// cubic polynomial kernel k(x, y) = (x·y / d + 1)^3, computed in float64. Unlike the Fréchet distance it has no bias
/// that depends on the sample count, so it is comparable between sets of a hundred images; it can be slightly negative
/// when the two sets come from the same distribution.
/// </summary>
public static class KernelDistance
{
    public static double Compute(Tensor a, Tensor b)
    {
        if (a.shape[0] < 2 || b.shape[0] < 2) throw new ArgumentException("The kernel distance needs at least two samples per set.");
        if (a.shape[1] != b.shape[1]) throw new ArgumentException($"Feature widths differ ({a.shape[1]} and {b.shape[1]}).");
        using var scope = NewDisposeScope();
        var x = a.to_type(ScalarType.Float64); var y = b.to_type(ScalarType.Float64);
        double d = x.shape[1];
        Tensor K(Tensor p, Tensor q) => (p.matmul(q.T) / d + 1).pow(3);
        long m = x.shape[0], n = y.shape[0];
        var kxx = K(x, x); var kyy = K(y, y); var kxy = K(x, y);
        double xx = (kxx.sum() - kxx.diagonal().sum()).item<double>() / (m * (m - 1));
        double yy = (kyy.sum() - kyy.diagonal().sum()).item<double>() / (n * (n - 1));
        double xy = kxy.mean().item<double>();
        return xx + yy - 2 * xy;
    }
}
