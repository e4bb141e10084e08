using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Editors;
using Sdd.Ml.Evaluation;
using Sdd.Ml.Judging;
using Sdd.Ml.Portraits;
using Sdd.Ml.Procedures;

namespace Sdd.Ml.Tests;

/// <summary>The quality benchmark's measures (region PSNR, KID), its DDIM-inversion baseline and the procedure itself, at 16 px.</summary>
[Collection(TorchCollection.Name)]
public sealed class QualityEvaluationTests
{
    [Fact]
    public void The_region_is_where_the_counterfactual_differs_grown_by_a_pixel_and_masked_psnr_reads_only_it()
    {
        using var scope = NewDisposeScope();
        var source = zeros(2, 3, 16, 16);
        var cf = source.clone();
        cf[0, .., TensorIndex.Slice(4, 8), TensorIndex.Slice(4, 8)] = tensor(0.2f); // a 4x4 change in image 0; none in image 1
        var region = ImageMetrics.Region(source, cf);
        Assert.Equal(new long[] { 2, 1, 16, 16 }, region.shape);
        Assert.Equal(36f, region[0].sum().item<float>()); // 4x4 grown by one pixel each way: 6x6
        Assert.Equal(0f, region[1].sum().item<float>());
        Assert.Equal(1f, region[0, 0, 3, 3].item<float>());
        Assert.Equal(0f, region[0, 0, 2, 2].item<float>());

        // An edit that leaves the source everywhere: inside, 0.2 off the counterfactual on 16 of the 36 pixels -> MSE 0.01*16/36.
        var inside = ImageMetrics.MaskedPsnr(source, cf, region);
        Assert.Equal(-10 * Math.Log10(0.01 * 16 / 36), inside[0].item<float>(), 3);
        Assert.True(float.IsNaN(inside[1].item<float>()), "an empty region has no PSNR");
        var outside = ImageMetrics.MaskedPsnr(source, source, 1 - region);
        Assert.All(outside.data<float>().ToArray(), v => Assert.Equal(100f, v, 3));
        Assert.Equal(-10 * Math.Log10(0.01 * 16 / 36), ImageMetrics.FiniteMean(inside), 3); // NaN rows are left out of the mean
        Assert.True(double.IsNaN(ImageMetrics.FiniteMean(full(2, double.NaN))));
    }

    [Fact]
    public void Laplacian_energy_is_zero_on_flat_images_falls_with_blur_and_reads_only_the_mask()
    {
        using var scope = NewDisposeScope();
        var (x, _) = Tiny.Portraits(62, 0, 2, 32);
        var all = ones(2, 1, 32, 32);
        Assert.All(ImageMetrics.LaplacianEnergy(zeros(2, 3, 32, 32), all).data<float>().ToArray(), v => Assert.Equal(0f, v));
        var blurred = F.interpolate(F.interpolate(x, size: [8, 8], mode: InterpolationMode.Area), size: [32, 32], mode: InterpolationMode.Bilinear);
        var sharp = ImageMetrics.LaplacianEnergy(x, all); var soft = ImageMetrics.LaplacianEnergy(blurred, all);
        for (int i = 0; i < 2; i++) Assert.True(soft[i].item<float>() < 0.5f * sharp[i].item<float>(), $"blurred {soft[i].item<float>()} vs sharp {sharp[i].item<float>()}");
        // A single bright pixel: its 3x3 neighbourhood carries all the energy; a mask away from it reads none.
        var dot = zeros(1, 3, 16, 16) - 1; dot[0, .., 8, 8] = tensor(1f);
        var near = zeros(1, 1, 16, 16); near[0, 0, 8, 8] = tensor(1f);
        var far = zeros(1, 1, 16, 16); far[0, 0, 1, 1] = tensor(1f);
        Assert.Equal(16f, ImageMetrics.LaplacianEnergy(dot, near)[0].item<float>(), 4); // (-4 * 1)^2 in [0, 1] units
        Assert.Equal(0f, ImageMetrics.LaplacianEnergy(dot, far)[0].item<float>());
        Assert.True(float.IsNaN(ImageMetrics.LaplacianEnergy(dot, zeros(1, 1, 16, 16))[0].item<float>()));
    }

    [Fact]
    public void Editors_are_compared_on_the_same_portraits_at_each_size_in_residual_mode_above_their_own()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(9);
        using var judge = new Judge(new JudgeConfig { AttributeNames = [.. PortraitAttributes.All], ImageSize = 16, Channels = [8, 8] });
        using var identity = new Sdd.Ml.Editors.Editor(MethodSupport.EditorConfig()); // an untrained editor is the identity
        using var changed = new Sdd.Ml.Editors.Editor(MethodSupport.EditorConfig());
        Tiny.Perturb(changed.Net, 9, 0.2);
        var rows = EditorComparison.Run([("identity", identity), ("changed", changed)], judge, PortraitAttributes.Smiling, [16, 32], 4);
        Assert.Equal(["no edit", "identity", "changed", "no edit", "identity", "changed"], rows.Select(r => r.Editor));
        Assert.Equal([16, 16, 16, 32, 32, 32], rows.Select(r => r.ImageSize));
        foreach (var size in new[] { 16, 32 })
        {
            var none = rows.Single(r => r.ImageSize == size && r.Editor == "no edit").Row;
            var same = rows.Single(r => r.ImageSize == size && r.Editor == "identity").Row;
            var other = rows.Single(r => r.ImageSize == size && r.Editor == "changed").Row;
            Assert.Equal(none.PsnrInRegion, same.PsnrInRegion);
            Assert.Equal(none.Sharpness, same.Sharpness);
            Assert.True(other.PsnrOutsideRegion < 100, $"the perturbed editor left {size} px images untouched");
        }
    }

    [Fact]
    public void A_portrait_attribute_lives_in_a_small_region()
    {
        using var scope = NewDisposeScope();
        using var batch = HeldOutPortraits.Render(PortraitAttributes.Smiling, present: false, 4, 32);
        var share = ImageMetrics.Region(batch.Images, batch.Counterfactuals).flatten(1).mean([1]);
        Assert.All(share.data<float>().ToArray(), v => Assert.InRange(v, 0.005f, 0.25f));
    }

    [Fact]
    public void Kernel_distance_matches_a_hand_computed_value_and_grows_with_a_shift()
    {
        using var scope = NewDisposeScope();
        // d = 1, k(x, y) = (xy + 1)^3: Kxx off-diagonal 1, Kyy 7^3 = 343, mean Kxy = (1 + 1 + 27 + 64) / 4.
        Assert.Equal(1 + 343 - 2 * 93 / 4.0, KernelDistance.Compute(tensor(new float[] { 0, 1 }, [2, 1]), tensor(new float[] { 2, 3 }, [2, 1])), 6);
        random.manual_seed(3);
        var a = randn(300, 8); var b = randn(300, 8);
        double same = KernelDistance.Compute(a, b), shifted = KernelDistance.Compute(a, b + 0.5), far = KernelDistance.Compute(a, b + 1);
        Assert.True(Math.Abs(same) < 0.2 * shifted, $"same distribution {same}, shifted {shifted}");
        Assert.True(far > shifted, $"shift 1: {far}, shift 0.5: {shifted}");
        Assert.Throws<ArgumentException>(() => KernelDistance.Compute(a[TensorIndex.Slice(0, 1)], b));
    }

    [Fact]
    public void Ddim_inversion_then_regeneration_under_the_same_condition_returns_closer_to_the_source_than_sdedit()
    {
        using var scope = NewDisposeScope();
        using var teacher = MethodSupport.Teacher(5);
        var (x, labels) = Tiny.Portraits(61, 0, 4, MethodSupport.Size);
        var states = AttributeCondition.FromLabels(labels);
        var back = teacher.InvertAndRegenerate(x, states, states, 100, 10, 1.0);
        var sdedit = teacher.SdEdit(x, states, 100, 10, 1.0, new Generator(1));
        Assert.True(Tiny.Finite(back));
        double inverted = ImageMetrics.Psnr(back, x).mean().item<float>(), noised = ImageMetrics.Psnr(sdedit, x).mean().item<float>();
        Assert.True(inverted > noised + 3, $"inversion {inverted:0.00} dB, SDEdit {noised:0.00} dB");
        teacher.Evaluations = 0;
        using var xt = teacher.DdimInvert(x, states, 100, 10);
        Assert.Equal(4 * 10, teacher.Evaluations); // one evaluation per image per step without guidance
        Assert.False(Tiny.BitEqual(xt, x));
    }

    /// <summary>A tiny teacher and judge for the benchmark tests (seeded: the same every time).</summary>
    private static (Teacher Teacher, Judge Judge) SmallModels()
    {
        var teacher = MethodSupport.Teacher(7);
        random.manual_seed(7);
        return (teacher, new Judge(new JudgeConfig { AttributeNames = [.. PortraitAttributes.All], ImageSize = MethodSupport.Size, Channels = [8, 8] }));
    }

    /// <summary>The benchmark at a size a test runs in seconds: smiling only, no baselines unless the caller adds them.</summary>
    private static QualityBenchSettings SmallBench(int[] seeds, string[] policies) => new()
    {
        Attributes = [PortraitAttributes.Smiling],
        Seeds = seeds,
        TestImages = 4, DoubleEditImages = 2, ReferenceImages = 4, TrainImages = 16,
        Policies = policies, SdeditT0 = [], InversionT0 = [],
        Distill = new DistillSettings { Steps = 2, BatchSize = 4, Guidance = new GuidanceSettings { Scale = 10 } },
    };

    [Fact]
    public void The_benchmark_measures_every_cell_once_resumes_from_its_file_and_refuses_other_settings()
    {
        var dir = Directory.CreateTempSubdirectory("sdd-quality-").FullName;
        try
        {
            var (teacher, judge) = SmallModels();
            using var _t = teacher;
            using var _j = judge;
            var settings = SmallBench([1, 2], ["fixed:500"]) with { SdeditT0 = [50], InversionT0 = [50] };
            var json = Path.Combine(dir, "q.json");
            var md = Path.Combine(dir, "q.md");
            var report = new QualityEvaluation(teacher, judge, settings, Path.Combine(dir, "work"), json, md).Run();

            Assert.Equal(["no edit", "sdd-fixed-500", "sdd-fixed-500", "sdedit-50", "sdedit-50", "ddim-inversion-50"], report.Cells.Select(c => c.Method));
            var none = report.Cells[0].Row;
            Assert.Equal(100, none.PsnrOutsideRegion!.Value, 2); // no edit leaves the outside as it was
            Assert.Equal(100, report.Cells[0].DoublePsnrSource!.Value, 2);
            Assert.True(none.PsnrInRegion < none.PsnrCounterfactual, "inside the region, no edit is far from the counterfactual");
            Assert.NotNull(none.Sharpness);
            Assert.All(report.Cells.Skip(1), c => Assert.True(c.Row.PsnrOutsideRegion < 100 && c.DoublePsnrSource < 100, $"{c.Method} changed nothing"));
            var sdd = report.Summary.Single(s => s.Method == "sdd-fixed-500");
            Assert.Equal(2, sdd.Figures["psnrInRegion"].N);
            Assert.Equal(report.Cells.Where(c => c.Method == "sdd-fixed-500").Average(c => c.Row.PsnrInRegion!.Value), sdd.Figures["psnrInRegion"].Mean, 3);
            Assert.Equal(10, sdd.Figures["scale"].Mean);
            Assert.Contains("| sdd-fixed-500 | 10 |", File.ReadAllText(md));
            // Each SDD cell records the mask gate its editor was measured with (chosen on validation); the baselines have none.
            var sddCells = report.Cells.Where(c => c.Method == "sdd-fixed-500").ToList();
            foreach (var c in sddCells)
            {
                using var editor = Editor.Load(Path.Combine(dir, "work", "smiling", $"sdd-fixed-500-seed{c.Seed}"));
                Assert.Equal(editor.Net.MaskGate, c.MaskGate);
            }
            Assert.All(report.Cells.Where(c => !c.Method.StartsWith("sdd-", StringComparison.Ordinal)), c => Assert.Null(c.MaskGate));
            Assert.Equal(sddCells.Average(c => c.MaskGate!.Value), sdd.Figures["maskGate"].Mean, 4);
            var table = File.ReadAllText(md);
            Assert.Contains(" mask gate |", table);
            Assert.Contains("| no edit | - |", table);
            Assert.True(File.Exists(Path.Combine(dir, "work", "smiling", "grid.png")));

            // Resumed from the file: nothing is measured again.
            var before = File.ReadAllText(json);
            var again = new QualityEvaluation(teacher, judge, settings, Path.Combine(dir, "work"), json, md).Run();
            Assert.Equal(report.Cells, again.Cells);
            Assert.Equal(JsonSerializer.Deserialize<QualityBenchReport>(before, Sdd.Formats.Models.ModelFolder.Json)!.Cells, again.Cells);
            // Other settings are not mixed into the same file.
            Assert.Throws<InvalidOperationException>(() =>
                new QualityEvaluation(teacher, judge, settings with { TestImages = 5 }, Path.Combine(dir, "work"), json, md).Run());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_resumed_benchmark_keeps_the_rank_correlation_it_recorded_when_the_work_folder_is_gone()
    {
        var dir = Directory.CreateTempSubdirectory("sdd-quality-").FullName;
        try
        {
            var (teacher, judge) = SmallModels();
            using var _t = teacher;
            using var _j = judge;
            var settings = SmallBench([1], ["hqs"]) with { Sizes = new DistillationSizes { IndicatorSamples = 4, CheckpointEvery = 100 } };
            var json = Path.Combine(dir, "q.json");
            var work = Path.Combine(dir, "work");
            var first = new QualityEvaluation(teacher, judge, settings, work, json).Run();
            var rho = Assert.Single(first.Findings).HqsNormRankCorrelation;
            Assert.NotNull(rho);
            Assert.InRange(rho!.Value, -1, 1);

            Directory.Delete(work, recursive: true); // the curve it came from is gone
            var again = new QualityEvaluation(teacher, judge, settings, work, json).Run();
            Assert.Equal(rho, Assert.Single(again.Findings).HqsNormRankCorrelation);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void The_readme_block_is_replaced_between_its_markers_and_again_the_same_way()
    {
        var readme = $"intro\n{QualityTables.BeginMarker}\nold table\n{QualityTables.EndMarker}\nrest\n";
        var once = QualityTables.ReplaceBlock(readme, "| new | table |\n");
        Assert.Equal($"intro\n{QualityTables.BeginMarker}\n\n| new | table |\n\n{QualityTables.EndMarker}\nrest\n", once);
        Assert.Equal(once, QualityTables.ReplaceBlock(once, "| new | table |"));
        Assert.Throws<InvalidDataException>(() => QualityTables.ReplaceBlock("no markers here", "x"));
    }
}
