using System.Text;

namespace Sdd.Ingest.Tests;

/// <summary>Datasets registered from a bucket prefix and uploaded as a zip, and what is refused.</summary>
public class DatasetTests(IngestHost host) : IClassFixture<IngestHost>
{
    private async Task<string> PutPrefixAsync(string labels, params string[] images)
    {
        var prefix = IngestHost.Unique("set-") + "/";
        await host.Store.PutAsync(host.UserBucket, prefix + "labels.csv", Encoding.UTF8.GetBytes(labels), "text/csv");
        foreach (var image in images) await host.Store.PutAsync(host.UserBucket, prefix + "images/" + image, TestData.Png(), "image/png");
        return prefix;
    }

    [Fact]
    public async Task A_prefix_with_labels_and_images_registers()
    {
        var (_, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var prefix = await PutPrefixAsync(TestData.LabelsCsv("a.png", "b.png", "c.png"), "a.png", "b.png", "c.png");

        var response = await client.PostAsJsonAsync("/v1/datasets", new { name = IngestHost.Unique("faces-"), bucket = host.UserBucket, prefix });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var dataset = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(3, dataset.GetProperty("imageCount").GetInt32());
        Assert.Equal(["smiling", "white_hair"], dataset.GetProperty("attributes").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(host.UserBucket, dataset.GetProperty("bucket").GetString());
        Assert.Equal(prefix, dataset.GetProperty("prefix").GetString());
        var id = dataset.GetProperty("id").GetGuid();
        var fetched = await client.GetFromJsonAsync<JsonElement>($"/v1/datasets/{id}");
        Assert.Equal(3, fetched.GetProperty("imageCount").GetInt32());
        Assert.Contains((await client.AllAsync("/v1/datasets")), d => d.GetProperty("id").GetGuid() == id);

        var (_, otherKey) = await host.NewKeyAsync();
        using var other = host.Client(otherKey);
        await ProblemAssert.IsProblem(await other.GetAsync($"/v1/datasets/{id}"), HttpStatusCode.NotFound);
        Assert.Empty((await other.AllAsync("/v1/datasets")));
    }

    /// <summary>
    /// A table as spreadsheets write it (byte-order mark, CRLF, 0 for unknown) registers, and the bytes stored are read
    /// by the same parser the distill worker uses (Sdd.Formats.LabelsCsv, behind LabeledImageSet) with the same labels;
    /// Sdd.Ml.Tests' FormatsTests feed these bytes to the worker's reader.
    /// </summary>
    [Fact]
    public async Task A_labels_csv_with_a_bom_crlf_and_unknown_labels_registers_as_the_worker_reads_it()
    {
        var (_, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var prefix = await PutPrefixAsync("\uFEFFimage,smiling,hat\r\na.png,1,0\r\nb.png,-1,+1\r\nc.png,0,-1\r\n\r\n", "a.png", "b.png", "c.png");

        var response = await client.PostAsJsonAsync("/v1/datasets", new { name = IngestHost.Unique("sheet-"), bucket = host.UserBucket, prefix });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var dataset = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(3, dataset.GetProperty("imageCount").GetInt32());
        Assert.Equal(["smiling", "hat"], dataset.GetProperty("attributes").EnumerateArray().Select(a => a.GetString()));
        var stored = Sdd.Formats.Datasets.LabelsCsv.Parse(await host.Store.GetBytesAsync(host.UserBucket, prefix + "labels.csv"));
        Assert.Equal(new sbyte[][] { [1, 0], [-1, 1], [0, -1] }, stored.Rows.Select(r => r.Labels));
    }

    [Theory]
    [InlineData("image,smiling\na.png,1\nmissing.png,-1\n", "missing.png")]
    [InlineData("image,smiling\na.png,yes\n", "must be 1 or -1")]
    [InlineData("file,smiling\na.png,1\n", "header")]
    [InlineData("image,smiling\na.png,1,1\n", "columns")]
    public async Task A_prefix_with_bad_labels_or_missing_images_is_a_422_problem(string labels, string expected)
    {
        var (_, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var prefix = await PutPrefixAsync(labels, "a.png");

        var response = await client.PostAsJsonAsync("/v1/datasets", new { name = IngestHost.Unique("bad-"), bucket = host.UserBucket, prefix });

        Assert.Contains(expected, await ProblemAssert.IsProblem(response, HttpStatusCode.UnprocessableEntity));
    }

    [Fact]
    public async Task A_prefix_without_labels_is_a_422_problem()
    {
        var (_, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var response = await client.PostAsJsonAsync("/v1/datasets", new { name = IngestHost.Unique("empty-"), bucket = host.UserBucket, prefix = "nothing-here/" });
        Assert.Contains("labels.csv", await ProblemAssert.IsProblem(response, HttpStatusCode.UnprocessableEntity));
    }

    [Fact]
    public async Task A_labels_csv_over_its_cap_is_refused_before_it_is_read_into_memory()
    {
        var (owner, key) = await host.NewKeyWithUserBucketAsync();
        using var client = host.Client(key);
        var prefix = IngestHost.Unique("huge-") + "/";
        var labels = new byte[(64 << 20) + 1]; // one byte over LabelsCsv.MaxBytes
        "image,smiling\n"u8.CopyTo(labels);
        await host.Store.PutAsync(host.UserBucket, prefix + "labels.csv", labels);
        var response = await client.PostAsJsonAsync("/v1/datasets", new { name = IngestHost.Unique("huge-"), bucket = host.UserBucket, prefix });
        // Refused on the length the object declares, before its body is read into memory.
        Assert.Contains($"is {labels.Length} bytes or more; at most 64 MiB are read", await ProblemAssert.IsProblem(response, HttpStatusCode.UnprocessableEntity));
        await using var db = host.Db();
        Assert.False(await db.Datasets.AnyAsync(d => d.Owner == owner));
    }

    [Fact]
    public async Task An_uploaded_zip_is_stored_under_the_owners_dataset_folder()
    {
        var (owner, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        using var form = new MultipartFormDataContent
        {
            { new StringContent(IngestHost.Unique("zip-")), "name" },
            { new ByteArrayContent(TestData.DatasetZip(["x.png", "y.png"])), "file", "portraits.zip" },
        };

        var response = await client.PostAsync("/v1/datasets/upload", form);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var dataset = await response.Content.ReadFromJsonAsync<JsonElement>();
        var id = dataset.GetProperty("id").GetGuid();
        Assert.Equal(2, dataset.GetProperty("imageCount").GetInt32());
        Assert.Equal(host.DatasetsBucket, dataset.GetProperty("bucket").GetString());
        var folder = $"tenants/{owner}/datasets/{id}/";
        Assert.Equal(folder, dataset.GetProperty("prefix").GetString());
        Assert.NotNull(await host.Store.StatAsync(host.DatasetsBucket, folder + "labels.csv"));
        Assert.NotNull(await host.Store.StatAsync(host.DatasetsBucket, folder + "images/x.png"));
        Assert.NotNull(await host.Store.StatAsync(host.DatasetsBucket, folder + "images/y.png"));
    }

    [Fact]
    public async Task A_zip_entry_that_climbs_out_of_its_folder_is_refused()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        using var form = new MultipartFormDataContent
        {
            { new StringContent(IngestHost.Unique("evil-")), "name" },
            { new ByteArrayContent(TestData.DatasetZip(["x.png"], null, ("portraits/images/../../escape.png", TestData.Png()))), "file", "evil.zip" },
        };

        var detail = await ProblemAssert.IsProblem(await client.PostAsync("/v1/datasets/upload", form), HttpStatusCode.UnprocessableEntity);

        Assert.Contains("unsafe path", detail);
        var keys = new List<string>();
        await foreach (var o in host.Store.ListAsync(host.DatasetsBucket)) keys.Add(o.Key);
        Assert.DoesNotContain(keys, k => k.Contains("escape"));
    }

    [Fact]
    public async Task A_zip_missing_a_listed_image_or_not_a_zip_is_a_422_problem()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        using var missing = new MultipartFormDataContent
        {
            { new StringContent(IngestHost.Unique("gap-")), "name" },
            { new ByteArrayContent(TestData.DatasetZip(["x.png"], TestData.LabelsCsv("x.png", "gone.png"))), "file", "gap.zip" },
        };
        Assert.Contains("gone.png", await ProblemAssert.IsProblem(await client.PostAsync("/v1/datasets/upload", missing), HttpStatusCode.UnprocessableEntity));

        using var notZip = new MultipartFormDataContent
        {
            { new StringContent(IngestHost.Unique("nozip-")), "name" },
            { new ByteArrayContent(Encoding.UTF8.GetBytes("just text")), "file", "notes.zip" },
        };
        Assert.Contains("not a zip", await ProblemAssert.IsProblem(await client.PostAsync("/v1/datasets/upload", notZip), HttpStatusCode.UnprocessableEntity));
    }
}
