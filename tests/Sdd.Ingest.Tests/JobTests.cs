using System.IO.Compression;
using System.Text;

namespace Sdd.Ingest.Tests;

/// <summary>Edit jobs: accepted by upload or bucket prefix, recorded, sent to the edit queue, refused with problems, read back, cancelled.</summary>
public class JobTests(IngestHost host) : IClassFixture<IngestHost>
{
    private async Task<(HttpClient Client, string Attribute)> ClientWithAttributeAsync()
    {
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        return (host.Client(key), await host.ReadyAttributeAsync(owner));
    }

    private static MultipartFormDataContent Upload(string attribute, params (string Name, byte[] Content)[] files)
    {
        var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" } };
        foreach (var (name, content) in files) form.Add(new ByteArrayContent(content), "files", name);
        return form;
    }

    [Fact]
    public async Task An_upload_is_recorded_stored_and_sent_as_edit_batches()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var files = Enumerable.Range(0, 40).Select(i => ($"img{i:D2}.png", TestData.Png(8, 8, (byte)i))).ToArray();

        var response = await client.PostAsync("/v1/jobs", Upload(attribute, files));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var jobId = accepted.GetProperty("jobId").GetGuid();
        Assert.Equal(40, accepted.GetProperty("items").GetInt32());

        await using var db = host.Db();
        var job = await db.EditJobs.Include(j => j.EditorVersion).SingleAsync(j => j.Id == jobId);
        Assert.Equal(1, job.EditorVersion!.Version);
        Assert.Equal(JobState.Pending, job.State);
        var owner = job.Owner;
        var items = await db.JobItems.Where(i => i.JobId == jobId).ToListAsync();
        Assert.Equal(40, items.Count);
        Assert.All(items, i =>
        {
            Assert.Equal(ItemState.Pending, i.State);
            Assert.Null(i.SourceBucket);
            Assert.Equal($"tenants/{owner}/jobs/{jobId}/input/{i.Id}.png", i.SourceKey);
            Assert.NotNull(i.DispatchedAt);
        });
        Assert.Equal(files.Select(f => f.Item1).Order(), items.Select(i => i.Name!).Order());
        foreach (var item in items.Take(3)) Assert.NotNull(await host.Store.StatAsync(host.JobsBucket, item.SourceKey));

        // 40 items in batches of SDD_EDIT_BATCH_SIZE (32): two EditBatch commands on the edit queue.
        var batches = await host.MessagesAsync("edit", "jobId", jobId, atLeast: 2);
        Assert.Equal([32, 8], batches.Select(b => b.GetProperty("itemIds").GetArrayLength()).OrderDescending());
        Assert.Equal(items.Select(i => i.Id).Order(), batches.SelectMany(b => b.GetProperty("itemIds").EnumerateArray().Select(x => x.GetGuid())).Order());

        var status = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}");
        Assert.Equal("queued", status.GetProperty("state").GetString());
        Assert.Equal(40, status.GetProperty("total").GetInt32());
        Assert.Equal(40, status.GetProperty("counts").GetProperty("pending").GetInt32());
        Assert.Equal(attribute, status.GetProperty("attribute").GetString());
    }

    [Fact]
    public async Task A_bucket_prefix_becomes_items_that_reference_the_objects_in_place()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var prefix = IngestHost.Unique("photos-") + "/";
        var keys = Enumerable.Range(0, 5).Select(i => $"{prefix}{(i < 2 ? "sub/" : "")}p{i}.jpg").ToList();
        foreach (var key in keys) await host.Store.PutAsync(host.UserBucket, key, TestData.Png(), "image/png");

        var response = await client.PostAsJsonAsync("/v1/jobs", new { attribute, source = new { bucket = host.UserBucket, prefix } });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var jobId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();
        await using var db = host.Db();
        var items = await db.JobItems.Where(i => i.JobId == jobId).ToListAsync();
        Assert.Equal(keys.Order(), items.Select(i => i.SourceKey).Order());
        Assert.All(items, i => Assert.Equal(host.UserBucket, i.SourceBucket));
        Assert.Contains(items, i => i.Name == "sub/p0.jpg");
        var batch = Assert.Single(await host.MessagesAsync("edit", "jobId", jobId));
        Assert.Equal(5, batch.GetProperty("itemIds").GetArrayLength());
    }

    [Fact]
    public async Task An_unknown_attribute_is_404_and_one_without_a_ready_version_409()
    {
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        await ProblemAssert.IsProblem(await client.PostAsync("/v1/jobs", Upload("no-such-attribute", ("a.png", TestData.Png()))), HttpStatusCode.NotFound);

        var training = await host.ReadyAttributeAsync(owner, ready: false);
        var detail = await ProblemAssert.IsProblem(await client.PostAsync("/v1/jobs", Upload(training, ("a.png", TestData.Png()))), HttpStatusCode.Conflict);
        Assert.Contains("no ready editor", detail);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/jobs", new { attribute = training, source = new { bucket = host.UserBucket, prefix = "x/" } }),
            HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task An_uploads_first_batches_are_sent_while_the_rest_is_still_being_stored()
    {
        // One PUT at a time, so storing 640 inputs takes a while; batches of 32 go out as their inputs are stored.
        await using var factory = host.NewFactory(new() { ["SDD_UPLOAD_PARALLELISM"] = "1" });
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        var files = Enumerable.Range(0, 640).Select(i => ($"img{i:D3}.png", TestData.Png(8, 8, (byte)i))).ToArray();

        var post = client.PostAsync("/v1/jobs", Upload(attribute, files));
        Guid? jobId = null;
        bool sentBeforeAccepted = false;
        while (!post.IsCompleted)
        {
            await using (var db = host.Db()) jobId ??= await db.EditJobs.Where(j => j.Owner == owner).Select(j => (Guid?)j.Id).SingleOrDefaultAsync();
            if (jobId is { } id && (await host.MessagesAsync("edit", "jobId", id, timeout: TimeSpan.Zero)).Count > 0)
            {
                sentBeforeAccepted = !post.IsCompleted;
                break;
            }
            await Task.Delay(10);
        }
        var response = await post;

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal(jobId, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid());
        Assert.True(sentBeforeAccepted, "a batch reached the edit queue only after the whole upload was stored");
        // Every item was sent exactly once, in batches of 32 in upload order, and every input is stored.
        var batches = await host.MessagesAsync("edit", "jobId", jobId!.Value, atLeast: 20);
        await using var check = host.Db();
        var items = await check.JobItems.Where(i => i.JobId == jobId).ToListAsync();
        var byId = items.ToDictionary(i => i.Id);
        Assert.Equal(20, batches.Count);
        var sentIds = batches.SelectMany(b => b.GetProperty("itemIds").EnumerateArray().Select(x => x.GetGuid())).ToList();
        Assert.Equal(items.Select(i => i.Id).Order(), sentIds.Order());
        Assert.All(batches, b =>
        {
            var names = b.GetProperty("itemIds").EnumerateArray().Select(x => int.Parse(byId[x.GetGuid()].Name![3..6])).ToList();
            Assert.Equal(32, names.Count);
            Assert.Equal(Enumerable.Range(names.Min(), 32), names.Order()); // a batch is 32 consecutive files of the upload
        });
        Assert.All(items, i => Assert.Equal(0, i.Attempts)); // the sends were first sends, not retries
        var stored = new List<string>();
        await foreach (var o in host.Store.ListAsync(host.JobsBucket, $"tenants/{owner}/jobs/{jobId}/input/")) stored.Add(o.Key);
        Assert.Equal(items.Select(i => i.SourceKey).Order(), stored.Order());
    }

    [Fact]
    public async Task An_upload_that_cannot_be_stored_before_any_batch_was_sent_leaves_no_job_behind()
    {
        // A jobs bucket that is gone once the Ingest has started: the first PUT fails, before any batch was sent.
        var bucket = IngestHost.Unique("gone-");
        await using var factory = host.NewFactory(new() { ["SDD_S3_BUCKET_JOBS"] = bucket });
        using var client = factory.CreateClient(); // starts it: the bucket is created
        await host.Store.DeleteBucketAsync(bucket);
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        client.DefaultRequestHeaders.Add("X-Api-Key", key);

        var response = await client.PostAsync("/v1/jobs", Upload(attribute, Enumerable.Range(0, 40).Select(i => ($"img{i:D2}.png", TestData.Png(8, 8, (byte)i))).ToArray()));

        await ProblemAssert.IsProblem(response, HttpStatusCode.InternalServerError);
        await using var db = host.Db();
        Assert.False(await db.EditJobs.AnyAsync(j => j.Owner == owner));
        Assert.False(await db.JobItems.AnyAsync(i => i.SourceKey.StartsWith($"tenants/{owner}/")));
    }

    [Fact]
    public async Task An_upload_over_the_size_limit_is_a_413_problem()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var big = new byte[IngestHost.MaxUploadBytes + 1000];
        await ProblemAssert.IsProblem(await client.PostAsync("/v1/jobs", Upload(attribute, ("big.png", big))), HttpStatusCode.RequestEntityTooLarge);
    }

    [Fact]
    public async Task A_file_that_is_not_an_image_is_a_422_problem_naming_it_and_nothing_is_kept()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var before = await CountJobsAsync();

        var response = await client.PostAsync("/v1/jobs", Upload(attribute, ("good.png", TestData.Png()), ("notes.txt", Encoding.UTF8.GetBytes("hello, not a picture"))));

        Assert.Contains("notes.txt", await ProblemAssert.IsProblem(response, HttpStatusCode.UnprocessableEntity));
        Assert.Equal(before, await CountJobsAsync());
    }

    [Fact]
    public async Task A_decompression_bomb_header_is_refused_without_decoding()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var memory = GC.GetTotalAllocatedBytes();

        var response = await client.PostAsync("/v1/jobs", Upload(attribute, ("bomb.png", TestData.BombPng())));

        var detail = await ProblemAssert.IsProblem(response, HttpStatusCode.UnprocessableEntity);
        Assert.Contains("bomb.png", detail);
        Assert.Contains("100000x100000", detail);
        Assert.True(GC.GetTotalAllocatedBytes() - memory < 500L << 20, "decoding 10^10 pixels would have allocated tens of GB");
    }

    [Fact]
    public async Task Items_page_and_filter_results_list_and_zip_the_done_outputs()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var response = await client.PostAsync("/v1/jobs", Upload(attribute, ("a.png", TestData.Png()), ("b.png", TestData.Png()), ("c.png", TestData.Png())));
        var jobId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();

        // What an edit worker leaves: a and b done with outputs, c failed with its reason.
        var output = TestData.Png(4, 4, 7);
        await using (var db = host.Db())
        {
            var started = DateTimeOffset.UtcNow.AddSeconds(-2);
            foreach (var item in await db.JobItems.Where(i => i.JobId == jobId).ToListAsync())
            {
                item.UpdatedAt = DateTimeOffset.UtcNow;
                if (item.Name == "c.png") { item.State = ItemState.Failed; item.Error = "not a face"; continue; }
                item.State = ItemState.Done;
                item.OutputKey = $"{jobId}/output/{item.Id}.png";
                await host.Store.PutAsync(host.JobsBucket, item.OutputKey, output, "image/png");
            }
            var job = await db.EditJobs.SingleAsync(j => j.Id == jobId);
            job.StartedAt = started;
            await db.SaveChangesAsync();
            // and the recount every writer of item states runs in the same transaction (Sdd.Data.JobRows).
            await db.Database.ExecuteSqlRawAsync(Sdd.Data.JobRows.Recount, [new Npgsql.NpgsqlParameter("job", jobId)]);
        }

        var status = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}");
        Assert.Equal("completed", status.GetProperty("state").GetString());
        Assert.Equal(2, status.GetProperty("counts").GetProperty("done").GetInt32());
        Assert.Equal(1, status.GetProperty("counts").GetProperty("failed").GetInt32());
        Assert.True(status.GetProperty("imagesPerSecond").GetDouble() > 0);
        Assert.True(status.GetProperty("completedWithErrors").GetBoolean());
        Assert.False(status.TryGetProperty("etaSeconds", out _)); // nothing left to wait for

        var failed = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}/items?state=failed");
        var only = Assert.Single(failed.GetProperty("items").EnumerateArray());
        Assert.Equal("c.png", only.GetProperty("name").GetString());
        Assert.Equal("not a face", only.GetProperty("error").GetString());
        var first = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}/items?limit=2");
        Assert.Equal(["a.png", "b.png"], first.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        var next = first.GetProperty("next").GetString()!;
        var second = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}/items?limit=2&cursor={Uri.EscapeDataString(next)}");
        Assert.Equal("c.png", Assert.Single(second.GetProperty("items").EnumerateArray()).GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, second.GetProperty("next").ValueKind);
        await ProblemAssert.IsProblem(await client.GetAsync($"/v1/jobs/{jobId}/items?state=sideways"), HttpStatusCode.BadRequest);

        var results = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}/results");
        var urls = results.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["a.png", "b.png"], urls.Select(u => u.GetProperty("name").GetString()));
        using (var plain = new HttpClient())
            Assert.Equal(output, await plain.GetByteArrayAsync(urls[0].GetProperty("url").GetString()));

        var zipResponse = await client.GetAsync($"/v1/jobs/{jobId}/results.zip");
        Assert.Equal(HttpStatusCode.OK, zipResponse.StatusCode);
        Assert.Equal("application/zip", zipResponse.Content.Headers.ContentType?.MediaType);
        using var zip = new ZipArchive(new MemoryStream(await zipResponse.Content.ReadAsByteArrayAsync()));
        Assert.Equal(["a.png", "b.png"], zip.Entries.Select(e => e.FullName).Order());
        using var entry = new MemoryStream();
        await using (var s = zip.GetEntry("a.png")!.Open()) await s.CopyToAsync(entry);
        Assert.Equal(output, entry.ToArray());
    }

    [Fact]
    public async Task Cancel_turns_pending_items_cancelled()
    {
        var (client, attribute) = await ClientWithAttributeAsync();
        var response = await client.PostAsync("/v1/jobs", Upload(attribute, ("a.png", TestData.Png()), ("b.png", TestData.Png())));
        var jobId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();

        var cancelled = await client.PostAsync($"/v1/jobs/{jobId}/cancel", null);

        Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
        var status = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}");
        Assert.Equal("cancelled", status.GetProperty("state").GetString());
        Assert.Equal(0, status.GetProperty("counts").GetProperty("pending").GetInt32());
        await using var db = host.Db();
        Assert.All(await db.JobItems.Where(i => i.JobId == jobId).ToListAsync(), i => Assert.Equal(ItemState.Cancelled, i.State));
        Assert.Equal(JobState.Cancelled, (await db.EditJobs.SingleAsync(j => j.Id == jobId)).State);
    }

    [Fact]
    public async Task The_sweeper_sends_items_whose_batch_never_left()
    {
        var (owner, _) = await host.NewKeyAsync();
        var attributeName = await host.ReadyAttributeAsync(owner);
        var jobId = Guid.NewGuid();
        await using (var db = host.Db())
        {
            // As if the broker refused the send right after the commit: the items were never dispatched.
            var attribute = await db.Attributes.SingleAsync(a => a.Name == attributeName);
            var version = await db.EditorVersions.SingleAsync(v => v.AttributeId == attribute.Id);
            db.EditJobs.Add(new EditJob
            {
                Id = jobId, AttributeId = attribute.Id, EditorVersionId = version.Id, Owner = owner, State = JobState.Pending, ItemCount = 3,
                CreatedAt = DateTimeOffset.UtcNow.AddMinutes(-1),
                Items = Enumerable.Range(0, 3).Select(i => new JobItem { Id = Guid.NewGuid(), SourceKey = $"{jobId}/input/{i}.png", Name = $"{i}.png" }).ToList(),
            });
            await db.SaveChangesAsync();
        }

        var batch = Assert.Single(await host.MessagesAsync("edit", "jobId", jobId, timeout: TimeSpan.FromSeconds(20)));

        Assert.Equal(3, batch.GetProperty("itemIds").GetArrayLength());
        await using var check = host.Db();
        Assert.All(await check.JobItems.Where(i => i.JobId == jobId).ToListAsync(), i => Assert.NotNull(i.DispatchedAt));
    }

    private async Task<int> CountJobsAsync()
    {
        await using var db = host.Db();
        return await db.EditJobs.CountAsync();
    }
}
