using System.Diagnostics;
using System.Text.Json;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Indicator;
using Sdd.Ml.Torch;

namespace Sdd.Ml.Editors;

/// <summary>The result of training one editor: the editor, the curve when the indicator chose its timesteps, and the cost.</summary>
public sealed record TrainedEditor(Editor Editor, IndicatorCurve? Curve, double Seconds, long TeacherEvaluations);

/// <summary>
/// The whole distillation of one attribute: resolve the timestep rule (running the HQS indicator for "hqs"),
/// then train the editor. Used by the CLI, the quality benchmark and the distill worker alike.
/// </summary>
public static class EditorRecipe
{
    /// <summary>Rows of (images, labels) that lack the attribute.</summary>
    public static (Tensor Images, Tensor Labels) Lacking(Tensor images, Tensor labels, int attribute)
    {
        using var scope = NewDisposeScope();
        var idx = labels[.., attribute].lt(0).nonzero().flatten();
        if (idx.shape[0] == 0) throw new ArgumentException("No image in the data set lacks the attribute: nothing to learn the edit from.");
        return (images.index_select(0, idx).MoveToOuterDisposeScope(), labels.index_select(0, idx).MoveToOuterDisposeScope());
    }

    public static IndicatorCurve RunIndicator(Teacher teacher, string attribute, Tensor images, Tensor labels, DistillSettings s,
        int samples, double? xi, int k, Action<int, int>? progress = null)
    {
        using var scope = NewDisposeScope();
        long n = Math.Min(samples, images.shape[0]);
        var x = images[TensorIndex.Slice(0, n)];
        var states = AttributeCondition.FromLabels(labels[TensorIndex.Slice(0, n)]);
        return HybridQualityScore.Compute(teacher, attribute, x, states, s.Guidance, xi: xi, k: k, seed: s.Seed, progress: progress);
    }

    public static TimestepSampler Sampler(string rule, IndicatorCurve? curve, int timeSteps) =>
        rule == "hqs" ? TimestepSampler.FromSet(curve?.Selected ?? throw new ArgumentException("The hqs rule needs the indicator curve."), "hqs")
                      : TimestepSampler.Parse(rule, timeSteps);

    /// <summary>Trains an editor on images lacking <paramref name="attribute"/>; writes to <paramref name="outDir"/> when given.</summary>
    public static TrainedEditor Train(Teacher teacher, string attribute, Tensor images, Tensor labels, DistillSettings s, string outDir,
        int indicatorSamples = 32, double? xi = null, int k = 5, bool resume = false,
        Action<string, TrainingProgress>? progress = null, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        int a = teacher.AttributeIndex(attribute);
        var (x, y) = Lacking(images, labels, a);
        using (x) using (y)
        {
            long evalsBefore = teacher.Evaluations;
            IndicatorCurve? curve = null;
            var curvePath = Path.Combine(outDir, "curve.json");
            if (s.Timesteps == "hqs")
            {
                if (resume && File.Exists(curvePath)) curve = ReadCurve(curvePath);
                else
                {
                    curve = RunIndicator(teacher, attribute, x, y, s, indicatorSamples, xi, k,
                        (i, n) => progress?.Invoke("indicator", new TrainingProgress(i, n, 0, 0)));
                    Directory.CreateDirectory(outDir);
                    WriteCurve(curve, curvePath);
                }
            }
            var sampler = Sampler(s.Timesteps, curve, teacher.Config.TimeSteps);
            var config = new EditorConfig
            {
                Attribute = attribute,
                ImageSize = teacher.Size,
                Teacher = teacher.Config.Dataset is null ? null : $"attribute-ddpm@{teacher.Config.Step}",
                SelectedTimesteps = sampler.Set ?? [sampler.Lo, sampler.Hi],
                Settings = s,
            };
            var run = new Distillation(outDir, teacher, config, sampler, x, y, resume);
            run.Run(s.Steps, p => progress?.Invoke("distill", p), cancel);
            var editor = run.Editor;
            return new TrainedEditor(editor, curve, sw.Elapsed.TotalSeconds, teacher.Evaluations - evalsBefore);
        }
    }

    public static void WriteCurve(IndicatorCurve curve, string path) => File.WriteAllText(path, JsonSerializer.Serialize(curve, TeacherConfig.Json));

    public static IndicatorCurve ReadCurve(string path) =>
        JsonSerializer.Deserialize<IndicatorCurve>(File.ReadAllText(path), TeacherConfig.Json) ?? throw new InvalidDataException($"'{path}' is empty.");
}
