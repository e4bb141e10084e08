using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Sdd.Ingest.Tests;

/// <summary>Every input bounded on the real Ingest: zips, images, names, bodies, paging, rate and quotas; a refused input leaves nothing behind.</summary>
public class BoundsTests(IngestHost host) : IClassFixture<IngestHost>
{
    private async Task<List<string>> DatasetObjectsAsync(string owner)
    {
        var keys = new List<string>();
        await foreach (var o in host.Store.ListAsync(host.DatasetsBucket, $"tenants/{owner}/datasets/")) keys.Add(o.Key);
        return keys;
    }

    private static MultipartFormDataContent ZipForm(byte[] zip) => new()
    {
        { new StringContent(IngestHost.Unique("set-")), "name" },
        { new ByteArrayContent(zip), "file", "set.zip" },
    };

    [Fact]
    public async Task A_zip_bomb_is_refused_with_nothing_stored()
    {
        // Inside ./sdd test 160 MB of zeros; under ./sdd check hostile the measured case: a 4 MB zip of 20 entries inflating to 4 GB.
        bool full = Environment.GetEnvironmentVariable("SDD_FAULTS_SIZE") == "full";
        await using var factory = host.NewFactory(new() { ["SDD_MAX_UPLOAD_BYTES"] = (16 << 20).ToString() });
        var (owner, key) = await host.NewKeyAsync();
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        var bomb = full ? HostileFiles.ZipBomb(entries: 20, entryBytes: 200 << 20) : HostileFiles.ZipBomb(entries: 4, entryBytes: 40 << 20);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var detail = await ProblemAssert.IsProblem(await client.PostAsync("/v1/datasets/upload", ZipForm(bomb)), HttpStatusCode.UnprocessableEntity);

        Assert.Contains("SDD_MAX", detail); // names the limit it broke
        Assert.Empty(await DatasetObjectsAsync(owner));
        await using var db = host.Db();
        Assert.False(await db.Datasets.AnyAsync(d => d.Owner == owner));
        if (Environment.GetEnvironmentVariable("SDD_CHECK_REPORT") is { Length: > 0 } report)
            File.AppendAllText(report, $"| dataset zip of {bomb.Length / 1024} KiB declaring {(full ? 20 : 4)} entries of {(full ? 200 : 40)} MiB of zeros | 422 in {clock.Elapsed.TotalSeconds:0.0} s: {detail} ; 0 objects, 0 rows stored | - |\n");
    }

    [Fact]
    public async Task Zip_entries_that_are_not_images_or_are_too_large_are_refused_with_nothing_stored()
    {
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        await using var strict = host.NewFactory(new() { ["SDD_MAX_INPUT_BYTES"] = "20000" });
        using var small = strict.CreateClient();
        small.DefaultRequestHeaders.Add("X-Api-Key", key);
        var noise = new byte[60_000];
        new Random(1).NextBytes(noise);
        var cases = new (string Name, HttpClient Client, byte[] Zip, string Expected)[]
        {
            ("text named .png", client, TestData.DatasetZip(["a.png"], null, ("portraits/images/b.png", "not a picture"u8.ToArray())), "images/b.png"),
            ("an extreme aspect ratio", client, ZipOf(("a.png", TestData.Png(4, 200))), "aspect ratio"),
            ("an animated WebP", client, ZipOf(("a.webp", HostileFiles.AnimatedWebpHeader())), "animated WebP"),
            ("a PNG claiming 10^10 pixels", client, ZipOf(("a.png", TestData.BombPng())), "pixels"),
            ("an entry above SDD_MAX_INPUT_BYTES", small, ZipOf(("a.png", noise)), "20000"),
        };
        foreach (var (name, c, zip, expected) in cases)
        {
            var detail = await ProblemAssert.IsProblem(await c.PostAsync("/v1/datasets/upload", ZipForm(zip)), HttpStatusCode.UnprocessableEntity);
            Assert.True(detail.Contains(expected, StringComparison.Ordinal), $"{name}: {detail}");
        }
        Assert.Empty(await DatasetObjectsAsync(owner));
    }

    private static byte[] ZipOf(params (string Name, byte[] Bytes)[] images) =>
        TestData.DatasetZip([], TestData.LabelsCsv(images.Select(i => i.Name).ToArray()), images.Select(i => ("portraits/images/" + i.Name, i.Bytes)).ToArray());

    [Fact]
    public async Task Uploaded_images_are_checked_for_aspect_ratio_animation_and_name()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        async Task<string> Refused(string fileName, byte[] bytes)
        {
            using var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(bytes), "files", fileName } };
            return await ProblemAssert.IsProblem(await client.PostAsync("/v1/jobs", form), HttpStatusCode.UnprocessableEntity);
        }
        Assert.Contains("aspect ratio", await Refused("strip.png", TestData.Png(2, 100)));
        Assert.Contains("animated WebP", await Refused("a.webp", HostileFiles.AnimatedWebpHeader()));
        Assert.Contains("255", await Refused(new string('n', 300) + ".png", TestData.Png()));
        await using var db = host.Db();
        Assert.False(await db.EditJobs.AnyAsync(j => j.Owner == owner));
        var inputs = new List<string>();
        await foreach (var o in host.Store.ListAsync(host.JobsBucket, $"tenants/{owner}/")) inputs.Add(o.Key);
        Assert.Empty(inputs);
    }

    [Fact]
    public async Task Paging_far_beyond_a_job_and_oversized_json_are_4xx_not_500()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        using var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "a.png" } };
        var jobId = (await (await client.PostAsync("/v1/jobs", form)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();

        foreach (var query in new[] { "limit=0", "limit=1001", "limit=2147483647", "cursor=not-a-cursor", "cursor=dDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTp4" })
            await ProblemAssert.IsProblem(await client.GetAsync($"/v1/jobs/{jobId}/items?{query}"), HttpStatusCode.BadRequest);
        foreach (var list in new[] { "/v1/jobs", "/v1/datasets", "/v1/teachers", "/v1/attributes", "/v1/runs", "/v1/uploads", "/v1/grants" })
            await ProblemAssert.IsProblem(await client.GetAsync($"{list}?cursor=%25%25"), HttpStatusCode.BadRequest);
        var huge = new StringContent("{\"name\": \"" + new string('x', 2 << 20) + "\"}", Encoding.UTF8, "application/json");
        await ProblemAssert.IsProblem(await client.PostAsync("/v1/datasets", huge), HttpStatusCode.RequestEntityTooLarge);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/teachers", new { datasetId = Guid.NewGuid(), imageSize = 1024 }), HttpStatusCode.UnprocessableEntity);
    }

    [Fact]
    public async Task Requests_beyond_the_rate_are_429_with_retry_after_per_owner()
    {
        await using var factory = host.NewFactory(new() { ["SDD_RATE_PER_MINUTE"] = "5" });
        var (_, keyA) = await host.NewKeyAsync();
        var (_, keyB) = await host.NewKeyAsync();
        using var a = factory.CreateClient();
        a.DefaultRequestHeaders.Add("X-Api-Key", keyA);
        using var b = factory.CreateClient();
        b.DefaultRequestHeaders.Add("X-Api-Key", keyB);

        for (int i = 0; i < 5; i++) Assert.Equal(HttpStatusCode.OK, (await a.GetAsync("/v1/datasets")).StatusCode);
        var refused = await a.GetAsync("/v1/datasets");
        await ProblemAssert.IsProblem(refused, HttpStatusCode.TooManyRequests);
        Assert.True(int.Parse(refused.Headers.GetValues("Retry-After").Single()) is > 0 and <= 60);
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync("/v1/datasets")).StatusCode); // another owner's budget is its own
        using var anonymous = factory.CreateClient();
        for (int i = 0; i < 8; i++) Assert.NotEqual(HttpStatusCode.TooManyRequests, (await anonymous.GetAsync("/metrics")).StatusCode); // operations are never limited
    }

    [Fact]
    public async Task Jobs_and_runs_in_flight_are_bounded_per_owner_with_429()
    {
        await using var factory = host.NewFactory(new() { ["SDD_MAX_ACTIVE_JOBS"] = "1", ["SDD_MAX_ACTIVE_RUNS"] = "1" });
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        MultipartFormDataContent Job() => new() { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "a.png" } };

        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", Job())).StatusCode);
        var second = await client.PostAsync("/v1/jobs", Job());
        Assert.Contains("SDD_MAX_ACTIVE_JOBS", await ProblemAssert.IsProblem(second, HttpStatusCode.TooManyRequests));
        Assert.True(second.Headers.Contains("Retry-After"));

        var builtin = (await client.AllAsync("/v1/teachers")).Single(t => t.GetProperty("builtin").GetBoolean()).GetProperty("id").GetGuid();
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/attributes", new { name = "one", teacherId = builtin, targetAttribute = "smiling" })).StatusCode);
        var run = await client.PostAsJsonAsync("/v1/attributes", new { name = "two", teacherId = builtin, targetAttribute = "smiling" });
        Assert.Contains("SDD_MAX_ACTIVE_RUNS", await ProblemAssert.IsProblem(run, HttpStatusCode.TooManyRequests));
    }
}
