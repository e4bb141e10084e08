using Sdd.Cli;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Guidance;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;
using System.Text.Json.Nodes;

namespace Sdd.Ml.Tests;

/// <summary>The one distillation procedure, as the CLI and the distill worker drive it.</summary>
[Collection(TorchCollection.Name)]
public sealed class EditorDistillationTests
{
    private const int S = MethodSupport.Size;

    private static (string Teacher, string Dataset) Inputs(TempDir dir)
    {
        using (var teacher = MethodSupport.Teacher(44)) teacher.Save(dir["teacher"]);
        PortraitDataset.Write(dir["portraits"], 30, S, seed: 3, counterfactuals: false);
        return (dir["teacher"], dir["portraits"]);
    }

    /// <summary>
    /// The CLI (`sdd distill`, one process, straight through) and the worker (settings as the API stores them, sizes from
    /// its options, two chunks with the folder copied in between as through the object store) train the same editor.
    /// </summary>
    [Fact]
    public void The_cli_and_the_worker_path_train_bit_identical_editors_for_the_same_seed_and_settings()
    {
        using var dir = new TempDir();
        var (teacherDir, datasetDir) = Inputs(dir);

        // The CLI.
        string[] args = ["--teacher", teacherDir, "--judge", dir["no-judge"], "--attribute", PortraitAttributes.Smiling, "--dataset", datasetDir,
            "--out", dir["cli"], "--steps", "6", "--batch", "4", "--lr", "0.001", "--lambda", "0.1", "--seed", "5", "--samples", "4", "--eval-images", "4"];
        Assert.Equal(0, MethodCommands.Distill(new Options(args, new HashSet<string> { "resume" })));

        // The worker: what the API stored, parsed as the worker parses it; two chunks of 3 steps.
        var stored = DistillSettings.FromApi(new JsonObject { ["steps"] = 6, ["batch"] = 4, ["lr"] = 0.001, ["lambda"] = 0.1, ["seed"] = 5 }).ToApiJson();
        var settings = DistillSettings.FromApiJson(stored);
        var sizes = new DistillationSizes { IndicatorSamples = 4, EvalImages = 4 };
        using (var teacher = Teacher.Load(teacherDir))
        using (var data = RunImages.Training(LoadedDataset.OpenFolder(datasetDir), teacher.Size, teacher.Attributes))
        {
            using (var chunk1 = EditorDistillation.Open(dir["worker-1"], teacher, PortraitAttributes.Smiling, data, settings, sizes, resume: true, teacherName: "builtin"))
            {
                Assert.True(chunk1.SelectTimesteps());
                Assert.True(chunk1.NeedsCalibration, "the stored settings say auto");
                Assert.True(chunk1.Calibrate(judge: null, validation: null, _ => true), "without a judge the reference scale is taken at once");
                chunk1.Advance(step => step < 3);
                Assert.Equal(3, chunk1.Step);
                Assert.False(chunk1.Trained);
            }
            CopyFolder(dir["worker-1"], dir["worker-2"]);
            using var chunk2 = EditorDistillation.Open(dir["worker-2"], teacher, PortraitAttributes.Smiling, data, settings, sizes, resume: true, teacherName: "builtin");
            Assert.False(chunk2.SelectTimesteps(), "the curve is read back from the folder, not computed again");
            Assert.False(chunk2.NeedsCalibration, "the calibration is read back from the folder");
            Assert.Equal(3, chunk2.Step);
            chunk2.Advance(_ => true);
            Assert.True(chunk2.Trained);
            using var held = RunImages.Evaluation(LoadedDataset.OpenFolder(datasetDir), PortraitAttributes.Smiling, sizes.EvalImages, teacher.Size, teacher.Attributes);
            var result = chunk2.Finish(held, judge: null);
            Assert.True(result.Metrics.ContainsKey("psnrSource"));
            Assert.True(File.Exists(dir["worker-2/grid.png"]));
            // Its domain gate: fitted on the training images, calibrated (no validation images given) on every tenth of them.
            Assert.True(File.Exists(dir["worker-2/" + DomainGate.WeightsFile]));
            Assert.True(result.Metrics["domainThreshold"] > 0);
            Assert.InRange(result.Metrics["domainHeldOutPass"], 0, 1);
        }

        var cli = Editor.ReadConfig(dir["cli"]);
        var worker = Editor.ReadConfig(dir["worker-2"]);
        Assert.Equal(cli.Settings, worker.Settings);
        Assert.Equal(10, worker.Settings.Guidance.Scale);
        Assert.Equal(ScaleCalibration.NoJudgeMethod, worker.Calibration?.Method);
        Assert.Equal(10, worker.Metrics["guidanceScale"]);
        Assert.Equal(EditorArchitecture.Masked, worker.Architecture);
        Assert.Equal(cli.SelectedTimesteps, worker.SelectedTimesteps);
        Assert.Equal(6, cli.Step);
        Assert.Equal(6, worker.Step);
        Assert.Contains("psnrSource", cli.Metrics.Keys);
        Assert.Equal("training-holdout", worker.Domain?.CalibratedOn);
        // The CLI calibrates on validation images: for a portrait data set, the validation portraits (100 of them).
        Assert.Equal("validation", cli.Domain?.CalibratedOn);
        Assert.Equal(100, cli.Domain?.CalibrationImages);
        using var a = Editor.Load(dir["cli"]);
        using var b = Editor.Load(dir["worker-2"]);
        // The gate travels with the editor: loaded from its folder, it scores the training portraits as inside.
        Assert.NotNull(b.Domain);
        using (var check = RunImages.Training(LoadedDataset.OpenFolder(datasetDir), S, PortraitAttributes.All))
        {
            var scores = b.Domain!.Scores(check.Images);
            Assert.True(scores.Count(x => b.Domain.Passes(x)) >= scores.Length * 0.8, $"scores {string.Join(", ", scores)}; threshold {b.Domain.Config.Threshold}");
            Assert.False(b.Domain.Passes(b.Domain.Scores(Sdd.Ml.Evaluation.OtherDomains.Render("house", 1, S, seed: 1))[0]), "a house passes a portrait editor's gate");
        }
        var bWeights = b.Net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in a.Net.named_parameters())
            Assert.True(Tiny.BitEqual(p.detach(), bWeights[name].detach()), $"{name} differs between the CLI and the worker");
        Assert.True(a.Net.named_parameters().Single(p => p.name == "outConv.weight").parameter.abs().max().item<float>() > 0, "the editor was trained");
    }

    [Fact]
    public void Finishing_before_the_last_step_is_refused_and_a_fresh_open_discards_the_old_run()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var teacher = MethodSupport.Teacher(45);
        using var data = new LabeledTensors(MethodSupport.Images(15, 6, 3, S, S), MethodSupport.LabelsLackingSmiling(6));
        var settings = new DistillSettings { Steps = 4, BatchSize = 2, Timesteps = "list:300,500", Seed = 2, Guidance = new GuidanceSettings { Scale = 10 } };
        using (var run = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings))
        {
            Assert.Equal(2, run.Advance(step => step < 2));
            Assert.Throws<InvalidOperationException>(() => run.Finish(data, judge: null));
        }
        Assert.True(EditorDistillation.HasCheckpoint(dir.Path));
        using (var resumed = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings)) Assert.Equal(2, resumed.Step);
        using (var fresh = EditorDistillation.Open(dir.Path, teacher, PortraitAttributes.Smiling, data, settings, resume: false)) Assert.Equal(0, fresh.Step);
        Assert.False(data.Images.IsInvalid, "the caller's images stay the caller's");
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
}
