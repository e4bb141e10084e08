using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class EditorTests
{
    private const int S = MethodSupport.Size;

    [Fact]
    public void An_untrained_editor_is_exactly_the_identity_at_its_size_and_in_residual_mode()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(31);
        using var editor = new Editor(MethodSupport.EditorConfig());
        var x = MethodSupport.Images(1, 3, 3, S, S);
        using (no_grad()) Assert.Equal(0f, editor.Net.Delta(x).abs().max().item<float>());
        Assert.True(Tiny.BitEqual(editor.Edit(x), x));

        var wide = MethodSupport.Images(2, 2, 3, 24, 40);
        Assert.True(Tiny.BitEqual(editor.Edit(wide), wide));
        var tall = MethodSupport.Images(3, 1, 3, 40, 24);
        Assert.True(Tiny.BitEqual(editor.Edit(tall), tall));
    }

    [Fact]
    public void The_default_editor_has_a_sane_parameter_count()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(32);
        using var editor = new Editor(new EditorConfig { Attribute = "smiling", ImageSize = 32 });
        Assert.InRange(editor.ParameterCount, 300_000, 3_000_000);
    }

    [Fact]
    public void Residual_mode_leaves_pixels_where_the_edit_is_zero_bit_identical()
    {
        using var scope = NewDisposeScope();
        var x = MethodSupport.Images(4, 1, 3, 64, 96);
        var seen = new List<long[]>();
        Tensor EditTopLeft(Tensor small)
        {
            seen.Add(small.shape);
            var y = small.clone();
            long h = small.shape[2], w = small.shape[3];
            y[.., .., TensorIndex.Slice(0, h / 2), TensorIndex.Slice(0, w / 2)] += 0.5f;
            return y;
        }
        var y = ResidualMode.Apply(x, S, EditTopLeft);
        Assert.Equal(x.shape, y.shape);
        Assert.Equal(new long[] { 1, 3, 16, 24 }, seen.Single()); // shorter side at the model's size, aspect kept
        // The far (bottom-right) quarter is untouched, bit for bit; the top-left corner moved by the edit.
        // (Bilinear upscaling by 4 spreads the edited rows 0..7 / columns 0..11 of the small image up to about
        // row 34 / column 50 of the large one.)
        Tensor Far(Tensor v) => v[TensorIndex.Ellipsis, TensorIndex.Slice(40, 64), TensorIndex.Slice(60, 96)];
        Assert.True(Tiny.BitEqual(Far(y), Far(x)));
        var near = (y - x)[.., .., TensorIndex.Slice(0, 16), TensorIndex.Slice(0, 24)];
        Assert.True(near.allclose(full_like(near, 0.5f), rtol: 0, atol: 1e-5));

        // An edit that returns its input gives back the input exactly, at any size.
        Assert.True(Tiny.BitEqual(ResidualMode.Apply(x, S, s => s), x));
        var odd = MethodSupport.Images(5, 2, 3, 37, 21);
        Assert.True(Tiny.BitEqual(ResidualMode.Apply(odd, S, s => s), odd));
        // At the model's size the edit is applied directly.
        var direct = MethodSupport.Images(6, 2, 3, S, S);
        Assert.True(Tiny.BitEqual(ResidualMode.Apply(direct, S, s => s * 0.5), direct * 0.5));
    }

    [Fact]
    public void Residual_mode_feeds_the_editor_sides_that_are_multiples_of_4()
    {
        using var scope = NewDisposeScope();
        foreach (var (h, w) in new[] { (24, 40), (40, 24), (17, 50), (100, 33), (8, 8), (16, 18) })
        {
            var x = MethodSupport.Images(h * 1000 + w, 1, 3, h, w);
            long[]? small = null;
            ResidualMode.Apply(x, S, s => { small = s.shape; return s; });
            Assert.NotNull(small);
            Assert.True(small![2] % 4 == 0 && small[3] % 4 == 0, $"{h}x{w} -> {small[2]}x{small[3]}");
            Assert.Equal(S, Math.Min(small[2], small[3]));
        }
    }

    [Fact]
    public void Save_then_load_from_a_folder_or_from_bytes_edits_bit_identically()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        random.manual_seed(33);
        var config = MethodSupport.EditorConfig(new DistillSettings { Steps = 7, Guidance = new GuidanceSettings { Mode = GuidanceMode.Sds, Scale = 30, TopK = 5 } })
            with { SelectedTimesteps = [300, 450], Step = 7, Metrics = new() { ["psnr"] = 31.5 } };
        using var editor = new Editor(config);
        Tiny.Perturb(editor.Net, 33, scale: 0.02);
        var x = MethodSupport.Images(7, 2, 3, S, S);
        var wide = MethodSupport.Images(8, 1, 3, 20, 36);
        var before = editor.Edit(x);
        var beforeWide = editor.Edit(wide);
        Assert.True((before - x).abs().max().item<float>() > 0, "a perturbed editor should edit");

        editor.Save(dir.Path);
        using var loaded = Editor.Load(dir.Path);
        Assert.True(Tiny.BitEqual(loaded.Edit(x), before));
        Assert.True(Tiny.BitEqual(loaded.Edit(wide), beforeWide));
        Assert.Equal(config.Attribute, loaded.Config.Attribute);
        Assert.Equal([300, 450], loaded.Config.SelectedTimesteps);
        Assert.Equal(GuidanceMode.Sds, loaded.Config.Settings.Guidance.Mode);
        Assert.Equal(5, loaded.Config.Settings.Guidance.TopK);
        Assert.Equal(31.5, loaded.Config.Metrics["psnr"]);

        using var fromBytes = Editor.Load(File.ReadAllText(Path.Combine(dir.Path, Teacher.ConfigFile)), File.ReadAllBytes(Path.Combine(dir.Path, Teacher.WeightsFile)));
        Assert.True(Tiny.BitEqual(fromBytes.Edit(x), before));
        Assert.Equal(config.Channels, fromBytes.Config.Channels);
        Assert.Equal(config.ResBlocks, fromBytes.Config.ResBlocks);
    }

    [Fact]
    public void Loading_a_missing_editor_says_what_is_missing()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => Editor.Load(dir.Path));
        Assert.Contains(Teacher.ConfigFile, e.Message);
    }

    [Fact]
    public void The_mask_gate_zeroes_faint_mask_values_ramps_to_the_gate_and_keeps_the_rest()
    {
        using var scope = NewDisposeScope();
        var m = tensor(new float[] { 0f, 0.1f, 0.19f, 0.2f, 0.3f, 0.4f, 0.5f, 0.9f, 1f });
        Assert.True(Tiny.BitEqual(EditorNet.Gate(m, 0), m));
        var gated = EditorNet.Gate(m, 0.4);
        // Below gate / 2 nothing; at the gate and above, m itself; halfway between, half of m.
        var expected = tensor(new float[] { 0f, 0f, 0f, 0f, 0.15f, 0.4f, 0.5f, 0.9f, 1f });
        Assert.True(gated.allclose(expected, rtol: 0, atol: 1e-6), string.Join(", ", gated.data<float>().ToArray()));
    }

    [Fact]
    public void A_masked_editors_gate_travels_in_its_config_and_leaves_gated_pixels_bit_identical()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        random.manual_seed(34);
        var config = MethodSupport.EditorConfig() with { Architecture = EditorArchitecture.Masked };
        using var editor = new Editor(config);
        Tiny.Perturb(editor.Net, 34, scale: 0.3);
        var x = MethodSupport.Images(9, 2, 3, S, S) * 0.5;
        Tensor change, mask;
        using (no_grad()) { var parts = editor.Net.Parts(x); change = parts.Change; mask = parts.Mask!; }
        // A gate whose half is the mask's lower quartile: a quarter of the pixels stop editing.
        double gate = 2 * mask.flatten().sort().Values[mask.numel() / 4].item<float>();
        Assert.InRange(gate, 0.05, 0.95);
        var ungated = editor.Edit(x);
        editor.Save(dir.Path);
        Assert.Equal(0, Editor.ReadConfig(dir.Path).MaskGate);

        Editor.SetGate(dir.Path, gate);
        using var loaded = Editor.Load(dir.Path);
        Assert.Equal(gate, loaded.Config.MaskGate);
        Assert.Equal(gate, loaded.Net.MaskGate);
        var y = loaded.Edit(x);
        Assert.True(y.allclose((x + EditorNet.Gate(mask, gate) * change).clamp(-1, 1), rtol: 0, atol: 1e-6));
        var off = mask.lt(gate / 2).expand_as(x);
        Assert.True(off.any().item<bool>());
        Assert.True(Tiny.BitEqual(y.masked_select(off), x.masked_select(off)), "a gated pixel must come back as it went in");
        Assert.True((ungated.masked_select(off) - x.masked_select(off)).abs().max().item<float>() > 0, "without the gate those pixels were edited");
        var on = mask.ge(gate).expand_as(x);
        Assert.True(Tiny.BitEqual(y.masked_select(on), ungated.masked_select(on)), "above the gate the edit is the ungated one");

        // The workers load editors from their config and weights as bytes: the gate comes with them.
        using var fromBytes = Editor.Load(File.ReadAllText(Path.Combine(dir.Path, Teacher.ConfigFile)), File.ReadAllBytes(Path.Combine(dir.Path, Teacher.WeightsFile)));
        Assert.True(Tiny.BitEqual(fromBytes.Edit(x), y));

        Editor.SetGate(dir.Path, 0);
        using var reopened = Editor.Load(dir.Path);
        Assert.True(Tiny.BitEqual(reopened.Edit(x), ungated));
    }

    [Fact]
    public void A_gate_out_of_range_or_on_a_residual_editor_is_refused_with_the_reason()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        random.manual_seed(35);
        using (var residual = new Editor(MethodSupport.EditorConfig())) residual.Save(dir.Path);
        var before = File.ReadAllText(Path.Combine(dir.Path, Teacher.ConfigFile));
        var e = Assert.Throws<InvalidDataException>(() => Editor.SetGate(dir.Path, 0.3));
        Assert.Contains("only a masked editor", e.Message);
        Assert.Equal(before, File.ReadAllText(Path.Combine(dir.Path, Teacher.ConfigFile)));

        var masked = MethodSupport.EditorConfig() with { Architecture = EditorArchitecture.Masked, MaskGate = 1.5 };
        e = Assert.Throws<InvalidDataException>(() => new Editor(masked));
        Assert.Contains("mask_gate must be in [0, 1)", e.Message);
    }

    [Fact]
    public void The_gate_chosen_is_the_largest_that_keeps_editability_at_the_target()
    {
        var measured = new Dictionary<double, double> { [0] = 1.0, [0.05] = 0.97, [0.1] = 0.94, [0.15] = 0.96, [0.2] = 0.95, [0.25] = 0.6 };
        var choice = MaskGating.Choose(g => measured[g], 0.95, [0.25, 0.2, 0.1, 0.05, 0.15]);
        Assert.Equal(0.2, choice.Gate); // past the dip at 0.1; 0.25 loses the edit
        Assert.Equal([0, 0.05, 0.1, 0.15, 0.2, 0.25], choice.Trials.Select(t => t.Gate));
        Assert.Equal(0.6, choice.Trials[^1].Editability);

        var weak = MaskGating.Choose(g => 0.5, 0.95, [0, 0.5]);
        Assert.Equal(0, weak.Gate);
        Assert.Equal(2, weak.Trials.Count);
    }

    [Fact]
    public void Choosing_a_gate_measures_each_gate_as_the_gated_editor_edits()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(36);
        using var editor = new Editor(MethodSupport.EditorConfig() with { Architecture = EditorArchitecture.Masked });
        Tiny.Perturb(editor.Net, 36, scale: 0.3);
        using var judge = new Judge(new JudgeConfig { AttributeNames = [.. PortraitAttributes.All], ImageSize = S, Channels = [8, 8] });
        Tiny.Perturb(judge.Net, 37, scale: 0.5);
        var x = MethodSupport.Images(10, 12, 3, S, S) * 0.5;
        int a = judge.AttributeIndex(PortraitAttributes.Smiling);
        // Centre the untrained judge's call on these edits, so that some of them flip as the gate takes parts of the edit away.
        using (no_grad())
        {
            var logits = judge.Net.forward(editor.Edit(x))[.., a];
            var bias = judge.Net.named_parameters().Single(p => p.name == "head.bias").parameter;
            bias[a] -= logits.median();
        }
        double[] gates = [0, 0.3, 0.6, 0.9];
        var choice = MaskGating.Choose(editor, judge, PortraitAttributes.Smiling, x, target: 0, gates);
        Assert.Equal(0.9, choice.Gate); // a target of 0 keeps every gate
        Assert.Equal(0, editor.Net.MaskGate); // left as it was
        foreach (var t in choice.Trials)
        {
            editor.Net.MaskGate = t.Gate;
            var called = judge.Probabilities(editor.Edit(x))[.., a].gt(0.5).to_type(ScalarType.Float32).mean().item<float>();
            Assert.Equal(called, t.Editability, 6);
        }
        Assert.True(choice.Trials.Select(t => t.Editability).Distinct().Count() > 1, "the gates should change what this judge calls edited: " + string.Join(", ", choice.Trials));
        using var residual = new Editor(MethodSupport.EditorConfig());
        Assert.Throws<ArgumentException>(() => MaskGating.Choose(residual, judge, PortraitAttributes.Smiling, x, 0.9));
    }
}
