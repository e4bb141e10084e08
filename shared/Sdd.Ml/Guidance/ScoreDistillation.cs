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

    /// <summary>
    /// <see cref="DecodedGradient(Teacher, Tensor, Tensor, double, int)"/> by a finite step: the image change the teacher's own
    /// step decodes to. For a delta, cfg or SDS gradient g = w(t) s (eps_a - eps_b) at timesteps <paramref name="t"/> and scale
    /// <paramref name="scale"/>, the step h g with h = k / (s sqrt(ab (1 - ab))) is k (x0_b - x0_a), k times the difference of
    /// the teacher's two predictions of the clean latent; the result is (D(z) - D(z - h g)) / (h f^2), which for a small k
    /// is J_D g / f^2 again, so the guidance scales stay comparable. An image whose g is zero gets exactly zero.
    /// </summary>
    public static Tensor DecodedStep(Teacher teacher, Tensor z, Tensor g, Tensor t, double scale, double step, int topK = 0)
    {
        var ae = teacher.Autoencoder ?? throw new ArgumentException("A pixel teacher's gradient is on the images already.", nameof(teacher));
        if (!(step > 0) || !(scale > 0)) throw new ArgumentOutOfRangeException(nameof(step), "The step and the scale must be positive.");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ab = teacher.Schedule.AlphaBar(t);
        var h = step / (scale * (ab * (1 - ab)).sqrt());
        var both = ae.Decode(cat([z, z - h * g]), clamp: false).chunk(2);
        int f = ae.Config.Downsampling;
        var d = (both[0] - both[1]) / (h * f * f);
        var nonzero = g.pow(2).sum([1, 2, 3], keepdim: true).gt(0);
        var image = where(nonzero, d, zeros_like(d));
        if (topK > 0) image = TopK(image, topK);
        return image.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A latent teacher's gradient as a gradient on the images <paramref name="y"/> through the frozen encoder, J_E^T g, where
    /// g = <paramref name="latentGradient"/>(E(y)) (taken without autograd, like <see cref="Gradient"/>): what back-propagating
    /// g through E gives, but as a tensor, so that <paramref name="topK"/> &gt; 0 can keep only the k largest |values| of the
    /// batch's image gradient (<see cref="TopK"/>). Nothing reaches the encoder's parameters or <paramref name="y"/>'s graph.
    /// </summary>
    public static Tensor EncodedGradient(Teacher teacher, Tensor y, Func<Tensor, Tensor> latentGradient, int topK = 0)
    {
        if (!teacher.Latent) throw new ArgumentException("A pixel teacher's gradient is on the images already.", nameof(teacher));
        using var scope = NewDisposeScope();
        var leaf = y.detach().requires_grad_(true);
        Tensor image;
        using (enable_grad())
        {
            var z = teacher.ToModelSpace(leaf);
            var g = latentGradient(z.detach());
            image = autograd.grad([z], [leaf], [g])[0].detach();
        }
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
