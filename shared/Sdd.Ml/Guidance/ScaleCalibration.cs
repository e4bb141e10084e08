namespace Sdd.Ml.Guidance;

/// <summary>One probe of the scale search: a short distillation at <paramref name="Scale"/> and its editability on the validation images.</summary>
public sealed record ScaleProbe(double Scale, double Editability);

/// <summary>
/// How an automatic guidance scale was chosen (stored in the editor's config): the target, the grid searched, every
/// probe, the chosen scale and whether it reached the target. <paramref name="Method"/>: "search", or "default (no judge)" /
/// "default (no validation images)" when there was nothing to search with and the mode's reference scale was used.
/// </summary>
public sealed record CalibratedScale(double Scale, bool Reached, double Target, double[] Grid, IReadOnlyList<ScaleProbe> Probes,
    int StepsPerProbe, int ValidationImages, string Method = ScaleCalibration.SearchMethod);

/// <summary>
/// Guidance that calibrates itself: the smallest scale on a geometric grid whose editor reaches the target editability,
/// found by bisection on the grid under the assumption that editability does not fall as the scale grows (it is an
/// assumption: a scale so large that the edit breaks can lose the attribute again; every probe is kept, so it shows).
/// A grid of n scales takes at most ceil(log2(n + 1)) probes (3 for the default 6).
/// </summary>
public static class ScaleCalibration
{
    public const string SearchMethod = "search";
    public const string NoJudgeMethod = "default (no judge)";
    public const string NoValidationMethod = "default (no validation images)";

    /// <summary>Factor-2 steps around the mode's reference scale: 2.5..80 for delta, 7.5..240 for SDS.</summary>
    public static double[] Grid(GuidanceMode mode)
    {
        var r = GuidanceSettings.DefaultScale(mode);
        return [r / 4, r / 2, r, 2 * r, 4 * r, 8 * r];
    }

    /// <summary>
    /// The search. <paramref name="probe"/> runs one (editability of an editor distilled at that scale), or returns null
    /// when the budget ends first (the search then returns null: call again with the probes so far, which are asked for
    /// first and never re-run: the search is resumable between probes). <paramref name="known"/> receives each new probe.
    /// Without a passing scale the one with the highest editability (the smaller on a tie) is chosen, not reached.
    /// </summary>
    public static CalibratedScale? Search(double[] grid, double target, Func<double, double?> probe, List<ScaleProbe> known,
        int stepsPerProbe = 0, int validationImages = 0)
    {
        if (grid.Length == 0) throw new ArgumentException("The scale grid is empty.", nameof(grid));
        double? Editability(int i)
        {
            var done = known.FirstOrDefault(p => p.Scale == grid[i]);
            if (done is not null) return done.Editability;
            var e = probe(grid[i]);
            if (e is { } v) known.Add(new ScaleProbe(grid[i], v));
            return e;
        }
        // The smallest index whose editability reaches the target lies in [lo, hi]; hi = grid.Length means none does.
        int lo = 0, hi = grid.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (Editability(mid) is not { } e) return null;
            if (e >= target) hi = mid; else lo = mid + 1;
        }
        var probes = known.Where(p => grid.Contains(p.Scale)).OrderBy(p => p.Scale).ToList();
        if (lo < grid.Length) return new CalibratedScale(grid[lo], true, target, grid, probes, stepsPerProbe, validationImages);
        var best = probes.OrderByDescending(p => p.Editability).ThenBy(p => p.Scale).First();
        return new CalibratedScale(best.Scale, false, target, grid, probes, stepsPerProbe, validationImages);
    }
}
