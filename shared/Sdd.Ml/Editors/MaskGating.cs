using Sdd.Ml.Judging;

namespace Sdd.Ml.Editors;

/// <summary>One gate tried: the share of the images the judge calls edited with it.</summary>
public sealed record GateTrial(double Gate, double Editability);

/// <summary>The gate chosen, the editability it had to keep, and every gate tried in order.</summary>
public sealed record GateChoice(double Gate, double Target, IReadOnlyList<GateTrial> Trials);

/// <summary>
/// Choosing a masked editor's gate (<see cref="EditorConfig.MaskGate"/>) after training. A soft mask edits a little
/// everywhere it is not quite zero; the gate stops that, and too high a gate stops the edit itself. The rule uses
/// the judge alone, so it works on any held-out images lacking the attribute: the largest gate of the grid whose
/// editability is at the target or above. Not the last before the first miss: on 100 images editability moves by a
/// point or two from gate to gate (one editor measured 96, 95, 94, 95, 96, 97 % at gates 0 to 0.35), so stopping at the
/// first dip would keep the faint edit for the noise of one image.
/// </summary>
public static class MaskGating
{
    /// <summary>0, 0.05, ..., 0.9.</summary>
    public static readonly double[] DefaultGates = Enumerable.Range(0, 19).Select(i => Math.Round(i * 0.05, 2)).ToArray();

    /// <summary>The rule on any measure of editability: the largest gate that keeps it at <paramref name="target"/> or
    /// above; 0 when none does (the ungated editor is then left as it is). Every gate of the grid is measured.</summary>
    public static GateChoice Choose(Func<double, double> editabilityAt, double target, IReadOnlyList<double>? gates = null)
    {
        var grid = (gates ?? DefaultGates).Where(g => g is >= 0 and < 1).Append(0).Distinct().Order().ToArray();
        var trials = grid.Select(g => new GateTrial(g, editabilityAt(g))).ToList();
        double chosen = trials.Where(t => t.Editability >= target).Select(t => t.Gate).DefaultIfEmpty(0).Max();
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
            return Judge.ShareCalledPresent(judge.Probabilities(edited.to(images.device))[.., a]);
        }, target, gates);
    }
}
