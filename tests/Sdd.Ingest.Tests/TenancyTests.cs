using Microsoft.Extensions.Configuration;
using Sdd.Ingest;

namespace Sdd.Ingest.Tests;

/// <summary>
/// Tenancy on the real Ingest and stack: names per owner, the upload areas the API grants (presigned PUTs), admin grants
/// of external buckets, publishing, key revocation, and links a client outside the services' network can open.
/// (Every route tried with another owner's key, with the services as processes: Sdd.EndToEnd.Tests.TenancyTests.)
/// </summary>
public class TenancyTests(IngestHost host) : IClassFixture<IngestHost>
{
    private static MultipartFormDataContent Zip(string name) => new()
    {
        { new StringContent(name), "name" },
        { new ByteArrayContent(TestData.DatasetZip(["x.png"])), "file", "set.zip" },
    };

    [Fact]
    public async Task Two_owners_may_use_the_same_names_and_neither_learns_of_the_other()
    {
        var (ownerA, keyA) = await host.NewKeyAsync();
        var (ownerB, keyB) = await host.NewKeyAsync();
        using var a = host.Client(keyA);
        using var b = host.Client(keyB);

        Assert.Equal(HttpStatusCode.Created, (await a.PostAsync("/v1/datasets/upload", Zip("portraits"))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await b.PostAsync("/v1/datasets/upload", Zip("portraits"))).StatusCode);
        // The same owner twice is still a conflict.
        await ProblemAssert.IsProblem(await a.PostAsync("/v1/datasets/upload", Zip("portraits")), HttpStatusCode.Conflict);

        var builtin = (await a.AllAsync("/v1/teachers")).Single(t => t.GetProperty("builtin").GetBoolean()).GetProperty("id").GetGuid();
        var attribute = new { name = "smiling", teacherId = builtin, targetAttribute = "smiling" };
        Assert.Equal(HttpStatusCode.Accepted, (await a.PostAsJsonAsync("/v1/attributes", attribute)).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await b.PostAsJsonAsync("/v1/attributes", attribute)).StatusCode);
        Assert.Contains("exists already", await ProblemAssert.IsProblem(await a.PostAsJsonAsync("/v1/attributes", attribute), HttpStatusCode.Conflict));

        await using var db = host.Db();
        Assert.Equal(2, await db.Attributes.CountAsync(x => x.Name == "smiling" && (x.Owner == ownerA || x.Owner == ownerB)));
        Assert.Equal(2, await db.Datasets.CountAsync(x => x.Name == "portraits" && (x.Owner == ownerA || x.Owner == ownerB)));
        var prefixes = await db.Datasets.Where(x => x.Owner == ownerA || x.Owner == ownerB).Select(x => new { x.Owner, x.Prefix }).ToListAsync();
        Assert.All(prefixes, p => Assert.StartsWith($"tenants/{p.Owner}/datasets/", p.Prefix));
    }

    [Fact]
    public async Task Files_put_to_the_presigned_urls_of_an_upload_become_a_job_and_a_data_set()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        string[] images = ["a.png", "b.png", "c.png"];

        var response = await client.PostAsJsonAsync("/v1/uploads", new { files = images.Select(i => "set/images/" + i).Append("set/labels.csv").ToArray() });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var upload = await response.Content.ReadFromJsonAsync<JsonElement>();
        var uploadId = upload.GetProperty("id").GetGuid();
        Assert.Equal($"tenants/{owner}/uploads/{uploadId}/", upload.GetProperty("prefix").GetString());
        using var plain = new HttpClient(); // any HTTP client: no API key, no S3 credentials
        foreach (var file in upload.GetProperty("files").EnumerateArray())
        {
            var name = file.GetProperty("name").GetString()!;
            var bytes = name.EndsWith(".csv") ? System.Text.Encoding.UTF8.GetBytes(TestData.LabelsCsv(images)) : TestData.Png();
            var put = await plain.PutAsync(file.GetProperty("url").GetString(), new ByteArrayContent(bytes));
            Assert.True(put.IsSuccessStatusCode, $"PUT {name}: {(int)put.StatusCode}");
        }
        var stored = await client.GetFromJsonAsync<JsonElement>($"/v1/uploads/{uploadId}");
        Assert.Equal(4, stored.GetProperty("objects").GetInt32());

        var job = await client.PostAsJsonAsync("/v1/jobs", new { attribute, source = new { upload = uploadId, prefix = "set/images" } });
        Assert.Equal(HttpStatusCode.Accepted, job.StatusCode);
        var jobId = (await job.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();
        await using (var db = host.Db())
            Assert.Equal(images, (await db.JobItems.Where(i => i.JobId == jobId).Select(i => i.Name!).ToListAsync()).Order());
        var dataset = await client.PostAsJsonAsync("/v1/datasets", new { name = IngestHost.Unique("up-"), upload = uploadId, prefix = "set" });
        Assert.Equal(HttpStatusCode.Created, dataset.StatusCode);
        Assert.Equal(3, (await dataset.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("imageCount").GetInt32());

        // Deleting the upload removes its objects; it is then unknown.
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/v1/uploads/{uploadId}")).StatusCode);
        var left = new List<string>();
        await foreach (var o in host.Store.ListAsync(host.DatasetsBucket, $"tenants/{owner}/uploads/{uploadId}/")) left.Add(o.Key);
        Assert.Empty(left);
        await ProblemAssert.IsProblem(await client.GetAsync($"/v1/uploads/{uploadId}"), HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1001)]
    public async Task An_upload_names_1_to_1000_safe_files(int count)
    {
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/uploads", new { files = Enumerable.Range(0, count).Select(i => $"{i}.png") }),
            HttpStatusCode.BadRequest);
        foreach (var bad in new[] { "../escape.png", "/abs.png", "a//b.png", "dir/", "a\u0001.png" })
            await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/uploads", new { files = new[] { bad } }), HttpStatusCode.BadRequest);
        await using var db = host.Db();
        Assert.Equal(0, await db.Uploads.CountAsync(u => u.Owner == owner)); // nothing recorded for refused requests
    }

    [Fact]
    public async Task A_granted_bucket_prefix_is_readable_until_the_grant_is_revoked()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        var prefix = IngestHost.Unique("shared-") + "/";
        await host.Store.PutAsync(host.UserBucket, prefix + "p.png", TestData.Png(), "image/png");
        await host.Store.PutAsync(host.UserBucket, "elsewhere/q.png", TestData.Png(), "image/png");
        var source = new { attribute, source = new { bucket = host.UserBucket, prefix } };
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/jobs", source), HttpStatusCode.NotFound);

        var grant = await host.GrantAsync(owner, host.UserBucket, prefix.TrimEnd('/')); // stored as a folder: "<prefix>/"
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/jobs", source)).StatusCode);
        var mine = (await client.AllAsync("/v1/grants")).Single();
        Assert.Equal((grant, prefix), (mine.GetProperty("id").GetGuid(), mine.GetProperty("prefix").GetString()));
        // Beside the granted folder, and a longer name that merely starts like it, stay out of reach.
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/jobs", new { attribute, source = new { bucket = host.UserBucket, prefix = "elsewhere/" } }), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/jobs", new { attribute, source = new { bucket = host.UserBucket, prefix = prefix.TrimEnd('/') } }), HttpStatusCode.NotFound);

        using var admin = host.Client();
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/v1/grants/{grant}")).StatusCode);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/jobs", source), HttpStatusCode.NotFound);
        // The service's own buckets can never be granted.
        foreach (var bucket in new[] { host.DatasetsBucket, host.JobsBucket, host.ModelsBucket })
            await ProblemAssert.IsProblem(await admin.PostAsJsonAsync("/v1/grants", new { owner, bucket, prefix = "" }), HttpStatusCode.UnprocessableEntity);
    }

    [Fact]
    public async Task A_published_attribute_serves_every_key_read_only_until_unpublished()
    {
        var (ownerA, _) = await host.NewKeyAsync();
        var (_, keyB) = await host.NewKeyAsync();
        var name = await host.ReadyAttributeAsync(ownerA);
        using var b = host.Client(keyB);
        using var admin = host.Client();
        using var form = new MultipartFormDataContent { { new StringContent(name), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "me.png" } };
        await ProblemAssert.IsProblem(await b.PostAsync("/v1/jobs", form), HttpStatusCode.NotFound);

        var published = await admin.PostAsync($"/v1/attributes/{name}/publish?owner={ownerA}", null);
        Assert.Equal(HttpStatusCode.OK, published.StatusCode);

        var seen = await b.GetFromJsonAsync<JsonElement>($"/v1/attributes/{name}");
        Assert.True(seen.GetProperty("shared").GetBoolean());
        Assert.True(seen.GetProperty("published").GetBoolean());
        Assert.Contains((await b.AllAsync("/v1/attributes")), x => x.GetProperty("name").GetString() == name);
        using var again = new MultipartFormDataContent { { new StringContent(name), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "me.png" } };
        Assert.Equal(HttpStatusCode.Accepted, (await b.PostAsync("/v1/jobs", again)).StatusCode);
        await ProblemAssert.IsProblem(await b.PostAsJsonAsync($"/v1/attributes/{name}/versions", new { }), HttpStatusCode.Forbidden);
        await ProblemAssert.IsProblem(await b.PutAsJsonAsync($"/v1/attributes/{name}/active", new { version = 1 }), HttpStatusCode.Forbidden);
        // A second attribute of that name cannot be published beside it.
        var (ownerC, _) = await host.NewKeyAsync();
        await using (var db = host.Db())
        {
            var teacher = await db.Teachers.SingleAsync(t => t.IsBuiltin);
            db.Attributes.Add(new ImageAttribute { Id = Guid.NewGuid(), Name = name, Owner = ownerC, TeacherId = teacher.Id, TargetAttribute = "smiling", CreatedAt = DateTimeOffset.UtcNow });
            await db.SaveChangesAsync();
        }
        await ProblemAssert.IsProblem(await admin.PostAsync($"/v1/attributes/{name}/publish?owner={ownerC}", null), HttpStatusCode.Conflict);

        Assert.Equal(HttpStatusCode.OK, (await admin.DeleteAsync($"/v1/attributes/{name}/publish?owner={ownerA}")).StatusCode);
        await ProblemAssert.IsProblem(await b.GetAsync($"/v1/attributes/{name}"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Publishing_publishes_the_model_not_the_owners_photos()
    {
        var (ownerA, keyA) = await host.NewKeyAsync();
        var (_, keyB) = await host.NewKeyAsync();
        var name = await host.ReadyAttributeAsync(ownerA);
        // The evaluation grid the worker leaves beside the editor: held-out photos of A's data set.
        await host.Store.PutAsync(host.ModelsBucket, KeyLayout.Editor(ownerA, name, 1) + "grid.png", TestData.Png());
        using var admin = host.Client();
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync($"/v1/attributes/{name}/publish?owner={ownerA}", null)).StatusCode);
        using var a = host.Client(keyA);
        using var b = host.Client(keyB);
        string? Grid(JsonElement attribute) => attribute.GetProperty("versions")[0].TryGetProperty("gridUrl", out var url) ? url.GetString() : null;
        Assert.NotNull(Grid(await a.GetFromJsonAsync<JsonElement>($"/v1/attributes/{name}")));
        var seen = await b.GetFromJsonAsync<JsonElement>($"/v1/attributes/{name}");
        Assert.True(seen.GetProperty("shared").GetBoolean());
        Assert.Null(Grid(seen));
        Assert.Null(Grid((await b.AllAsync("/v1/attributes")).Single(x => x.GetProperty("name").GetString() == name)));

        // A trained teacher's name carries nothing of the data set's, since publishing shows it to every key.
        await using var db = host.Db();
        var dataset = new Dataset
        {
            Id = Guid.NewGuid(), Name = "alice-family-photos", Owner = ownerA, AttributeNames = ["smiling"], ImageCount = 10, CreatedAt = DateTimeOffset.UtcNow,
            Bucket = host.DatasetsBucket, Prefix = KeyLayout.Dataset(ownerA, Guid.NewGuid()),
        };
        db.Datasets.Add(dataset);
        await db.SaveChangesAsync();
        var accepted = await (await a.PostAsJsonAsync("/v1/teachers", new { datasetId = dataset.Id, steps = 10 })).Content.ReadFromJsonAsync<JsonElement>();
        var teacher = await a.GetFromJsonAsync<JsonElement>($"/v1/teachers/{accepted.GetProperty("teacherId").GetGuid()}");
        Assert.DoesNotContain("alice", teacher.GetProperty("name").GetString());
    }

    [Fact]
    public async Task A_revoked_key_is_refused_within_a_second_and_keys_show_their_use()
    {
        var name = IngestHost.Unique("gone-");
        var (owner, key) = await host.NewKeyAsync(name);
        using var client = host.Client(key);
        var me = await client.GetFromJsonAsync<JsonElement>("/v1/keys/me");
        Assert.Equal((owner, name), (me.GetProperty("id").GetString(), me.GetProperty("name").GetString()));
        using var admin = host.Client();
        var listed = (await admin.AllAsync("/v1/keys")).Single(k => k.GetProperty("id").GetString() == owner);
        Assert.Equal(name, listed.GetProperty("name").GetString());
        Assert.True(listed.GetProperty("lastUsedAt").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-1));
        Assert.False(listed.TryGetProperty("key", out _));

        var revoked = await admin.DeleteAsync($"/v1/keys/{owner}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        await ProblemAssert.IsProblem(await client.GetAsync("/v1/datasets"), HttpStatusCode.Unauthorized);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"refused after {clock.Elapsed.TotalMilliseconds:0} ms");
        listed = (await admin.AllAsync("/v1/keys")).Single(k => k.GetProperty("id").GetString() == owner);
        Assert.NotEqual(JsonValueKind.Null, listed.GetProperty("revokedAt").ValueKind);
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/v1/keys/{Guid.NewGuid()}"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Links_for_clients_are_signed_for_the_public_endpoint_and_outputs_stream_through_the_api()
    {
        var stack = SddSettings.FromEnvironment().S3.Endpoint;
        var publicEndpoint = new UriBuilder(stack) { Host = "localhost" }.Uri; // the same server under another name
        await using var factory = host.NewFactory(new() { ["SDD_S3_PUBLIC_ENDPOINT"] = publicEndpoint.ToString() });
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        using var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "holiday.png" } };
        var jobId = (await (await client.PostAsync("/v1/jobs", form)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();
        var edited = TestData.Png(8, 8, 200);
        await using (var db = host.Db()) // what the edit worker leaves
        {
            var item = await db.JobItems.SingleAsync(i => i.JobId == jobId);
            item.State = ItemState.Done;
            item.OutputKey = KeyLayout.JobOutput(owner, jobId, item.Id, OutputFormat.Png);
            item.UpdatedAt = DateTimeOffset.UtcNow;
            await host.Store.PutAsync(host.JobsBucket, item.OutputKey, edited, "image/png");
            await db.SaveChangesAsync();
        }

        var result = (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}/results")).GetProperty("items").EnumerateArray().Single();
        var url = new Uri(result.GetProperty("url").GetString()!);
        Assert.Equal(("localhost", stack.Port), (url.Host, url.Port));
        using var plain = new HttpClient();
        Assert.Equal(edited, await plain.GetByteArrayAsync(url));
        var upload = await (await client.PostAsJsonAsync("/v1/uploads", new { files = new[] { "x.png" } })).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("localhost", new Uri(upload.GetProperty("files")[0].GetProperty("url").GetString()!).Host);

        var streamed = await client.GetAsync(result.GetProperty("download").GetString());
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Equal("image/png", streamed.Content.Headers.ContentType?.MediaType);
        Assert.Equal(edited, await streamed.Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData(null, null, false)]
    [InlineData("sdd-admin-local", null, false)]
    [InlineData("sdd-admin-local", "local", true)]
    [InlineData("short", null, false)]
    [InlineData("change-me-admin-key", null, false)]
    [InlineData("a-long-secret-admin-key", null, true)]
    public void The_well_known_admin_key_is_refused_outside_the_local_stack(string? adminKey, string? mode, bool starts)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["SDD_ADMIN_KEY"] = adminKey, ["SDD_STACK_MODE"] = mode }).Build();
        var settings = IngestSettings.From(config);
        if (starts) Assert.Same(settings, settings.RequireOwnAdminKey());
        else Assert.Contains("SDD_ADMIN_KEY", Assert.Throws<InvalidOperationException>(() => settings.RequireOwnAdminKey()).Message);
    }
}
