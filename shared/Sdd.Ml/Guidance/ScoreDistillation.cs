using Sdd.Ml.Diffusion;

namespace Sdd.Ml.Guidance;

/// <summary>
/// The score-distillation gradient on an edited image y (paper eq. 3 / DreamFusion eq. 3): the teacher's
/// Jacobian is skipped, so this is computed without autograd and applied with y.backward(grad).
/// </summary>
public static class ScoreDistillation
{
    /// <summary>w(t) = 1 - ab_t.</summary>
    public static Tensor Weight(NoiseSchedule schedule, Tensor t) => 1 - schedule.AlphaBar(t);

    /// <summary>
    /// The gradient for y at timesteps t with noise eps. <paramref name="target"/>: attribute states with the
    /// attribute present; <paramref name="source"/>: the image's own states (used by <see cref="GuidanceMode.Delta"/>).
    /// </summary>
    public static Tensor Gradient(Teacher teacher, Tensor y, Tensor t, Tensor eps, Tensor target, Tensor? source, GuidanceSettings s)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var xt = teacher.Schedule.AddNoise(y.detach(), t, eps);
        Tensor g;
        if (s.Mode == GuidanceMode.Sds)
        {
            g = teacher.GuidedNoise(xt, t, target, s.RequireScale()) - eps;
        }
        else
        {
            if (source is null) throw new ArgumentException("The delta gradient needs the source images' attribute states.");
            var both = teacher.PredictNoise(cat([xt, xt]), cat([t, t]), cat([target, source])).chunk(2);
            // An image that already has the attribute has c_target = c_source: its guidance is exactly zero (not merely
            // the round-off of two batched passes), so in training only fidelity and the mask penalties act on it.
            var differs = target.ne(source).any(1).to_type(y.dtype).view(-1, 1, 1, 1);
            g = s.RequireScale() * (both[0] - both[1]) * differs;
        }
        g = Weight(teacher.Schedule, t) * g;
        if (s.TopK > 0) g = TopK(g, s.TopK);
        return g.MoveToOuterDisposeScope();
    }

    /// <summary>Zeroes all but the k largest |values| of the batch (the official code's sparsification).</summary>
    public static Tensor TopK(Tensor g, int k)
    {
        var flat = g.abs().flatten();
        if (k >= flat.shape[0]) return g;
        var threshold = flat.topk(k).values.min();
        return where(g.abs().ge(threshold), g, zeros_like(g));
    }
}
