using Sdd.Ml.Procedures;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using Sdd.Ml.Indicator;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class HybridQualityScoreTests
{
    private static IndicatorPoint Point(int t, double hqs, double entropy = 5, double norm = 100) => new(t, entropy, 0.1, norm, 2, hqs, 0.05);

    [Fact]
    public void A_concentrated_gradient_has_lower_entropy_than_a_diffuse_one_of_the_same_norm()
    {
        using var scope = NewDisposeScope();
        // Image 0: all mass on 4 of 64 pixels (negative values: |.| is what counts); image 1: the same L1 spread evenly.
        var g = zeros(2, 3, 8, 8);
        g[0, .., 2, 3] = tensor(-4f);
        g[0, .., 2, 4] = tensor(-4f);
        g[0, .., 5, 1] = tensor(-4f);
        g[0, .., 6, 6] = tensor(-4f);
        g[1] = full(3, 8, 8, 0.25f);
        var (h, n) = HybridQualityScore.Measure(g);
        Assert.Equal(new long[] { 2 }, h.shape);
        Assert.Equal(new long[] { 2 }, n.shape);
        Assert.Equal(48.0, n[0].item<float>(), 4);
        Assert.Equal(48.0, n[1].item<float>(), 4);
        Assert.True(h[0].item<float>() < h[1].item<float>(), $"entropy concentrated {h[0].item<float>()} should be below diffuse {h[1].item<float>()}");
        Assert.Equal(Math.Log(64), h[1].item<float>(), 4); // a flat map is the uniform distribution over its pixels
    }

    [Fact]
    public void MinMax_maps_each_row_to_0_1_and_a_flat_row_to_0()
    {
        using var scope = NewDisposeScope();
        var v = tensor(new double[] { 1, 3, 2, 5, 5, 5, -2, 0, 2 }, [3, 3]);
        var m = HybridQualityScore.MinMax(v);
        var expected = tensor(new double[] { 0, 1, 0.5, 0, 0, 0, 0, 0.5, 1 }, [3, 3]);
        Assert.True(m.allclose(expected, rtol: 0, atol: 1e-12));
    }

    [Fact]
    public void Score_favours_the_timestep_with_high_norm_and_low_entropy()
    {
        using var scope = NewDisposeScope();
        // (images x timesteps) for t = 100, 300, 500, 700; t = 300 has the highest norm and the lowest entropy in both images.
        var entropy = tensor(new double[] { 4.0, 3.0, 3.5, 4.1, /**/ 4.2, 3.1, 3.9, 4.0 }, [2, 4]);
        var norm = tensor(new double[] { 1, 10, 5, 2, /**/ 2, 8, 6, 1 }, [2, 4]);
        var hqs = HybridQualityScore.Score(entropy, norm);
        var expected = HybridQualityScore.MinMax(norm) - HybridQualityScore.MinMax(entropy);
        Assert.True(hqs.allclose(expected, rtol: 0, atol: 1e-12));
        Assert.Equal(1.0, hqs[0, 1].item<double>(), 12); // N_norm = 1, H_norm = 0
        Assert.Equal(1.0, hqs[1, 1].item<double>(), 12);
        Assert.Equal(1L, hqs.mean([0]).argmax().item<long>());
        // Image 0 at t = 700: N_norm = 1/9, H_norm = 1.
        Assert.Equal(1.0 / 9 - 1, hqs[0, 3].item<double>(), 12);
    }

    [Fact]
    public void SelectAbove_and_SelectBest_pick_the_right_timesteps_sorted()
    {
        IndicatorPoint[] points = [Point(100, 0.1), Point(200, 0.9), Point(300, -0.3), Point(400, 0.5), Point(500, 0.7)];
        Assert.Equal([200, 500], HybridQualityScore.SelectAbove(points, 0.6));
        Assert.Equal([200, 400, 500], HybridQualityScore.SelectAbove(points, 0.3));
        Assert.Empty(HybridQualityScore.SelectAbove(points, 0.95));
        Assert.Equal([200], HybridQualityScore.SelectBest(points, 1));
        Assert.Equal([200, 400, 500], HybridQualityScore.SelectBest(points, 3));
        Assert.Equal([200], HybridQualityScore.SelectBest(points, 0)); // at least one
        Assert.Equal([100, 200, 300, 400, 500], HybridQualityScore.SelectBest(points, 99));
        // Order of the points does not matter to SelectBest: the result is in increasing t.
        Assert.Equal([200, 400, 500], HybridQualityScore.SelectBest(points.Reverse().ToArray(), 3));
    }

    [Fact]
    public void Compute_on_a_tiny_teacher_gives_one_finite_point_per_timestep_and_selects_from_the_grid()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(11);
        var images = MethodSupport.Images(5, 4, 3, MethodSupport.Size, MethodSupport.Size);
        var states = AttributeCondition.FromLabels(MethodSupport.LabelsLackingSmiling(4));
        int[] grid = [100, 300, 500, 700, 900];
        var calls = 0;
        var curve = HybridQualityScore.Compute(teacher, "smiling", images, states, new GuidanceSettings { Mode = GuidanceMode.Delta, Scale = 10 },
            grid, k: 2, seed: 3, batch: 3, progress: (_, _) => calls++);

        Assert.Equal("smiling", curve.Attribute);
        Assert.Equal(4, curve.Samples);
        Assert.Equal(grid, curve.Points.Select(p => p.T));
        Assert.Equal(2 * grid.Length, calls); // two batches (3 + 1) per timestep
        Assert.All(curve.Points, p =>
        {
            Assert.True(double.IsFinite(p.Entropy) && double.IsFinite(p.Norm) && double.IsFinite(p.Hqs), $"t={p.T}: {p}");
            Assert.True(p.EntropyStd >= 0 && p.NormStd >= 0 && p.HqsStd >= 0, $"t={p.T}: {p}");
            Assert.True(p.Norm > 0, $"t={p.T}: a perturbed teacher should give a non-zero gradient");
            Assert.InRange(p.Hqs, -1, 1);
            Assert.InRange(p.Entropy, 0, Math.Log(MethodSupport.Size * MethodSupport.Size) + 1e-4);
        });
        Assert.Equal(2, curve.Selected.Length);
        Assert.Subset(grid.ToHashSet(), curve.Selected.ToHashSet());
        Assert.Equal(curve.Selected.Order(), curve.Selected);
        Assert.Equal(HybridQualityScore.SelectBest(curve.Points, 2), curve.Selected);
        Assert.Equal("top 2", curve.Rule);

        // A threshold above every point keeps the single best timestep; the same seed gives the same curve.
        var strict = HybridQualityScore.Compute(teacher, "smiling", images, states, new GuidanceSettings { Mode = GuidanceMode.Delta, Scale = 10 },
            grid, xi: 5, seed: 3, batch: 3);
        Assert.Equal(HybridQualityScore.SelectBest(curve.Points, 1), strict.Selected);
        Assert.Single(strict.Selected);
        Assert.Equal(curve.Points, strict.Points);
    }

    [Fact]
    public void Compute_in_sds_mode_also_gives_finite_points()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(12);
        var images = MethodSupport.Images(6, 2, 3, MethodSupport.Size, MethodSupport.Size);
        var states = AttributeCondition.FromLabels(MethodSupport.LabelsLackingSmiling(2));
        var curve = HybridQualityScore.Compute(teacher, "smiling", images, states, new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 30 },
            [200, 600], xi: -0.5, seed: 1);
        Assert.Equal(2, curve.Points.Count);
        Assert.All(curve.Points, p => Assert.True(double.IsFinite(p.Hqs) && p.Norm > 0, p.ToString()));
        Assert.Subset(new HashSet<int> { 200, 600 }, curve.Selected.ToHashSet());
        Assert.Equal("hqs > -0.5", curve.Rule);
    }

    /// <summary>
    /// One sample image (indicator --samples 1, or a data set with one image lacking the attribute): the spread of a
    /// single value must not be NaN, because NaN breaks the curve's JSON (System.Text.Json refuses NaN) and plot.
    /// </summary>
    [Fact]
    public void Compute_on_a_single_image_has_finite_spreads_and_its_curve_can_be_saved()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(13);
        var images = MethodSupport.Images(7, 1, 3, MethodSupport.Size, MethodSupport.Size);
        var states = AttributeCondition.FromLabels(MethodSupport.LabelsLackingSmiling(1));
        var curve = HybridQualityScore.Compute(teacher, "smiling", images, states, new GuidanceSettings(), [300, 600], k: 1, seed: 2);
        Assert.All(curve.Points, p => Assert.True(p.EntropyStd >= 0 && p.NormStd >= 0 && p.HqsStd >= 0, p.ToString())); // NaN fails >= 0
        EditorDistillation.WriteCurve(curve, dir["curve.json"]);
        Assert.Equal(curve.Points, EditorDistillation.ReadCurve(dir["curve.json"]).Points);
        CurvePlot.Save(curve, dir["curve.png"]);
    }

    [Fact]
    public void A_curve_round_trips_through_json_and_plots_to_a_png()
    {
        using var dir = new TempDir();
        var curve = new IndicatorCurve("smiling", 32,
            [new IndicatorPoint(100, 5.51, 0.012, 1234.5, 17.25, -0.25, 0.125), new IndicatorPoint(150, 5.49, 0.01, 2000.125, 20, 0.5, 0.1), new IndicatorPoint(200, 5.5, 0.02, 1500, 15, 1.0 / 3, 0.2)],
            [150], "hqs > 0.3", new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 100, TopK = 64 });
        EditorDistillation.WriteCurve(curve, dir["curve.json"]);
        var back = EditorDistillation.ReadCurve(dir["curve.json"]);
        Assert.Equal(curve.Attribute, back.Attribute);
        Assert.Equal(curve.Samples, back.Samples);
        Assert.Equal(curve.Points, back.Points); // records of doubles: exact round trip
        Assert.Equal(curve.Selected, back.Selected);
        Assert.Equal(curve.Rule, back.Rule);
        Assert.Equal(curve.Guidance, back.Guidance);

        CurvePlot.Save(curve, dir["curve.png"]);
        using var png = Image.Load<Rgb24>(dir["curve.png"]);
        Assert.Equal(720, png.Width);
        Assert.Equal(420, png.Height);
        Assert.Equal(new Rgb24(255, 255, 255), png[2, 2]);
        // The selected timestep is shaded inside the plot area.
        bool shaded = false;
        for (int y = 50; y < 360 && !shaded; y++) for (int x = 60; x < 700 && !shaded; x++) shaded = png[x, y] == new Rgb24(255, 236, 179);
        Assert.True(shaded, "the selected timestep should be shaded");
    }
}
