using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
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

    [Fact]
    public void The_decoder_turns_a_latent_gradient_into_the_image_change_that_step_decodes_to()
    {
        using var scope = NewDisposeScope();
        using var teacher = LatentSupport.Teacher(85);
        var (x, _) = Tiny.Portraits(85, 0, 3, S);
        using var _ = no_grad();
        var z = teacher.ToModelSpace(x);
        var g = randn(z.shape, generator: new Generator(5));
        g[2] = zeros_like(g[2]); // an image that already has the attribute: no guidance
        var d = ScoreDistillation.DecodedGradient(teacher, z, g);
        Assert.Equal(x.shape, d.shape);
        Assert.Equal(0f, d[2].abs().max().item<float>());
        // A small step along g, decoded and divided by the 4x4 pixels of a latent cell: the same direction and size.
        var ae = teacher.Autoencoder!;
        for (int i = 0; i < 2; i++)
        {
            const double step = 1e-2;
            var zi = z[i].unsqueeze(0);
            var gi = g[i].unsqueeze(0);
            var change = ((ae.Decode(zi + step * gi, clamp: false) - ae.Decode(zi, clamp: false)) / (step * 16)).flatten();
            var di = d[i].flatten();
            double cosine = (change.dot(di) / (change.norm() * di.norm())).item<float>();
            double ratio = (di.norm() / change.norm()).item<float>();
            Assert.True(cosine > 0.98, $"image {i}: cosine {cosine}");
            Assert.InRange(ratio, 0.9, 1.1);
        }
        Assert.Throws<ArgumentException>(() => ScoreDistillation.DecodedGradient(MethodSupport.Teacher(1), x, x));
    }

    [Fact]
    public void The_finite_decoder_step_decodes_k_times_the_teachers_change_of_its_clean_latent_prediction()
    {
        using var scope = NewDisposeScope();
        using var teacher = LatentSupport.Teacher(91);
        var (x, labels) = Tiny.Portraits(91, 0, 3, S);
        using var _ = no_grad();
        var z = teacher.ToModelSpace(x);
        long[] ts = [300, 450, 600];
        var t = tensor(ts);
        var eps = randn(z.shape, generator: new Generator(8));
        var source = AttributeCondition.Single(3, teacher.Attributes.Count, 0, present: false, CPU);
        var target = source.clone();
        target[.., 0] = AttributeCondition.Present;
        target[2] = source[2].clone(); // the third image already "has" it: no guidance
        const double s = 40, k = 3;
        var g = ScoreDistillation.Gradient(teacher, z, t, eps, target, source, new GuidanceSettings { Mode = GuidanceMode.Delta, Scale = s });
        var d = ScoreDistillation.DecodedStep(teacher, z, g, t, s, k);
        Assert.Equal(x.shape, d.shape);
        Assert.Equal(0f, d[2].abs().max().item<float>());

        // By hand: the teacher's two predictions of the clean latent, x0 = (x_t - sqrt(1 - ab) eps_hat) / sqrt(ab).
        var ae = teacher.Autoencoder!;
        var ab = teacher.Schedule.AlphaBar(t);
        var xt = teacher.Schedule.AddNoise(z, t, eps);
        Tensor X0(Tensor states) => (xt - (1 - ab).sqrt() * teacher.PredictNoise(xt, t, states)) / ab.sqrt();
        var change = X0(target) - X0(source);
        var h = k / (s * (ab * (1 - ab)).sqrt());
        var expected = (ae.Decode(z, clamp: false) - ae.Decode(z + k * change, clamp: false)) / (h * 16);
        for (int i = 0; i < 2; i++)
            Assert.True(d[i].allclose(expected[i], rtol: 1e-3, atol: 1e-4 * expected[i].abs().max().item<float>()),
                $"image {i}: max diff {(d[i] - expected[i]).abs().max().item<float>()} of {expected[i].abs().max().item<float>()}");

        // A small step is the derivative again; a large one is not.
        var lin = ScoreDistillation.DecodedGradient(teacher, z, g);
        double Cosine(Tensor a, Tensor b) => (a.flatten().dot(b.flatten()) / (a.norm() * b.norm())).item<float>();
        var small = ScoreDistillation.DecodedStep(teacher, z, g, t, s, 1e-3);
        Assert.True(Cosine(small[..2], lin[..2]) > 0.99, $"cosine {Cosine(small[..2], lin[..2])}");
        Assert.InRange((small[..2].norm() / lin[..2].norm()).item<float>(), 0.9, 1.1);
        Assert.True(Cosine(ScoreDistillation.DecodedStep(teacher, z, g, t, s, 50)[..2], lin[..2]) < Cosine(small[..2], lin[..2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ScoreDistillation.DecodedStep(teacher, z, g, t, s, 0));
    }

    [Fact]
    public void Top_k_through_the_decoder_keeps_the_largest_values_of_the_image_gradient()
    {
        using var scope = NewDisposeScope();
        using var teacher = LatentSupport.Teacher(85);
        var (x, _) = Tiny.Portraits(85, 0, 2, S);
        using var _ = no_grad();
        var z = teacher.ToModelSpace(x);
        // A latent step in one corner: it decodes to a large change there and a faint one everywhere else.
        var g = zeros_like(z);
        g[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(0, 2), TensorIndex.Slice(0, 2)] = ones(2, z.shape[1], 2, 2);
        var dense = ScoreDistillation.DecodedGradient(teacher, z, g);
        int k = (int)(dense.numel() / 20);
        var sparse = ScoreDistillation.DecodedGradient(teacher, z, g, topK: k);

        Assert.True(dense.ne(0).sum().item<long>() > 2 * k, "the dense image gradient should reach well beyond the corner");
        long kept = sparse.ne(0).sum().item<long>();
        Assert.InRange(kept, k, k + 16); // ties at the threshold aside
        // What is kept is the dense gradient itself, at its largest values.
        var where = sparse.ne(0);
        Assert.Equal(0f, (sparse - dense).masked_select(where).abs().max().item<float>());
        Assert.True(dense.abs().masked_select(where).min().item<float>() >= dense.abs().masked_select(where.logical_not()).max().item<float>());
    }

    [Fact]
    public void The_encoded_gradient_is_what_back_propagation_through_the_encoder_gives_and_top_k_keeps_its_largest_values()
    {
        using var scope = NewDisposeScope();
        using var teacher = LatentSupport.Teacher(88);
        var (x, _) = Tiny.Portraits(88, 0, 3, S);
        var g = randn(teacher.ModelShape(x.shape), generator: new Generator(6));
        bool? latentHadGraph = null;
        var dense = ScoreDistillation.EncodedGradient(teacher, x, z => { latentHadGraph = z.requires_grad; return g; });
        Assert.All(teacher.Autoencoder!.Net.parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0, "the frozen encoder got a gradient"));
        // By hand: d/dx of sum(g * E(x)).
        var leaf = x.detach().requires_grad_(true);
        (teacher.ToModelSpace(leaf) * g).sum().backward();
        Assert.Equal(x.shape, dense.shape);
        Assert.True((dense - leaf.grad!).abs().max().item<float>() < 1e-5f * leaf.grad!.abs().max().item<float>());
        Assert.False(latentHadGraph, "the latent gradient must be taken on a latent without a graph");
        Assert.False(dense.requires_grad);

        int k = (int)(dense.numel() / 10);
        var sparse = ScoreDistillation.EncodedGradient(teacher, x, _ => g, topK: k);
        long kept = sparse.ne(0).sum().item<long>();
        Assert.InRange(kept, k, k + 16);
        var where = sparse.ne(0);
        Assert.Equal(0f, (sparse - dense).masked_select(where).abs().max().item<float>());
        Assert.True(dense.abs().masked_select(where).min().item<float>() >= dense.abs().masked_select(where.logical_not()).max().item<float>());
        Assert.Throws<ArgumentException>(() => ScoreDistillation.EncodedGradient(MethodSupport.Teacher(1), x, _ => x));
    }

    [Fact]
    public void Distillation_through_the_encoder_with_top_k_pushes_the_editor_only_by_the_kept_image_gradient()
    {
        using var scope = NewDisposeScope();
        var images = MethodSupport.Images(89, 6, 3, S, S);
        var labels = MethodSupport.LabelsLackingSmiling(6);
        var settings = new DistillSettings { Steps = 3, BatchSize = 4, LearningRate = 1e-3, Lambda = 0.1, Guidance = new GuidanceSettings { Scale = 10 }, Timesteps = "list:300,500", Seed = 3, LatentGradient = LatentGradient.Encoder };
        var x = MethodSupport.Images(90, 2, 3, S, S);
        using var latent = LatentSupport.Teacher(89);
        Tensor EditedAfterTwoSteps(int topK)
        {
            using var dir = new TempDir();
            var s = settings with { Guidance = settings.Guidance with { TopK = topK } };
            using var run = new Distillation(dir.Path, latent, MethodSupport.EditorConfig(s), TimestepSampler.FromSet([300, 500], "list:300,500"), images, labels, resume: false);
            run.TrainStep();
            run.TrainStep();
            using var _ = no_grad();
            return run.Editor.Edit(x).MoveToOuterDisposeScope();
        }
        var aeBefore = MethodSupport.Snapshot(latent.Autoencoder!.Net);
        var all = EditedAfterTwoSteps(0);
        // Top-k as large as the batch's image gradient keeps all of it: the same editor as plain back-propagation, to round-off.
        var everything = EditedAfterTwoSteps(4 * 3 * S * S);
        Assert.True((all - everything).abs().max().item<float>() < 1e-4f, "top-k over every value differs from back-propagation");
        var sparse = EditedAfterTwoSteps(50);
        Assert.False(Tiny.BitEqual(sparse, x), "the kept gradient did not reach the editor");
        Assert.True((all - sparse).abs().max().item<float>() > 1e-4f, "top-k changed nothing");
        Assert.Empty(MethodSupport.Changed(latent.Autoencoder.Net, aeBefore));
    }

    [Fact]
    public void Distillation_through_the_decoder_trains_the_editor_another_way_and_leaves_the_autoencoder_without_a_gradient()
    {
        using var scope = NewDisposeScope();
        var images = MethodSupport.Images(86, 6, 3, S, S);
        var labels = MethodSupport.LabelsLackingSmiling(6);
        var settings = new DistillSettings { Steps = 3, BatchSize = 4, LearningRate = 1e-3, Lambda = 0.1, Guidance = new GuidanceSettings { Scale = 10 }, Timesteps = "list:300,500", Seed = 3 };
        var x = MethodSupport.Images(87, 2, 3, S, S);
        Tensor EditedAfterTwoSteps(Teacher teacher, LatentGradient how)
        {
            using var dir = new TempDir();
            using var run = new Distillation(dir.Path, teacher, MethodSupport.EditorConfig(settings with { LatentGradient = how }), TimestepSampler.FromSet([300, 500], "list:300,500"), images, labels, resume: false);
            run.TrainStep();
            run.TrainStep();
            using var _ = no_grad();
            return run.Editor.Edit(x).MoveToOuterDisposeScope();
        }
        using (var latent = LatentSupport.Teacher(86))
        {
            var aeBefore = MethodSupport.Snapshot(latent.Autoencoder!.Net);
            var decoded = EditedAfterTwoSteps(latent, LatentGradient.Decoder);
            Assert.False(Tiny.BitEqual(decoded, x), "the decoder's gradient did not reach the editor");
            Assert.Empty(MethodSupport.Changed(latent.Autoencoder.Net, aeBefore));
            Assert.All(latent.Autoencoder.Net.parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0, "the frozen autoencoder got a gradient"));
            Assert.False(Tiny.BitEqual(decoded, EditedAfterTwoSteps(latent, LatentGradient.Encoder)), "the two settings trained the same editor");
        }
        // A pixel teacher's gradient is on the image already: the setting changes nothing.
        using var pixel = MethodSupport.Teacher(86);
        Assert.True(Tiny.BitEqual(EditedAfterTwoSteps(pixel, LatentGradient.Decoder), EditedAfterTwoSteps(pixel, LatentGradient.Encoder)));
    }
}

/// <summary>The teacher training procedure for the latent kind: encode once, train the UNet on latents, judge at the image size.</summary>
[Collection(TorchCollection.Name)]
public sealed class LatentTeacherTrainingTests
{
    private const int Size = 16;

    [Fact]
    public void A_latent_teacher_trains_on_its_autoencoders_latents_and_resumes_from_its_own_copy_of_it()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        PortraitDataset.Write(dir["portraits"], 24, Size, seed: 2, counterfactuals: false);
        var set = Sdd.Ml.Data.LabeledImageSet.OpenFolder(dir["portraits"]);
        random.manual_seed(5);
        using (var ae = new Autoencoder(LatentSupport.AutoencoderConfig())) ae.Save(dir["vae"]);
        var settings = new TeacherRunSettings
        {
            Kind = TeacherConfig.KindLatentDdpm,
            ImageSize = Size,
            Channels = [8, 16],
            Training = new TeacherTrainingSettings { Steps = 4, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 1, Seed = 3 },
            JudgeSteps = 2,
        };
        var (x, y) = set.Load(Size);
        using (var run = Sdd.Ml.Procedures.TeacherTraining.Open(dir["teacher"], settings, set.Attributes, x, y, resume: false, autoencoderDir: dir["vae"]))
        {
            Assert.True(run.Teacher.Latent);
            Assert.Equal(Size / 4, run.Config.Unet.ImageSize);
            Assert.Equal(4, run.Config.Unet.InChannels);
            run.Advance(step => step < 2);
        }
        Assert.True(File.Exists(Path.Combine(dir["teacher"], "vae", AutoencoderConfig.WeightsFile)), "the run keeps its own copy of the autoencoder");
        var saved = Sdd.Ml.Procedures.TeacherTraining.SavedSettings(dir["teacher"]);
        Assert.Equal(TeacherConfig.KindLatentDdpm, saved.Kind);
        Assert.Equal(Size, saved.ImageSize);

        // The encoded set (the images and their mirror images) is cached for a resumed run, and left out of nothing else.
        var cache = Path.Combine(dir["teacher"], "train", Sdd.Ml.Procedures.TeacherTraining.LatentCacheFile);
        var cached = TorchSharp.PyBridge.Safetensors.LoadStateDict(cache);
        Assert.Equal(new long[] { 48, 4, Size / 4, Size / 4 }, cached["latents"].shape);
        using (var ae = Autoencoder.Load(Path.Combine(dir["teacher"], "vae")))
        using (no_grad())
            Assert.True(cached["latents"][TensorIndex.Slice(0, 24)].allclose(ae.Encode(x), rtol: 1e-4, atol: 1e-5));
        Assert.True(cached["labels"][TensorIndex.Slice(24, 48)].eq(y).all().item<bool>());
        var written = File.GetLastWriteTimeUtc(cache);

        Directory.Delete(dir["vae"], true); // resuming needs only the run's copy
        using (var run = Sdd.Ml.Procedures.TeacherTraining.Open(dir["teacher"], saved with { JudgeSteps = 2 }, set.Attributes, x, y, resume: true))
        {
            Assert.Equal(2, run.Step);
            Assert.Equal(written, File.GetLastWriteTimeUtc(cache)); // read, not encoded again
            run.AdvanceToEnd();
            var judge = run.Finish(set);
            Assert.NotNull(judge);
        }
        // A cache that cannot be read is only a cache: the resumed run encodes the set again and writes it anew.
        File.WriteAllBytes(cache, [1, 2, 3]);
        using (var run = Sdd.Ml.Procedures.TeacherTraining.Open(dir["teacher"], saved with { JudgeSteps = 0 }, set.Attributes, x, y, resume: true))
            Assert.Equal(4, run.Step);
        Assert.Equal(new long[] { 48, 4, Size / 4, Size / 4 }, TorchSharp.PyBridge.Safetensors.LoadStateDict(cache)["latents"].shape);

        using var teacher = Teacher.Load(dir["teacher"]);
        Assert.Equal(4, teacher.Config.Step);
        Assert.Equal(Size, teacher.Size);
        using var judgeModel = Sdd.Ml.Judging.Judge.Load(Path.Combine(dir["teacher"], "judge"));
        Assert.Equal(Size, judgeModel.Size); // the judge sees images at the teacher's image size, not its latent size
        Assert.Equal(new long[] { 2, 3, Size, Size }, teacher.Sample(AttributeCondition.Single(2, teacher.Attributes.Count, 0, true, CPU), 2, 2.0, new Generator(1)).shape);

        // A latent run without an autoencoder, or a pixel run given one, is refused naming the problem.
        Assert.Contains("autoencoder", Assert.Throws<FormatException>(() =>
            Sdd.Ml.Procedures.TeacherTraining.Open(dir["other"], settings, set.Attributes, x, y, resume: false)).Message);
    }
}
