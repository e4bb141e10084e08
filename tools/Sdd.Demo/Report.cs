using System.Text;
using Sdd.Ml.Data;
using Sdd.Ml.Evaluation;
using static TorchSharp.torch;

namespace Sdd.Demo;

/// <summary>The demo's outputs: the contact sheet, fidelity of the job's results, and summary.md.</summary>
public static class Report
{
    public sealed record JobFidelity(int Compared, double PsnrSource, double PsnrCounterfactual, double IdentityPsnrCounterfactual);

    public sealed record Facts(Teacher Teacher, Dataset Dataset, DemoOptions Options, int Version, Guid RunId, Run Run,
        EditorVersion Editor, Guid JobId, JobStatus Job, double JobSeconds, JobFidelity Fidelity, List<(string Step, double Seconds)> Times,
        double TotalSeconds, SddSettings Settings, string DatasetPrefix);

    /// <summary>PSNR of the returned images to their sources and to the ground-truth counterfactuals (the portrait with the attribute).</summary>
    public static JobFidelity Fidelity(PortraitBatch held, List<string> names, Dictionary<string, byte[]> outputs)
    {
        using var scope = NewDisposeScope();
        var idx = Enumerable.Range(0, names.Count).Where(i => outputs.ContainsKey(names[i])).ToArray();
        if (idx.Length == 0) return new JobFidelity(0, 0, 0, 0);
        var edited = stack(idx.Select(i => { using var img = ImageCodec.Decode(outputs[names[i]]); return ImageCodec.ToTensor(img); }).ToArray());
        using var sel = tensor(idx.Select(i => (long)i).ToArray());
        var src = held.Images.index_select(0, sel);
        var cf = held.Counterfactuals.index_select(0, sel);
        double Mean(Tensor t) => Math.Round(t.mean().item<float>(), 2);
        return new JobFidelity(idx.Length, Mean(ImageMetrics.Psnr(edited, src)), Mean(ImageMetrics.Psnr(edited, cf)), Mean(ImageMetrics.Psnr(src, cf)));
    }

    /// <summary>Before/after pairs: rows alternate source and edit, 8 columns, 4x nearest-neighbour.</summary>
    public static void ContactSheet(Tensor sources, List<string> names, Dictionary<string, byte[]> outputs, string path)
    {
        using var scope = NewDisposeScope();
        var shown = Enumerable.Range(0, names.Count).Where(i => outputs.ContainsKey(names[i])).Take(32).ToArray();
        var rows = new List<Tensor>();
        foreach (var group in shown.Chunk(8))
        {
            rows.AddRange(group.Select(i => sources[i]));
            rows.AddRange(group.Select(i => { using var img = ImageCodec.Decode(outputs[names[i]]); return ImageCodec.ToTensor(img); }));
        }
        if (rows.Count == 0) return;
        int scale = Math.Max(1, 128 / (int)sources.shape[2]);
        var tiles = nn.functional.interpolate(stack(rows.ToArray()), scale_factor: [scale, scale], mode: InterpolationMode.Nearest);
        ImageCodec.SavePng(ImageCodec.Grid(tiles, Math.Min(8, shown.Length), 4), path);
    }

    public static void Summary(string path, Facts f)
    {
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        void L(string line = "") => s.Append(line).Append('\n');
        int done = f.Job.Counts.Done, failed = f.Job.Counts.Failed;
        L($"# SDD demo — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        L();
        L($"One attribute editor (`{f.Options.Attribute}`) distilled from the builtin teacher with Selective Diffusion Distillation, then applied to a batch of held-out photos through the three services (Sdd.Ingest API, Sdd.Distill, Sdd.Edit).");
        L();
        L("## What ran");
        L();
        L($"- Teacher: builtin `{f.Teacher.Id}`, {f.Teacher.ImageSize} px, attributes {string.Join(", ", f.Teacher.Attributes)}.");
        L($"- Data set: {f.Dataset.ImageCount} synthetic portraits at {f.Teacher.ImageSize} px in `s3://{f.Settings.S3.DatasetsBucket}/{f.DatasetPrefix}` (`{f.Dataset.Name}`).");
        L($"- Editor: `{f.Options.Attribute}` v{f.Version}, run `{f.RunId}`: {f.Run.Step} of {f.Options.Steps} steps, settings `{f.Editor.Settings}`, weights at `s3://{f.Settings.S3.ModelsBucket}/{f.Run.CheckpointKey}`.");
        L($"- Job `{f.JobId}`: {f.Job.Total} held-out portraits lacking `{f.Options.Attribute}` (seed {HeldOutPortraits.HeldOutSeed}, never trained on).");
        L();
        L("## HQS timestep selection");
        L();
        var selected = f.Editor.SelectedTimesteps.ToHashSet();
        L($"Selected timesteps: **{string.Join(", ", selected.Order())}** (the top 5 of the Hybrid Quality Score curve; `hqs-curve.png`).");
        L();
        L("| t | entropy | L1 norm | HQS | |");
        L("| ---: | ---: | ---: | ---: | --- |");
        foreach (var p in f.Editor.Indicator)
            L(string.Create(inv, $"| {p.T} | {p.Entropy:0.0000} | {p.Norm:0.0} | {p.Hqs:0.000} | {(selected.Contains(p.T) ? "selected" : "")} |"));
        L();
        L("## Editor metrics (held-out portraits, judged by the teacher's judge)");
        L();
        L("| metric | value |");
        L("| --- | ---: |");
        if (f.Editor.Metrics is { ValueKind: JsonValueKind.Object } metrics)
            foreach (var m in metrics.EnumerateObject()) L($"| {m.Name} | {m.Value} |");
        L();
        L("## The job");
        L();
        L($"- Items: {f.Job.Total}; done {done}, failed {failed}; state {SddJson.Name(f.Job.State)}.");
        double e2e = (done + failed) / Math.Max(1e-9, f.JobSeconds);
        var workerRate = f.Job.ImagesPerSecond is { } ips ? ips.ToString(inv) : "n/a";
        L(string.Create(inv, $"- Submit to completed: {f.JobSeconds:0.0} s = **{e2e:0.0} images/s** end to end (upload, queue, download, edit, encode, upload, record); the API's started-to-finished rate: {workerRate} images/s."));
        L(string.Create(inv, $"- Fidelity of the {f.Fidelity.Compared} results: PSNR to the source {f.Fidelity.PsnrSource:0.00} dB; PSNR to the true counterfactual {f.Fidelity.PsnrCounterfactual:0.00} dB (doing nothing scores {f.Fidelity.IdentityPsnrCounterfactual:0.00} dB)."));
        L();
        L("## Timings");
        L();
        L("| step | seconds |");
        L("| --- | ---: |");
        foreach (var (step, secs) in f.Times) L(string.Create(inv, $"| {step} | {secs:0.0} |"));
        L(string.Create(inv, $"| demo driver total | {f.TotalSeconds:0.0} |"));
        L();
        L("## Files");
        L();
        L("- `contact-sheet.png`: before/after pairs (rows alternate source and edit).");
        L("- `editor-grid.png`: the distill worker's evaluation grid (source, edit, true counterfactual).");
        L("- `hqs-curve.png`: the indicator curve.");
        L("- `results/`: every edited image.");
        File.WriteAllText(path, s.ToString());
    }
}
