using Sdd.Cli;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using Sdd.Ml.StableDiffusion;

namespace Sdd.Ml.Tests;

/// <summary>
/// A Stable Diffusion pipeline as the method's teacher for a text-prompt attribute: the states map to the prompt, the
/// source prompt and the empty prompt; v-prediction is turned into ε; an editor is distilled from a tiny random pipeline
/// on plain photos through the CLI and applied (with random weights the edit means nothing: the path is what is tested).
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class StableDiffusionTeacherTests
{
    private const string Prompt = "a photo of a cat", Source = "a photo";

    [Fact]
    public void The_attribute_states_condition_on_the_prompt_the_source_prompt_and_the_empty_prompt()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 61);
        using var teacher = StableDiffusionModel.LoadTeacher(dir["sd"], "cat", Prompt, Source);
        Assert.Equal(Teacher.KindStableDiffusion, teacher.Config.Kind);
        Assert.True(teacher.Latent);
        Assert.Equal(64, teacher.Size); // sample_size 32 × the tiny VAE's factor 2 (SD 1.x: 64 × 8 = 512)
        Assert.Equal(["cat"], teacher.Attributes);
        Assert.Equal(ScheduleKind.ScaledLinear, teacher.Schedule.Kind);
        Assert.Equal(Prompt, teacher.Config.Prompt);
        var tok = ClipTokenizer.FromFolder(dir["sd/tokenizer"]);
        var g = new Generator(63);
        var xt = randn([3, 4, 32, 32], generator: g);
        var t = tensor(new long[] { 100, 500, 900 });
        using var _ = no_grad();
        var states = tensor(new long[] { AttributeCondition.Present, AttributeCondition.Absent, AttributeCondition.Unknown }, [3, 1]);
        var eps = teacher.PredictNoise(xt, t, states);
        string[] texts = [Prompt, Source, ""];
        for (int i = 0; i < 3; i++)
        {
            var context = parts.Text.forward(tensor(tok.Encode(texts[i]), [1, 77]));
            var expected = parts.UNet.Forward(xt[i..(i + 1)], t[i..(i + 1)], context);
            Assert.True((expected - eps[i..(i + 1)]).abs().max().item<float>() < 1e-5f, $"state {i}");
        }
        // The three prompts really differ for the UNet.
        Assert.True((eps[0] - teacher.PredictNoise(xt[0..1], t[0..1], states[1..2])[0]).abs().max().item<float>() > 1e-4f);
        // A teacher of this kind is the user's weights: never saved.
        Assert.Throws<InvalidOperationException>(() => teacher.Save(dir["copy"]));
        Assert.Throws<ArgumentException>(() => teacher.PredictNoise(xt, t, zeros([3, 2], ScalarType.Int64)));
    }

    [Fact]
    public void Delta_guidance_with_the_source_prompt_equal_to_the_prompt_gives_no_gradient_and_cfg_does()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 67);
        using var same = StableDiffusionModel.LoadTeacher(dir["sd"], "cat", Prompt, Prompt);
        var g = new Generator(69);
        var z = randn([2, 4, 32, 32], generator: g);
        var eps = randn([2, 4, 32, 32], generator: g);
        var t = tensor(new long[] { 300, 700 });
        var source = full([2, 1], AttributeCondition.Absent, ScalarType.Int64);
        var target = full([2, 1], AttributeCondition.Present, ScalarType.Int64);
        var delta = ScoreDistillation.Gradient(same, z, t, eps, target, source, new GuidanceSettings { Mode = GuidanceMode.Delta, Scale = 10 });
        Assert.True(delta.abs().max().item<float>() < 1e-5f);
        var cfg = ScoreDistillation.Gradient(same, z, t, eps, target, source, new GuidanceSettings { Mode = GuidanceMode.Cfg, Scale = 10 });
        Assert.True(cfg.abs().max().item<float>() > 1e-3f);
        // w(t) = 1 − ᾱ_t on SD's schedule.
        Assert.Equal(1 - same.Schedule.AlphaBars[300], ScoreDistillation.Weight(same.Schedule, t)[0].item<float>(), 1e-6);
    }

    [Fact]
    public void A_v_prediction_UNet_is_read_as_noise()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 71);
        File.WriteAllText(dir["sd/scheduler/scheduler_config.json"], SdFixtures.SchedulerJson.Replace("\"steps_offset\": 1", "\"steps_offset\": 1, \"prediction_type\": \"v_prediction\""));
        using var teacher = StableDiffusionModel.LoadTeacher(dir["sd"], "cat", Prompt);
        var xt = randn([1, 4, 32, 32], generator: new Generator(73));
        var t = tensor(new long[] { 400 });
        using var _ = no_grad();
        var v = parts.UNet.Forward(xt, t, parts.Text.forward(tensor(ClipTokenizer.FromFolder(dir["sd/tokenizer"]).Encode(Prompt), [1, 77])));
        double ab = teacher.Schedule.AlphaBars[400];
        var expected = Math.Sqrt(ab) * v + Math.Sqrt(1 - ab) * xt;
        var eps = teacher.PredictNoise(xt, t, full([1, 1], AttributeCondition.Present, ScalarType.Int64));
        Assert.True((expected - eps).abs().max().item<float>() < 1e-5f);
    }

    private static readonly HashSet<string> Flags = ["resume", "help", "no-counterfactuals", "tables-only", "auto"];

    private static int Cli(Func<Options, int> command, params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try { return command(new Options(args, Flags)); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void An_editor_is_distilled_from_a_tiny_pipeline_on_plain_photos_and_edits_them()
    {
        using var dir = new TempDir();
        using var parts = SdFixtures.WriteDiffusers(dir["sd"], seed: 79);
        Directory.CreateDirectory(dir["photos/images"]);
        for (int i = 0; i < 12; i++)
            ImageCodec.SavePng(rand([3, 48 + 4 * i, 64], generator: new Generator((ulong)(80 + i))) * 2 - 1, dir[$"photos/images/p{i:00}.png"]);
        File.WriteAllText(dir["photos/labels.csv"], "image,smiling\nnot-there.png,1\n"); // ignored for a prompt attribute
        int code = Cli(MethodCommands.Distill, "--teacher", dir["sd"], "--prompt", Prompt, "--source-prompt", Source, "--attribute", "cat",
            "--dataset", dir["photos"], "--out", dir["editor"], "--steps", "3", "--batch", "2", "--timesteps", "list:300,500,700", "--scale", "10",
            "--mode", "delta", "--eval-images", "2", "--seed", "5");
        Assert.Equal(0, code);
        var config = Editor.ReadConfig(dir["editor"]);
        Assert.Equal(Prompt, config.Prompt);
        Assert.Equal(Source, config.SourcePrompt);
        Assert.Equal("cat", config.Attribute);
        Assert.Equal(64, config.ImageSize);
        Assert.Equal(3, config.Step);
        Assert.Equal([300, 500, 700], config.SelectedTimesteps);
        Assert.True(File.Exists(dir["editor/grid.png"]));
        // The shipped judges know SDD's portraits, not a prompt: none judges an SD editor unless given by hand.
        Assert.False(config.Metrics.ContainsKey("judgeAccuracy"));
        Assert.False(config.Metrics.ContainsKey("editability"));
        // The editor learned something from the teacher (it starts as the identity).
        using (var editor = Editor.Load(dir["editor"]))
        using (no_grad())
        {
            var x = ImageCodec.LoadTensor(dir["photos/images/p00.png"], 64).unsqueeze(0);
            Assert.True((editor.Net.forward(x) - x).abs().max().item<float>() > 0);
        }
        Assert.Equal(0, Cli(MethodCommands.Edit, "--editor", dir["editor"], "--in", dir["photos/images"], "--out", dir["edited"]));
        Assert.Equal(12, Directory.GetFiles(dir["edited"]).Length);

        // A pipeline without --prompt, or a prompt for an attribute teacher, is a usage error that says what to give.
        Assert.Contains("--prompt", Assert.Throws<UsageException>(() => Cli(MethodCommands.Distill, "--teacher", dir["sd"], "--attribute", "cat",
            "--dataset", dir["photos"], "--out", dir["e2"])).Message);
    }
}
