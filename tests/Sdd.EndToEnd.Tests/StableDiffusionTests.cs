using SixLabors.ImageSharp;
using Sdd.Ml.StableDiffusion;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// Stable Diffusion weights through the services: a tiny random SD 1.x pipeline (written by <see cref="TinyPipeline"/>, 64 px)
/// uploaded and imported, a text-prompt attribute distilled on it and a job edited. With random weights the edit means
/// nothing: the path, the stored prompts and that every item finishes are what is checked. Pickle weights are refused.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class StableDiffusionTests(SddSystem system, ITestOutputHelper output)
{
    [Fact]
    public async Task A_pipeline_is_imported_a_prompt_attribute_distilled_on_it_and_a_job_edited()
    {
        var dir = Path.Combine(system.WorkDir, "tiny-sd");
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        using (TinyPipeline.Write(dir, seed: 3)) { }
        // A pickle beside the safetensors (as Hugging Face repositories hold both): never uploaded, never read.
        File.WriteAllBytes(Path.Combine(dir, "unet", "diffusion_pytorch_model.bin"), [0x80, 0x02, 0x7D]);
        var accepted = await system.Api.Teachers.ImportLocalAsync("tiny-sd", dir, system.Api.Uploads);
        var run = await system.Api.WaitForFinishedAsync(accepted.RunId, TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        Assert.True(run.State == RunState.Succeeded, $"import run {run.State}: {run.Error}");
        Assert.Equal(RunKind.Teacher, run.Kind);
        var teacher = await system.Api.Teachers.GetAsync(accepted.TeacherId);
        Assert.Equal(TeacherState.Ready, teacher.State);
        Assert.Equal(TeacherConfig.KindStableDiffusion, teacher.Kind);
        Assert.Equal(64, teacher.ImageSize);
        var prefix = $"tenants/{system.Owner}/teachers/{teacher.Id}/";
        var stored = await system.ListAsync(system.Settings.S3.ModelsBucket, prefix);
        foreach (var file in new[] { "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                     "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json" })
            Assert.Contains(prefix + file, stored);
        Assert.DoesNotContain(stored, k => k.EndsWith(".bin", StringComparison.Ordinal));

        // A prompt attribute on the portraits, their labels unread; refused without a prompt.
        var dataset = await system.DatasetAsync();
        var noPrompt = await Assert.ThrowsAsync<SddApiException>(() => system.Api.Attributes.CreateAsync(new CreateAttribute("cat-ish", teacher.Id, null, dataset)));
        Assert.Equal(422, noPrompt.Status);
        Assert.Contains("prompt", noPrompt.Message);
        var created = await system.Api.Attributes.CreateAsync(new CreateAttribute("cat-ish", teacher.Id, null, dataset,
            new DistillSettings(Steps: 4, Mode: "delta", Scale: 10, Timesteps: "list:300,600"), Prompt: "a photo of a cat", SourcePrompt: "a photo"));
        var distilled = await system.Api.WaitForFinishedAsync(created.RunId, TimeSpan.FromMinutes(4), () => system.Distill.Tail());
        Assert.True(distilled.State == RunState.Succeeded, $"distill run {distilled.State}: {distilled.Error}");
        var attribute = await system.Api.Attributes.GetAsync("cat-ish");
        Assert.Equal("a photo of a cat", attribute.Prompt);
        Assert.Equal("a photo", attribute.SourcePrompt);
        Assert.Equal(EditorState.Ready, attribute.Active!.State);
        Assert.Equal([300, 600], attribute.Active.SelectedTimesteps);
        var editorConfig = JsonDocument.Parse(await system.Store.GetBytesAsync(system.Settings.S3.ModelsBucket,
            KeyLayout.Editor(system.Owner, "cat-ish", attribute.Active.Version) + "config.json")).RootElement;
        Assert.Equal("a photo of a cat", editorConfig.GetProperty("prompt").GetString());
        Assert.Equal(64, editorConfig.GetProperty("image_size").GetInt32());

        // Photos like the ones it was distilled on: the data set's 16 px portraits, which the 64 px teacher saw enlarged
        // (its domain gate, fitted on those, skipped 5 of 6 sharp 64 px renders, scores 5.7-7.1 against a threshold of 4.3:
        // finer detail than anything it was trained on; these score 1.1-3.5).
        var files = SddSystem.Portraits(6, SddSystem.ImageSize, first: 300).Select(p =>
        {
            using var image = Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(p.Bytes);
            Sdd.Ml.Data.ImageCodec.ResizeCenterCrop(image, 64);
            using var ms = new MemoryStream();
            image.SaveAsPng(ms);
            return (p.Name, ms.ToArray());
        }).ToList();
        var job = await system.Api.Jobs.SubmitFilesAsync("cat-ish", files.ToUploads());
        var status = await system.Api.WaitForCompletedAsync(job.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        foreach (var i in await system.Api.Jobs.ListAllItemsAsync(job.JobId).ToListAsync()) output.WriteLine($"{i.Name}: {i.State} {i.DomainScore} {i.Error}");
        Assert.Equal(6, status.Counts.Done);
        Assert.Equal(0, status.Counts.Failed);
        var results = await system.Api.Jobs.ListAllResultsAsync(job.JobId).ToListAsync();
        using var edited = Image.Load(await system.Api.Jobs.ReadResultAsync(results[0]));
        Assert.Equal(64, edited.Width);
        output.WriteLine($"imported {teacher.Id}, distilled version {attribute.Active.Version} ({distilled.Step} steps), edited 6 photos");
    }

    [Fact]
    public async Task Pickle_weights_and_folders_that_are_no_pipeline_are_refused_and_nothing_is_registered()
    {
        var pickle = await system.Api.Uploads.UploadAsync([UploadFile.FromBytes("v1-5-pruned.ckpt", [0x50, 0x4B, 0x03, 0x04, 0, 0])]);
        var e = await Assert.ThrowsAsync<SddApiException>(() => system.Api.Teachers.ImportAsync(new ImportTeacher("pickled", new TeacherSource(Upload: pickle.Id))));
        Assert.Equal(422, e.Status);
        Assert.Contains("run arbitrary code", e.Message);
        Assert.Contains("safetensors", e.Message);
        var binOnly = await system.Api.Uploads.UploadAsync([
            UploadFile.FromBytes("model_index.json", "{}"u8.ToArray()), UploadFile.FromBytes("unet/config.json", "{}"u8.ToArray()),
            UploadFile.FromBytes("unet/diffusion_pytorch_model.bin", [0x80, 2]), UploadFile.FromBytes("scheduler/scheduler_config.json", "{}"u8.ToArray()),
            UploadFile.FromBytes("tokenizer/vocab.json", "{}"u8.ToArray()), UploadFile.FromBytes("tokenizer/merges.txt", "#version: 0.2\n"u8.ToArray())]);
        e = await Assert.ThrowsAsync<SddApiException>(() => system.Api.Teachers.ImportAsync(new ImportTeacher("bin-only", new TeacherSource(Upload: binOnly.Id))));
        Assert.Equal(422, e.Status);
        Assert.Contains("unet/diffusion_pytorch_model.bin", e.Message);
        var images = await system.Api.Uploads.UploadAsync([UploadFile.FromBytes("a.png", [1, 2, 3])]);
        e = await Assert.ThrowsAsync<SddApiException>(() => system.Api.Teachers.ImportAsync(new ImportTeacher("no-pipeline", new TeacherSource(Upload: images.Id))));
        Assert.Contains("Neither a diffusers folder", e.Message);
        // Another owner's upload is not there for this caller.
        e = await Assert.ThrowsAsync<SddApiException>(() => system.Api.Teachers.ImportAsync(new ImportTeacher("stolen", new TeacherSource(Upload: Guid.NewGuid()))));
        Assert.Equal(404, e.Status);
        var names = await system.Api.Teachers.ListAllAsync().Select(t => t.Name).ToListAsync();
        Assert.DoesNotContain("pickled", names);
        Assert.DoesNotContain("bin-only", names);
        Assert.DoesNotContain("no-pipeline", names);
    }
}
