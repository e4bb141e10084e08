using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class DomainGateTests
{
    private static readonly IReadOnlyList<string> Attributes = PortraitAttributes.All;

    /// <summary>Fitted on training portraits, calibrated on the validation split, as an editor run does (at 32 px, fewer images).</summary>
    private static DomainGate Fitted(out DomainGateConfig config)
    {
        using var train = RunImages.TrainingPortraits(PortraitAttributes.Smiling, 480, 120, 32, seed: 1, Attributes);
        using var val = RunImages.Portraits(PortraitAttributes.Smiling, 200, 32, HeldOutPortraits.ValidationSeed, Attributes);
        var gate = DomainGate.Fit(train.Images, components: 48);
        config = gate.Calibrate(val.Images);
        return gate;
    }

    [Fact]
    public void Held_out_portraits_pass_and_images_of_other_domains_are_refused()
    {
        using var scope = NewDisposeScope();
        using var gate = Fitted(out var config);
        Assert.Equal(600, config.FitImages);
        Assert.Equal(200, config.CalibrationImages);
        Assert.True(config.CalibrationPassRate >= 0.99, $"calibration pass rate {config.CalibrationPassRate}");

        using var held = RunImages.Portraits(PortraitAttributes.Smiling, 200, 32, HeldOutPortraits.HeldOutSeed, Attributes);
        var heldScores = gate.Scores(held.Images);
        double heldPass = heldScores.Count(s => gate.Passes(s)) / (double)heldScores.Length;
        Assert.True(heldPass >= 0.97, $"only {heldPass:P1} of held-out portraits pass (threshold {config.Threshold})");
        // The same faces at 64 px: the features are pooled to 16 x 16, so the size of the photo does not move the score much.
        using var large = RunImages.Portraits(PortraitAttributes.Smiling, 200, 64, HeldOutPortraits.HeldOutSeed, Attributes);
        double largePass = gate.Scores(large.Images).Count(s => gate.Passes(s)) / 200.0;
        Assert.True(largePass >= 0.95, $"only {largePass:P1} of held-out portraits at 64 px pass");

        foreach (var kind in new[] { "texture", "house" })
        {
            var scores = gate.Scores(OtherDomains.Render(kind, 50, 32, seed: 7));
            double pass = scores.Count(s => gate.Passes(s)) / (double)scores.Length;
            Assert.True(pass <= 0.05, $"{pass:P0} of {kind} images pass the portrait gate (median score {scores.Order().ElementAt(25)}, threshold {config.Threshold})");
            Assert.All(scores.Where(s => !gate.Passes(s)), s => Assert.StartsWith("outside the editor's domain (score ", gate.Reason(s)));
        }
        // Portraits score near 1; far outside, far above.
        Assert.InRange(heldScores.Order().ElementAt(100), 0.3, 2.5);
    }

    [Fact]
    public void A_saved_gate_loads_with_the_same_scores_and_a_mis_shaped_file_is_refused()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var gate = Fitted(out var config);
        gate.Save(dir.Path);
        using var probe = cat([RunImages.Portraits(PortraitAttributes.Smiling, 8, 32, HeldOutPortraits.HeldOutSeed, Attributes).Images,
            OtherDomains.Render("house", 4, 32, seed: 3)]);
        using var loaded = DomainGate.Load(config, dir[DomainGate.WeightsFile]);
        Assert.Equal(gate.Scores(probe), loaded.Scores(probe));
        Assert.Equal(config, loaded.Config);

        Assert.Throws<InvalidDataException>(() => DomainGate.Load(config with { Method = "something-else" }, dir[DomainGate.WeightsFile]));
        Assert.ThrowsAny<Exception>(() => DomainGate.Load(config with { Components = config.Components + 1 }, dir[DomainGate.WeightsFile]));
    }

    [Fact]
    public void A_portrait_beside_a_band_of_sky_or_saved_as_jpeg_passes_and_the_quantiles_are_the_tables()
    {
        using var scope = NewDisposeScope();
        using var gate = Fitted(out _);
        using var held = RunImages.Portraits(PortraitAttributes.Smiling, 100, 32, HeldOutPortraits.HeldOutSeed, Attributes);
        // 32 x 48: the portrait on top, plain sky below (the score is the best of three squares along the long side).
        var tall = cat([held.Images, full(new long[] { 100, 3, 16, 32 }, -0.2f)], 2);
        double tallPass = gate.Scores(tall).Count(x => gate.Passes(x)) / 100.0;
        Assert.True(tallPass >= 0.95, $"{tallPass:P0} of portraits with a band below pass");
        using var jpeg = Sdd.Ml.Data.ImageCodec.JpegRoundTrip(held.Images, 75);
        double jpegPass = gate.Scores(jpeg).Count(x => gate.Passes(x)) / 100.0;
        Assert.True(jpegPass >= 0.95, $"{jpegPass:P0} of portraits saved as JPEG (quality 75) pass");
        // The top square of each tall image is the portrait itself, so its score is at most the portrait's.
        var portraitScores = gate.Scores(held.Images);
        Assert.All(gate.Scores(tall).Zip(portraitScores), p => Assert.True(p.First <= p.Second + 1e-4, $"{p.First} > {p.Second}"));

        Assert.Equal(2.5758, DomainGate.NormalQuantile(0.995), 3);
        Assert.Equal(-1.6449, DomainGate.NormalQuantile(0.05), 3);
        Assert.Equal(3.250, DomainGate.StudentQuantile(0.995, 9), 1); // tables: 3.250
        Assert.Equal(2.601, DomainGate.StudentQuantile(0.995, 199), 2); // tables: 2.601
    }

    [Fact]
    public void A_gate_fitted_inside_a_dispose_scope_outlives_it_and_saves_whole()
    {
        // What EditorDistillation.FitDomainGate does: fit in a scope of its own, hand the gate to the editor, save later.
        using var dir = new TempDir();
        using var probe = RunImages.Portraits(PortraitAttributes.Smiling, 8, 32, HeldOutPortraits.HeldOutSeed, Attributes);
        DomainGate gate;
        float[] before;
        using (NewDisposeScope())
        {
            using var train = RunImages.Portraits(PortraitAttributes.Smiling, 200, 32, HeldOutPortraits.ValidationSeed, Attributes);
            gate = DomainGate.Fit(train.Images, components: 8);
            gate.Calibrate(train.Images[TensorIndex.Slice(0, 50)]);
            before = gate.Scores(probe.Images);
        }
        using (gate)
        {
            Assert.Equal(before, gate.Scores(probe.Images));
            gate.Save(dir.Path);
            using var loaded = DomainGate.Load(gate.Config, dir[DomainGate.WeightsFile]);
            Assert.Equal(before, loaded.Scores(probe.Images));
        }
    }
}
