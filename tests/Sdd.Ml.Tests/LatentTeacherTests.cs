using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Portraits;

namespace Sdd.Ml.Tests;

/// <summary>The latent-ddpm teacher: a UNet on an autoencoder's latents, images in and out; editors trained through the encoder.</summary>
[Collection(TorchCollection.Name)]
public sealed class LatentTeacherTests
{
    private const int S = MethodSupport.Size;

    [Fact]
    public void A_latent_teacher_takes_and_gives_images_while_its_unet_sees_latents()
    {
        using var scope = NewDisposeScope();
        using var teacher = LatentSupport.Teacher(81);
        Assert.True(teacher.Latent);
        Assert.Equal(S, teacher.Size);
        Assert.Equal(S / 4, teacher.ModelSize);
        var (x, labels) = Tiny.Portraits(81, 0, 3, S);
        var states = AttributeCondition.FromLabels(labels);
        Assert.Equal(new long[] { 3, 4, S / 4, S / 4 }, teacher.ToModelSpace(x).shape);
        Assert.Equal(new long[] { 3, 4, S / 4, S / 4 }, teacher.ModelShape(x.shape));
        teacher.Evaluations = 0;
        var sampled = teacher.Sample(states, 4, 2.0, new Generator(1));
        Assert.Equal(new long[] { 3, 3, S, S }, sampled.shape);
        Assert.Equal(3 * 4 * 2, teacher.Evaluations); // the UNet ran on the latents, two evaluations per step under guidance
        var edited = teacher.SdEdit(x, states, 200, 4, 2.0, new Generator(2));
        Assert.Equal(x.shape, edited.shape);
        Assert.True(Tiny.Finite(edited) && edited.abs().max().item<float>() <= 1f);
        Assert.Equal(x.shape, teacher.InvertAndRegenerate(x, states, states, 100, 4, 1.0).shape);
    }

    [Fact]
    public void A_latent_teacher_saves_its_autoencoder_beside_it_and_loads_to_identical_predictions()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = LatentSupport.Teacher(82);
        teacher.Save(dir.Path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "vae", "config.json")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "vae", AutoencoderConfig.WeightsFile)));
        using var loaded = Teacher.Load(dir.Path);
        Assert.Equal(Teacher.KindLatentDdpm, loaded.Config.Kind);
        var (x, labels) = Tiny.Portraits(82, 0, 2, S);
        var states = AttributeCondition.FromLabels(labels);
        using var _ = no_grad();
        Assert.True(Tiny.BitEqual(teacher.ToModelSpace(x), loaded.ToModelSpace(x)));
        var z = teacher.ToModelSpace(x);
        var t = full([2], 300, ScalarType.Int64);
        Assert.True(Tiny.BitEqual(teacher.PredictNoise(z, t, states), loaded.PredictNoise(z, t, states)));

        // A latent teacher without its autoencoder is refused, and so is a pixel teacher given one.
        Directory.Delete(Path.Combine(dir.Path, "vae"), true);
        Assert.ThrowsAny<IOException>(() => Teacher.Load(dir.Path));
        Assert.Throws<ArgumentException>(() => new Teacher(LatentSupport.TeacherConfig()));
        Assert.Throws<ArgumentException>(() => new Teacher(MethodSupport.TeacherConfig(), autoencoder: new Autoencoder(LatentSupport.AutoencoderConfig())));
    }

    [Fact]
    public void Distillation_through_the_encoder_changes_the_pixel_editor_and_neither_the_teacher_nor_its_autoencoder()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = LatentSupport.Teacher(83);
        var unetBefore = MethodSupport.Snapshot(teacher.Net);
        var aeBefore = MethodSupport.Snapshot(teacher.Autoencoder!.Net);
        var images = MethodSupport.Images(83, 6, 3, S, S);
        var labels = MethodSupport.LabelsLackingSmiling(6);
        var settings = new DistillSettings { Steps = 3, BatchSize = 4, LearningRate = 1e-3, Lambda = 0.1, Guidance = new GuidanceSettings { Scale = 10 }, Timesteps = "list:300,500", Seed = 3 };
        using var run = new Distillation(dir.Path, teacher, MethodSupport.EditorConfig(settings), TimestepSampler.FromSet([300, 500], "list:300,500"), images, labels, resume: false);
        Assert.Equal(S, run.Editor.Config.ImageSize);
        var editorBefore = MethodSupport.Snapshot(run.Editor.Net);
        run.TrainStep();
        run.TrainStep();
        Assert.NotEmpty(MethodSupport.Changed(run.Editor.Net, editorBefore));
        Assert.Empty(MethodSupport.Changed(teacher.Net, unetBefore));
        Assert.Empty(MethodSupport.Changed(teacher.Autoencoder.Net, aeBefore));
        Assert.All(teacher.Autoencoder.Net.parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0, "the frozen autoencoder got a gradient"));
        using var _ = no_grad();
        var x = MethodSupport.Images(84, 2, 3, S, S);
        Assert.False(Tiny.BitEqual(run.Editor.Edit(x), x), "the editor still edits nothing: no gradient reached it through the encoder");
    }
}
