namespace Sdd.Ml.Judging;

/// <summary>
/// Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6):
/// |mu1 - mu2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)), computed in float64 through symmetric eigen-decompositions.
/// </summary>
public static class FrechetDistance
{
    public static double Compute(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var (mu1, c1) = Moments(a.to_type(ScalarType.Float64));
        var (mu2, c2) = Moments(b.to_type(ScalarType.Float64));
        var s1 = SqrtPsd(c1);
        var m = s1.matmul(c2).matmul(s1);
        var traceSqrt = linalg.eigvalsh(m).clamp_min(0).sqrt().sum();
        var fd = (mu1 - mu2).pow(2).sum() + c1.trace() + c2.trace() - 2 * traceSqrt;
        return Math.Max(0, fd.item<double>());
    }

    private static (Tensor Mean, Tensor Cov) Moments(Tensor x)
    {
        if (x.shape[0] < 2) throw new ArgumentException("The Fréchet distance needs at least two samples per set.");
        var mu = x.mean([0]);
        var d = x - mu;
        return (mu, d.T.matmul(d) / (x.shape[0] - 1));
    }

    private static Tensor SqrtPsd(Tensor c)
    {
        var (vals, vecs) = linalg.eigh(c);
        return vecs.matmul(diag(vals.clamp_min(0).sqrt())).matmul(vecs.T);
    }
}
