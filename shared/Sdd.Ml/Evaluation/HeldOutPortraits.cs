using Sdd.Ml.Data;
using Sdd.Ml.Portraits;

namespace Sdd.Ml.Evaluation;

/// <summary>Portraits rendered in memory, with labels and the counterfactual for one attribute.</summary>
public sealed record PortraitBatch(Tensor Images, Tensor Labels, Tensor Counterfactuals) : IDisposable
{
    public void Dispose() { Images.Dispose(); Labels.Dispose(); Counterfactuals.Dispose(); }
}

public static class HeldOutPortraits
{
    /// <summary>Seeds at or above this are never used for training data by the project's commands.</summary>
    public const int HeldOutSeed = 1_000_003;
    /// <summary>The validation portraits (every choice is made on them, never on <see cref="HeldOutSeed"/>'s).</summary>
    public const int ValidationSeed = 2_000_003;
    /// <summary>
    /// A second test set, for a figure no choice has seen once the test split has been read for a family of choices
    /// (an earlier setting measured there, a later one chosen on validation): read once, like the test split.
    /// </summary>
    public const int ConfirmationSeed = 3_000_003;

    /// <summary>
    /// The first <paramref name="count"/> portraits of <paramref name="seed"/> whose attribute equals
    /// <paramref name="present"/>, with their counterfactuals (the attribute flipped, nothing else changed).
    /// </summary>
    public static PortraitBatch Render(string attribute, bool present, int count, int size, int seed = HeldOutSeed)
    {
        var chosen = new List<Portrait>();
        for (int i = 0; chosen.Count < count; i++)
        {
            var p = PortraitDataset.Portrait(seed, i);
            if (p.Get(attribute) == present) chosen.Add(p);
        }
        var src = new Tensor[count]; var cf = new Tensor[count];
        var pix = new byte[count][]; var cfPix = new byte[count][];
        Parallel.For(0, count, i =>
        {
            pix[i] = PortraitRenderer.RenderRgb24(chosen[i], size);
            cfPix[i] = PortraitRenderer.RenderRgb24(chosen[i].Flip(attribute), size);
        });
        using var scope = NewDisposeScope();
        for (int i = 0; i < count; i++) { src[i] = ImageCodec.ToTensor(pix[i], size, size); cf[i] = ImageCodec.ToTensor(cfPix[i], size, size); }
        var labels = tensor(chosen.SelectMany(p => PortraitAttributes.All.Select(a => p.Get(a) ? 1f : -1f)).ToArray(), [count, PortraitAttributes.All.Count]);
        return new PortraitBatch(stack(src).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), stack(cf).MoveToOuterDisposeScope());
    }
}
