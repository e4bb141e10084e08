using Microsoft.Extensions.DependencyInjection;
using Sdd.Ingest.Teachers;

namespace Sdd.Ingest.Tests;

/// <summary>The builtin teacher, teacher training runs and the attribute/editor registry.</summary>
public class RegistryTests(IngestHost host) : IClassFixture<IngestHost>
{
    private async Task<JsonElement> BuiltinAsync(HttpClient client) =>
        (await client.AllAsync("/v1/teachers")).Single(t => t.GetProperty("builtin").GetBoolean());

    /// <summary>A data set row of the owner's (10 images, none stored): enough for the API to accept a teacher run on it.</summary>
    private async Task<Guid> DatasetAsync(string owner, params string[] attributes)
    {
        var id = Guid.NewGuid();
        await using var db = host.Db();
        db.Datasets.Add(new Dataset
        {
            Id = id, Name = IngestHost.Unique("ds-"), Owner = owner, AttributeNames = [.. attributes], ImageCount = 10, CreatedAt = DateTimeOffset.UtcNow,
            Bucket = host.DatasetsBucket, Prefix = KeyLayout.Dataset(owner, id),
        });
        await db.SaveChangesAsync();
        return id;
    }

    [Fact]
    public async Task The_builtin_teacher_is_registered_once_with_its_files_and_seen_by_every_key()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var builtin = await BuiltinAsync(client);
        Assert.Equal("builtin", builtin.GetProperty("name").GetString());
        Assert.Equal(IngestHost.TeacherAttributes, builtin.GetProperty("attributes").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(32, builtin.GetProperty("imageSize").GetInt32());
        Assert.Equal("ready", builtin.GetProperty("state").GetString());
        var id = builtin.GetProperty("id").GetGuid();
        foreach (var file in new[] { "config.json", "model.safetensors", "judge/config.json", "judge/model.safetensors" })
            Assert.NotNull(await host.Store.StatAsync(host.ModelsBucket, KeyLayout.Teacher(null, id) + file));

        // Starting again (two processes at once) registers nothing new.
        await Task.WhenAll(Enumerable.Range(0, 2).Select(async _ =>
        {
            await using var scope = host.Factory.Services.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<BuiltinTeacher>().RegisterAsync();
        }));
        await using var db = host.Db();
        Assert.Equal(1, await db.Teachers.CountAsync(t => t.IsBuiltin));
    }

    [Fact]
    public async Task Training_a_teacher_records_a_run_and_sends_TrainTeacher_to_the_distill_queue()
    {
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var datasetId = await DatasetAsync(owner, "smiling", "bangs");

        var response = await client.PostAsJsonAsync("/v1/teachers", new { datasetId, steps = 500 });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var runId = accepted.GetProperty("runId").GetGuid();
        var teacherId = accepted.GetProperty("teacherId").GetGuid();
        var run = await client.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}");
        Assert.Equal("teacher", run.GetProperty("kind").GetString());
        Assert.Equal("queued", run.GetProperty("state").GetString());
        Assert.Equal(500, run.GetProperty("totalSteps").GetInt32());
        var teacher = await client.GetFromJsonAsync<JsonElement>($"/v1/teachers/{teacherId}");
        Assert.Equal("training", teacher.GetProperty("state").GetString());
        Assert.Equal(["smiling", "bangs"], teacher.GetProperty("attributes").EnumerateArray().Select(a => a.GetString()));
        var command = Assert.Single(await host.MessagesAsync("distill", "runId", runId));
        Assert.Equal(teacherId, command.GetProperty("teacherId").GetGuid());

        var (_, otherKey) = await host.NewKeyAsync();
        using var other = host.Client(otherKey);
        await ProblemAssert.IsProblem(await other.GetAsync($"/v1/teachers/{teacherId}"), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await other.GetAsync($"/v1/runs/{runId}"), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await other.PostAsJsonAsync("/v1/teachers", new { datasetId }), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_run_is_cancelled_by_its_owner_or_an_admin_only_while_live_and_what_it_made_fails()
    {
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var teacherId = (await BuiltinAsync(client)).GetProperty("id").GetGuid();
        var name = IngestHost.Unique("cancel-");
        var accepted = await (await client.PostAsJsonAsync("/v1/attributes", new { name, teacherId, targetAttribute = "smiling", settings = new { steps = 50, scale = 30 } }))
            .Content.ReadFromJsonAsync<JsonElement>();
        var runId = accepted.GetProperty("runId").GetGuid();

        // Another owner cannot cancel it (404, as on every route) and leaves it queued.
        var (_, otherKey) = await host.NewKeyAsync();
        using var other = host.Client(otherKey);
        await ProblemAssert.IsProblem(await other.PostAsync($"/v1/runs/{runId}/cancel", null), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await client.PostAsync($"/v1/runs/{Guid.NewGuid()}/cancel", null), HttpStatusCode.NotFound);
        Assert.Equal("queued", (await client.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}")).GetProperty("state").GetString());

        // The owner cancels it: 202 with the run, cancelled with its reason; the version it was distilling failed.
        var response = await client.PostAsync($"/v1/runs/{runId}/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var run = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("cancelled", run.GetProperty("state").GetString());
        Assert.Equal("cancelled by its owner", run.GetProperty("error").GetString());
        Assert.Equal("cancelled", (await client.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}")).GetProperty("state").GetString());
        var attribute = await client.GetFromJsonAsync<JsonElement>($"/v1/attributes/{name}");
        Assert.Equal("failed", attribute.GetProperty("versions")[0].GetProperty("state").GetString());
        await using (var db = host.Db())
        {
            var row = await db.TrainingRuns.SingleAsync(r => r.Id == runId);
            Assert.Equal((RunState.Cancelled, (string?)null), (row.State, row.Worker));
            Assert.NotNull(row.FinishedAt);
            // The worker's lease and its completion both need a running run: a worker still holding it records nothing.
            Assert.False(await db.RenewAsync(runId, "w1", CancellationToken.None));
            Assert.False(await db.CompleteAsync(runId, "w1", 50, "k", CancellationToken.None));
            Assert.False(await db.TryAcquireAsync(runId, "w1", TimeSpan.FromSeconds(30), CancellationToken.None));
        }
        // Only a live run can be cancelled: a second cancel is a 409 naming its state; the active-run quota is free again.
        var again = await client.PostAsync($"/v1/runs/{runId}/cancel", null);
        await ProblemAssert.IsProblem(again, HttpStatusCode.Conflict);
        Assert.Contains("is cancelled", await again.Content.ReadAsStringAsync());

        // An admin may cancel any owner's run; a teacher run's teacher fails with it.
        var datasetId = await DatasetAsync(owner, "smiling");
        var training = await (await client.PostAsJsonAsync("/v1/teachers", new { datasetId, steps = 500 })).Content.ReadFromJsonAsync<JsonElement>();
        var teacherRun = training.GetProperty("runId").GetGuid();
        using var admin = host.Client();
        var byAdmin = await admin.PostAsync($"/v1/runs/{teacherRun}/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, byAdmin.StatusCode);
        Assert.Equal("cancelled by an admin", (await byAdmin.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());
        var teacher = await client.GetFromJsonAsync<JsonElement>($"/v1/teachers/{training.GetProperty("teacherId").GetGuid()}");
        Assert.Equal("failed", teacher.GetProperty("state").GetString());
    }

    [Fact]
    public async Task An_attribute_is_created_with_a_first_version_and_sends_DistillEditor()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var teacherId = (await BuiltinAsync(client)).GetProperty("id").GetGuid();
        var name = IngestHost.Unique("smiling-");

        var response = await client.PostAsJsonAsync("/v1/attributes", new { name, teacherId, targetAttribute = "smiling", settings = new { steps = 50, scale = 30 } });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(1, accepted.GetProperty("version").GetInt32());
        var versionId = accepted.GetProperty("editorVersionId").GetGuid();
        var command = Assert.Single(await host.MessagesAsync("distill", "runId", accepted.GetProperty("runId").GetGuid()));
        Assert.Equal(versionId, command.GetProperty("editorVersionId").GetGuid());

        var attribute = await client.GetFromJsonAsync<JsonElement>($"/v1/attributes/{name}");
        Assert.Equal("smiling", attribute.GetProperty("targetAttribute").GetString());
        Assert.Equal(JsonValueKind.Null, attribute.TryGetProperty("activeVersion", out var active) ? active.ValueKind : JsonValueKind.Null);
        var version = Assert.Single(attribute.GetProperty("versions").EnumerateArray());
        Assert.Equal("training", version.GetProperty("state").GetString());
        var settings = version.GetProperty("settings");
        Assert.Equal(50, settings.GetProperty("steps").GetInt32());
        Assert.Equal("delta", settings.GetProperty("mode").GetString());
        Assert.Equal("hqs", settings.GetProperty("timesteps").GetString());
        Assert.Equal(30, settings.GetProperty("scale").GetDouble());

        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/attributes", new { name, teacherId, targetAttribute = "smiling" }), HttpStatusCode.Conflict);
        var second = await client.PostAsJsonAsync($"/v1/attributes/{name}/versions", new { settings = new { mode = "sds" } });
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal(2, (await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("version").GetInt32());
        // Without a scale the version stores "auto": the worker calibrates it on the validation split.
        var versions = (await client.GetFromJsonAsync<JsonElement>($"/v1/attributes/{name}")).GetProperty("versions").EnumerateArray().ToList();
        var auto = versions.Single(v => v.GetProperty("version").GetInt32() == 2).GetProperty("settings");
        Assert.Equal("auto", auto.GetProperty("scale").GetString());
        Assert.Equal(0, auto.GetProperty("positiveShare").GetDouble());
    }

    [Fact]
    public async Task Attribute_requests_are_checked_against_the_teacher()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var teacherId = (await BuiltinAsync(client)).GetProperty("id").GetGuid();

        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/attributes", new { name = IngestHost.Unique("a-"), teacherId = Guid.NewGuid(), targetAttribute = "smiling" }),
            HttpStatusCode.NotFound);
        var detail = await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/attributes", new { name = IngestHost.Unique("a-"), teacherId, targetAttribute = "bald" }),
            HttpStatusCode.UnprocessableEntity);
        Assert.Contains("smiling", detail);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/attributes",
            new { name = IngestHost.Unique("a-"), teacherId, targetAttribute = "smiling", settings = new { mode = "magic" } }), HttpStatusCode.UnprocessableEntity);
    }

    [Fact]
    public async Task Only_a_ready_version_can_be_made_active()
    {
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        var name = await host.ReadyAttributeAsync(owner); // version 1 ready and active
        var second = await client.PostAsJsonAsync($"/v1/attributes/{name}/versions", new { });
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);

        await ProblemAssert.IsProblem(await client.PutAsJsonAsync($"/v1/attributes/{name}/active", new { version = 2 }), HttpStatusCode.Conflict);
        await ProblemAssert.IsProblem(await client.PutAsJsonAsync($"/v1/attributes/{name}/active", new { version = 9 }), HttpStatusCode.NotFound);

        await using (var db = host.Db())
        {
            var v2 = await db.EditorVersions.SingleAsync(v => v.Attribute!.Name == name && v.Version == 2);
            v2.Status = EditorStatus.Ready;
            await db.SaveChangesAsync();
        }
        var pinned = await client.PutAsJsonAsync($"/v1/attributes/{name}/active", new { version = 2 });
        Assert.Equal(HttpStatusCode.OK, pinned.StatusCode);
        Assert.Equal(2, (await pinned.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("activeVersion").GetInt32());
        var rolledBack = await client.PutAsJsonAsync($"/v1/attributes/{name}/active", new { version = 1 });
        Assert.Equal(1, (await rolledBack.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("activeVersion").GetInt32());
    }
}
