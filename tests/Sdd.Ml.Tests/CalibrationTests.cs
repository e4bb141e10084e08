using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Guidance;
using Sdd.Ml.Indicator;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Tests;

/// <summary>Guidance that calibrates itself, and the scale-invariant indicator.</summary>
[Collection(TorchCollection.Name)]
public sealed class CalibrationTests
{
    private const int S = MethodSupport.Size;
    private static readonly double[] Grid = ScaleCalibration.Grid(GuidanceMode.Delta);

    [Fact]
    public void Refinement_bisects_between_the_failing_and_the_passing_grid_scale_and_resumes_between_probes()
    {
        // Editability passes from s = 6.5 on: the grid (2.5, 5, 10, ...) finds 10 (5 fails); two bisections probe
        // sqrt(5 * 10) = 7.0711 (passes) and sqrt(5 * 7.0711) = 5.946 (fails), so 7.0711 is chosen.
        static double E(double s) => s >= 6.5 ? 0.97 : 0.5;
        var asked = new List<double>();
        var found = ScaleCalibration.Search(Grid, 0.95, s => { asked.Add(s); return E(s); }, [], refinements: 2)!;
        Assert.True(found.Reached);
        Assert.Equal(7.0711, found.Scale);
        Assert.Equal(new[] { 10, 5, 7.0711, Math.Round(Math.Sqrt(5 * 7.0711), 4) }, asked);
        Assert.Equal(asked.Order(), found.Probes.Select(p => p.Scale));
        Assert.Equal(10, ScaleCalibration.Search(Grid, 0.95, s => E(s), [], refinements: 0)!.Scale); // without refinement: the grid's scale

        // Cut short before the second bisection, then resumed with the probes so far: the same answer, no probe twice.
        var known = new List<ScaleProbe>();
        var again = new List<double>();
        Assert.Null(ScaleCalibration.Search(Grid, 0.95, s => { if (again.Count == 3) return null; again.Add(s); return E(s); }, known, refinements: 2));
        var resumed = ScaleCalibration.Search(Grid, 0.95, s => { again.Add(s); return E(s); }, known, refinements: 2)!;
        Assert.Equal(found.Scale, resumed.Scale);
        Assert.Equal(asked, again);

        // The smallest grid scale passing leaves nothing below it to bisect toward.
        Assert.Equal(Grid[0], ScaleCalibration.Search(Grid, 0.95, _ => 0.99, [], refinements: 2)!.Scale);
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(1, 3)]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    [InlineData(4, 3)]
    [InlineData(5, 4)]
    public void The_search_picks_the_smallest_scale_that_reaches_the_target_probing_each_scale_at_most_once(int passing, int probes)
    {
        var asked = new List<double>();
        // Editability grows with the scale and crosses the 95 % target at grid[passing].
        double Editability(double s) { asked.Add(s); return s >= Grid[passing] ? 0.96 + 0.001 * Array.IndexOf(Grid, s) : 0.1 * Array.IndexOf(Grid, s); }
        var found = ScaleCalibration.Search(Grid, 0.95, s => Editability(s), [], stepsPerProbe: 7, validationImages: 9)!;
        Assert.Equal(Grid[passing], found.Scale);
        Assert.True(found.Reached);
        Assert.Equal(probes, asked.Count);
        Assert.Equal(asked.Distinct().Count(), asked.Count);
        Assert.Equal(asked.Order(), found.Probes.Select(p => p.Scale));
        Assert.Equal((0.95, 7, 9, ScaleCalibration.SearchMethod), (found.Target, found.StepsPerProbe, found.ValidationImages, found.Method));
    }

    [Theory]
    [InlineData(new[] { 0.0, 0.2, 0.5, 0.78, 0.97, 0.53 }, 40.0)]  // rises, passes at 40, breaks at 80 (as a 32 px run saw)
    [InlineData(new[] { 0.5, 0.96, 0.9, 0.6, 0.3, 0.1 }, 5.0)]     // the peak is below the reference
    [InlineData(new[] { 0.0, 0.0, 0.0, 0.0, 0.96, 1.0 }, 40.0)]    // nothing edits until a large scale: flat counts as rising
    [InlineData(new[] { 0.97, 0.99, 0.99, 0.98, 0.6, 0.2 }, 2.5)]  // everything small passes
    public void The_search_finds_the_smallest_passing_scale_when_editability_rises_then_falls(double[] editability, double expected)
    {
        var found = ScaleCalibration.Search(Grid, 0.95, s => editability[Array.IndexOf(Grid, s)], [])!;
        Assert.True(found.Reached);
        Assert.Equal(expected, found.Scale);
    }

    [Fact]
    public void An_unreachable_target_takes_the_most_editing_probe_and_says_it_was_not_reached()
    {
        var found = ScaleCalibration.Search(Grid, 0.95, s => 0.1 * Array.IndexOf(Grid, s), [])!;
        Assert.False(found.Reached);
        Assert.Equal(Grid[^1], found.Scale);
        Assert.All(found.Probes, p => Assert.True(p.Editability < 0.95));
    }

    [Fact]
    public void The_search_stops_when_the_budget_ends_and_resumes_without_repeating_a_probe()
    {
        var all = new List<double>();
        double Editability(double s) => s >= 20 ? 1 : 0;
        var uninterrupted = ScaleCalibration.Search(Grid, 0.95, s => { all.Add(s); return Editability(s); }, [])!;

        var known = new List<ScaleProbe>();
        var asked = new List<double>();
        Assert.Null(ScaleCalibration.Search(Grid, 0.95, s => { if (asked.Count == 1) return null; asked.Add(s); return Editability(s); }, known));
        Assert.Single(known);
        var resumed = ScaleCalibration.Search(Grid, 0.95, s => { asked.Add(s); return Editability(s); }, known)!;
        Assert.Equal(uninterrupted.Scale, resumed.Scale);
        Assert.Equal(all, asked);
    }

    [Fact]
    public void The_entropy_of_the_normalised_map_does_not_change_when_the_gradient_is_scaled()
    {
        using var scope = NewDisposeScope();
        var g = randn([3, 3, S, S], generator: new Generator(71)) * (rand([3, 1, S, S], generator: new Generator(72)).pow(4));
        var (h, n) = HybridQualityScore.Measure(g);
        foreach (var c in new[] { 1e-4, 0.37, 100.0 })
        {
            var (hc, nc) = HybridQualityScore.Measure(g * c);
            Assert.True(hc.allclose(h, rtol: 1e-5, atol: 1e-5), $"x{c}: {(hc - h).abs().max().item<float>()}");
            Assert.True(nc.allclose(n * c, rtol: 1e-4), $"the norm scales with x{c}");
        }
        // Bounds: a uniform (or all-zero) map has the most entropy, ln(pixels); one pixel has none.
        var uniform = ones(1, 3, S, S);
        var onePixel = zeros(1, 3, S, S); onePixel[0, .., 3, 5] = 2;
        var (hu, _) = HybridQualityScore.Measure(uniform);
        var (hz, _) = HybridQualityScore.Measure(zeros(1, 3, S, S));
        var (h1, _) = HybridQualityScore.Measure(onePixel);
        Assert.Equal(Math.Log(S * S), hu.item<float>(), 4);
        Assert.Equal(Math.Log(S * S), hz.item<float>(), 4);
        Assert.Equal(0, h1.item<float>(), 5);
    }

    [Fact]
    public void With_the_delta_gradient_the_indicator_curve_and_its_choice_do_not_depend_on_the_scale()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(73);
        var (images, labels) = Tiny.Portraits(73, 0, 4, S);
        var states = AttributeCondition.FromLabels(labels);
        states[.., 0] = AttributeCondition.Absent;
        int[] grid = [200, 400, 600, 800];
        var low = HybridQualityScore.Compute(teacher, PortraitAttributes.Smiling, images, states, new GuidanceSettings { Scale = 2 }, grid, k: 2, seed: 3);
        var high = HybridQualityScore.Compute(teacher, PortraitAttributes.Smiling, images, states, new GuidanceSettings { Scale = 50 }, grid, k: 2, seed: 3);
        Assert.Equal(low.Selected, high.Selected);
        for (int i = 0; i < grid.Length; i++)
        {
            Assert.Equal(low.Points[i].Hqs, high.Points[i].Hqs, 3);
            Assert.Equal(low.Points[i].Entropy, high.Points[i].Entropy, 4);
            Assert.Equal(low.Points[i].Norm * 25, high.Points[i].Norm, 1e-3 * high.Points[i].Norm);
        }
        // An automatic scale computes the curve at the mode's reference scale, and says so.
        var auto = HybridQualityScore.Compute(teacher, PortraitAttributes.Smiling, images, states, new GuidanceSettings(), grid, k: 2, seed: 3);
        Assert.Equal(GuidanceSettings.DefaultScale(GuidanceMode.Delta), auto.Guidance.Scale);
        Assert.Equal(low.Selected, auto.Selected);
    }

    /// <summary>A judge that says the attribute is present (or absent) whatever it sees: a controlled editability of 1 (or 0).</summary>
    private static Judge FixedJudge(bool present)
    {
        random.manual_seed(74);
        var judge = new Judge(new JudgeConfig { AttributeNames = [.. PortraitAttributes.All], ImageSize = S, Channels = [8, 8] });
        using var _ = no_grad();
        foreach (var (name, p) in judge.Net.named_parameters())
            if (name.StartsWith("head.", StringComparison.Ordinal)) p.zero_();
        judge.Net.named_parameters().Single(p => p.name == "head.bias").parameter[0] = present ? 20f : -20f;
        return judge;
    }

    [Fact]
    public void Finishing_chooses_the_automatic_mask_gate_on_validation_images_by_the_rule_and_evaluates_the_gated_editor()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(76);
        var (x, y) = Tiny.Portraits(76, 0, 16, S);
        using var data = new LabeledTensors(x, y);
        using var validation = RunImages.Portraits(PortraitAttributes.Smiling, 6, S, HeldOutPortraits.ValidationSeed, teacher.Attributes);
        using var held = RunImages.Portraits(PortraitAttributes.Smiling, 4, S, HeldOutPortraits.HeldOutSeed, teacher.Attributes);
        var settings = new DistillSettings { Steps = 2, BatchSize = 4, Seed = 5, Timesteps = "list:300,500", Guidance = new GuidanceSettings { Scale = 10 } };
        var sizes = new DistillationSizes { ValidationImages = 6, EvalImages = 4 };
        using var always = FixedJudge(present: true);
        using var never = FixedJudge(present: false);
        Assert.True(settings.AutoMaskGate);

        DistilledEditor Run(string name, DistillSettings s, Judge judge, LabeledTensors? gateImages)
        {
            using var run = EditorDistillation.Open(dir[name], teacher, PortraitAttributes.Smiling, data, s, sizes);
            run.AdvanceToEnd();
            return run.Finish(held, judge, gateImages);
        }

        // Every gate keeps the judge's editability at 1: the rule takes the largest of the grid, and the evaluation is the gated editor's.
        var gated = Run("always", settings, always, validation);
        var config = Editor.ReadConfig(dir["always"]);
        Assert.Equal(MaskGating.DefaultGates.Max(), config.MaskGate);
        Assert.Equal(config.MaskGate, gated.Metrics["maskGate"]);
        Assert.Equal((1.0, 1.0), (gated.Metrics["gateValidationEditability"], gated.Metrics["ungatedValidationEditability"]));
        var choice = JsonSerializer.Deserialize<GateChoice>(File.ReadAllText(Path.Combine(dir["always"], EditorDistillation.GateFile)), Sdd.Formats.Models.ModelFolder.Json)!;
        Assert.Equal(MaskGating.DefaultGates, choice.Trials.Select(t => t.Gate));
        Assert.Equal(0.95, choice.Target);
        using (var editor = Editor.Load(dir["always"]))
        {
            using var edited = editor.Edit(held.Images);
            Assert.Equal(gated.Metrics["psnrSource"], Math.Round(ImageMetrics.Psnr(edited, held.Images).mean().item<float>(), 2), 0.011);
            Editor.SetGate(dir["always"], 0);
            using var ungated = Editor.Load(dir["always"]);
            using var plain = ungated.Edit(held.Images);
            Assert.NotEqual(gated.Metrics["psnrSource"], Math.Round(ImageMetrics.Psnr(plain, held.Images).mean().item<float>(), 2));
        }

        // No gate keeps it: the editor stays ungated, and the trials say why.
        Assert.Equal(0, Run("never", settings, never, validation).Metrics["maskGate"]);
        Assert.Equal(0, Editor.ReadConfig(dir["never"]).MaskGate);
        Assert.True(File.Exists(Path.Combine(dir["never"], EditorDistillation.GateFile)));

        // A given gate is kept whatever the judge says; without validation images the automatic gate is off.
        Assert.Equal(0.3, Run("given", settings with { MaskGate = 0.3 }, always, validation).Metrics["maskGate"]);
        Assert.Equal(0.3, Editor.ReadConfig(dir["given"]).MaskGate);
        Assert.False(File.Exists(Path.Combine(dir["given"], EditorDistillation.GateFile)));
        Assert.Equal(0, Run("unseen", settings, always, null).Metrics["maskGate"]);
        Assert.Equal(0, Editor.ReadConfig(dir["unseen"]).MaskGate);

        // Callers render validation images for the gate only when it is chosen: an automatic gate on a masked editor.
        bool Chooses(string name, DistillSettings s)
        {
            using var run = EditorDistillation.Open(dir[name], teacher, PortraitAttributes.Smiling, data, s, sizes);
            return run.ChoosesMaskGate;
        }
        Assert.True(Chooses("auto", settings));
        Assert.False(Chooses("given-0.3", settings with { MaskGate = 0.3 }));
        Assert.False(Chooses("residual", settings with { Editor = EditorArchitecture.Residual }));
    }

    [Fact]
    public void A_tiny_run_calibrates_its_scale_on_validation_images_resumes_between_probes_and_records_it_with_the_editor()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(75);
        var (x, y) = Tiny.Portraits(75, 0, 24, S);
        using var data = new LabeledTensors(x, y);
        using var validation = RunImages.Portraits(PortraitAttributes.Smiling, 6, S, HeldOutPortraits.ValidationSeed, teacher.Attributes);
        using var judge = FixedJudge(present: true);
        var settings = new DistillSettings { Steps = 3, BatchSize = 4, CalibrationSteps = 2, Seed = 4 };
        var sizes = new DistillationSizes { IndicatorSamples = 4, ValidationImages = 6, EvalImages = 4 };
        Assert.True(settings.Guidance.AutoScale);
        var probed = new List<string>();
        void Progress(string phase, TrainingProgress p) { if (phase.StartsWith("calibrate", StringComparison.Ordinal) && p.Step == 1) probed.Add(phase); }

        using (var run = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings, sizes))
        {
            Assert.True(run.Positives > 0, "images that already smile are in the training set");
            int started = 0;
            Assert.False(run.Calibrate(judge, validation, _ => started++ < 1, Progress), "the budget ends after one probe");
            Assert.True(run.NeedsCalibration);
            Assert.Throws<InvalidOperationException>(() => run.Advance(_ => true));
            Assert.True(File.Exists(dir[EditorDistillation.ProbesFile]));
        }
        Assert.Single(probed);
        using (var run = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings, sizes))
        {
            Assert.True(run.Calibrate(judge, validation, _ => true, Progress));
            Assert.Equal(3, probed.Count);
            Assert.Equal(probed.Count, probed.Distinct().Count());
            var c = run.Calibration!;
            Assert.Equal(Grid[0], c.Scale); // every scale passes: the smallest is chosen
            Assert.True(c.Reached);
            Assert.Equal(3, c.Probes.Count);
            Assert.All(c.Probes, p => Assert.Equal(1.0, p.Editability));
            Assert.Equal(Grid[0], run.Effective.Guidance.Scale);
            Assert.False(File.Exists(dir[EditorDistillation.ProbesFile]));
            Assert.False(Directory.Exists(dir["calibrate"]));
            // The worker's chunk whose budget the search used up: no step is trained, and its checkpoint (nothing trained,
            // no smoothed edit size yet) must still be written and resumed from; it once failed the run on a NaN in JSON.
            Assert.Equal(0, run.Advance(_ => false));
        }
        using (var run = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings, sizes))
        {
            Assert.False(run.NeedsCalibration);
            Assert.Equal(0, run.Step);
            Assert.Equal(3, run.AdvanceToEnd());
            using var held = RunImages.Portraits(PortraitAttributes.Smiling, 4, S, HeldOutPortraits.HeldOutSeed, teacher.Attributes);
            var result = run.Finish(held, judge);
            Assert.Equal(Grid[0], result.Metrics["guidanceScale"]);
            Assert.Equal(1, result.Metrics["calibrationReached"]);
            Assert.Equal(1, result.Metrics["validationEditability"]);
        }
        var config = Editor.ReadConfig(dir.Path);
        Assert.Equal(Grid[0], config.Settings.Guidance.Scale);
        Assert.Equal(Grid[0], config.Calibration!.Scale);
        Assert.Equal(0.95, config.Metrics["targetEditability"]);
        Assert.True(File.Exists(dir[EditorDistillation.CalibrationFile]));

        // A judge that never sees the attribute: the target is not reached, and the record says so.
        using var never = FixedJudge(present: false);
        using var miss = EditorDistillation.Open(dir["never"], teacher, PortraitAttributes.Smiling, data, settings with { Timesteps = "list:300,500" }, sizes);
        Assert.True(miss.Calibrate(never, validation, _ => true));
        Assert.False(miss.Calibration!.Reached);
        Assert.Contains(miss.Calibration.Scale, miss.Calibration.Probes.Select(p => p.Scale));
    }
}
