using System.Diagnostics;
using System.IO.Compression;

namespace Sdd.Client.Tests;

/// <summary>SddClient against a fake API: problems, retries under one Idempotency-Key, pages, uploads, downloads.</summary>
public sealed class ClientTests
{
    private static readonly Guid JobId = Guid.Parse("9c41e5a4-0000-4000-8000-000000000001");

    [Fact]
    public async Task A_problem_answer_becomes_an_SddApiException_with_status_title_and_detail_and_is_not_retried()
    {
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapGet("/v1/jobs/{id}", (Guid id) => FakeApi.Problem(404, "Not Found", $"No job {id}.")));
        using var client = api.Client();

        var e = await Assert.ThrowsAsync<SddApiException>(() => client.Jobs.GetAsync(JobId));

        Assert.Equal((404, "Not Found", $"No job {JobId}."), (e.Status, e.Title, e.Detail));
        Assert.Equal(HttpStatusCode.NotFound, e.StatusCode); // an HttpRequestException like any other
        Assert.Equal($"/v1/jobs/{JobId}", e.Path);
        Assert.Null(e.RetryAfter);
        Assert.Single(api.Requests);
        Assert.Equal("test-key", api.Requests.Single().ApiKey);
    }

    [Fact]
    public async Task A_503_is_tried_again_with_the_same_idempotency_key_and_the_next_call_gets_a_new_one()
    {
        int posts = 0;
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapPost("/v1/jobs", () => Interlocked.Increment(ref posts) == 1
                ? FakeApi.Problem(503, "Service Unavailable", "PostgreSQL is down.")
                : Results.Accepted($"/v1/jobs/{JobId}", new { jobId = JobId, items = 3 })));
        using var client = api.Client();
        var upload = Guid.NewGuid();

        var first = await client.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload), OutputFormat.Webp));
        var second = await client.Jobs.SubmitAsync(new SubmitJob("smiling", JobSource.FromUpload(upload)));

        Assert.Equal((JobId, 3), (first.JobId, first.Items));
        Assert.Equal(JobId, second.JobId);
        var keys = api.Seen("POST", "/v1/jobs").Select(r => r.IdempotencyKey).ToList();
        Assert.Equal(3, keys.Count);
        Assert.All(keys, k => Assert.True(Guid.TryParse(k, out _), k));
        Assert.Equal(keys[0], keys[1]); // the retry of one call
        Assert.NotEqual(keys[1], keys[2]); // a new call
        // The JSON the contract names: camelCase, the format as a lowercase string, nothing null sent.
        var body = api.Seen("POST", "/v1/jobs")[0].Json;
        Assert.Equal("smiling", body.GetProperty("attribute").GetString());
        Assert.Equal(upload, body.GetProperty("source").GetProperty("upload").GetGuid());
        Assert.Equal("webp", body.GetProperty("format").GetString());
        Assert.False(body.GetProperty("source").TryGetProperty("bucket", out _));
        Assert.False(body.TryGetProperty("webhook", out _));
    }

    [Fact]
    public async Task A_retry_meeting_its_own_first_try_at_work_waits_for_the_replay_but_a_first_409_is_thrown_at_once()
    {
        int tries = 0;
        await using var api = await FakeApi.StartAsync((app, _) =>
        {
            app.MapPost("/v1/datasets", () => Interlocked.Increment(ref tries) switch
            {
                1 => Results.StatusCode(504), // the answer to the first try is lost on the way
                2 => FakeApi.Problem(409, "Conflict", "A request with this Idempotency-Key is still being processed."),
                _ => Results.Created("/v1/datasets/x", new { id = Guid.Empty, name = "faces", bucket = "b", prefix = "p/", attributes = new[] { "smiling" }, imageCount = 3, createdAt = DateTimeOffset.UtcNow }),
            });
            app.MapPost("/v1/attributes", () => FakeApi.Problem(409, "Conflict", "An attribute named 'smiling' exists already."));
        });
        using var client = api.Client();

        var dataset = await client.Datasets.RegisterAsync(new RegisterDataset("faces", Upload: Guid.NewGuid()));
        var taken = await Assert.ThrowsAsync<SddApiException>(() => client.Attributes.CreateAsync(new CreateAttribute("smiling", Guid.Empty, "smiling")));

        Assert.Equal("faces", dataset.Name);
        Assert.Single(api.Seen("POST", "/v1/datasets").Select(r => r.IdempotencyKey).Distinct());
        Assert.Equal(3, tries);
        Assert.Equal(409, taken.Status);
        Assert.Single(api.Seen("POST", "/v1/attributes"));
    }

    [Fact]
    public async Task A_429_with_Retry_After_is_waited_out_and_a_Retry_After_beyond_the_limit_is_thrown_at_once()
    {
        int tries = 0;
        await using var api = await FakeApi.StartAsync((app, _) =>
        {
            app.MapPost("/v1/teachers", (HttpContext ctx) => Interlocked.Increment(ref tries) == 1
                ? FakeApi.Problem(429, "Too Many Requests", "4 runs are not finished (SDD_MAX_ACTIVE_RUNS).", retryAfter: 1, ctx)
                : Results.Accepted("/v1/runs/x", new { teacherId = Guid.Empty, runId = Guid.Empty }));
            app.MapPost("/v1/attributes", (HttpContext ctx) =>
                FakeApi.Problem(429, "Too Many Requests", "600 requests a minute (SDD_RATE_PER_MINUTE).", retryAfter: 3600, ctx));
            app.MapGet("/v1/runs", (HttpContext ctx) => FakeApi.Problem(429, "Too Many Requests", "No Retry-After given."));
        });
        using var client = api.Client();

        var clock = Stopwatch.StartNew();
        await client.Teachers.TrainAsync(new TrainTeacher(Guid.NewGuid(), Steps: 10));
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 30);
        Assert.Equal(2, tries);
        var keys = api.Seen("POST", "/v1/teachers").Select(r => r.IdempotencyKey).Distinct().ToList();
        Assert.Single(keys);

        var tooLong = await Assert.ThrowsAsync<SddApiException>(() => client.Attributes.CreateAsync(new CreateAttribute("a", Guid.Empty, "smiling")));
        Assert.Equal((429, TimeSpan.FromHours(1)), (tooLong.Status, tooLong.RetryAfter));
        Assert.Single(api.Seen("POST", "/v1/attributes"));

        var unsaid = await Assert.ThrowsAsync<SddApiException>(() => client.Runs.ListAsync());
        Assert.Equal(429, unsaid.Status);
        Assert.Single(api.Seen("GET", "/v1/runs")); // no Retry-After: the client does not guess
    }

    [Fact]
    public async Task A_lasting_502_runs_out_of_tries_and_the_last_answer_is_thrown()
    {
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapGet("/v1/keys/me", () => Results.Text("<html>bad gateway</html>", "text/html", statusCode: 502)));
        using var client = api.Client(maxAttempts: 3);

        var e = await Assert.ThrowsAsync<SddApiException>(() => client.Keys.GetMeAsync());

        Assert.Equal(502, e.Status);
        Assert.Equal(3, api.Requests.Count);
    }

    [Fact]
    public async Task A_refused_connection_is_tried_again_until_the_API_answers()
    {
        int port = FakeApi.FreePort();
        using var client = new SddClient(new HttpClient(), new SddClientOptions
        {
            BaseAddress = new Uri($"http://127.0.0.1:{port}"), ApiKey = "k", MaxAttempts = 8, RetryDelay = TimeSpan.FromMilliseconds(150),
        });
        var call = client.Keys.GetMeAsync();
        await Task.Delay(400); // refused meanwhile
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapGet("/v1/keys/me", () => new { id = "owner-1", name = "alice", admin = false }), port);

        var me = await call;

        Assert.Equal("alice", me.Name);
    }

    [Fact]
    public async Task Walking_a_list_follows_next_through_every_page_with_the_filters_on_each()
    {
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapGet("/v1/jobs", (string? cursor) =>
            {
                var (ids, next) = cursor switch
                {
                    null => (new[] { 1, 2 }, "c2"),
                    "c2" => (new[] { 3, 4 }, "c3"),
                    "c3" => (new[] { 5 }, (string?)null),
                    _ => throw new InvalidOperationException(cursor),
                };
                return Results.Ok(new { items = ids.Select(i => Wire.Job(new Guid(i, 0, 0, new byte[8]), "running", 10, i)), next });
            }));
        using var client = api.Client();

        var all = await client.Jobs.ListAllAsync(new JobFilter(JobState.Running, "smiling")).ToListAsync();
        var first = await client.Jobs.ListAsync(limit: 2);

        Assert.Equal([1, 2, 3, 4, 5], all.Select(j => j.Counts.Done));
        Assert.Equal("c2", first.Next);
        var queries = api.Seen("GET", "/v1/jobs").Select(r => r.Query).ToList();
        Assert.Equal(["?state=running&attribute=smiling", "?state=running&attribute=smiling&cursor=c2", "?state=running&attribute=smiling&cursor=c3", "?limit=2"], queries);
    }

    [Fact]
    public async Task A_list_answered_as_a_bare_array_is_one_last_page_and_a_repeated_cursor_stops_the_walk()
    {
        await using var api = await FakeApi.StartAsync((app, _) =>
        {
            app.MapGet("/v1/datasets", () => new[] { new { id = Guid.NewGuid(), name = "portraits", bucket = "b", prefix = "p/", attributes = new[] { "smiling" }, imageCount = 200, createdAt = DateTimeOffset.UtcNow } });
            app.MapGet("/v1/runs", () => new { items = Array.Empty<object>(), next = "same" });
        });
        using var client = api.Client();

        var datasets = await client.Datasets.ListAllAsync().ToListAsync();
        Assert.Equal("portraits", Assert.Single(datasets).Name);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await client.Runs.ListAllAsync().ToListAsync());
    }

    [Fact]
    public async Task A_job_status_reads_its_states_and_format_as_lowercase_strings()
    {
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapGet("/v1/jobs/{id}", (Guid id) => Wire.Job(id, "completed", 10, 8, failed: 2, withErrors: true, format: "webp")));
        using var client = api.Client();

        var job = await client.Jobs.GetAsync(JobId);

        Assert.Equal((JobState.Completed, OutputFormat.Webp, true), (job.State, job.OutputFormat, job.CompletedWithErrors));
        Assert.True(job.IsFinished);
        Assert.False(job.Succeeded);
        Assert.Equal(10, job.Processed);
        Assert.Null(job.EtaSeconds);
        Assert.Contains("\"state\":\"completed\"", JsonSerializer.Serialize(job, SddJson.Options));
    }

    [Fact]
    public async Task Uploading_asks_for_URLs_then_PUTs_every_file_to_storage_without_the_key_and_submits_a_job_over_the_upload()
    {
        var uploadId = Guid.NewGuid();
        var stored = new System.Collections.Concurrent.ConcurrentDictionary<string, byte[]>();
        int puts = 0;
        await using var api = await FakeApi.StartAsync((app, fake) =>
        {
            object Urls(JsonElement body) => new
            {
                id = uploadId, bucket = "sdd-datasets", prefix = $"tenants/o/uploads/{uploadId}/", createdAt = DateTimeOffset.UtcNow, expiresAt = DateTimeOffset.UtcNow.AddHours(1),
                files = body.GetProperty("files").EnumerateArray().Select(f => new { name = f.GetString(), url = $"{fake.Url}storage/{f.GetString()}?X-Amz-Signature=abc" }),
            };
            app.MapPost("/v1/uploads", (JsonElement body) => Results.Created($"/v1/uploads/{uploadId}", Urls(body)));
            app.MapPost("/v1/uploads/{id}/files", (Guid id, JsonElement body) => Results.Ok(Urls(body)));
            app.MapPut("/storage/{**name}", async (string name, HttpRequest request) =>
            {
                if (Interlocked.Increment(ref puts) == 2) return Results.StatusCode(503); // one passing failure of storage
                using var buffer = new MemoryStream();
                await request.Body.CopyToAsync(buffer);
                stored[name] = buffer.ToArray();
                return Results.Ok();
            });
            app.MapPost("/v1/jobs", () => Results.Accepted($"/v1/jobs/{JobId}", new { jobId = JobId, items = 1002 }));
        });
        using var client = api.Client();
        // 1002 files: URLs are asked for 1000 names at a time.
        var files = Enumerable.Range(0, 1002).Select(i => UploadFile.FromBytes($"set-{i % 3}/photo-{i:D4}.jpg", [(byte)(i % 256), 1, 2])).ToList();
        var reports = new List<UploadProgress>();

        var accepted = await client.Jobs.SubmitThroughUploadAsync("smiling", files, new JobOptions(OutputFormat.Png, "https://example.com/hook", [WebhookEvents.JobCompleted]),
            new InlineProgress<UploadProgress>(p => { lock (reports) reports.Add(p); }));

        Assert.Equal(JobId, accepted.JobId);
        Assert.Equal(files.Count, stored.Count);
        Assert.All(files, f => Assert.Equal(ReadAll(f), stored[f.Name]));
        var putRequests = api.Requests.Where(r => r.Method == "PUT").ToList();
        Assert.Equal(files.Count + 1, putRequests.Count);
        Assert.All(putRequests, r => Assert.Null(r.ApiKey)); // storage never sees the API key
        Assert.All(putRequests, r => Assert.Equal("image/jpeg", r.ContentType));
        Assert.Single(api.Seen("POST", "/v1/uploads"));
        Assert.Single(api.Seen("POST", $"/v1/uploads/{uploadId}/files"));
        Assert.Equal(1000, api.Seen("POST", "/v1/uploads")[0].Json.GetProperty("files").GetArrayLength());
        var job = api.Seen("POST", "/v1/jobs").Single().Json;
        Assert.Equal(uploadId, job.GetProperty("source").GetProperty("upload").GetGuid());
        Assert.Equal("png", job.GetProperty("format").GetString());
        Assert.Equal("https://example.com/hook", job.GetProperty("webhook").GetString());
        Assert.Equal(["job.completed"], job.GetProperty("webhookEvents").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(new UploadProgress(files.Count, files.Count, files.Count * 3L, files.Count * 3L), reports.MaxBy(r => r.Files));
    }

    [Fact]
    public async Task A_multipart_job_sends_the_attribute_every_file_and_the_options_as_form_fields()
    {
        IFormCollection? form = null;
        await using var api = await FakeApi.StartAsync((app, _) =>
            app.MapPost("/v1/jobs", async (HttpRequest request) =>
            {
                form = await request.ReadFormAsync();
                return Results.Accepted($"/v1/jobs/{JobId}", new { jobId = JobId, items = form.Files.Count });
            }).DisableAntiforgery());
        using var client = api.Client();

        var accepted = await client.Jobs.SubmitFilesAsync("smiling", [UploadFile.FromBytes("a.png", [1, 2, 3]), UploadFile.FromBytes("b.webp", [4, 5])],
            new JobOptions(OutputFormat.Jpeg, "https://example.com/h", [WebhookEvents.JobCompleted, WebhookEvents.JobFailed]));

        Assert.Equal(2, accepted.Items);
        Assert.Equal("smiling", form!["attribute"].ToString());
        Assert.Equal("jpeg", form["format"].ToString());
        Assert.Equal("https://example.com/h", form["webhook"].ToString());
        Assert.Equal("job.completed,job.failed", form["webhookEvents"].ToString());
        Assert.Equal(["a.png", "b.webp"], form.Files.Select(f => f.FileName));
        Assert.Equal(["image/png", "image/webp"], form.Files.Select(f => f.ContentType));
        Assert.NotNull(api.Requests.Single().IdempotencyKey);
    }

    [Fact]
    public async Task The_results_zip_is_unpacked_under_the_servers_names_and_an_entry_outside_the_folder_is_refused()
    {
        var good = Zip(("portraits/a.jpg", [1, 2]), ("b.png", [3]));
        var evil = Zip(("fine.png", [8]), ("../escape.png", [9]));
        var evilJob = Guid.NewGuid();
        await using var api = await FakeApi.StartAsync((app, _) =>
        {
            app.MapGet($"/v1/jobs/{JobId}/results.zip", () => Results.Bytes(good, "application/zip"));
            app.MapGet($"/v1/jobs/{evilJob}/results.zip", () => Results.Bytes(evil, "application/zip"));
            app.MapGet("/v1/jobs/{id}/items/{item}/output", (Guid id, Guid item) => Results.Bytes([7, 7, 7], "image/png"));
        });
        using var client = api.Client();
        var dir = Directory.CreateTempSubdirectory("sdd-client-test-");
        try
        {
            var written = await client.Jobs.ExtractResultsAsync(JobId, Path.Combine(dir.FullName, "out"));
            Assert.Equal(["portraits/a.jpg", "b.png"], written);
            Assert.Equal([1, 2], await File.ReadAllBytesAsync(Path.Combine(dir.FullName, "out", "portraits", "a.jpg")));

            // A folder written with its trailing separator, as people type it, is the same folder.
            var slashed = await client.Jobs.ExtractResultsAsync(JobId, Path.Combine(dir.FullName, "slashed") + Path.DirectorySeparatorChar);
            Assert.Equal(["portraits/a.jpg", "b.png"], slashed);
            Assert.Equal([3], await File.ReadAllBytesAsync(Path.Combine(dir.FullName, "slashed", "b.png")));

            // One entry outside the folder refuses the whole zip: nothing of it is written, the good entry before it neither.
            await Assert.ThrowsAsync<InvalidDataException>(() => client.Jobs.ExtractResultsAsync(evilJob, Path.Combine(dir.FullName, "evil")));
            Assert.False(File.Exists(Path.Combine(dir.FullName, "escape.png")));
            Assert.False(File.Exists(Path.Combine(dir.FullName, "evil", "fine.png")));

            using var output = new MemoryStream();
            await client.Jobs.DownloadOutputAsync(JobId, Guid.NewGuid(), output);
            Assert.Equal([7, 7, 7], output.ToArray());
            Assert.All(api.Requests, r => Assert.Equal("test-key", r.ApiKey));
        }
        finally { dir.Delete(recursive: true); }
    }

    private static byte[] ReadAll(UploadFile f)
    {
        using var s = f.Open();
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    internal static byte[] Zip(params (string Name, byte[] Bytes)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, bytes) in entries)
            {
                using var s = zip.CreateEntry(name).Open();
                s.Write(bytes);
            }
        return buffer.ToArray();
    }
}

