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
    /// attribute present; <paramref name="source"/>: the image's own states (used by <see cref="GuidanceMode.Delta"/> and
    /// <see cref="GuidanceMode.Cfg"/>, which states the attributes that <paramref name="target"/> sets as unknown).
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
            if (source is null) throw new ArgumentException($"The {s.Mode.ToString().ToLowerInvariant()} gradient needs the source images' attribute states.");
            var changed = target.ne(source);
            var reference = s.Mode == GuidanceMode.Cfg ? where(changed, AttributeCondition.Unknown, source) : source;
            var both = teacher.PredictNoise(cat([xt, xt]), cat([t, t]), cat([target, reference])).chunk(2);
            // An image that already has the attribute has c_target = c_source: its guidance is exactly zero (not merely
            // the round-off of two batched passes), so in training only fidelity and the mask penalties act on it.
            var differs = changed.any(1).to_type(y.dtype).view(-1, 1, 1, 1);
            g = s.RequireScale() * (both[0] - both[1]) * differs;
        }
        g = Weight(teacher.Schedule, t) * g;
        if (s.TopK > 0) g = TopK(g, s.TopK);
        return g.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A latent teacher's gradient <paramref name="g"/> on the latents <paramref name="z"/> as a gradient on the images: the
    /// decoder's Jacobian applied to it, J_D g, by a central difference (one decoder pass over both sides), divided by the
    /// f x f pixels of a latent cell so that for a decoder that merely upsamples it equals what the encoder's transpose
    /// gives (J_E^T g) and the guidance scales stay comparable. The step is <paramref name="relativeStep"/> of each latent's
    /// RMS along g's direction, small enough for the difference to be the derivative and large enough for float32. An
    /// image whose g is zero (one that already has the attribute) gets exactly zero. <paramref name="topK"/> &gt; 0 keeps
    /// only the k largest |values| of the batch's image gradient (<see cref="TopK"/>).
    /// </summary>
    public static Tensor DecodedGradient(Teacher teacher, Tensor z, Tensor g, double relativeStep = 0.05, int topK = 0)
    {
        var ae = teacher.Autoencoder ?? throw new ArgumentException("A pixel teacher's gradient is on the images already.", nameof(teacher));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        long[] dims = [1, 2, 3];
        var gRms = g.pow(2).mean(dims, keepdim: true).sqrt();
        var zRms = z.pow(2).mean(dims, keepdim: true).sqrt();
        var h = relativeStep * zRms / gRms.clamp_min(1e-12);
        var both = ae.Decode(cat([z + h * g, z - h * g]), clamp: false).chunk(2);
        int f = ae.Config.Downsampling;
        var d = (both[0] - both[1]) / (2 * h * f * f);
        var image = where(gRms.gt(0), d, zeros_like(d));
        if (topK > 0) image = TopK(image, topK);
        return image.MoveToOuterDisposeScope();
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
