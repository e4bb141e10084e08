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
/// Guidance that calibrates itself: the smallest scale on a geometric grid whose editor reaches the target editability.
/// Editability is assumed unimodal in the scale (it rises with the scale until the edit breaks: a first 32 px run saw
/// 0.78 at s = 20 and 0.53 at s = 80 after short probes), so the scales that pass form one interval around the peak.
/// The search starts at the mode's reference scale and walks toward the peak one grid step at a time (up while
/// editability does not fall, else down), then, from the first passing scale, down while scales still pass. It probes
/// each scale at most once: at most the grid's 6 scales, 2 to 4 when the answer is near the reference. Then, when a
/// smaller grid scale failed, it bisects (geometrically) between that one and the passing one <c>refinements</c> times,
/// so the chosen scale is within a factor 2^(1/2^n) of the smallest passing one instead of a factor 2: a scale larger than
/// needed over-draws the edit (the 32 px smiling editor at s = 10 draws a wider mouth than the true smile). Every probe is kept.
/// </summary>
public static class ScaleCalibration
{
    public const string SearchMethod = "search";
    public const string NoJudgeMethod = "default (no judge)";
    public const string NoValidationMethod = "default (no validation images)";

    /// <summary>Factor-2 steps around the mode's reference scale (the third entry): 2.5..80 for delta, 7.5..240 for SDS.</summary>
    public static double[] Grid(GuidanceMode mode)
    {
        var r = GuidanceSettings.DefaultScale(mode);
        return [r / 4, r / 2, r, 2 * r, 4 * r, 8 * r];
    }

    /// <summary>
    /// The search from <paramref name="start"/> (an index of <paramref name="grid"/>; default the middle-low entry, the
    /// reference scale of <see cref="Grid"/>). <paramref name="probe"/> runs one (editability of an editor distilled at that
    /// scale), or returns null when the budget ends first: the search then returns null; call again with the probes so
    /// far, which are looked up first and never re-run (the search is resumable between probes). <paramref name="known"/>
    /// receives each new probe. Without a passing scale the one with the highest editability (the smaller on a tie) is
    /// chosen, marked not reached.
    /// </summary>
    public static CalibratedScale? Search(double[] grid, double target, Func<double, double?> probe, List<ScaleProbe> known,
        int stepsPerProbe = 0, int validationImages = 0, int? start = null, int refinements = 0)
    {
        if (grid.Length == 0) throw new ArgumentException("The scale grid is empty.", nameof(grid));
        int n = grid.Length, r = Math.Clamp(start ?? (n - 1) / 2, 0, n - 1);
        double? At(double scale)
        {
            var done = known.FirstOrDefault(p => p.Scale == scale);
            if (done is not null) return done.Editability;
            var e = probe(scale);
            if (e is { } v) known.Add(new ScaleProbe(scale, v));
            return e;
        }
        double? E(int i) => At(grid[i]);
        double chosen = double.NaN;
        CalibratedScale Result(int? passing)
        {
            var probes = known.OrderBy(p => p.Scale).ToList();
            if (passing is not null) return new CalibratedScale(chosen, true, target, grid, probes, stepsPerProbe, validationImages);
            var best = probes.OrderByDescending(p => p.Editability).ThenBy(p => p.Scale).First();
            return new CalibratedScale(best.Scale, false, target, grid, probes, stepsPerProbe, validationImages);
        }

        // 1. Find a passing scale, walking toward the peak.
        if (E(r) is not { } er) return null;
        int? pass = er >= target ? r : null;
        if (pass is null)
        {
            bool up = true;
            if (r + 1 < n)
            {
                if (E(r + 1) is not { } next) return null;
                if (next >= target) pass = r + 1;
                up = next >= er; // flat counts as rising: at small scales nothing edits yet
                if (up)
                    for (int i = r + 2; pass is null && i < n; i++)
                    {
                        if (E(i) is not { } e || E(i - 1) is not { } prev) return null;
                        if (e >= target) pass = i;
                        else if (e < prev) break; // past the peak: no larger scale passes
                    }
            }
            else up = false;
            if (!up)
                for (int i = r - 1; pass is null && i >= 0; i--)
                {
                    if (E(i) is not { } e || E(i + 1) is not { } prev) return null;
                    if (e >= target) pass = i;
                    else if (e <= prev) break; // not rising toward smaller scales: no peak below
                }
            if (pass is null) return Result(null);
        }
        // 2. The smallest passing scale: walk down while scales pass.
        int smallest = pass.Value;
        for (int i = smallest - 1; i >= 0; i--)
        {
            if (E(i) is not { } e) return null;
            if (e < target) break;
            smallest = i;
        }
        // 3. Between the failing grid scale below it (probed by step 2) and the passing one: bisect in log scale.
        chosen = grid[smallest];
        if (smallest > 0)
        {
            double lo = grid[smallest - 1], hi = grid[smallest];
            for (int k = 0; k < refinements; k++)
            {
                double mid = Math.Round(Math.Sqrt(lo * hi), 4);
                if (At(mid) is not { } e) return null;
                if (e >= target) hi = mid; else lo = mid;
            }
            chosen = hi;
        }
        return Result(smallest);
    }
}
