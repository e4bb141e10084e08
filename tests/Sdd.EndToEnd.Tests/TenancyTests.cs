using System.Net;
using Npgsql;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// Two keys on the real services: owner A (the fixture's key) has an editor, a data set, a finished job, an upload, a
/// teacher and a grant; owner B names each of them on every route that takes an id, a name, a bucket or a prefix.
/// Every attempt is refused, and nothing of A's is listed, counted, edited, signed or zipped for B.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class TenancyTests(SddSystem system, ITestOutputHelper output)
{
    private sealed record Attempt(string Method, string Path, object? Body, HttpStatusCode Expected);

    [Fact]
    public async Task Every_route_refuses_another_owners_resources_and_reads_nothing_of_theirs()
    {
        // Owner A's resources.
        var a = system.Api;
        var (runA, _) = await system.SmilingEditorAsync();
        var datasetA = await system.DatasetAsync();
        var jobA = (await a.SubmitFilesAsync("smiling", SddSystem.Portraits(3, SddSystem.ImageSize, first: 300))).Id("jobId");
        await a.WaitForAsync($"/v1/jobs/{jobA}", j => j.Str("state") == "completed", TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        var itemA = (await a.GetAsync($"/v1/jobs/{jobA}/items")).GetProperty("items").EnumerateArray().First().Id("id");
        var (uploadA, uploadPrefixA) = await a.UploadAsync([("private/secret.png", SddSystem.Portraits(1, SddSystem.ImageSize, first: 400).Single().Bytes)]);
        var teacherA = (await a.PostAsync("/v1/teachers", new { datasetId = datasetA, steps = 1, imageSize = SddSystem.ImageSize })).Id("teacherId");
        var userBucket = system.RunName + "-user";
        await system.Store.EnsureBucketAsync(userBucket);
        await system.Store.PutAsync(userBucket, "inbox/a.png", SddSystem.Portraits(1, SddSystem.ImageSize, first: 401).Single().Bytes, "image/png");
        using var admin = SddApi.Client(system.ApiUrl, system.AdminKey);
        var grantResponse = await admin.PostAsJsonAsync("/v1/grants", new { owner = system.Owner, bucket = userBucket, prefix = "inbox/" });
        Assert.Equal(HttpStatusCode.Created, grantResponse.StatusCode);
        var grantA = (await grantResponse.Content.ReadFromJsonAsync<JsonElement>()).Id("id");
        Assert.Equal(HttpStatusCode.Accepted, (await a.RawPostAsync("/v1/jobs", new { attribute = "smiling", source = new { bucket = userBucket, prefix = "inbox/" } })).StatusCode);

        // Owner B: a key of its own, with an attribute of the same name as A's (names are per owner, never a 409).
        var keyB = await admin.PostAsJsonAsync("/v1/keys", new { name = "tenant-b" });
        var createdB = await keyB.Content.ReadFromJsonAsync<JsonElement>();
        var ownerB = createdB.Str("id");
        using var b = new SddApi(system.ApiUrl, createdB.Str("key"));
        var builtin = system.TeacherId;
        var before = await b.RawPostAsync("/v1/attributes/smiling/versions", new { });
        Assert.Equal(HttpStatusCode.NotFound, before.StatusCode); // A's smiling is invisible to B
        var ownSmiling = await b.PostAsync("/v1/attributes", new { name = "smiling", teacherId = builtin, targetAttribute = "smiling", settings = new { steps = 10 } });
        await b.WaitForAsync($"/v1/runs/{ownSmiling.Id("runId")}", r => r.Str("state") is "succeeded" or "failed", TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        var datasets = system.Settings.S3.DatasetsBucket;

        var attempts = new List<Attempt>
        {
            new("GET", $"/v1/datasets/{datasetA}", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/teachers/{teacherA}", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/runs/{runA}", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/jobs/{jobA}", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/jobs/{jobA}/items", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/jobs/{jobA}/items?state=done", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/jobs/{jobA}/results", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/jobs/{jobA}/results.zip", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/jobs/{jobA}/items/{itemA}/output", null, HttpStatusCode.NotFound),
            new("POST", $"/v1/jobs/{jobA}/cancel", null, HttpStatusCode.NotFound),
            new("GET", $"/v1/uploads/{uploadA}", null, HttpStatusCode.NotFound),
            new("POST", $"/v1/uploads/{uploadA}/files", new { files = new[] { "more.png" } }, HttpStatusCode.NotFound),
            new("DELETE", $"/v1/uploads/{uploadA}", null, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-1", upload = uploadA }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-2", bucket = datasets, prefix = uploadPrefixA }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-3", bucket = datasets, prefix = $"tenants/{system.Owner}/" }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-4", bucket = datasets, prefix = "tenants/" }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-5", bucket = datasets, prefix = "" }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-6", bucket = datasets, prefix = $"tenants/{ownerB}/uploads/../../{system.Owner}/uploads/" }, HttpStatusCode.BadRequest),
            new("POST", "/v1/datasets", new { name = "b-7", bucket = userBucket, prefix = "inbox/" }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-8", bucket = system.Settings.S3.JobsBucket, prefix = "" }, HttpStatusCode.NotFound),
            new("POST", "/v1/datasets", new { name = "b-9", bucket = system.Settings.S3.ModelsBucket, prefix = "" }, HttpStatusCode.NotFound),
            new("POST", "/v1/teachers", new { datasetId = datasetA, steps = 1 }, HttpStatusCode.NotFound),
            new("POST", "/v1/attributes", new { name = "b-from-a", teacherId = teacherA, targetAttribute = "smiling" }, HttpStatusCode.NotFound),
            new("POST", "/v1/attributes", new { name = "b-on-a", teacherId = builtin, targetAttribute = "smiling", datasetId = datasetA }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { upload = uploadA } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { upload = uploadA, prefix = "private/" } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = datasets, prefix = uploadPrefixA } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = datasets, prefix = $"tenants/{system.Owner}/" } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = datasets, prefix = "tenants/" } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = datasets, prefix = "" } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = system.Settings.S3.JobsBucket, prefix = KeyLayout.Job(system.Owner, jobA) } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = system.Settings.S3.ModelsBucket, prefix = "" } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = userBucket, prefix = "inbox/" } }, HttpStatusCode.NotFound),
            new("POST", "/v1/jobs", new { attribute = "smiling", source = new { bucket = userBucket, prefix = "" } }, HttpStatusCode.NotFound),
            new("POST", $"/v1/attributes/smiling/publish?owner={system.Owner}", null, HttpStatusCode.Forbidden),
            new("POST", $"/v1/teachers/{teacherA}/publish", null, HttpStatusCode.Forbidden),
            new("POST", "/v1/grants", new { owner = ownerB, bucket = userBucket, prefix = "" }, HttpStatusCode.Forbidden),
            new("DELETE", $"/v1/grants/{grantA}", null, HttpStatusCode.Forbidden),
            new("GET", "/v1/keys", null, HttpStatusCode.Forbidden),
            new("DELETE", $"/v1/keys/{system.Owner}", null, HttpStatusCode.Forbidden),
        };

        var table = new List<string> { "| B's request | expected | answered |", "| --- | --- | --- |" };
        var wrong = new List<string>();
        foreach (var attempt in attempts)
        {
            using var response = await b.SendAsync(new HttpMethod(attempt.Method), attempt.Path, attempt.Body);
            var text = await response.Content.ReadAsStringAsync();
            table.Add($"| {attempt.Method} {attempt.Path.Replace(system.Owner, "<A>").Replace(ownerB, "<B>")} {(attempt.Body is null ? "" : JsonSerializer.Serialize(attempt.Body).Replace(system.Owner, "<A>").Replace(ownerB, "<B>"))} | {(int)attempt.Expected} | {(int)response.StatusCode} |");
            if (response.StatusCode != attempt.Expected) wrong.Add($"{attempt.Method} {attempt.Path}: {(int)response.StatusCode} {text}");
            if (text.Contains("X-Amz-Signature", StringComparison.OrdinalIgnoreCase) || response.Content.Headers.ContentType?.MediaType is "image/png" or "application/zip")
                wrong.Add($"{attempt.Method} {attempt.Path} handed B a signed URL or A's bytes: {text[..Math.Min(300, text.Length)]}");
        }
        foreach (var line in table) output.WriteLine(line);

        // Lists: B sees its own things and the builtin teacher, none of A's.
        var lists = new Dictionary<string, string[]>
        {
            ["/v1/datasets"] = [datasetA.ToString()],
            ["/v1/uploads"] = [uploadA.ToString()],
            ["/v1/runs"] = [runA.ToString()],
            ["/v1/teachers"] = [teacherA.ToString()],
            ["/v1/grants"] = [grantA.ToString()],
            ["/v1/attributes"] = [runA.ToString()],
        };
        foreach (var (path, secrets) in lists)
        {
            var text = (await b.GetAsync(path)).GetRawText();
            foreach (var secret in secrets.Append(system.Owner).Append(uploadPrefixA))
                if (text.Contains(secret, StringComparison.OrdinalIgnoreCase)) wrong.Add($"GET {path} shows B '{secret}' of A's: {text}");
            output.WriteLine($"GET {path} (as B): nothing of A's");
        }
        var bAttributes = (await b.GetAsync("/v1/attributes")).EnumerateArray().Where(x => !x.GetProperty("shared").GetBoolean()).ToList();
        Assert.Equal(["smiling"], bAttributes.Select(x => x.Str("name"))); // its own; published ones (the demo test's) are marked shared

        // Nothing was created for B from A's data: no data set, no job, no item that reads A's objects or A's grant.
        await using (var db = system.Database())
        {
            await db.OpenAsync();
            await using var count = new NpgsqlCommand("""
                SELECT (SELECT count(*) FROM datasets WHERE "Owner" = @b),
                       (SELECT count(*) FROM edit_jobs WHERE "Owner" = @b),
                       (SELECT count(*) FROM teachers WHERE "Owner" = @b),
                       (SELECT count(*) FROM job_items i JOIN edit_jobs j ON j."Id" = i."JobId"
                         WHERE j."Owner" = @b AND (i."SourceKey" LIKE 'tenants/' || @a || '/%' OR i."SourceBucket" = @user))
                """, db);
            count.Parameters.AddWithValue("b", ownerB);
            count.Parameters.AddWithValue("a", system.Owner);
            count.Parameters.AddWithValue("user", userBucket);
            await using var r = await count.ExecuteReaderAsync();
            await r.ReadAsync();
            Assert.Equal((0L, 0L, 0L, 0L), (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3)));
        }
        // A's job is untouched: still completed, its outputs all there.
        var jobAfter = await a.GetAsync($"/v1/jobs/{jobA}");
        Assert.Equal(("completed", 3), (jobAfter.Str("state"), jobAfter.GetProperty("counts").Int("done")));
        Assert.Equal(3, (await system.JobOutputsAsync(jobA)).Count);
        Assert.NotNull(await system.Store.StatAsync(datasets, uploadPrefixA + "private/secret.png"));

        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        output.WriteLine($"{attempts.Count} cross-owner requests refused, {lists.Count} lists clean, 0 rows or items of B's reading A's data");
    }
}
