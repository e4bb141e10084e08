using System.Text.Json.Nodes;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;

namespace Sdd.Ml.Tests;

/// <summary>Locality: the masked editor y = x + m * g, its penalties, images that already have the attribute in training.</summary>
[Collection(TorchCollection.Name)]
public sealed class LocalityTests
{
    private const int S = MethodSupport.Size;

    private static EditorConfig Masked(DistillSettings? settings = null) => MethodSupport.EditorConfig(settings) with { Architecture = EditorArchitecture.Masked };

    [Fact]
    public void An_untrained_masked_editor_is_exactly_the_identity_and_its_mask_lies_in_0_1()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(81);
        using var editor = new Editor(Masked());
        Assert.True(editor.Net.Masked);
        var x = MethodSupport.Images(81, 3, 3, S, S);
        using (no_grad()) Assert.Equal(0f, editor.Net.Delta(x).abs().max().item<float>());
        Assert.True(Tiny.BitEqual(editor.Edit(x), x));
        var wide = MethodSupport.Images(82, 1, 3, 24, 40);
        Assert.True(Tiny.BitEqual(editor.Edit(wide), wide));

        Tiny.Perturb(editor.Net, 83, scale: 0.3);
        using var _ = no_grad();
        var (g, m) = editor.Net.Parts(x);
        Assert.Equal(new long[] { 3, 1, S, S }, m!.shape);
        Assert.True(m.min().item<float>() >= 0 && m.max().item<float>() <= 1);
        Assert.True(m.max().item<float>() - m.min().item<float>() > 1e-3, "the mask varies over the image");
        Assert.True(editor.Net.forward(x).allclose(x + m * g, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void The_mask_penalties_reach_the_mask_head_and_one_training_step_moves_it()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(84);
        using var editor = new Editor(Masked());
        Tiny.Perturb(editor.Net, 84, scale: 0.1);
        editor.Net.train();
        var (_, m) = editor.Net.Parts(MethodSupport.Images(84, 2, 3, S, S));
        var s = new DistillSettings { MaskSparsity = 0.1, MaskSmoothness = 0.1 };
        Distillation.MaskPenalty(m!, s).backward();
        var grads = editor.Net.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        Assert.True(grads["maskConv.weight"]!.abs().max().item<float>() > 0);
        Assert.True(grads["maskConv.bias"]!.item<float>() > 0, "sparsity pushes the mask down");
        Assert.True(grads["outConv.weight"] is null || grads["outConv.weight"]!.abs().max().item<float>() == 0, "the penalty does not touch the change g");
        Assert.Equal(0f, Distillation.MaskPenalty(m!, s with { MaskSparsity = 0, MaskSmoothness = 0 }).item<float>());

        // A real step from initialisation: the change is zero, so only the penalties move the mask head.
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(85);
        var settings = new DistillSettings { Steps = 1, BatchSize = 2, Timesteps = "fixed:400", Guidance = new GuidanceSettings { Scale = 10 } };
        using var run = new Distillation(dir.Path, teacher, Masked(settings), TimestepSampler.Parse("fixed:400", 1000),
            MethodSupport.Images(85, 4, 3, S, S), MethodSupport.LabelsLackingSmiling(4), resume: false);
        var before = MethodSupport.Snapshot(run.Editor.Net);
        run.TrainStep();
        Assert.Contains("maskConv.bias", MethodSupport.Changed(run.Editor.Net, before));
    }

    [Fact]
    public void An_editor_saved_before_masks_existed_still_loads_and_edits_as_it_did()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        random.manual_seed(86);
        using var old = new Editor(MethodSupport.EditorConfig());
        Tiny.Perturb(old.Net, 86, scale: 0.02);
        Assert.False(old.Net.Masked);
        Assert.DoesNotContain(old.Net.named_parameters(), p => p.name.StartsWith("maskConv", StringComparison.Ordinal));
        old.Save(dir.Path);
        // The first editors' config.json had no architecture key at all.
        var configPath = Path.Combine(dir.Path, Teacher.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        json.Remove("architecture");
        json.Remove("calibration");
        File.WriteAllText(configPath, json.ToJsonString());

        using var loaded = Editor.Load(dir.Path);
        Assert.Null(loaded.Config.Architecture);
        Assert.Equal(EditorArchitecture.Residual, loaded.Config.Network);
        Assert.False(loaded.Net.Masked);
        var x = MethodSupport.Images(87, 2, 3, S, S);
        Assert.True(Tiny.BitEqual(loaded.Edit(x), old.Edit(x)));

        // A new (masked) editor round-trips with its mask head.
        using var masked = new Editor(Masked());
        Tiny.Perturb(masked.Net, 88, scale: 0.05);
        masked.Save(dir["masked"]);
        using var back = Editor.Load(dir["masked"]);
        Assert.True(back.Net.Masked);
        Assert.Equal(EditorArchitecture.Masked, back.Config.Architecture);
        Assert.True(Tiny.BitEqual(back.Edit(x), masked.Edit(x)));
    }

    [Fact]
    public void A_run_checkpointed_before_masks_existed_resumes_as_a_residual_editor()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(93);
        using var data = new LabeledTensors(MethodSupport.Images(93, 6, 3, S, S), MethodSupport.LabelsLackingSmiling(6));
        var settings = new DistillSettings { Steps = 3, BatchSize = 2, Timesteps = "fixed:400", Guidance = new GuidanceSettings { Scale = 10 } };
        using (var old = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings with { Editor = EditorArchitecture.Residual }))
            Assert.Equal(1, old.Advance(step => step < 1));
        var configPath = Path.Combine(dir.Path, Teacher.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        json.Remove("architecture");
        File.WriteAllText(configPath, json.ToJsonString());

        using var resumed = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings); // today's default: masked
        Assert.Equal(2, resumed.Advance(_ => true));
        Assert.False(resumed.Editor.Net.Masked);
        Assert.Equal(EditorArchitecture.Residual, Editor.ReadConfig(dir.Path).Architecture);
    }

    [Fact]
    public void The_delta_guidance_of_an_image_that_already_has_the_attribute_is_exactly_zero()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(89);
        var y = MethodSupport.Images(89, 2, 3, S, S);
        var source = AttributeCondition.FromLabels(MethodSupport.LabelsLackingSmiling(2));
        source[1, 0] = AttributeCondition.Present; // the second image already smiles
        var target = source.clone();
        target[.., 0] = AttributeCondition.Present;
        var t = tensor(new long[] { 400, 400 });
        var eps = randn([2, 3, S, S], generator: new Generator(90));
        var g = ScoreDistillation.Gradient(teacher, y, t, eps, target, source, new GuidanceSettings { Scale = 10 });
        Assert.True(g[0].abs().max().item<float>() > 0, "the image lacking the attribute is guided");
        Assert.Equal(0f, g[1].abs().max().item<float>());
    }

    [Fact]
    public void Training_batches_hold_images_that_already_have_the_attribute_in_delta_mode_only()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(91);
        var (x, y) = Tiny.Portraits(91, 0, 16, S);
        using var data = new LabeledTensors(x, y);
        long smiling = y[.., 0].gt(0).sum().item<long>();
        Assert.InRange(smiling, 1, 15);
        var settings = new DistillSettings { Steps = 2, BatchSize = 4, Timesteps = "fixed:400", Guidance = new GuidanceSettings { Scale = 10 } };
        using (var run = EditorDistillation.Open(dir["delta"], teacher, PortraitAttributes.Smiling, data, settings))
        {
            Assert.Equal(smiling, run.Positives);
            Assert.Equal(16 - smiling, run.Images);
            Assert.Equal(2, run.Advance(_ => true));
        }
        using var sds = EditorDistillation.Open(dir["sds"], teacher, PortraitAttributes.Smiling, data,
            settings with { Guidance = new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 30 }, PositiveShare = 0 });
        Assert.Equal(0, sds.Positives);
        Assert.Throws<FormatException>(() => (settings with { Guidance = new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 30 } }).Validated());

        var trainer = new Distillation(dir["one"], teacher, MethodSupport.EditorConfig(settings), TimestepSampler.Parse("fixed:400", 1000),
            MethodSupport.Images(92, 4, 3, S, S), MethodSupport.LabelsLackingSmiling(4), resume: false, (x.clone(), y.clone()));
        using (trainer) Assert.Equal(1, trainer.PositivesPerBatch);
    }
}
