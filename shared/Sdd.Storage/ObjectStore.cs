using System.Net;
using System.Net.Http.Headers;
using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;
using Sdd.Configuration;

namespace Sdd.Storage;

/// <summary>
/// Images and weights in S3-compatible storage through the Minio SDK: MinIO in production, s3rver
/// locally. Every key is checked with <see cref="ObjectKey.Validate"/> before a request is made.
/// A missing object is <c>null</c> from <see cref="StatAsync"/> and a <see cref="FileNotFoundException"/> elsewhere.
/// </summary>
public sealed class ObjectStore : IDisposable
{
    private readonly IMinioClient _client;
    /// <summary>Signs the URLs handed to clients: the public endpoint's host is part of the signature.</summary>
    private readonly IMinioClient _signer;
    private readonly HttpClient _http;

    public ObjectStore(S3Settings settings)
    {
        Settings = settings;
        _client = Client(settings, settings.Endpoint);
        _signer = settings.PublicEndpoint is { } endpoint && endpoint != settings.Endpoint ? Client(settings, endpoint) : _client;
        _http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
    }

    /// <summary>
    /// One pooled connection set per client: connections are kept and reused across requests (a batch's downloads and
    /// uploads run in parallel), recycled every few minutes so a changed address is picked up; no proxy (nothing leaves the machine).
    /// </summary>
    private static IMinioClient Client(S3Settings settings, Uri endpoint) => new MinioClient()
        .WithHttpClient(new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 64, PooledConnectionLifetime = TimeSpan.FromMinutes(5), PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1), UseProxy = false,
        }) { Timeout = TimeSpan.FromMinutes(10) }, disposeHttpClient: true)
        .WithEndpoint(endpoint.Host, endpoint.Port)
        .WithCredentials(settings.AccessKey, settings.SecretKey)
        .WithRegion(settings.Region) // known, so presigning never asks the server
        .WithSSL(endpoint.Scheme == Uri.UriSchemeHttps)
        .Build();

    public S3Settings Settings { get; }
    public string DatasetsBucket => Settings.DatasetsBucket;
    public string ModelsBucket => Settings.ModelsBucket;
    public string JobsBucket => Settings.JobsBucket;

    /// <summary>Creates the bucket unless it exists.</summary>
    public async Task EnsureBucketAsync(string bucket, CancellationToken ct = default)
    {
        if (await _client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), ct)) return;
        try
        {
            await _client.MakeBucketAsync(new MakeBucketArgs().WithBucket(bucket), ct);
        }
        catch (MinioException)
        {
            // Another process may have created it first; anything else is a real failure.
            if (!await _client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), ct)) throw;
        }
    }

    /// <summary>Creates the datasets, models and jobs buckets.</summary>
    public async Task EnsureBucketsAsync(CancellationToken ct = default)
    {
        foreach (var bucket in new[] { DatasetsBucket, ModelsBucket, JobsBucket })
            await EnsureBucketAsync(bucket, ct);
    }

    /// <summary>Stores the stream's content (read to its end) under the key, replacing any object there.</summary>
    public async Task PutAsync(string bucket, string key, Stream content, string contentType = "application/octet-stream", CancellationToken ct = default)
    {
        ObjectKey.Validate(key);
        if (!content.CanSeek)
        {
            // The SDK needs the size up front; spool to a temporary file rather than to memory.
            await using var spool = new FileStream(Path.GetTempFileName(), FileMode.Create, FileAccess.ReadWrite,
                FileShare.None, 1 << 16, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            await content.CopyToAsync(spool, ct);
            spool.Position = 0;
            await PutAsync(bucket, key, spool, contentType, ct);
            return;
        }
        var size = content.Length - content.Position;
        await _client.PutObjectAsync(new PutObjectArgs().WithBucket(bucket).WithObject(key)
            .WithStreamData(content).WithObjectSize(size).WithContentType(contentType), ct);
    }

    public async Task PutAsync(string bucket, string key, byte[] content, string contentType = "application/octet-stream", CancellationToken ct = default)
    {
        using var stream = new MemoryStream(content, writable: false);
        await PutAsync(bucket, key, stream, contentType, ct);
    }

    /// <summary>Copies the object's content into <paramref name="destination"/>.</summary>
    public async Task GetAsync(string bucket, string key, Stream destination, CancellationToken ct = default)
    {
        ObjectKey.Validate(key);
        await Translate(bucket, key, () => _client.GetObjectAsync(new GetObjectArgs().WithBucket(bucket).WithObject(key)
            .WithCallbackStream((stream, token) => stream.CopyToAsync(destination, token)), ct));
    }

    /// <summary>The most bytes of a small service-written file (a config, a checkpoint marker, a data set's description) read into memory.</summary>
    public const long MaxSmallObjectBytes = 1 << 20;

    /// <summary>
    /// The object's bytes — the only read into memory there is, so every one names its cap — in one request (a presigned GET: the SDK's GetObject asks for the object's stat first), refused
    /// with <see cref="ObjectTooLargeException"/> before its body is read when it declares more than
    /// <paramref name="maxBytes"/>, and while reading when it sends more.
    /// </summary>
    public async Task<byte[]> GetBytesAsync(string bucket, string key, long maxBytes, CancellationToken ct = default)
    {
        ObjectKey.Validate(key);
        var url = await PresignGetAsync(_client, bucket, key, TimeSpan.FromMinutes(15));
        using var response = await _http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NotFound) throw new FileNotFoundException($"No object {bucket}/{key}", $"{bucket}/{key}");
        if (!response.IsSuccessStatusCode) throw new IOException($"GET {bucket}/{key} answered {(int)response.StatusCode} {response.StatusCode}");
        var declared = response.Content.Headers.ContentLength;
        if (declared > maxBytes) throw new ObjectTooLargeException(declared.Value, maxBytes);
        using var buffer = new MemoryStream((int)Math.Clamp(declared ?? 0, 0, maxBytes));
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var chunk = new byte[81920];
        for (int read; (read = await body.ReadAsync(chunk, ct)) > 0;)
        {
            if (buffer.Length + read > maxBytes) throw new ObjectTooLargeException(buffer.Length + read, maxBytes);
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    /// <summary>A stream over the object's content, read as it arrives (dispose it).</summary>
    public Task<Stream> OpenReadAsync(string bucket, string key, CancellationToken ct = default) =>
        ReadViaPresignedGetAsync(bucket, key, range: null, ct);

    /// <summary>
    /// <paramref name="length"/> bytes from <paramref name="offset"/> (fewer at the end of the object).
    /// Done with a presigned GET and an HTTP Range header: the SDK 7.0.0's WithOffsetAndLength throws.
    /// </summary>
    public async Task<byte[]> ReadRangeAsync(string bucket, string key, long offset, long length, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        await using var stream = await ReadViaPresignedGetAsync(bucket, key, new RangeHeaderValue(offset, offset + length - 1), ct);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, ct);
        return buffer.ToArray();
    }

    /// <summary>Size, ETag, last change and content type, or null when there is no such object.</summary>
    public async Task<StoredObject?> StatAsync(string bucket, string key, CancellationToken ct = default)
    {
        ObjectKey.Validate(key);
        try
        {
            var stat = await _client.StatObjectAsync(new StatObjectArgs().WithBucket(bucket).WithObject(key), ct);
            return new StoredObject(key, stat.Size, stat.ETag, ToUtc(stat.LastModified), stat.ContentType);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Every object whose key starts with the prefix, across as many listing pages as it takes.</summary>
    public async IAsyncEnumerable<StoredObject> ListAsync(string bucket, string prefix = "",
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ObjectKey.ValidatePrefix(prefix);
        var args = new ListObjectsArgs().WithBucket(bucket).WithPrefix(prefix).WithRecursive(true);
        await foreach (var item in _client.ListObjectsEnumAsync(args, ct))
        {
            if (item.IsDir) continue;
            yield return new StoredObject(item.Key, (long)item.Size, item.ETag?.Trim('"'),
                item.LastModifiedDateTime is { } t ? ToUtc(t) : null);
        }
    }

    /// <summary>Copies an object within or across buckets.</summary>
    public async Task CopyAsync(string sourceBucket, string sourceKey, string bucket, string key, CancellationToken ct = default)
    {
        ObjectKey.Validate(sourceKey, nameof(sourceKey));
        ObjectKey.Validate(key);
        await Translate(sourceBucket, sourceKey, () => _client.CopyObjectAsync(new CopyObjectArgs().WithBucket(bucket).WithObject(key)
            .WithCopyObjectSource(new CopySourceObjectArgs().WithBucket(sourceBucket).WithObject(sourceKey)), ct));
    }

    /// <summary>Removes the object; removing a missing object is not an error.</summary>
    public async Task DeleteAsync(string bucket, string key, CancellationToken ct = default)
    {
        ObjectKey.Validate(key);
        await _client.RemoveObjectAsync(new RemoveObjectArgs().WithBucket(bucket).WithObject(key), ct);
    }

    /// <summary>Removes many objects with multi-object delete requests.</summary>
    public async Task DeleteManyAsync(string bucket, IEnumerable<string> keys, CancellationToken ct = default)
    {
        var list = keys.Select(k => ObjectKey.Validate(k, nameof(keys))).ToList();
        if (list.Count == 0) return;
        var errors = await _client.RemoveObjectsAsync(new RemoveObjectsArgs().WithBucket(bucket).WithObjects(list), ct);
        if (errors.Count > 0)
            throw new IOException($"Could not delete {errors.Count} object(s) from {bucket}, first {errors[0].Key}: {errors[0].Message}");
    }

    /// <summary>Removes every object of the bucket and the bucket itself (test clean-up, admin).</summary>
    public async Task DeleteBucketAsync(string bucket, CancellationToken ct = default)
    {
        if (!await _client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), ct)) return;
        var keys = new List<string>();
        await foreach (var o in ListAsync(bucket, "", ct)) keys.Add(o.Key);
        foreach (var chunk in keys.Chunk(1000)) await DeleteManyAsync(bucket, chunk, ct);
        await _client.RemoveBucketAsync(new RemoveBucketArgs().WithBucket(bucket), ct);
    }

    /// <summary>A URL for a client (signed for <see cref="S3Settings.PublicEndpoint"/>) that lets anyone GET the object until it expires.</summary>
    public Task<Uri> PresignGetAsync(string bucket, string key, TimeSpan expiry) => PresignGetAsync(_signer, bucket, key, expiry);

    /// <summary>A URL for a client (signed for <see cref="S3Settings.PublicEndpoint"/>) that lets anyone PUT the object (the request body) until it expires.</summary>
    public async Task<Uri> PresignPutAsync(string bucket, string key, TimeSpan expiry)
    {
        ObjectKey.Validate(key);
        return new Uri(await _signer.PresignedPutObjectAsync(new PresignedPutObjectArgs()
            .WithBucket(bucket).WithObject(key).WithExpiry(ExpirySeconds(expiry))));
    }

    public void Dispose()
    {
        _http.Dispose();
        if (!ReferenceEquals(_signer, _client)) (_signer as IDisposable)?.Dispose();
        (_client as IDisposable)?.Dispose();
    }

    private static async Task<Uri> PresignGetAsync(IMinioClient client, string bucket, string key, TimeSpan expiry)
    {
        ObjectKey.Validate(key);
        return new Uri(await client.PresignedGetObjectAsync(new PresignedGetObjectArgs()
            .WithBucket(bucket).WithObject(key).WithExpiry(ExpirySeconds(expiry))));
    }

    private async Task<Stream> ReadViaPresignedGetAsync(string bucket, string key, RangeHeaderValue? range, CancellationToken ct)
    {
        var url = await PresignGetAsync(_client, bucket, key, TimeSpan.FromMinutes(15)); // the services' own endpoint
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Range = range;
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            response.Dispose();
            throw new FileNotFoundException($"No object {bucket}/{key}", $"{bucket}/{key}");
        }
        if (range is not null && response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            response.Dispose();
            throw new ArgumentOutOfRangeException(nameof(range), $"Range {range} lies outside {bucket}/{key}");
        }
        if (!response.IsSuccessStatusCode || (range is not null && response.StatusCode != HttpStatusCode.PartialContent))
        {
            var status = response.StatusCode;
            response.Dispose();
            throw new IOException($"GET {bucket}/{key}{(range is null ? "" : $" ({range})")} answered {(int)status} {status}");
        }
        return await response.Content.ReadAsStreamAsync(ct);
    }

    private static async Task Translate(string bucket, string key, Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (ObjectNotFoundException e)
        {
            throw new FileNotFoundException($"No object {bucket}/{key}", $"{bucket}/{key}", e);
        }
    }

    private static int ExpirySeconds(TimeSpan expiry) =>
        expiry > TimeSpan.Zero && expiry <= TimeSpan.FromDays(7)
            ? (int)Math.Ceiling(expiry.TotalSeconds)
            : throw new ArgumentOutOfRangeException(nameof(expiry), expiry, "A presigned URL lives between 1 second and 7 days");

    private static DateTimeOffset ToUtc(DateTime t) =>
        new(t.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(t, DateTimeKind.Utc) : t.ToUniversalTime());
}

/// <summary>An object larger than the reader accepts: <see cref="Size"/> bytes (at least), <see cref="Limit"/> accepted.</summary>
public sealed class ObjectTooLargeException(long size, long limit) : IOException($"The object is {size} bytes or more; at most {limit} are accepted.")
{
    public long Size { get; } = size;
    public long Limit { get; } = limit;
}
