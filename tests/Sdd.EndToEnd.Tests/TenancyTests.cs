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
    /// <summary>One request of B's, made through the client; <see cref="Call"/> answers what it got (bytes, a record) when it was not refused.</summary>
    private sealed record Attempt(string Request, Func<SddClient, Task<object?>> Call, HttpStatusCode Expected);

    private static Attempt Try(string request, Func<SddClient, Task> call, HttpStatusCode expected) =>
        new(request, async b => { await call(b); return null; }, expected);

    private static Attempt Try<T>(string request, Func<SddClient, Task<T>> call, HttpStatusCode expected) =>
        new(request, async b => await call(b), expected);

    private static Attempt Bytes(string request, Func<SddClient, Stream, Task> download, HttpStatusCode expected) =>
        new(request, async b => { using var bytes = new MemoryStream(); await download(b, bytes); return bytes.ToArray(); }, expected);

    [Fact]
    public async Task Every_route_refuses_another_owners_resources_and_reads_nothing_of_theirs()
    {
        // Owner A's resources.
        var a = system.Api;
        var (runA, _) = await system.SmilingEditorAsync();
        var datasetA = await system.DatasetAsync();
        var jobA = (await a.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(3, SddSystem.ImageSize, first: 300).ToUploads())).JobId;
        await a.WaitForCompletedAsync(jobA, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        var itemA = (await a.Jobs.ListItemsAsync(jobA)).Items.First().Id;
        var uploadOfA = await a.Uploads.UploadAsync([UploadFile.FromBytes("private/secret.png", SddSystem.Portraits(1, SddSystem.ImageSize, first: 400).Single().Bytes)]);
        var (uploadA, uploadPrefixA) = (uploadOfA.Id, uploadOfA.Prefix);
        var teacherA = (await a.Teachers.TrainAsync(new TrainTeacher(datasetA, Steps: 1, ImageSize: SddSystem.ImageSize))).TeacherId;
        var userBucket = system.RunName + "-user";
        await system.Store.EnsureBucketAsync(userBucket);
        await system.Store.PutAsync(userBucket, "inbox/a.png", SddSystem.Portraits(1, SddSystem.ImageSize, first: 401).Single().Bytes, "image/png");
        using var admin = system.Client(system.AdminKey);
        var grantA = (await admin.Grants.CreateAsync(system.Owner, userBucket, "inbox/")).Id;
        await a.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromBucket(userBucket, "inbox/"))); // 202: A may read its grant

        // Owner B: a key of its own, with an attribute of the same name as A's (names are per owner, never a 409).
        var createdB = await admin.Keys.CreateAsync("tenant-b");
        var ownerB = createdB.Id.ToString();
        using var b = system.Client(createdB.Key);
        var builtin = system.TeacherId;
        var before = await Assert.ThrowsAsync<SddApiException>(() => b.Attributes.AddVersionAsync("smiling"));
        Assert.Equal(404, before.Status); // A's smiling is invisible to B
        var ownSmiling = await b.Attributes.CreateAsync(new CreateAttribute("smiling", builtin, "smiling", Settings: new DistillSettings(Steps: 10)));
        await b.WaitForFinishedAsync(ownSmiling.RunId, TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        var datasets = system.Settings.S3.DatasetsBucket;
        var (jobs, models) = (system.Settings.S3.JobsBucket, system.Settings.S3.ModelsBucket);
        RegisterDataset Named(string name, string bucket, string prefix) => new(name, Bucket: bucket, Prefix: prefix);
        SubmitJob Smiling(JobSource source) => new("smiling", source);

        var attempts = new List<Attempt>
        {
            Try($"GET /v1/datasets/{datasetA}", c => c.Datasets.GetAsync(datasetA), HttpStatusCode.NotFound),
            Try($"GET /v1/teachers/{teacherA}", c => c.Teachers.GetAsync(teacherA), HttpStatusCode.NotFound),
            Try($"GET /v1/runs/{runA}", c => c.Runs.GetAsync(runA), HttpStatusCode.NotFound),
            Try($"GET /v1/jobs/{jobA}", c => c.Jobs.GetAsync(jobA), HttpStatusCode.NotFound),
            Try($"GET /v1/jobs/{jobA}/items", c => c.Jobs.ListItemsAsync(jobA), HttpStatusCode.NotFound),
            Try($"GET /v1/jobs/{jobA}/items?state=done", c => c.Jobs.ListItemsAsync(jobA, ItemState.Done), HttpStatusCode.NotFound),
            Try($"GET /v1/jobs/{jobA}/results", c => c.Jobs.ListResultsAsync(jobA), HttpStatusCode.NotFound),
            Bytes($"GET /v1/jobs/{jobA}/results.zip", (c, s) => c.Jobs.DownloadResultsZipAsync(jobA, s), HttpStatusCode.NotFound),
            Bytes($"GET /v1/jobs/{jobA}/items/{itemA}/output", (c, s) => c.Jobs.DownloadOutputAsync(jobA, itemA, s), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs/{jobA}/cancel", c => c.Jobs.CancelAsync(jobA), HttpStatusCode.NotFound),
            Try($"GET /v1/uploads/{uploadA}", c => c.Uploads.GetAsync(uploadA), HttpStatusCode.NotFound),
            Try($"POST /v1/uploads/{uploadA}/files [more.png]", c => c.Uploads.AddFilesAsync(uploadA, ["more.png"]), HttpStatusCode.NotFound),
            Try($"DELETE /v1/uploads/{uploadA}", c => c.Uploads.DeleteAsync(uploadA), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-1 upload {uploadA}", c => c.Datasets.RegisterAsync(new RegisterDataset("b-1", Upload: uploadA)), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-2 {datasets}/{uploadPrefixA}", c => c.Datasets.RegisterAsync(Named("b-2", datasets, uploadPrefixA)), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-3 {datasets}/tenants/{system.Owner}/", c => c.Datasets.RegisterAsync(Named("b-3", datasets, $"tenants/{system.Owner}/")), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-4 {datasets}/tenants/", c => c.Datasets.RegisterAsync(Named("b-4", datasets, "tenants/")), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-5 {datasets}/", c => c.Datasets.RegisterAsync(Named("b-5", datasets, "")), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-6 {datasets}/tenants/{ownerB}/uploads/../../{system.Owner}/uploads/",
                c => c.Datasets.RegisterAsync(Named("b-6", datasets, $"tenants/{ownerB}/uploads/../../{system.Owner}/uploads/")), HttpStatusCode.BadRequest),
            Try($"POST /v1/datasets b-7 {userBucket}/inbox/", c => c.Datasets.RegisterAsync(Named("b-7", userBucket, "inbox/")), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-8 {jobs}/", c => c.Datasets.RegisterAsync(Named("b-8", jobs, "")), HttpStatusCode.NotFound),
            Try($"POST /v1/datasets b-9 {models}/", c => c.Datasets.RegisterAsync(Named("b-9", models, "")), HttpStatusCode.NotFound),
            Try($"POST /v1/teachers dataset {datasetA}", c => c.Teachers.TrainAsync(new TrainTeacher(datasetA, Steps: 1)), HttpStatusCode.NotFound),
            Try($"POST /v1/attributes b-from-a teacher {teacherA}", c => c.Attributes.CreateAsync(new CreateAttribute("b-from-a", teacherA, "smiling")), HttpStatusCode.NotFound),
            Try($"POST /v1/attributes b-on-a dataset {datasetA}", c => c.Attributes.CreateAsync(new CreateAttribute("b-on-a", builtin, "smiling", datasetA)), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs upload {uploadA}", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromUpload(uploadA))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs upload {uploadA} private/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromUpload(uploadA, "private/"))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {datasets}/{uploadPrefixA}", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(datasets, uploadPrefixA))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {datasets}/tenants/{system.Owner}/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(datasets, $"tenants/{system.Owner}/"))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {datasets}/tenants/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(datasets, "tenants/"))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {datasets}/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(datasets, ""))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {jobs}/{KeyLayout.Job(system.Owner, jobA)}", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(jobs, KeyLayout.Job(system.Owner, jobA)))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {models}/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(models, ""))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {userBucket}/inbox/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(userBucket, "inbox/"))), HttpStatusCode.NotFound),
            Try($"POST /v1/jobs {userBucket}/", c => c.Jobs.SubmitAsync(Smiling(JobSource.FromBucket(userBucket, ""))), HttpStatusCode.NotFound),
            Try($"POST /v1/attributes/smiling/publish?owner={system.Owner}", c => c.Attributes.PublishAsync("smiling", system.Owner), HttpStatusCode.Forbidden),
            Try($"POST /v1/teachers/{teacherA}/publish", c => c.Teachers.PublishAsync(teacherA), HttpStatusCode.Forbidden),
            Try($"POST /v1/grants {ownerB} {userBucket}/", c => c.Grants.CreateAsync(ownerB, userBucket, ""), HttpStatusCode.Forbidden),
            Try($"DELETE /v1/grants/{grantA}", c => c.Grants.RevokeAsync(grantA), HttpStatusCode.Forbidden),
            Try("GET /v1/keys", c => c.Keys.ListAsync(), HttpStatusCode.Forbidden),
            Try($"DELETE /v1/keys/{system.Owner}", c => c.Keys.RevokeAsync(Guid.Parse(system.Owner)), HttpStatusCode.Forbidden),
        };

        var table = new List<string> { "| B's request | expected | answered |", "| --- | --- | --- |" };
        var wrong = new List<string>();
        string Hide(string text) => text.Replace(system.Owner, "<A>").Replace(ownerB, "<B>");
        foreach (var attempt in attempts)
        {
            int answered;
            string text;
            try
            {
                var got = await attempt.Call(b);
                answered = 200;
                text = got is byte[] bytes ? $"{bytes.Length} bytes" : JsonSerializer.Serialize(got, SddJson.Options);
                wrong.Add($"{attempt.Request} was answered for B (2xx): {text[..Math.Min(300, text.Length)]}"); // A's bytes or records
            }
            catch (SddApiException e)
            {
                answered = e.Status;
                text = e.Body;
            }
            table.Add($"| {Hide(attempt.Request)} | {(int)attempt.Expected} | {answered} |");
            if (answered != (int)attempt.Expected) wrong.Add($"{attempt.Request}: {answered} {text}");
            if (text.Contains("X-Amz-Signature", StringComparison.OrdinalIgnoreCase))
                wrong.Add($"{attempt.Request} handed B a signed URL: {text[..Math.Min(300, text.Length)]}");
        }
        foreach (var line in table) output.WriteLine(line);

        // Lists: B sees its own things and the builtin teacher, none of A's.
        var lists = new Dictionary<string, (Func<Task<string>> Read, string[] Secrets)>
        {
            ["/v1/datasets"] = (async () => Json(await b.Datasets.ListAllAsync().ToListAsync()), [datasetA.ToString()]),
            ["/v1/uploads"] = (async () => Json(await b.Uploads.ListAllAsync().ToListAsync()), [uploadA.ToString()]),
            ["/v1/runs"] = (async () => Json(await b.Runs.ListAllAsync().ToListAsync()), [runA.ToString()]),
            ["/v1/teachers"] = (async () => Json(await b.Teachers.ListAllAsync().ToListAsync()), [teacherA.ToString()]),
            ["/v1/grants"] = (async () => Json(await b.Grants.ListAllAsync().ToListAsync()), [grantA.ToString()]),
            ["/v1/attributes"] = (async () => Json(await b.Attributes.ListAllAsync().ToListAsync()), [runA.ToString()]),
        };
        foreach (var (path, (read, secrets)) in lists)
        {
            var text = await read();
            foreach (var secret in secrets.Append(system.Owner).Append(uploadPrefixA))
                if (text.Contains(secret, StringComparison.OrdinalIgnoreCase)) wrong.Add($"GET {path} shows B '{secret}' of A's: {text}");
            output.WriteLine($"GET {path} (as B): nothing of A's");
        }
        var bAttributes = await b.Attributes.ListAllAsync().Where(x => !x.Shared).ToListAsync();
        Assert.Equal(["smiling"], bAttributes.Select(x => x.Name)); // its own; published ones (the demo test's) are marked shared

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
        var jobAfter = await a.Jobs.GetAsync(jobA);
        Assert.Equal((JobState.Completed, 3), (jobAfter.State, jobAfter.Counts.Done));
        Assert.Equal(3, (await system.JobOutputsAsync(jobA)).Count);
        Assert.NotNull(await system.Store.StatAsync(datasets, uploadPrefixA + "private/secret.png"));

        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        output.WriteLine($"{attempts.Count} cross-owner requests refused, {lists.Count} lists clean, 0 rows or items of B's reading A's data");
    }

    private static string Json<T>(T value) => JsonSerializer.Serialize(value, SddJson.Options);
}
