namespace Sdd.Client;

public sealed record UploadUrl(string Name, string Url);

/// <summary>
/// An upload area of the caller's: <see cref="Files"/> (on creation) a presigned PUT URL per named file;
/// <see cref="Objects"/> and <see cref="Bytes"/> what is stored so far (on GET of one upload).
/// </summary>
public sealed record Upload(Guid Id, string Bucket, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt,
    IReadOnlyList<UploadUrl>? Files = null, int? Objects = null, long? Bytes = null);

/// <summary>How far an upload has come: files and bytes stored so far, of the whole.</summary>
public readonly record struct UploadProgress(int Files, int TotalFiles, long Bytes, long TotalBytes);

/// <summary><c>/v1/uploads</c>: the caller's own areas, written straight to storage with presigned PUTs.</summary>
public sealed class UploadsClient
{
    /// <summary>Names one POST may ask URLs for.</summary>
    public const int MaxFilesPerRequest = 1000;
    private readonly ApiTransport _api;
    internal UploadsClient(ApiTransport api) => _api = api;

    public Task<Upload> CreateAsync(IReadOnlyList<string> files, int? expiresInMinutes = null, CancellationToken ct = default) =>
        _api.SendJsonAsync<object, Upload>(HttpMethod.Post, "/v1/uploads", new { files, expiresInMinutes }, ct);

    public Task<Upload> AddFilesAsync(Guid id, IReadOnlyList<string> files, int? expiresInMinutes = null, CancellationToken ct = default) =>
        _api.SendJsonAsync<object, Upload>(HttpMethod.Post, $"/v1/uploads/{id}/files", new { files, expiresInMinutes }, ct);

    public Task<Upload> GetAsync(Guid id, CancellationToken ct = default) => _api.GetAsync<Upload>($"/v1/uploads/{id}", ct);

    public Task<Page<Upload>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<Upload>("/v1/uploads", cursor, limit, ct);

    public IAsyncEnumerable<Upload> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    public Task DeleteAsync(Guid id, CancellationToken ct = default) => _api.SendAsync(HttpMethod.Delete, $"/v1/uploads/{id}", ct);

    /// <summary>
    /// Files into a new upload area: URLs asked for 1000 names at a time, then each file PUT straight to storage
    /// (no API key), <see cref="SddClientOptions.UploadParallelism"/> at once, each retried on passing failures.
    /// Returns the upload (without its URLs).
    /// </summary>
    public async Task<Upload> UploadAsync(IReadOnlyList<UploadFile> files, IProgress<UploadProgress>? progress = null, CancellationToken ct = default)
    {
        if (files.Count == 0) throw new ArgumentException("Name at least one file to upload.", nameof(files));
        var duplicate = files.GroupBy(f => f.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"'{duplicate.Key}' is named twice.", nameof(files));
        Upload? upload = null;
        long totalBytes = files.Sum(f => f.Length), bytes = 0;
        int done = 0;
        progress?.Report(new UploadProgress(0, files.Count, 0, totalBytes));
        foreach (var chunk in files.Chunk(MaxFilesPerRequest))
        {
            var names = chunk.Select(f => f.Name).ToList();
            var answer = upload is null ? await CreateAsync(names, ct: ct) : await AddFilesAsync(upload.Id, names, ct: ct);
            upload ??= answer with { Files = null };
            var urls = (answer.Files ?? []).ToDictionary(u => u.Name, u => u.Url, StringComparer.Ordinal);
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _api.Options.UploadParallelism), CancellationToken = ct };
            await Parallel.ForEachAsync(chunk, parallel, async (file, token) =>
            {
                if (!urls.TryGetValue(file.Name, out var url)) throw new InvalidDataException($"The API gave no upload URL for '{file.Name}'.");
                await PutAsync(new Uri(url), file, token);
                var d = Interlocked.Increment(ref done);
                var b = Interlocked.Add(ref bytes, file.Length);
                progress?.Report(new UploadProgress(d, files.Count, b, totalBytes));
            });
        }
        return upload!;
    }

    /// <summary>One file's bytes to a presigned URL (storage, not the API: no key).</summary>
    public async Task PutAsync(Uri url, UploadFile file, CancellationToken ct = default)
    {
        using var _ = await _api.SendAsync(HttpMethod.Put, url, () =>
        {
            var content = new StreamContent(file.Open());
            content.Headers.ContentType = new MediaTypeHeaderValue(file.ContentType);
            return content;
        }, withKey: false, ct);
    }
}
