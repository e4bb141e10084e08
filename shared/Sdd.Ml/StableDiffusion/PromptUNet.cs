using Sdd.Ml.Diffusion;

namespace Sdd.Ml.StableDiffusion;

/// <summary>
/// A Stable Diffusion UNet conditioned the way the project's attribute teachers are, by one attribute's state per image
/// (<see cref="AttributeCondition"/>): present is the prompt, absent the source prompt, unknown the empty prompt (the
/// unconditional input of classifier-free guidance). So the method's guidance modes mean what the paper's do on SD:
/// SDS and cfg compare the prompt with the empty prompt, delta compares it with the source prompt. A v-prediction UNet's
/// output is turned into ε = √ᾱ_t v + √(1 − ᾱ_t) x_t, so every caller sees a noise prediction.
/// </summary>
public sealed class PromptUNet : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly UNet2DCondition unet;
    // Not registered: the text embeddings are inputs, not weights, and must not enter a state dict.
    private readonly Tensor[] _table;
    private readonly double[]? _alphaBars;

    /// <param name="source">The source prompt's embedding (1, L, D); <paramref name="prompt"/> and <paramref name="empty"/> likewise.</param>
    /// <param name="vPrediction">The schedule of a v-prediction UNet; null for ε-prediction.</param>
    public PromptUNet(UNet2DCondition unet, Tensor source, Tensor prompt, Tensor empty, NoiseSchedule? vPrediction, Device? device = null) : base(nameof(PromptUNet))
    {
        this.unet = unet;
        RegisterComponents();
        var d = device ?? CPU;
        // Indexed by the state: Absent (0), Present (1), Unknown (2).
        _table = [cat([source, prompt, empty]).to(d).DetachFromDisposeScope()];
        _alphaBars = vPrediction?.AlphaBars;
    }

    public UNet2DCondition UNet => unet;

    public override Tensor forward(Tensor xt, Tensor t, Tensor states)
    {
        if (states.dim() != 2 || states.shape[1] != 1) throw new ArgumentException($"A prompt teacher has one attribute: states (B, 1) expected, got [{string.Join(", ", states.shape)}].");
        var table = _table[0].device == xt.device ? _table[0] : _table[0] = _table[0].to(xt.device).DetachFromDisposeScope();
        var context = table.index_select(0, states[.., 0].to_type(ScalarType.Int64));
        var output = unet.Forward(xt, t, context);
        if (_alphaBars is null) return output;
        var ab = tensor(_alphaBars, ScalarType.Float32, xt.device).index_select(0, t.to_type(ScalarType.Int64).flatten()).view(-1, 1, 1, 1);
        return ab.sqrt() * output + (1 - ab).sqrt() * xt;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _table[0].Dispose();
        base.Dispose(disposing);
    }
}
