using Sdd.Ml.Diffusion;
using Sdd.Ml.Portraits;
using TorchSharp.PyBridge;
using Xunit.Abstractions;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class TeacherTests(ITestOutputHelper output)
{
    private const int Size = 16;

    private static TeacherConfig Config(TeacherTrainingSettings? training = null) => new()
    {
        AttributeNames = [.. PortraitAttributes.All],
        Unet = new UNetConfig { ImageSize = Size, Channels = [16, 32], AttentionBelow = 8, Heads = 2, Attributes = PortraitAttributes.All.Count },
        Training = training,
    };

    private static TeacherTrainingSettings Settings(int steps, double lr = 1e-3, long seed = 1) => new()
    {
        Steps = steps,
        BatchSize = 16,
        LearningRate = lr,
        WarmupSteps = 2,
        EmaDecay = 0.9,
        CheckpointEvery = 1000,
        Seed = seed,
    };

    /// <summary>A teacher whose weights are moved off the initial values, so that its output is not identically zero.</summary>
    private static Teacher PerturbedTeacher(long seed)
    {
        random.manual_seed(seed);
        var teacher = new Teacher(Config());
        Tiny.Perturb(teacher.Net, seed);
        return teacher;
    }

    [Fact]
    public void Training_lowers_the_loss()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var (images, labels) = Tiny.Portraits(31, 0, 32, Size);
        using var trainer = new TeacherTrainer(dir.Path, Config(Settings(30, lr: 3e-3)), images, labels, CPU, resume: false);
        var losses = new List<double>();
        for (int i = 0; i < 30; i++) losses.Add(trainer.TrainStep());
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        double first = losses.Take(5).Average(), last = losses.TakeLast(5).Average();
        output.WriteLine($"loss: first 5 mean {first:0.000}, last 5 mean {last:0.000}");
        Assert.True(last < first, $"loss did not fall: first 5 mean {first:0.000}, last 5 mean {last:0.000} ({string.Join(", ", losses.Select(l => l.ToString("0.000")))})");
        Assert.Equal(30, trainer.Step);
    }

    [Fact]
    public void Teacher_save_then_load_predicts_bit_identical_noise()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = PerturbedTeacher(4);
        var x = randn(3, 3, Size, Size);
        var t = tensor(new long[] { 5, 400, 950 });
        var states = tensor(new long[] { 0, 1, 2, 2, 1, 2, 2, 2, 2, 2, 1, 0, 0, 0, 1 }, [3, 5]);
        using var _ = no_grad();
        var before = teacher.PredictNoise(x, t, states);
        Assert.True(before.abs().max().item<float>() > 0, "a perturbed teacher should not predict zero");

        teacher.Save(dir.Path, teacher.Config with { Step = 17, Metrics = new() { ["fid"] = 1.5 } });
        using var loaded = Teacher.Load(dir.Path);
        Assert.True(Tiny.BitEqual(before, loaded.PredictNoise(x, t, states)));
        Assert.Equal(PortraitAttributes.All, loaded.Attributes);
        Assert.Equal(new[] { 16, 32 }, loaded.Config.Unet.Channels);
        Assert.Equal(17, loaded.Config.Step);
        Assert.Equal(1.5, loaded.Config.Metrics["fid"]);
        Assert.Equal(ScheduleKind.Linear, loaded.Config.Schedule);
    }

    [Fact]
    public void Loading_a_missing_teacher_says_what_is_missing()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => Teacher.Load(dir.Path));
        Assert.Contains("config.json", e.Message);
        Assert.Throws<NotSupportedException>(() => new Teacher(Config() with { Kind = "stable-diffusion" }));
        Assert.Throws<ArgumentException>(() => new Teacher(Config() with { AttributeNames = ["a"] }));
    }

    [Fact]
    public void Resumed_training_matches_an_uninterrupted_run()
    {
        using var scope = NewDisposeScope();
        using var a = new TempDir();
        using var b = new TempDir();
        var (images, labels) = Tiny.Portraits(41, 0, 16, Size);
        var config = Config(Settings(6, lr: 2e-3, seed: 5));

        using (var straight = new TeacherTrainer(a.Path, config, images.clone(), labels.clone(), CPU, resume: false)) straight.Run(6);
        using (var first = new TeacherTrainer(b.Path, config, images.clone(), labels.clone(), CPU, resume: false)) first.Run(3);
        Assert.Equal(3, Teacher.ReadConfig(b.Path).Step);
        using (var resumed = new TeacherTrainer(b.Path, config, images.clone(), labels.clone(), CPU, resume: true))
        {
            Assert.Equal(3, resumed.Step);
            resumed.Run(6);
        }
        Assert.Equal(6, Teacher.ReadConfig(b.Path).Step);

        foreach (var file in new[] { Teacher.WeightsFile, Path.Combine("train", "raw.safetensors") })
        {
            var wa = Safetensors.LoadStateDict(Path.Combine(a.Path, file));
            var wb = Safetensors.LoadStateDict(Path.Combine(b.Path, file));
            Assert.Equal(wa.Keys.OrderBy(k => k), wb.Keys.OrderBy(k => k));
            foreach (var (key, ta) in wa)
                Assert.True(ta.allclose(wb[key], rtol: 1e-6, atol: 1e-6), $"{file}: '{key}' differs after resuming");
        }
        // The run did move the weights: the straight EMA differs from a fresh initialisation.
        var ema = Safetensors.LoadStateDict(Path.Combine(a.Path, Teacher.WeightsFile));
        Assert.Contains(ema, kv => kv.Key.StartsWith("outConv") && kv.Value.abs().max().item<float>() > 0);
    }

    [Fact]
    public void Resume_without_a_checkpoint_is_refused()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var (images, labels) = Tiny.Portraits(1, 0, 4, Size);
        var e = Assert.Throws<InvalidOperationException>(() => new TeacherTrainer(dir.Path, Config(Settings(1)), images, labels, CPU, resume: true));
        Assert.Contains("state.json", e.Message);
    }

    /// <summary>The trainer owns its copies; the caller's tensors must survive the trainer's Dispose.</summary>
    [Fact]
    public void Disposing_the_trainer_leaves_the_callers_tensors_usable()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var (images, labels) = Tiny.Portraits(2, 0, 4, Size);
        using (new TeacherTrainer(dir.Path, Config(Settings(1)), images, labels, CPU, resume: false)) { }
        var e = Record.Exception(() => images.sum().item<float>() + labels.sum().item<float>());
        Assert.Null(e);
    }

    [Fact]
    public void Ddim_sample_and_SdEdit_give_finite_images_and_count_two_evaluations_per_image_per_step_under_guidance()
    {
        using var scope = NewDisposeScope();
        using var teacher = PerturbedTeacher(6);
        var states = AttributeCondition.Single(2, 5, 3, true, CPU);

        teacher.Evaluations = 0;
        var sample = teacher.Sample(states, steps: 4, guidance: 3.0, generator: new Generator(1));
        Assert.Equal(new long[] { 2, 3, Size, Size }, sample.shape);
        Assert.True(Tiny.Finite(sample));
        Assert.True(sample.abs().max().item<float>() <= 1f, "the last DDIM step returns the clipped x0");
        Assert.Equal(2 * 2 * 4, teacher.Evaluations);

        teacher.Evaluations = 0;
        var again = teacher.Sample(states, steps: 4, guidance: 3.0, generator: new Generator(1));
        Assert.True(Tiny.BitEqual(sample, again), "sampling with the same generator seed is deterministic");

        teacher.Evaluations = 0;
        teacher.Sample(states, steps: 4, guidance: 1.0, generator: new Generator(1));
        Assert.Equal(2 * 4, teacher.Evaluations);

        var (source, _) = Tiny.Portraits(7, 0, 2, Size);
        teacher.Evaluations = 0;
        var edited = teacher.SdEdit(source, states, t0: 300, steps: 3, guidance: 2.0, generator: new Generator(2));
        Assert.Equal(source.shape, edited.shape);
        Assert.True(Tiny.Finite(edited));
        Assert.Equal(2 * 2 * 3, teacher.Evaluations);
        Assert.True((edited - source).abs().max().item<float>() > 0);
    }

    [Fact]
    public void Guidance_of_one_equals_the_conditional_prediction_and_zero_the_unconditional()
    {
        using var scope = NewDisposeScope();
        using var teacher = PerturbedTeacher(8);
        using var _ = no_grad();
        var x = randn(2, 3, Size, Size);
        var t = tensor(new long[] { 100, 700 });
        var states = AttributeCondition.Single(2, 5, 0, true, CPU);
        var cond = teacher.PredictNoise(x, t, states);
        var uncond = teacher.PredictNoise(x, t, AttributeCondition.Null(2, 5, CPU));
        Assert.True(teacher.GuidedNoise(x, t, states, 1.0).allclose(cond, rtol: 1e-5, atol: 1e-6));
        Assert.True(teacher.GuidedNoise(x, t, states, 0.0).allclose(uncond, rtol: 1e-4, atol: 1e-5));
        Assert.True(teacher.GuidedNoise(x, t, states, 3.0).allclose(uncond + 3 * (cond - uncond), rtol: 1e-4, atol: 1e-5));
    }
}
