using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;

namespace Sdd.Ml.Tests;

[Collection(TorchCollection.Name)]
public sealed class DistillationTests
{
    private const int S = MethodSupport.Size;

    private static EditorConfig Config(GuidanceMode mode = GuidanceMode.Delta) => MethodSupport.EditorConfig(new DistillSettings
    {
        Steps = 4,
        BatchSize = 4,
        LearningRate = 1e-3,
        Lambda = 0.1,
        Guidance = new GuidanceSettings { Mode = mode, Scale = mode == GuidanceMode.Delta ? 10 : 30 },
        Timesteps = "list:300,500",
        Seed = 5,
    });

    private static TimestepSampler Sampler() => TimestepSampler.FromSet([300, 500], "list:300,500");

    [Theory]
    [InlineData(GuidanceMode.Delta)]
    [InlineData(GuidanceMode.Sds)]
    public void A_step_changes_the_editor_and_not_the_teacher_and_the_edit_becomes_non_zero(GuidanceMode mode)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(41);
        var images = MethodSupport.Images(12, 6, 3, S, S);
        var labels = MethodSupport.LabelsLackingSmiling(6);
        var teacherBefore = MethodSupport.Snapshot(teacher.Net);
        using var run = new Distillation(dir.Path, teacher, Config(mode), Sampler(), images, labels, resume: false);
        var editorBefore = MethodSupport.Snapshot(run.Editor.Net);
        Assert.True(Tiny.BitEqual(run.Editor.Edit(images), images), "an untrained editor is the identity");

        var e = run.TrainStep();
        Assert.True(double.IsFinite(e));
        Assert.Equal(1, run.Step);
        Assert.NotEmpty(MethodSupport.Changed(run.Editor.Net, editorBefore));
        Assert.Contains("outConv.weight", MethodSupport.Changed(run.Editor.Net, editorBefore));
        Assert.Empty(MethodSupport.Changed(teacher.Net, teacherBefore));
        Assert.All(teacher.Net.parameters(), p => Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0, "the teacher got a gradient"));
        Assert.True(run.TeacherEvaluations > 0);

        run.TrainStep();
        run.TrainStep();
        Assert.Empty(MethodSupport.Changed(teacher.Net, teacherBefore));
        var edit = (run.Editor.Edit(images) - images).abs().max().item<float>();
        Assert.True(edit > 0, "after a few steps the editor should edit");
    }

    [Fact]
    public void Resuming_after_2_steps_gives_the_same_editor_as_4_steps_straight()
    {
        using var scope = NewDisposeScope();
        using var straightDir = new TempDir();
        using var resumedDir = new TempDir();
        using var teacher = MethodSupport.Teacher(42);
        var images = MethodSupport.Images(13, 6, 3, S, S);
        var labels = MethodSupport.LabelsLackingSmiling(6);

        Dictionary<string, Tensor> straight;
        using (var run = new Distillation(straightDir.Path, teacher, Config(), Sampler(), images.clone(), labels.clone(), resume: false))
        {
            run.Run(4);
            Assert.Equal(4, run.Step);
            straight = MethodSupport.Snapshot(run.Editor.Net);
        }
        using (var first = new Distillation(resumedDir.Path, teacher, Config(), Sampler(), images.clone(), labels.clone(), resume: false))
        {
            first.Run(2);
            Assert.Equal(2, first.Step);
        }
        Assert.True(File.Exists(Path.Combine(resumedDir.Path, "train", "state.json")));
        using (var resumed = new Distillation(resumedDir.Path, teacher, Config(), Sampler(), images.clone(), labels.clone(), resume: true))
        {
            Assert.Equal(2, resumed.Step);
            resumed.Run(4);
            Assert.Equal(4, resumed.Step);
            foreach (var (name, p) in resumed.Editor.Net.named_parameters())
                Assert.True(p.detach().allclose(straight[name], rtol: 0, atol: 1e-6), $"{name} differs after resuming");
            Assert.Equal(4, Editor.ReadConfig(resumedDir.Path).Step);
        }
        // The resumed run and the straight run both changed the editor.
        Assert.True(straight["outConv.weight"].abs().max().item<float>() > 0);
    }

    /// <summary>
    /// The caller's tensors stay the caller's: disposing a run must not dispose the images and labels it was given
    /// (the CLI and the quality benchmark reuse them for further runs, as a resume or an ablation does).
    /// </summary>
    [Fact]
    public void Disposing_a_run_leaves_the_callers_images_usable()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(43);
        var images = MethodSupport.Images(14, 4, 3, S, S);
        var labels = MethodSupport.LabelsLackingSmiling(4);
        using (var run = new Distillation(dir.Path, teacher, Config(), Sampler(), images, labels, resume: false)) run.TrainStep();
        Assert.False(images.IsInvalid, "Distillation.Dispose disposed the caller's images");
        Assert.Equal(new long[] { 4, 3, S, S }, images.shape);
    }
}
