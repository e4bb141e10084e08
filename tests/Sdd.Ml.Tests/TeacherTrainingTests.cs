using Sdd.Cli;
using Sdd.Ml.Data;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using TorchSharp.PyBridge;

namespace Sdd.Ml.Tests;

/// <summary>The one teacher training procedure, as the CLI and the distill worker drive it.</summary>
[Collection(TorchCollection.Name)]
public sealed class TeacherTrainingTests
{
    private const int Size = 16;

    /// <summary>A tiny run: 16 px, two levels of 8 and 16 channels, batch 8.</summary>
    private static TeacherRunSettings Settings(int steps, int judgeSteps = 0) => new()
    {
        ImageSize = Size,
        Channels = [8, 16],
        Training = new TeacherTrainingSettings { Steps = steps, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 2, EmaDecay = 0.9, Seed = 3 },
        JudgeSteps = judgeSteps,
    };

    private static LabeledImageSet Portraits(TempDir dir, int count = 30)
    {
        PortraitDataset.Write(dir["portraits"], count, Size, seed: 2, counterfactuals: false);
        return LabeledImageSet.OpenFolder(dir["portraits"]);
    }

    private static void AssertSameWeights(string a, string b)
    {
        foreach (var file in new[] { Teacher.WeightsFile, Path.Combine("train", "raw.safetensors") })
        {
            var wa = Safetensors.LoadStateDict(Path.Combine(a, file));
            var wb = Safetensors.LoadStateDict(Path.Combine(b, file));
            Assert.Equal(wa.Keys.OrderBy(k => k), wb.Keys.OrderBy(k => k));
            foreach (var (key, ta) in wa) Assert.True(ta.allclose(wb[key], rtol: 1e-6, atol: 1e-6), $"{file}: '{key}' differs");
        }
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [Fact]
    public void Advancing_in_two_budgets_equals_stopping_and_resuming_with_the_steps_extended()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var set = Portraits(dir);
        var (x, y) = set.Load(Size);

        // One process, two budgets: 3 steps, then the rest.
        using (var run = TeacherTraining.Open(dir["budgets"], Settings(6), set.Attributes, x, y, resume: true))
        {
            Assert.Equal(3, run.Advance(step => step < 3));
            Assert.False(run.Trained);
            Assert.Equal(3, run.Advance(_ => true));
            Assert.True(run.Trained);
        }
        // A run of 3 steps, stopped; its folder copied (as through the object store), resumed with 6 steps.
        using (var first = TeacherTraining.Open(dir["first"], Settings(3), set.Attributes, x, y, resume: true)) first.AdvanceToEnd();
        Assert.Equal(3, Teacher.ReadConfig(dir["first"]).Step);
        CopyFolder(dir["first"], dir["resumed"]);
        using (var resumed = TeacherTraining.Open(dir["resumed"], Settings(6), set.Attributes, x, y, resume: true))
        {
            Assert.Equal(3, resumed.Step);
            Assert.False(resumed.Trained);
            Assert.Equal(3, resumed.AdvanceToEnd());
        }

        var config = Teacher.ReadConfig(dir["resumed"]);
        Assert.Equal(6, config.Step);
        Assert.Equal(6, config.Training!.Steps);
        Assert.Equal(UNetConfig.DefaultAttentionBelow(Size), config.Unet.AttentionBelow);
        AssertSameWeights(dir["budgets"], dir["resumed"]);
        // The teacher's weights are the EMA's, not the raw network's.
        var ema = Safetensors.LoadStateDict(dir["budgets/" + Teacher.WeightsFile]);
        var raw = Safetensors.LoadStateDict(dir["budgets/train/raw.safetensors"]);
        Assert.Contains(ema, kv => !kv.Value.allclose(raw[kv.Key]));
        Assert.True(x.isfinite().all().item<bool>(), "the caller's images outlive the runs");
    }

    [Fact]
    public void Finish_writes_the_judge_with_its_held_out_accuracy_and_the_cli_trains_the_same_teacher_as_the_worker()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var set = Portraits(dir, 40);

        // The CLI: `sdd teacher train`, straight through, then the judge.
        string[] args = ["--dataset", dir["portraits"], "--out", dir["cli"], "--size", "16", "--channels", "8,16", "--steps", "4", "--batch", "8",
            "--lr", "0.002", "--warmup", "2", "--ema", "0.9", "--seed", "3", "--judge-steps", "3"];
        Assert.Equal(0, TeacherCommands.Train(new Options(args, new HashSet<string> { "resume" })));

        // The worker: the settings as a teacher row stores them, two chunks of 2 steps, then Finish.
        var settings = TeacherRunSettings.FromJson("""{"steps":4,"image_size":16,"channels":"8,16","batch":8,"lr":0.002,"warmup":2,"ema":0.9,"seed":3,"judgeSteps":3}""");
        var (x, y) = set.Load(settings.ImageSize);
        using (var chunk1 = TeacherTraining.Open(dir["worker"], settings, set.Attributes, x, y)) chunk1.Advance(step => step < 2);
        TrainedJudge? judge;
        using (var chunk2 = TeacherTraining.Open(dir["worker"], settings, set.Attributes, x, y))
        {
            Assert.Equal(2, chunk2.Step);
            Assert.Throws<InvalidOperationException>(() => chunk2.Finish(set));
            chunk2.Advance(_ => true);
            judge = chunk2.Finish(set);
        }

        Assert.NotNull(judge);
        Assert.Equal(36, judge.TrainImages);
        Assert.Equal(4, judge.HeldOutImages);
        var saved = ModelFolder.ReadConfig<JudgeConfig>(dir["worker/judge"], "judge");
        Assert.Equal(PortraitAttributes.All, saved.AttributeNames);
        Assert.Equal(Size, saved.ImageSize);
        Assert.Equal(3, saved.Step);
        Assert.Equal(PortraitAttributes.All.OrderBy(a => a), saved.Accuracy.Keys.OrderBy(a => a));
        Assert.All(saved.Accuracy.Values, a => Assert.InRange(a, 0, 1));
        using (Judge.Load(dir["worker/judge"])) { }
        Assert.True(File.Exists(dir["cli/judge/model.safetensors"]));
        Assert.Equal(saved.Accuracy, ModelFolder.ReadConfig<JudgeConfig>(dir["cli/judge"], "judge").Accuracy);

        var cli = Teacher.ReadConfig(dir["cli"]);
        var worker = Teacher.ReadConfig(dir["worker"]);
        Assert.Equal(cli.Training, worker.Training);
        Assert.Equal(cli.Unet.Channels, worker.Unet.Channels);
        Assert.Equal((cli.Unet.ImageSize, cli.Unet.AttentionBelow, cli.Unet.Heads), (worker.Unet.ImageSize, worker.Unet.AttentionBelow, worker.Unet.Heads));
        AssertSameWeights(dir["cli"], dir["worker"]);

        // `sdd teacher eval --attributes`: only the rows asked for; an attribute the teacher lacks is a usage error.
        string[] eval = ["--teacher", dir["cli"], "--judge", dir["cli/judge"], "--samples", "2", "--steps", "2", "--json", dir["eval.json"]];
        Assert.Equal(0, TeacherCommands.Eval(new Options([.. eval, "--attributes", "hat, smiling"], new HashSet<string>())));
        var report = System.Text.Json.JsonSerializer.Deserialize<TeacherCommands.EvalReport>(File.ReadAllText(dir["eval.json"]), TeacherConfig.Json)!;
        Assert.Equal(["smiling", "hat"], report.Attributes.Select(a => a.Name)); // in the teacher's order
        Assert.All(report.Attributes, a => Assert.True(a.PresentRate is 0 or 0.5 or 1 && a.AbsentRate is 0 or 0.5 or 1));
        var unknown = Assert.Throws<UsageException>(() => TeacherCommands.Eval(new Options([.. eval, "--attributes", "freckles"], new HashSet<string>())));
        Assert.Contains("freckles", unknown.Message);
        Assert.Throws<UsageException>(() => TeacherCommands.Eval(new Options([.. eval, "--attributes", " , "], new HashSet<string>())));
        Assert.Equal(dir["cli/judge"], report.Judge);
        // Without --judge, the teacher's own judge (trained at its size), not the shipped 32 px one.
        Assert.Equal(dir["cli/judge"], ModelHome.JudgeFor(dir["cli"]));
        Assert.Equal(ModelHome.Judge, ModelHome.JudgeFor(dir["portraits"]));
        // Editors' commands (bench editors, editor gate) default to the shipped judge of the editors' size.
        Assert.Equal(Path.Combine(ModelHome.Root, "shared", "models", "latent128", "judge"), ModelHome.JudgeForSize(128));
        Assert.Equal(ModelHome.Judge, ModelHome.JudgeForSize(32));
        Assert.Equal(ModelHome.Judge, ModelHome.JudgeForSize(64));
        string[] ownJudge = ["--teacher", dir["cli"], "--samples", "2", "--steps", "2", "--attributes", "hat", "--json", dir["own.json"]];
        Assert.Equal(0, TeacherCommands.Eval(new Options(ownJudge, new HashSet<string>())));
        Assert.Equal(dir["cli/judge"], System.Text.Json.JsonSerializer.Deserialize<TeacherCommands.EvalReport>(File.ReadAllText(dir["own.json"]), TeacherConfig.Json)!.Judge);
    }

    [Fact]
    public void The_learning_rate_decays_along_a_half_cosine_from_its_step_and_a_resumed_run_can_anneal_the_steps_it_adds()
    {
        var s = new TeacherTrainingSettings { Steps = 10, LearningRate = 1e-3, WarmupSteps = 2, DecayFrom = 6 };
        Assert.Equal(0.5e-3, TeacherTrainer.LearningRate(s, 0), 12);           // warm-up
        Assert.Equal(1e-3, TeacherTrainer.LearningRate(s, 5), 12);
        Assert.Equal(1e-3, TeacherTrainer.LearningRate(s, 6), 12);             // the decay starts at its step
        Assert.Equal(0.5e-3, TeacherTrainer.LearningRate(s, 8), 12);           // half way: half the rate
        Assert.Equal(0.0, TeacherTrainer.LearningRate(s, 10), 12);
        Assert.Equal(1e-3, TeacherTrainer.LearningRate(s with { DecayFrom = null }, 9), 12);

        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var set = Portraits(dir);
        var (x, y) = set.Load(Size);
        using (var first = TeacherTraining.Open(dir["constant"], Settings(3), set.Attributes, x, y, resume: true)) first.AdvanceToEnd();
        CopyFolder(dir["constant"], dir["annealed"]);
        using (var run = TeacherTraining.Open(dir["constant"], Settings(6), set.Attributes, x, y, resume: true)) run.AdvanceToEnd();
        var annealing = Settings(6) with { Training = Settings(6).Training with { DecayFrom = 3 } };
        using (var run = TeacherTraining.Open(dir["annealed"], annealing, set.Attributes, x, y, resume: true)) run.AdvanceToEnd();

        Assert.Equal(3, Teacher.ReadConfig(dir["annealed"]).Training!.DecayFrom);
        Assert.Null(Teacher.ReadConfig(dir["constant"]).Training!.DecayFrom);
        var constant = Safetensors.LoadStateDict(dir["constant/train/raw.safetensors"]);
        var annealed = Safetensors.LoadStateDict(dir["annealed/train/raw.safetensors"]);
        Assert.Contains(annealed, kv => !kv.Value.allclose(constant[kv.Key]));

        var e = Assert.Throws<FormatException>(() => (Settings(6) with { Training = Settings(6).Training with { DecayFrom = 6 } }).Validated());
        Assert.Contains("decay", e.Message);
        Assert.Equal(4, TeacherRunSettings.FromJson("""{"steps":8,"decay_from":4}""").Training.DecayFrom);
    }

    [Fact]
    public void A_bad_setting_fails_with_a_message_naming_it()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var (x, y) = Tiny.Portraits(1, 0, 4, Size);
        var e = Assert.Throws<FormatException>(() => TeacherTraining.Open(dir.Path, Settings(2) with { Channels = [8, 12] }, PortraitAttributes.All, x, y));
        Assert.Contains("channels", e.Message);
        Assert.Contains("12", e.Message);
        e = Assert.Throws<FormatException>(() => TeacherTraining.Open(dir.Path, Settings(2) with { ImageSize = 18, Channels = [8, 16, 32] }, PortraitAttributes.All, x, y));
        Assert.Contains("image size 18", e.Message);
        Assert.Contains("divisible by 4", e.Message);
        Assert.False(Directory.Exists(dir["train"]), "nothing is written for refused settings");

        // The stored settings are checked the same way; the CLI turns the message into its usage error.
        e = Assert.Throws<FormatException>(() => TeacherRunSettings.FromJson("""{"steps":10,"channels":[16,20]}"""));
        Assert.Contains("channels", e.Message);
        var usage = Assert.Throws<UsageException>(() => TeacherCommands.Train(new Options(
            ["--dataset", dir.Path, "--out", dir["out"], "--channels", "8,12"], new HashSet<string> { "resume" })));
        Assert.Contains("channels", usage.Message);
    }

    [Fact]
    public void Stored_settings_take_the_one_set_of_defaults_and_what_the_api_stores()
    {
        var d = new TeacherRunSettings();
        Assert.Equal(new TeacherTrainingSettings(), d.Training);
        Assert.Equal(new UNetConfig().Channels, d.Channels);
        Assert.Equal(new UNetConfig().AttentionBelow, d.Config(PortraitAttributes.All, null).Unet.AttentionBelow);

        var api = TeacherRunSettings.FromJson("""{"steps":20,"imageSize":64}""", new TeacherRunSettings { JudgeSteps = 7 });
        Assert.Equal(20, api.Training.Steps);
        Assert.Equal(64, api.ImageSize);
        Assert.Equal(7, api.JudgeSteps);
        Assert.Equal(16, api.Config(PortraitAttributes.All, "set").Unet.AttentionBelow);
        Assert.Equal(d.Training with { Steps = 20 }, api.Training);

        var knobs = TeacherRunSettings.FromJson("""{"Channels":[8,16],"batch_size":4,"judge_steps":0,"schedule":"cosine","other":{"x":1}}""");
        Assert.Equal(new[] { 8, 16 }, knobs.Channels);
        Assert.Equal(4, knobs.Training.BatchSize);
        Assert.Equal(0, knobs.JudgeSteps);
        Assert.Equal(ScheduleKind.Cosine, knobs.Schedule);
        Assert.Throws<FormatException>(() => TeacherRunSettings.FromJson("""{"steps":"many"}"""));
    }
}
