using Sdd.Ml.Data;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;

namespace Sdd.Distill.Training;

/// <summary>Images and +1/-1/0 labels whose columns follow a given attribute order.</summary>
public sealed record LabeledTensors(Tensor Images, Tensor Labels, Tensor? Counterfactuals = null) : IDisposable
{
    public void Dispose() { Images.Dispose(); Labels.Dispose(); Counterfactuals?.Dispose(); }
}

/// <summary>Where a run's images come from: a registered data set, or portraits rendered in memory.</summary>
public static class TrainingImages
{
    /// <summary>Re-orders label columns from <paramref name="from"/> to <paramref name="to"/>; an attribute the source lacks is unknown (0).</summary>
    public static Tensor Reorder(Tensor labels, IReadOnlyList<string> from, IReadOnlyList<string> to)
    {
        using var scope = NewDisposeScope();
        var cols = to.Select(a =>
        {
            int i = from.ToList().IndexOf(a);
            return i >= 0 ? labels[.., i] : zeros(labels.shape[0]);
        }).ToArray();
        return stack(cols, 1).MoveToOuterDisposeScope();
    }

    /// <summary>The training split of a data set at <paramref name="size"/>, labels in <paramref name="attributes"/> order.</summary>
    public static LabeledTensors FromDataset(LoadedDataset data, int size, IReadOnlyList<string> attributes, bool trainSplit = true)
    {
        var (train, held) = data.Set.Split();
        var (x, y) = data.Set.Load(size, trainSplit ? train : held);
        using (y) return new LabeledTensors(x, Reorder(y, data.Set.Attributes, attributes));
    }

    /// <summary>Portraits of the procedural domain lacking <paramref name="attribute"/>, with counterfactuals, labels in <paramref name="attributes"/> order.</summary>
    public static LabeledTensors Portraits(string attribute, int count, int size, int seed, IReadOnlyList<string> attributes)
    {
        if (!PortraitAttributes.All.Contains(attribute))
            throw new Runs.RunFailure($"No data set was given and '{attribute}' is not an attribute of the portrait domain ({string.Join(", ", PortraitAttributes.All)}): register a data set that labels it.");
        var batch = HeldOutPortraits.Render(attribute, present: false, count, size, seed);
        using (batch.Labels) return new LabeledTensors(batch.Images, Reorder(batch.Labels, PortraitAttributes.All, attributes), batch.Counterfactuals);
    }

    /// <summary>Held-out rows of a data set lacking the attribute (at most <paramref name="count"/>), labels in its own order.</summary>
    public static LabeledTensors HeldOutLacking(LoadedDataset data, string attribute, int count, int size, IReadOnlyList<string> attributes)
    {
        int a = data.Set.AttributeIndex(attribute);
        var (_, held) = data.Set.Split();
        var rows = held.Where(r => data.Set.Rows[r].Labels[a] < 0).Take(count).ToArray();
        if (rows.Length == 0) throw new DatasetException($"Data set '{data.Name}' has no held-out image lacking '{attribute}' to evaluate the editor on.");
        var (x, y) = data.Set.Load(size, rows);
        using (y) return new LabeledTensors(x, Reorder(y, data.Set.Attributes, attributes));
    }
}
