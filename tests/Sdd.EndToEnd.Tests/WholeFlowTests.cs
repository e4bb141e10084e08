using SixLabors.ImageSharp;

namespace Sdd.EndToEnd.Tests;

/// <summary>The product's flow through the three real services: data set → distilled editor → edit jobs → results.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class WholeFlowTests(SddSystem system, ITestOutputHelper output)
{
    private SddClient Api => system.Api;

    [Fact]
    public async Task A_dataset_is_distilled_into_an_editor_in_chunks_and_a_job_of_20_uploads_is_edited()
    {
        var started = DateTime.UtcNow;
        var (runId, versionId) = await system.SmilingEditorAsync();

        var run = await Api.Runs.GetAsync(runId);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(30, run.Step);
        var editorFolder = $"tenants/{system.Owner}/editors/smiling/1/";
        Assert.Equal(editorFolder, run.CheckpointKey);
        // Three chunks of ten steps: the checkpoint's progress marker names the last one.
        var progress = JsonDocument.Parse(await system.Store.GetBytesAsync(system.Settings.S3.ModelsBucket, editorFolder + "train/progress.json")).RootElement;
        Assert.Equal(3, progress.Int("chunk"));
        Assert.Equal(30, progress.Int("step"));
        var chunks = File.ReadLines(system.Distill.LogFile).Where(l => l.Contains($"Run {runId}: chunk", StringComparison.Ordinal) && l.Contains("trained steps", StringComparison.Ordinal));
        Assert.Equal(3, chunks.Count());

        var attribute = await Api.Attributes.GetAsync("smiling");
        Assert.Equal(1, attribute.ActiveVersion);
        var version = attribute.Versions.Single();
        Assert.Equal(versionId, version.Id);
        Assert.Equal(EditorState.Ready, version.State);
        var timesteps = version.SelectedTimesteps;
        Assert.Equal(5, timesteps.Count); // the HQS top 5
        var indicator = version.Indicator;
        Assert.Equal(17, indicator.Count); // t = 100..900 step 50, raw entropy and norm beside HQS
        Assert.All(indicator, p => Assert.True(p.Norm > 0));
        var metrics = version.Metrics!.Value;
        foreach (var m in new[] { "editability", "psnrSource", "ssimSource", "othersKept" }) Assert.True(metrics.TryGetProperty(m, out _), $"metric {m} missing: {metrics}");
        // The published editor at the top of its folder; the training state in the checkpoint generation the marker names,
        // the only one left (older generations are deleted after each switch).
        foreach (var file in new[] { "config.json", "model.safetensors", "curve.json", "curve.png", "grid.png" })
            Assert.NotNull(await system.Store.StatAsync(system.Settings.S3.ModelsBucket, editorFolder + file));
        var generation = progress.Str("folder");
        Assert.Matches("^train/chunk-00003-[a-z0-9]+/$", generation);
        foreach (var file in new[] { "config.json", "model.safetensors", "train/optimizer.bin", "train/state.json" })
            Assert.NotNull(await system.Store.StatAsync(system.Settings.S3.ModelsBucket, editorFolder + generation + file));
        Assert.All(await system.ListAsync(system.Settings.S3.ModelsBucket, editorFolder + "train/"),
            key => Assert.True(key == editorFolder + "train/progress.json" || key.StartsWith(editorFolder + generation, StringComparison.Ordinal), key));
        output.WriteLine($"distilled in {(DateTime.UtcNow - started).TotalSeconds:0.0} s; t = {string.Join(",", timesteps)}; metrics {metrics}");

        var files = SddSystem.Portraits(20, SddSystem.ImageSize).ToList();
        var accepted = await Api.Jobs.SubmitFilesAsync("smiling", files.ToUploads());
        var jobId = accepted.JobId;
        var job = await Api.WaitForCompletedAsync(jobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(20, job.Total);
        Assert.Equal(20, job.Counts.Done);
        Assert.Equal(0, job.Counts.Failed);

        var results = await Api.Jobs.ListAllResultsAsync(jobId).ToListAsync();
        Assert.Equal(20, results.Count);
        Assert.Equal(files.Select(f => f.Name).Order(), results.Select(r => r.Name).Order());
        using var edited = Image.Load(await Api.Jobs.ReadResultAsync(results[0]));
        Assert.Equal(SddSystem.ImageSize, edited.Width);
        Assert.Equal(20, (await system.JobOutputsAsync(jobId)).Count);
        output.WriteLine($"job of 20 completed; images/s {job.ImagesPerSecond}");
    }

    [Fact]
    public async Task A_job_from_an_S3_prefix_of_ones_upload_area_edits_every_image_under_it()
    {
        await system.SmilingEditorAsync();
        var bucket = system.Settings.S3.DatasetsBucket;
        var upload = await Api.Uploads.UploadAsync(SddSystem.Portraits(12, 48, first: 100).Select(p => ("batch-a/" + p.Name, p.Bytes)).ToUploads());
        var accepted = await Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromBucket(bucket, upload.Prefix + "batch-a/")));
        Assert.Equal(12, accepted.Items);
        var jobId = accepted.JobId;
        var job = await Api.WaitForCompletedAsync(jobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(12, job.Counts.Done);
        var results = await Api.Jobs.ListAllResultsAsync(jobId).ToListAsync();
        // A photo larger than the editor is edited in residual mode and keeps its size.
        using var edited = Image.Load(await Api.Jobs.ReadResultAsync(results[0]));
        Assert.Equal(48, edited.Width);
    }

    [Fact]
    public async Task A_job_with_10_percent_corrupt_images_fails_only_those_items_with_their_reason()
    {
        await system.SmilingEditorAsync();
        var good = SddSystem.Portraits(18, SddSystem.ImageSize, first: 200).ToList();
        var upload = await Api.Uploads.UploadAsync(((List<(string Name, byte[] Bytes)>)[.. good, ("truncated.png", good[0].Bytes[..(good[0].Bytes.Length / 3)]),
            ("not-an-image.png", "this is not a picture"u8.ToArray())]).ToUploads());

        var accepted = await Api.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload.Id)));
        var jobId = accepted.JobId;
        var job = await Api.WaitForCompletedAsync(jobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(20, job.Total);
        Assert.Equal(18, job.Counts.Done);
        Assert.Equal(2, job.Counts.Failed);
        var failed = await Api.Jobs.ListAllItemsAsync(jobId, ItemState.Failed).ToListAsync();
        Assert.Equal(["not-an-image.png", "truncated.png"], failed.Select(i => i.Name.Split('/').Last()).Order().ToArray());
        Assert.All(failed, i => Assert.False(string.IsNullOrWhiteSpace(i.Error)));
        foreach (var i in failed) output.WriteLine($"{i.Name}: {i.Error}");
        Assert.Equal(18, (await system.JobOutputsAsync(jobId)).Count);
    }
}
