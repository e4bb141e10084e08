using System.Text.Json;
using Sdd.Ml.Data;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;

namespace Sdd.Ml.Procedures;

/// <summary>A labeled image set with its name; Synthetic when it is the procedural portrait domain (counterfactuals exist).</summary>
public sealed record LoadedDataset(string Name, LabeledImageSet Set, bool Synthetic)
{
    /// <summary>The file beside labels.csv whose <c>kind</c> says how a data set was made (<c>synthetic-portraits</c>).</summary>
    public const string DescriptionFile = "dataset.json";

    /// <summary>Whether a dataset.json names the procedural portrait domain (unreadable JSON: no).</summary>
    public static bool IsSynthetic(byte[]? description)
    {
        if (description is null) return false;
        try
        {
            using var doc = JsonDocument.Parse(description);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("kind", out var kind)
                   && kind.ValueKind == JsonValueKind.String && kind.GetString() == "synthetic-portraits";
        }
        catch (JsonException) { return false; }
    }

    /// <summary>A folder of plain photos for a text-prompt attribute (see <see cref="LabeledImageSet.OpenPlainFolder"/>).</summary>
    public static LoadedDataset OpenPlainFolder(string dir, string attribute) =>
        new(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))), LabeledImageSet.OpenPlainFolder(dir, attribute), false);

    /// <summary>A data set folder (labels.csv, images/, dataset.json when written by <c>dataset portraits</c>).</summary>
    public static LoadedDataset OpenFolder(string dir)
    {
        var set = LabeledImageSet.OpenFolder(dir);
        var description = Path.Combine(dir, DescriptionFile);
        return new LoadedDataset(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))), set,
            IsSynthetic(File.Exists(description) ? File.ReadAllBytes(description) : null));
    }
}

/// <summary>Images and +1/-1/0 labels whose columns follow a given attribute order.</summary>
public sealed record LabeledTensors(Tensor Images, Tensor Labels, Tensor? Counterfactuals = null) : IDisposable
{
    public void Dispose() { Images.Dispose(); Labels.Dispose(); Counterfactuals?.Dispose(); }
}

/// <summary>Where a run's images come from: a data set (its training or held-out split), or portraits rendered in memory.</summary>
public static class RunImages
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

    /// <summary>
    /// The training split of a data set (at most <paramref name="limit"/> rows) at <paramref name="size"/>, labels in
    /// <paramref name="attributes"/> order.
    /// </summary>
    public static LabeledTensors Training(LoadedDataset data, int size, IReadOnlyList<string> attributes, int limit = int.MaxValue)
    {
        var (train, _, _) = data.Set.Splits();
        var (x, y) = data.Set.Load(size, train.Take(limit).ToArray());
        using (y) return new LabeledTensors(x, Reorder(y, data.Set.Attributes, attributes));
    }

    /// <summary>Portraits of the procedural domain lacking <paramref name="attribute"/>, with counterfactuals, labels in <paramref name="attributes"/> order.</summary>
    public static LabeledTensors Portraits(string attribute, int count, int size, int seed, IReadOnlyList<string> attributes)
    {
        if (!PortraitAttributes.All.Contains(attribute))
            throw new DatasetException($"No data set was given and '{attribute}' is not an attribute of the portrait domain ({string.Join(", ", PortraitAttributes.All)}): register a data set that labels it.");
        var batch = HeldOutPortraits.Render(attribute, present: false, count, size, seed);
        using (batch.Labels) return new LabeledTensors(batch.Images, Reorder(batch.Labels, PortraitAttributes.All, attributes), batch.Counterfactuals);
    }

    /// <summary>
    /// Training portraits rendered in memory: <paramref name="lacking"/> lacking the attribute and <paramref name="having"/>
    /// that have it (for <see cref="DistillSettings.PositiveShare"/>), labels in <paramref name="attributes"/> order, no counterfactuals.
    /// </summary>
    public static LabeledTensors TrainingPortraits(string attribute, int lacking, int having, int size, int seed, IReadOnlyList<string> attributes)
    {
        var without = Portraits(attribute, lacking, size, seed, attributes);
        if (having <= 0) { without.Counterfactuals?.Dispose(); return without with { Counterfactuals = null }; }
        using (without)
        using (var with = HeldOutPortraits.Render(attribute, present: true, having, size, seed))
        using (var labels = Reorder(with.Labels, PortraitAttributes.All, attributes))
            return new LabeledTensors(cat([without.Images, with.Images]), cat([without.Labels, labels]));
    }

    /// <summary>Held-out rows of a data set lacking the attribute (at most <paramref name="count"/>), labels in <paramref name="attributes"/> order.</summary>
    public static LabeledTensors HeldOutLacking(LoadedDataset data, string attribute, int count, int size, IReadOnlyList<string> attributes)
    {
        int a = data.Set.AttributeIndex(attribute);
        var (_, held) = data.Set.Split();
        var rows = held.Where(r => data.Set.Rows[r].Labels[a] < 0).Take(count).ToArray();
        if (rows.Length == 0) throw new DatasetException($"Data set '{data.Name}' has no held-out image lacking '{attribute}' to evaluate the editor on.");
        var (x, y) = data.Set.Load(size, rows);
        using (y) return new LabeledTensors(x, Reorder(y, data.Set.Attributes, attributes));
    }

    /// <summary>
    /// The images choices are made on (the automatic guidance scale): validation portraits when the data set is the
    /// portrait domain or there is none, else the data set's validation rows lacking the attribute (null when it has none:
    /// a small data set; the automatic scale then falls back to the reference scale and says so).
    /// </summary>
    public static LabeledTensors? Validation(LoadedDataset? data, string attribute, int count, int size, IReadOnlyList<string> attributes)
    {
        if (data is null || data.Synthetic) return Portraits(attribute, count, size, HeldOutPortraits.ValidationSeed, attributes);
        int a = data.Set.AttributeIndex(attribute);
        var rows = data.Set.Splits().Validation.Where(r => data.Set.Rows[r].Labels[a] < 0).Take(count).ToArray();
        if (rows.Length == 0) return null;
        var (x, y) = data.Set.Load(size, rows);
        using (y) return new LabeledTensors(x, Reorder(y, data.Set.Attributes, attributes));
    }

    /// <summary>
    /// The images an editor is evaluated on: held-out portraits (with counterfactuals) when the data set is the portrait
    /// domain or there is none, else the data set's held-out rows lacking the attribute.
    /// </summary>
    public static LabeledTensors Evaluation(LoadedDataset? data, string attribute, int count, int size, IReadOnlyList<string> attributes) =>
        data is null || data.Synthetic
            ? Portraits(attribute, count, size, HeldOutPortraits.HeldOutSeed, attributes)
            : HeldOutLacking(data, attribute, count, size, attributes);
}
