using Sdd.Ml.Judging;

namespace Sdd.Ml.Editors;

/// <summary>One gate tried: the share of the images the judge calls edited with it.</summary>
public sealed record GateTrial(double Gate, double Editability);

/// <summary>The gate chosen, the editability it had to keep, and every gate tried in order.</summary>
public sealed record GateChoice(double Gate, double Target, IReadOnlyList<GateTrial> Trials);

/// <summary>
/// Choosing a masked editor's gate (<see cref="EditorConfig.MaskGate"/>) after training. A soft mask edits a little
/// everywhere it is not quite zero; the gate stops that, and too high a gate stops the edit itself. The rule uses
/// the judge alone, so it works on any held-out images lacking the attribute: walk the gates upwards and keep the last
/// one before the first whose editability falls below the target.
/// </summary>
public static class MaskGating
{
    /// <summary>0, 0.05, ..., 0.9.</summary>
    public static readonly double[] DefaultGates = Enumerable.Range(0, 19).Select(i => Math.Round(i * 0.05, 2)).ToArray();

    /// <summary>The rule on any measure of editability: the largest gate such that it and every smaller gate keep it at
    /// <paramref name="target"/> or above; 0 when even the ungated editor is below it.</summary>
    public static GateChoice Choose(Func<double, double> editabilityAt, double target, IReadOnlyList<double>? gates = null)
    {
        var grid = (gates ?? DefaultGates).Where(g => g is >= 0 and < 1).Append(0).Distinct().Order().ToArray();
        var trials = new List<GateTrial>();
        double chosen = 0;
        foreach (var g in grid)
        {
            double e = editabilityAt(g);
            trials.Add(new GateTrial(g, e));
            if (e < target) break;
            chosen = g;
        }
        return new GateChoice(chosen, target, trials);
    }

    /// <summary>
    /// The rule for <paramref name="editor"/> on <paramref name="images"/> (lacking the attribute, at the editor's size):
    /// the network runs once and each gate only re-weights its mask. The editor's own gate is left as it was.
    /// </summary>
    public static GateChoice Choose(Editor editor, Judge judge, string attribute, Tensor images, double target, IReadOnlyList<double>? gates = null)
    {
        if (!editor.Net.Masked) throw new ArgumentException("Only a masked editor has a mask to gate.", nameof(editor));
        if (images.shape[2] != editor.Size || images.shape[3] != editor.Size)
            throw new ArgumentException($"The images must be at the editor's size ({editor.Size} px).", nameof(images));
        int a = judge.AttributeIndex(attribute);
        using var scope = NewDisposeScope();
        var parts = new List<(Tensor X, Tensor Change, Tensor Mask)>();
        using (no_grad())
        {
            editor.Net.eval();
            foreach (var x in images.to(editor.Device).split(64))
            {
                var (change, mask) = editor.Net.Parts(x);
                parts.Add((x, change, mask!));
            }
        }
        return Choose(g =>
        {
            using var inner = NewDisposeScope();
            using var _ = no_grad();
            var edited = cat(parts.Select(p => (p.X + EditorNet.Gate(p.Mask, g) * p.Change).clamp(-1, 1)).ToArray());
            return judge.Probabilities(edited.to(images.device))[.., a].gt(0.5).to_type(ScalarType.Float32).mean().item<float>();
        }, target, gates);
    }
}
