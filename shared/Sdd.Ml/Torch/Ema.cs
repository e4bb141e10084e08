namespace Sdd.Ml.Torch;

/// <summary>Exponential moving average of a module's parameters, with the usual warm-up of the decay.</summary>
public static class Ema
{
    public static double Decay(double max, long step) => Math.Min(max, (1.0 + step) / (10.0 + step));

    public static void Update(nn.Module target, nn.Module source, double decay)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (t, s) in target.parameters().Zip(source.parameters()))
            t.mul_(decay).add_(s.detach(), alpha: 1 - decay);
    }

    public static void Copy(nn.Module target, nn.Module source)
    {
        using var _ = no_grad();
        foreach (var (t, s) in target.parameters().Zip(source.parameters())) t.copy_(s);
    }
}
