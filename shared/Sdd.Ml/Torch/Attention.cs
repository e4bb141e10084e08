namespace Sdd.Ml.Torch;

/// <summary>
/// Scaled dot-product attention, the one place every model in the project calls it.
/// <para>
/// LibTorch 2.10's fused CPU kernel (<c>scaled_dot_product_attention</c>, its flash-attention path) is used only where
/// no gradient flows through it. Its backward gave NaN gradients from the first optimiser step on CI's machine and not
/// on this one — even where the gradient it received was all zeros (a UNet's zero-initialised output projection): the
/// teacher, the autoencoder and the attribute UNet all diverged at step 2 there. So a pass that trains computes
/// softmax(q·kᵀ/√d)·v from matmul and softmax, whose backward is theirs; it is the same function (the tests compare
/// both) at the cost of holding the (L × L) weights, which a trained model here never makes large (its attention runs
/// at 16 × 16 tokens or fewer). Inference keeps the fused kernel: Stable Diffusion's 4,096-token attention would need
/// 64 MiB of weights per head otherwise.
/// </para>
/// </summary>
public static class Attention
{
    /// <summary>Attention over (…, L, d) queries and (…, S, d) keys and values; <paramref name="causal"/> masks j &gt; i.</summary>
    public static Tensor Scaled(Tensor q, Tensor k, Tensor v, bool causal = false)
    {
        bool trains = is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad);
        return trains ? Explicit(q, k, v, causal) : F.scaled_dot_product_attention(q, k, v, is_casual: causal);
    }

    /// <summary>softmax(q·kᵀ/√d [+ causal mask])·v from matmul and softmax.</summary>
    public static Tensor Explicit(Tensor q, Tensor k, Tensor v, bool causal = false)
    {
        var scores = matmul(q, k.transpose(-2, -1)) * (1.0 / Math.Sqrt(q.shape[^1]));
        if (causal)
        {
            long l = q.shape[^2], s = k.shape[^2];
            using var above = ones(l, s, dtype: ScalarType.Bool, device: q.device).triu(1);
            scores = scores.masked_fill(above, float.NegativeInfinity);
        }
        return matmul(scores.softmax(-1), v);
    }
}
