namespace Sdd.Ml.Diffusion;

/// <summary>
/// The forward process x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps with ab_t = prod(1 - beta_s), T steps
/// (DDPM, Ho et al. 2020, eq. 4). Linear betas (DDPM), the cosine schedule (Nichol and Dhariwal 2021, eq. 17), or
/// Stable Diffusion's scaled_linear: β_i = (√β₀ + (√β₁ − √β₀) i / (T − 1))².
/// </summary>
public sealed class NoiseSchedule
{
    public ScheduleKind Kind { get; }
    public int Steps { get; }
    public double[] Betas { get; }
    public double[] AlphaBars { get; }

    public NoiseSchedule(ScheduleKind kind = ScheduleKind.Linear, int steps = 1000, double betaStart = 1e-4, double betaEnd = 0.02)
    {
        Kind = kind;
        Steps = steps;
        Betas = new double[steps];
        AlphaBars = new double[steps];
        if (kind == ScheduleKind.Linear)
        {
            for (int i = 0; i < steps; i++) Betas[i] = betaStart + (betaEnd - betaStart) * i / (steps - 1);
        }
        else if (kind == ScheduleKind.ScaledLinear)
        {
            double a = Math.Sqrt(betaStart), b = Math.Sqrt(betaEnd);
            for (int i = 0; i < steps; i++) Betas[i] = Math.Pow(a + (b - a) * i / (steps - 1), 2);
        }
        else
        {
            const double s = 0.008;
            double F(double t) => Math.Pow(Math.Cos((t / steps + s) / (1 + s) * Math.PI / 2), 2);
            for (int i = 0; i < steps; i++) Betas[i] = Math.Min(1 - F(i + 1) / F(i), 0.999);
        }
        double ab = 1;
        for (int i = 0; i < steps; i++) { ab *= 1 - Betas[i]; AlphaBars[i] = ab; }
    }

    private Tensor? _abTensor;
    private Device? _abDevice;

    /// <summary>ab_t gathered for a batch of integer timesteps, shaped (B, 1, 1, 1).</summary>
    public Tensor AlphaBar(Tensor t)
    {
        if (_abTensor is null || _abDevice != t.device)
        {
            _abTensor?.Dispose();
            _abTensor = tensor(AlphaBars, ScalarType.Float32).to(t.device).DetachFromDisposeScope();
            _abDevice = t.device;
        }
        return _abTensor.index_select(0, t.to_type(ScalarType.Int64)).view(-1, 1, 1, 1);
    }

    /// <summary>q(x_t | x_0): the noised sample for timesteps t and noise eps.</summary>
    public Tensor AddNoise(Tensor x0, Tensor t, Tensor eps)
    {
        var ab = AlphaBar(t);
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps;
    }
}
