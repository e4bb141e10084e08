using Sdd.Ml.Data;
using Sdd.Ml.Editors;
using Sdd.Ml.Judging;

namespace Sdd.Ml.Evaluation;

/// <summary>One editor on held-out portraits rendered at one size.</summary>
public sealed record SizedQualityRow(string Editor, int EditorSize, int ImageSize, QualityRow Row);

/// <summary>
/// Editors of one attribute side by side on the same held-out portraits rendered at each size (with their true
/// counterfactuals): an editor made for a smaller size runs in residual mode, as the edit worker runs it. The question
/// it answers: does an edit stay sharp and in place at photo sizes (a 128 px editor against a 32 px one upsampled)?
/// </summary>
public static class EditorComparison
{
    public static List<SizedQualityRow> Run(IReadOnlyList<(string Name, Editor Editor)> editors, Judge judge, string attribute, int[] sizes, int images,
        int seed = HeldOutPortraits.HeldOutSeed, Action<SizedQualityRow>? report = null, string? grid = null)
    {
        var rows = new List<SizedQualityRow>();
        foreach (var size in sizes)
        {
            using var gridScope = NewDisposeScope();
            var gridRows = new List<Tensor>();
            using var held = HeldOutPortraits.Render(attribute, present: false, images, size, seed);
            using var scorer = new QualityScorer(judge, attribute, held.Images, held.Labels, held.Counterfactuals);
            void Add(string name, int editorSize, QualityRow row)
            {
                var r = new SizedQualityRow(name, editorSize, size, row);
                rows.Add(r);
                report?.Invoke(r);
            }
            Add("no edit", 0, scorer.Score("no edit", held.Images, 0, 0));
            long n = Math.Min(8, held.Images.shape[0]);
            bool gridHere = grid is not null && size == sizes[0];
            if (gridHere) gridRows.Add(held.Images[TensorIndex.Slice(0, n)]);
            int chunk = Math.Max(1, (int)(4_000_000 / ((long)size * size))); // about 4 M pixels a batch
            foreach (var (name, editor) in editors)
            {
                editor.Edit(held.Images[TensorIndex.Slice(0, 1)]).Dispose(); // warm-up
                var (edited, ms) = Timed.Map(held.Images, chunk, editor.Edit);
                using (edited)
                {
                    Add(name, editor.Config.ImageSize, scorer.Score(name, edited, ms, 0));
                    if (gridHere) gridRows.Add(edited[TensorIndex.Slice(0, n)].clone());
                }
            }
            if (gridHere) WriteGrid(gridRows.Append(held.Counterfactuals[TensorIndex.Slice(0, n)]).ToList(), (int)n, size, grid!);
        }
        return rows;
    }

    /// <summary>
    /// The first size's grid: the sources on top, one row per editor in the order given, the true counterfactuals last;
    /// small images enlarged to about 384 px so a fringe can be seen.
    /// </summary>
    private static void WriteGrid(List<Tensor> rows, int columns, int size, string path)
    {
        using var scope = NewDisposeScope();
        double k = Math.Max(1, Math.Floor(384.0 / size));
        var tiles = cat(rows.ToArray());
        if (k > 1) tiles = F.interpolate(tiles, scale_factor: [k, k], mode: InterpolationMode.Nearest);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        ImageCodec.SavePng(ImageCodec.Grid(tiles, columns, 2), path);
    }
}
