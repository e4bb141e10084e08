using System.Text;
using Sdd.Formats.Models;

namespace Sdd.Ingest.Tests;

/// <summary>
/// Stable Diffusion teachers through the API: imports checked by layout and size before anything is registered, and
/// text-prompt attributes refused at submission when no distill worker of the deployment can take them.
/// </summary>
public class StableDiffusionApiTests(IngestHost host) : IClassFixture<IngestHost>
{
    private static readonly string[] DiffusersFiles =
    [
        "model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin",
        "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
        "safety_checker/pytorch_model.bin", "README.md",
    ];

    private async Task<string> PutFilesAsync(IEnumerable<string> files)
    {
        var prefix = IngestHost.Unique("sd-") + "/";
        foreach (var f in files) await host.Store.PutAsync(host.UserBucket, prefix + f, Encoding.ASCII.GetBytes("x"));
        return prefix;
    }

    private static HttpClient ClientFor(Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program> factory, string key)
    {
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    [Fact]
    public async Task An_import_of_a_diffusers_folder_registers_a_pending_teacher_with_only_the_files_it_reads_and_sends_its_run()
    {
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var prefix = await PutFilesAsync(DiffusersFiles);
        var response = await client.PostAsJsonAsync("/v1/teachers/import", new { name = "sd15", source = new { bucket = host.UserBucket, prefix } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var teacherId = accepted.GetProperty("teacherId").GetGuid();
        var runId = accepted.GetProperty("runId").GetGuid();
        await using (var db = host.Db())
        {
            var teacher = await db.Teachers.SingleAsync(t => t.Id == teacherId);
            Assert.Equal("stable-diffusion", teacher.Kind);
            Assert.Equal(TeacherStatus.Pending, teacher.Status);
            Assert.Equal(owner, teacher.Owner);
            var plan = StableDiffusionImportSource.FromJson(teacher.SettingsJson).Plan;
            Assert.Equal(StableDiffusionImportPlan.Diffusers, plan.Layout);
            // The pickles, the safety checker and the README are not taken.
            Assert.Equal(DiffusersFiles.Where(f => !f.EndsWith(".bin") && !f.EndsWith(".md")).Order(StringComparer.Ordinal), plan.Files);
            var run = await db.TrainingRuns.SingleAsync(r => r.Id == runId);
            Assert.Equal(RunKind.Teacher, run.Kind);
            Assert.Equal(1, run.TotalSteps);
        }
        Assert.NotEmpty(await host.MessagesAsync("distill", "runId", runId));
        var dto = await client.GetFromJsonAsync<JsonElement>($"/v1/teachers/{teacherId}");
        Assert.Equal("pending", dto.GetProperty("state").GetString());
        // Names are unique per owner.
        var again = await client.PostAsJsonAsync("/v1/teachers/import", new { name = "sd15", source = new { bucket = host.UserBucket, prefix } });
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task Imports_that_are_not_a_pipeline_or_too_large_are_refused_and_register_nothing()
    {
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var cases = new (string[] Files, string Says)[]
        {
            (["v1-5-pruned.ckpt"], "run arbitrary code"),
            (["model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt", "unet/config.json",
              "unet/diffusion_pytorch_model.bin"], "unet/diffusion_pytorch_model.bin"),
            (["model_index.json", "scheduler/scheduler_config.json", "unet/config.json"], "tokenizer/vocab.json is missing"),
            (["v1-5.safetensors"], "carries no tokenizer"),
            (["a.safetensors", "b.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt"], "one original checkpoint"),
            (["photo.png"], "Neither a diffusers folder"),
            (["b@d.safetensors"], "file names"),
        };
        foreach (var (files, says) in cases)
        {
            var prefix = await PutFilesAsync(files);
            var response = await client.PostAsJsonAsync("/v1/teachers/import", new { name = IngestHost.Unique("t-"), source = new { bucket = host.UserBucket, prefix } });
            var detail = await ProblemAssert.IsProblem(response, HttpStatusCode.UnprocessableEntity);
            Assert.Contains(says, detail);
        }
        // Bounded: the bytes a deployment imports.
        await using (var small = host.NewFactory(new() { ["SDD_TEACHER_IMPORT_MAX_BYTES"] = "5" }))
        {
            using var limited = ClientFor(small, key);
            var prefix = await PutFilesAsync(DiffusersFiles);
            var detail = await ProblemAssert.IsProblem(await limited.PostAsJsonAsync("/v1/teachers/import", new { name = "big", source = new { bucket = host.UserBucket, prefix } }),
                HttpStatusCode.UnprocessableEntity);
            Assert.Contains("SDD_TEACHER_IMPORT_MAX_BYTES", detail);
        }
        // A bucket nobody granted, a service bucket, an upload of another owner: 404, before anything is listed.
        foreach (var source in new object[] { new { bucket = IngestHost.Unique("nobody-"), prefix = "" }, new { bucket = host.ModelsBucket, prefix = "" }, new { upload = Guid.NewGuid() } })
            await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/teachers/import", new { name = IngestHost.Unique("t-"), source }), HttpStatusCode.NotFound);
        await using var db = host.Db();
        Assert.False(await db.Teachers.AnyAsync(t => t.Owner == owner));
        Assert.False(await db.TrainingRuns.AnyAsync(r => r.Owner == owner));
    }

    private async Task<(Guid Teacher, Guid Dataset)> SdTeacherAsync(string owner, TeacherStatus status = TeacherStatus.Ready, int resolution = 512)
    {
        await using var db = host.Db();
        var teacher = new Teacher
        {
            Id = Guid.NewGuid(), Name = IngestHost.Unique("sd-"), Kind = "stable-diffusion", Status = status, Resolution = resolution, Owner = owner,
            AttributeNames = [], CreatedAt = DateTimeOffset.UtcNow,
        };
        var datasetId = Guid.NewGuid();
        db.Teachers.Add(teacher);
        db.Datasets.Add(new Dataset
        {
            Id = datasetId, Name = IngestHost.Unique("photos-"), Owner = owner, AttributeNames = ["smiling"], ImageCount = 10, CreatedAt = DateTimeOffset.UtcNow,
            Bucket = host.DatasetsBucket, Prefix = KeyLayout.Dataset(owner, datasetId),
        });
        await db.SaveChangesAsync();
        return (teacher.Id, datasetId);
    }

    /// <summary>The distill workers this deployment has, as their reports say: (SD max image size, minutes since the last report).</summary>
    private async Task WorkersAsync(params (int SdMax, double MinutesAgo)[] workers)
    {
        await using var db = host.Db();
        await db.Workers.ExecuteDeleteAsync();
        foreach (var (max, ago) in workers)
            db.Workers.Add(new WorkerReport
            {
                Name = IngestHost.Unique("w-"), Service = WorkerReport.Distill, Device = "cpu", MemoryBytes = 24L << 30, StableDiffusionMaxImageSize = max,
                TeacherKinds = max > 0 ? ["attribute-ddpm", "latent-ddpm", "stable-diffusion"] : ["attribute-ddpm", "latent-ddpm"],
                StartedAt = DateTimeOffset.UtcNow.AddHours(-1), HeartbeatAt = DateTimeOffset.UtcNow.AddMinutes(-ago),
            });
        await db.SaveChangesAsync();
    }

    [Fact]
    public async Task A_prompt_attribute_stores_its_prompts_and_shows_them()
    {
        await WorkersAsync((512, 0.2));
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var (teacherId, datasetId) = await SdTeacherAsync(owner);
        var response = await client.PostAsJsonAsync("/v1/attributes", new
        {
            name = "smile-sd", teacherId, datasetId, prompt = "  a photo of a smiling person ", sourcePrompt = "a photo of a person", settings = new { steps = 10 },
        });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var attribute = await client.GetFromJsonAsync<JsonElement>("/v1/attributes/smile-sd");
        Assert.Equal("a photo of a smiling person", attribute.GetProperty("prompt").GetString());
        Assert.Equal("a photo of a person", attribute.GetProperty("sourcePrompt").GetString());
        Assert.Equal("smile-sd", attribute.GetProperty("targetAttribute").GetString());
        await using var db = host.Db();
        var row = await db.Attributes.SingleAsync(a => a.Owner == owner && a.Name == "smile-sd");
        Assert.Equal("a photo of a smiling person", row.Prompt);
    }

    [Fact]
    public async Task Prompt_attributes_no_worker_can_take_or_without_what_they_need_are_refused_at_submission()
    {
        await WorkersAsync((512, 0.2));
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var (teacherId, datasetId) = await SdTeacherAsync(owner);
        async Task<string> Refused(HttpClient c, object body, HttpStatusCode status) => await ProblemAssert.IsProblem(await c.PostAsJsonAsync("/v1/attributes", body), status);

        Assert.Contains("prompt", await Refused(client, new { name = "a1", teacherId, datasetId }, HttpStatusCode.UnprocessableEntity));
        Assert.Contains("datasetId", await Refused(client, new { name = "a2", teacherId, prompt = "a photo of a cat" }, HttpStatusCode.UnprocessableEntity));
        Assert.Contains("control", await Refused(client, new { name = "a3", teacherId, datasetId, prompt = "a cat\u0007" }, HttpStatusCode.UnprocessableEntity));
        Assert.Contains("at most", await Refused(client, new { name = "a4", teacherId, datasetId, prompt = new string('a', 1001) }, HttpStatusCode.UnprocessableEntity));
        var (pending, _) = await SdTeacherAsync(owner, TeacherStatus.Pending);
        Assert.Contains("being imported", await Refused(client, new { name = "a5", teacherId = pending, datasetId, prompt = "a cat" }, HttpStatusCode.Conflict));
        // A prompt on an attribute teacher is a mistake, not ignored.
        Guid builtin;
        await using (var db = host.Db()) builtin = (await db.Teachers.SingleAsync(t => t.IsBuiltin && t.Name == "builtin")).Id;
        Assert.Contains("prompt", await Refused(client, new { name = "a6", teacherId = builtin, targetAttribute = "smiling", prompt = "a cat" }, HttpStatusCode.UnprocessableEntity));
        // Another owner's SD teacher is not there.
        var (stranger, _) = await host.NewKeyAsync();
        var (theirs, _) = await SdTeacherAsync(stranger);
        await Refused(client, new { name = "a7", teacherId = theirs, datasetId, prompt = "a cat" }, HttpStatusCode.NotFound);

        // What this deployment's live distill workers report: none at 512 px, no SD at all, none alive (one silent for 10 minutes).
        foreach (var (workers, says) in new[]
                 {
                     (new[] { (256, 0.1), (128, 0.5) }, "up to 256 px"),
                     (new[] { (0, 0.1) }, "SDD_SD_MAX_IMAGE_SIZE is 0"),
                     (new[] { (512, 10.0) }, "No distill worker of this deployment has reported"),
                     (Array.Empty<(int, double)>(), "No distill worker of this deployment has reported"),
                 })
        {
            await WorkersAsync(workers);
            var detail = await Refused(client, new { name = "a8", teacherId, datasetId, prompt = "a cat" }, HttpStatusCode.UnprocessableEntity);
            Assert.Contains(says, detail);
            Assert.Contains("SDD_SD_MAX_IMAGE_SIZE", detail);
        }
        await WorkersAsync((512, 0.1));
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/attributes", new { name = "a9", teacherId, datasetId, prompt = "a cat" })).StatusCode);
        await using var check = host.Db();
        Assert.Equal(["a9"], await check.Attributes.Where(a => a.Owner == owner).Select(a => a.Name).ToListAsync());
        Assert.Equal(1, await check.TrainingRuns.CountAsync(r => r.Owner == owner));
    }
}
