using System.Net;
using System.Security.Cryptography;
using Sdd.Storage;

namespace Sdd.Infrastructure.Tests;

/// <summary>A bucket of its own on the stack's real S3 server (s3rver locally), removed at the end.</summary>
public sealed class TestBucket : IAsyncLifetime
{
    public ObjectStore Store { get; } = new(Stack.Settings.S3);
    public string Name { get; } = Stack.UniqueName("sdd-test-");
    public Task InitializeAsync() => Store.EnsureBucketAsync(Name);
    public async Task DisposeAsync()
    {
        await Store.DeleteBucketAsync(Name);
        Store.Dispose();
    }
}

public class ObjectStoreTests(TestBucket bucket) : IClassFixture<TestBucket>
{
    private ObjectStore Store => bucket.Store;
    private string Bucket => bucket.Name;

    [Fact]
    public async Task A_small_object_round_trips_with_its_metadata()
    {
        var content = "hello, photo"u8.ToArray();
        await Store.EnsureBucketAsync(Bucket); // again: harmless

        await Store.PutAsync(Bucket, "small/hello.txt", content, "text/plain");

        Assert.Equal(content, await Store.GetBytesAsync(Bucket, "small/hello.txt"));
        var stat = await Store.StatAsync(Bucket, "small/hello.txt");
        Assert.NotNull(stat);
        Assert.Equal(content.Length, stat.Size);
        Assert.Equal("text/plain", stat.ContentType);
        Assert.True(stat.LastModified > DateTimeOffset.UtcNow.AddMinutes(-10));
    }

    [Fact]
    public async Task A_large_object_round_trips_byte_for_byte()
    {
        var content = RandomNumberGenerator.GetBytes(17 * 1024 * 1024 + 123); // multipart upload
        using var source = new MemoryStream(content);

        await Store.PutAsync(Bucket, "large/weights.bin", source);

        using var copy = new MemoryStream();
        await Store.GetAsync(Bucket, "large/weights.bin", copy);
        Assert.Equal(content.Length, copy.Length);
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(copy.ToArray()));
        Assert.Equal(content.Length, (await Store.StatAsync(Bucket, "large/weights.bin"))!.Size);
    }

    [Fact]
    public async Task A_non_seekable_stream_is_stored_whole()
    {
        var content = RandomNumberGenerator.GetBytes(300_000);
        await using var pipe = new NonSeekableStream(new MemoryStream(content));

        await Store.PutAsync(Bucket, "stream/one.bin", pipe);

        Assert.Equal(content, await Store.GetBytesAsync(Bucket, "stream/one.bin"));
    }

    [Fact]
    public async Task Listing_pages_through_more_than_1000_keys_under_a_prefix()
    {
        var keys = Enumerable.Range(0, 1100).Select(i => $"many/input/{i:D5}.png").ToHashSet();
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 16 },
            async (key, ct) => await Store.PutAsync(Bucket, key, [1], "image/png", ct));
        await Store.PutAsync(Bucket, "many/other.txt", [2]);

        var listed = new List<StoredObject>();
        await foreach (var o in Store.ListAsync(Bucket, "many/input/")) listed.Add(o);

        Assert.Equal(keys.Count, listed.Count);
        Assert.True(keys.SetEquals(listed.Select(o => o.Key)));
        Assert.All(listed, o => Assert.Equal(1, o.Size));
    }

    [Fact]
    public async Task A_presigned_get_serves_the_object_to_a_plain_http_client()
    {
        var content = RandomNumberGenerator.GetBytes(50_000);
        await Store.PutAsync(Bucket, "shared/result.png", content, "image/png");

        var url = await Store.PresignGetAsync(Bucket, "shared/result.png", TimeSpan.FromMinutes(5));
        using var http = new HttpClient();

        Assert.Equal(content, await http.GetByteArrayAsync(url));
    }

    [Fact]
    public async Task A_presigned_put_stores_what_a_plain_http_client_uploads()
    {
        var content = RandomNumberGenerator.GetBytes(70_000);
        var url = await Store.PresignPutAsync(Bucket, "upload/job-1/input/a.png", TimeSpan.FromMinutes(5));
        using var http = new HttpClient();

        using var response = await http.PutAsync(url, new ByteArrayContent(content));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(content, await Store.GetBytesAsync(Bucket, "upload/job-1/input/a.png"));
    }

    [Fact]
    public async Task A_ranged_read_returns_exactly_the_asked_bytes()
    {
        var content = RandomNumberGenerator.GetBytes(100_000);
        await Store.PutAsync(Bucket, "range/blob.bin", content);

        Assert.Equal(content[1000..1500], await Store.ReadRangeAsync(Bucket, "range/blob.bin", 1000, 500));
        Assert.Equal(content[^10..], await Store.ReadRangeAsync(Bucket, "range/blob.bin", content.Length - 10, 100));
        await using var whole = await Store.OpenReadAsync(Bucket, "range/blob.bin");
        using var copy = new MemoryStream();
        await whole.CopyToAsync(copy);
        Assert.Equal(content, copy.ToArray());
    }

    [Fact]
    public async Task Copy_delete_and_multi_delete_work_on_keys_with_slashes()
    {
        await Store.PutAsync(Bucket, "copy/a/source.bin", [1, 2, 3]);

        await Store.CopyAsync(Bucket, "copy/a/source.bin", Bucket, "copy/b/target.bin");
        Assert.Equal([1, 2, 3], await Store.GetBytesAsync(Bucket, "copy/b/target.bin"));

        await Store.DeleteAsync(Bucket, "copy/a/source.bin");
        Assert.Null(await Store.StatAsync(Bucket, "copy/a/source.bin"));

        var keys = Enumerable.Range(0, 30).Select(i => $"copy/many/{i}/x.bin").ToList();
        await Task.WhenAll(keys.Select(k => Store.PutAsync(Bucket, k, [9])));
        await Store.DeleteManyAsync(Bucket, keys);
        var left = new List<StoredObject>();
        await foreach (var o in Store.ListAsync(Bucket, "copy/many/")) left.Add(o);
        Assert.Empty(left);
    }

    [Fact]
    public async Task A_missing_object_is_null_from_stat_and_not_found_from_get()
    {
        Assert.Null(await Store.StatAsync(Bucket, "missing/nothing.png"));
        await Assert.ThrowsAsync<FileNotFoundException>(() => Store.GetBytesAsync(Bucket, "missing/nothing.png"));
        await Assert.ThrowsAsync<FileNotFoundException>(() => Store.ReadRangeAsync(Bucket, "missing/nothing.png", 0, 10));
    }

    [Fact]
    public async Task A_bad_key_is_refused()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync(Bucket, "../escape.png", [1]));
        Assert.Contains("'..' segment", e.Message);
        Assert.Null(await Store.StatAsync(Bucket, "escape.png"));
    }

    private sealed class NonSeekableStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
