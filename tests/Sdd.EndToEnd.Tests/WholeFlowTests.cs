using SixLabors.ImageSharp;

namespace Sdd.EndToEnd.Tests;

/// <summary>The product's flow through the three real services: data set → distilled editor → edit jobs → results.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class WholeFlowTests(SddSystem system, ITestOutputHelper output)
{
    private SddApi Api => system.Api;

    [Fact]
    public async Task A_dataset_is_distilled_into_an_editor_in_chunks_and_a_job_of_20_uploads_is_edited()
    {
        var started = DateTime.UtcNow;
        var (runId, versionId) = await system.SmilingEditorAsync();

        var run = await Api.GetAsync($"/v1/runs/{runId}");
        Assert.Equal("succeeded", run.Str("state"));
        Assert.Equal(30, run.Int("step"));
        var editorFolder = $"tenants/{system.Owner}/editors/smiling/1/";
        Assert.Equal(editorFolder, run.Str("checkpointKey"));
        // Three chunks of ten steps: the checkpoint's progress marker names the last one.
        var progress = JsonDocument.Parse(await system.Store.GetBytesAsync(system.Settings.S3.ModelsBucket, editorFolder + "train/progress.json")).RootElement;
        Assert.Equal(3, progress.Int("chunk"));
        Assert.Equal(30, progress.Int("step"));
        var chunks = File.ReadLines(system.Distill.LogFile).Where(l => l.Contains($"Run {runId}: chunk", StringComparison.Ordinal) && l.Contains("trained steps", StringComparison.Ordinal));
        Assert.Equal(3, chunks.Count());

        var attribute = await Api.GetAsync("/v1/attributes/smiling");
        Assert.Equal(1, attribute.Int("activeVersion"));
        var version = attribute.GetProperty("versions").EnumerateArray().Single();
        Assert.Equal(versionId, version.Id("id"));
        Assert.Equal("ready", version.Str("state"));
        var timesteps = version.GetProperty("selectedTimesteps").EnumerateArray().Select(t => t.GetInt32()).ToList();
        Assert.Equal(5, timesteps.Count); // the HQS top 5
        var indicator = version.GetProperty("indicator").EnumerateArray().ToList();
        Assert.Equal(17, indicator.Count); // t = 100..900 step 50, raw entropy and norm beside HQS
        Assert.All(indicator, p => Assert.True(p.GetProperty("norm").GetDouble() > 0));
        var metrics = version.GetProperty("metrics");
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
        var accepted = await Api.SubmitFilesAsync("smiling", files);
        var jobId = accepted.Id("jobId");
        var job = await Api.WaitForAsync($"/v1/jobs/{jobId}", j => j.Str("state") == "completed", TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(20, job.Int("total"));
        Assert.Equal(20, job.GetProperty("counts").Int("done"));
        Assert.Equal(0, job.GetProperty("counts").Int("failed"));

        var results = (await Api.GetAsync($"/v1/jobs/{jobId}/results")).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(20, results.Count);
        Assert.Equal(files.Select(f => f.Name).Order(), results.Select(r => r.Str("name")).Order());
        using var edited = Image.Load(await Api.DownloadAsync(results[0].Str("url")));
        Assert.Equal(SddSystem.ImageSize, edited.Width);
        Assert.Equal(20, (await system.JobOutputsAsync(jobId)).Count);
        output.WriteLine($"job of 20 completed; images/s {job.GetProperty("imagesPerSecond")}");
    }

    [Fact]
    public async Task A_job_from_an_S3_prefix_of_ones_upload_area_edits_every_image_under_it()
    {
        await system.SmilingEditorAsync();
        var bucket = system.Settings.S3.DatasetsBucket;
        var (_, upload) = await Api.UploadAsync(SddSystem.Portraits(12, 48, first: 100).Select(p => ("batch-a/" + p.Name, p.Bytes)).ToList());
        var accepted = await Api.PostAsync("/v1/jobs", new { attribute = "smiling", source = new { bucket, prefix = upload + "batch-a/" } });
        Assert.Equal(12, accepted.Int("items"));
        var jobId = accepted.Id("jobId");
        var job = await Api.WaitForAsync($"/v1/jobs/{jobId}", j => j.Str("state") == "completed", TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(12, job.GetProperty("counts").Int("done"));
        var results = (await Api.GetAsync($"/v1/jobs/{jobId}/results")).GetProperty("items").EnumerateArray().ToList();
        // A photo larger than the editor is edited in residual mode and keeps its size.
        using var edited = Image.Load(await Api.DownloadAsync(results[0].Str("url")));
        Assert.Equal(48, edited.Width);
    }

    [Fact]
    public async Task A_job_with_10_percent_corrupt_images_fails_only_those_items_with_their_reason()
    {
        await system.SmilingEditorAsync();
        var good = SddSystem.Portraits(18, SddSystem.ImageSize, first: 200).ToList();
        var (uploadId, _) = await Api.UploadAsync([.. good, ("truncated.png", good[0].Bytes[..(good[0].Bytes.Length / 3)]),
            ("not-an-image.png", "this is not a picture"u8.ToArray())]);

        var accepted = await Api.PostAsync("/v1/jobs", new { attribute = "smiling", source = new { upload = uploadId } });
        var jobId = accepted.Id("jobId");
        var job = await Api.WaitForAsync($"/v1/jobs/{jobId}", j => j.Str("state") == "completed", TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        Assert.Equal(20, job.Int("total"));
        Assert.Equal(18, job.GetProperty("counts").Int("done"));
        Assert.Equal(2, job.GetProperty("counts").Int("failed"));
        var failed = (await Api.GetAsync($"/v1/jobs/{jobId}/items?state=failed")).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["not-an-image.png", "truncated.png"], failed.Select(i => i.Str("name").Split('/').Last()).Order().ToArray());
        Assert.All(failed, i => Assert.False(string.IsNullOrWhiteSpace(i.Str("error"))));
        foreach (var i in failed) output.WriteLine($"{i.Str("name")}: {i.Str("error")}");
        Assert.Equal(18, (await system.JobOutputsAsync(jobId)).Count);
    }
}
