using System.Globalization;
using System.IO.Compression;

namespace Sdd.Client;

public enum JobState { Queued, Running, Completed, Failed, Cancelled }
/// <summary><see cref="Skipped"/>: the editor's domain gate refused the image (outside what it was trained on); it was not edited.</summary>
public enum ItemState { Pending, Done, Failed, Cancelled, Skipped }
/// <summary>The format outputs are written in; none asked = each input's own.</summary>
public enum OutputFormat { Jpeg, Png, Webp }

/// <summary><see cref="Skipped"/>: items outside the editor's domain, left unedited (absent from an older API: 0).</summary>
public sealed record JobCounts(int Pending, int Done, int Failed, int Cancelled, int Skipped = 0);

/// <summary>
/// A job's state from its items. <see cref="JobState.Failed"/>: finished and nothing succeeded;
/// <see cref="CompletedWithErrors"/>: finished with some failed items. <see cref="EtaSeconds"/>: the API's estimate, when it has one.
/// </summary>
public sealed record JobStatus(Guid Id, string Attribute, int? EditorVersion, JobState State, int Total, JobCounts Counts, DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, double? ImagesPerSecond, double? EtaSeconds = null, bool CompletedWithErrors = false,
    OutputFormat? OutputFormat = null, string? Webhook = null)
{
    [JsonIgnore] public bool IsFinished => State is JobState.Completed or JobState.Failed or JobState.Cancelled;

    /// <summary>Items the workers are through with: edited, failed or skipped.</summary>
    [JsonIgnore] public int Processed => Counts.Done + Counts.Failed + Counts.Skipped;

    /// <summary>Finished with every item edited (none failed, cancelled or skipped).</summary>
    [JsonIgnore] public bool Succeeded => State == JobState.Completed && !CompletedWithErrors && Counts.Failed == 0 && Counts.Cancelled == 0
        && Counts.Skipped == 0;
}

/// <summary>Where a job's images are read in place: a folder of one of the caller's uploads, or a granted bucket prefix.</summary>
public sealed record JobSource(Guid? Upload = null, string? Prefix = null, string? Bucket = null)
{
    public static JobSource FromUpload(Guid upload, string? prefix = null) => new(upload, prefix);

    public static JobSource FromBucket(string bucket, string prefix) => new(null, prefix, bucket);

    /// <summary><c>s3://bucket/prefix</c> as a source.</summary>
    public static JobSource FromS3Url(string url)
    {
        if (!url.StartsWith("s3://", StringComparison.OrdinalIgnoreCase)) throw new FormatException($"'{url}' is not an s3://bucket/prefix URL.");
        var rest = url[5..];
        int slash = rest.IndexOf('/');
        var (bucket, prefix) = slash < 0 ? (rest, "") : (rest[..slash], rest[(slash + 1)..]);
        if (bucket.Length == 0) throw new FormatException($"'{url}' names no bucket.");
        return FromBucket(bucket, prefix);
    }
}

/// <summary>
/// What a job does besides editing: the output format, a webhook told of its end, and whether an image outside the
/// editor's domain is edited anyway (<see cref="EditOutsideDomain"/>; by default it is skipped with its score).
/// </summary>
public sealed record JobOptions(OutputFormat? Format = null, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null,
    bool EditOutsideDomain = false)
{
    internal string? OutOfDomain => EditOutsideDomain ? "edit" : null;
}

/// <summary><see cref="OutOfDomain"/>: "skip" (the API's default) or "edit".</summary>
public sealed record SubmitJob(string Attribute, JobSource Source, OutputFormat? Format = null, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null,
    string? OutOfDomain = null);

public sealed record JobAccepted(Guid JobId, int Items);

/// <summary><see cref="DomainScore"/>: the editor's domain-gate score (absent: no gate); <see cref="OutsideDomain"/>: above its threshold.</summary>
public sealed record JobItem(Guid Id, string Name, ItemState State, string? Error, string? OutputKey, double? DomainScore = null, bool OutsideDomain = false);

/// <summary><see cref="Url"/>: a presigned GET (1 h) on storage; <see cref="Download"/>: the API route streaming the same bytes.</summary>
public sealed record JobResult(Guid Id, string Name, string Url, string Download);

/// <summary>Filters of <c>GET /v1/jobs</c> (newest first).</summary>
public sealed record JobFilter(JobState? State = null, string? Attribute = null, DateTimeOffset? CreatedAfter = null, DateTimeOffset? CreatedBefore = null);

/// <summary><c>/v1/jobs</c>: submitting photo batches, following them, fetching their results.</summary>
public sealed class JobsClient
{
    private readonly ApiTransport _api;
    private readonly UploadsClient _uploads;
    internal JobsClient(ApiTransport api, UploadsClient uploads) => (_api, _uploads) = (api, uploads);

    /// <summary>A job over objects read in place (an upload of the caller's, or a granted prefix).</summary>
    public Task<JobAccepted> SubmitAsync(SubmitJob request, CancellationToken ct = default) =>
        _api.SendJsonAsync<SubmitJob, JobAccepted>(HttpMethod.Post, "/v1/jobs", request, ct);

    /// <summary>A small set sent in one multipart request (at most SDD_MAX_UPLOAD_BYTES, 256 MiB by default).</summary>
    public async Task<JobAccepted> SubmitFilesAsync(string attribute, IReadOnlyList<UploadFile> files, JobOptions? options = null, CancellationToken ct = default)
    {
        using var response = await _api.SendAsync(HttpMethod.Post, "/v1/jobs", () =>
        {
            var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" } };
            if (options?.Format is { } format) form.Add(new StringContent(SddJson.Name(format)), "format");
            if (options?.Webhook is { } webhook) form.Add(new StringContent(webhook), "webhook");
            if (options?.WebhookEvents is { Count: > 0 } events) form.Add(new StringContent(string.Join(',', events)), "webhookEvents");
            if (options?.OutOfDomain is { } ood) form.Add(new StringContent(ood), "outOfDomain");
            foreach (var file in files)
            {
                var part = new StreamContent(file.Open());
                part.Headers.ContentType = new MediaTypeHeaderValue(file.ContentType);
                form.Add(part, "files", file.Name);
            }
            return form;
        }, ct);
        return (await response.Content.ReadFromJsonAsync<JobAccepted>(SddJson.Options, ct))!;
    }

    /// <summary>Any number of files: into a new upload area (presigned PUTs, straight to storage), then a job over it.</summary>
    public async Task<JobAccepted> SubmitThroughUploadAsync(string attribute, IReadOnlyList<UploadFile> files, JobOptions? options = null,
        IProgress<UploadProgress>? progress = null, CancellationToken ct = default)
    {
        var upload = await _uploads.UploadAsync(files, progress, ct);
        return await SubmitAsync(new SubmitJob(attribute, JobSource.FromUpload(upload.Id), options?.Format, options?.Webhook, options?.WebhookEvents, options?.OutOfDomain), ct);
    }

    public Task<JobStatus> GetAsync(Guid id, CancellationToken ct = default) => _api.GetAsync<JobStatus>($"/v1/jobs/{id}", ct);

    /// <summary>The caller's jobs, newest first.</summary>
    public Task<Page<JobStatus>> ListAsync(JobFilter? filter = null, string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<JobStatus>("/v1/jobs", cursor, limit, ct,
            ("state", filter?.State is { } s ? SddJson.Name(s) : null), ("attribute", filter?.Attribute),
            ("createdAfter", filter?.CreatedAfter?.ToString("O", CultureInfo.InvariantCulture)),
            ("createdBefore", filter?.CreatedBefore?.ToString("O", CultureInfo.InvariantCulture)));

    public IAsyncEnumerable<JobStatus> ListAllAsync(JobFilter? filter = null, CancellationToken ct = default) =>
        Pages.AllAsync((c, t) => ListAsync(filter, c, null, t), ct);

    public Task<Page<JobItem>> ListItemsAsync(Guid id, ItemState? state = null, string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<JobItem>($"/v1/jobs/{id}/items", cursor, limit, ct, ("state", state is { } s ? SddJson.Name(s) : null));

    public IAsyncEnumerable<JobItem> ListAllItemsAsync(Guid id, ItemState? state = null, CancellationToken ct = default) =>
        Pages.AllAsync((c, t) => ListItemsAsync(id, state, c, null, t), ct);

    public Task<Page<JobResult>> ListResultsAsync(Guid id, string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<JobResult>($"/v1/jobs/{id}/results", cursor, limit, ct);

    public IAsyncEnumerable<JobResult> ListAllResultsAsync(Guid id, CancellationToken ct = default) =>
        Pages.AllAsync((c, t) => ListResultsAsync(id, c, null, t), ct);

    public Task<Page<WebhookDelivery>> ListWebhooksAsync(Guid id, string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<WebhookDelivery>($"/v1/jobs/{id}/webhooks", cursor, limit, ct);

    public IAsyncEnumerable<WebhookDelivery> ListAllWebhooksAsync(Guid id, CancellationToken ct = default) =>
        Pages.AllAsync((c, t) => ListWebhooksAsync(id, c, null, t), ct);

    /// <summary>Pending items become cancelled; the job's status after it.</summary>
    public Task<JobStatus> CancelAsync(Guid id, CancellationToken ct = default) => _api.SendAsync<JobStatus>(HttpMethod.Post, $"/v1/jobs/{id}/cancel", ct);

    /// <summary>Polls until the job is finished (completed, failed or cancelled), reporting each status seen.</summary>
    public async Task<JobStatus> WaitAsync(Guid id, IProgress<JobStatus>? progress = null, CancellationToken ct = default)
    {
        while (true)
        {
            var status = await GetAsync(id, ct);
            progress?.Report(status);
            if (status.IsFinished) return status;
            await Task.Delay(_api.Options.PollInterval, ct);
        }
    }

    /// <summary>The zip of every edited output (<c>GET /v1/jobs/{id}/results.zip</c>), copied to <paramref name="destination"/>.</summary>
    public Task DownloadResultsZipAsync(Guid id, Stream destination, CancellationToken ct = default) =>
        CopyAsync(_api.Absolute($"/v1/jobs/{id}/results.zip"), withKey: true, destination, ct);

    /// <summary>
    /// The results zip unpacked into <paramref name="directory"/> (created; files of the same name overwritten), entries
    /// named as the server names them. Returns the files written, relative to the folder.
    /// </summary>
    public async Task<IReadOnlyList<string>> ExtractResultsAsync(Guid id, string directory, CancellationToken ct = default)
    {
        var temp = Path.Combine(Path.GetTempPath(), $"sdd-results-{id:N}-{Guid.NewGuid():N}.zip");
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                await DownloadResultsZipAsync(id, file, ct);
            // "edited/" and "edited" are the same folder: without its trailing separator the prefix test below would refuse every entry.
            var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
            using var zip = ZipFile.OpenRead(temp);
            var files = new List<(ZipArchiveEntry Entry, string Target)>();
            foreach (var entry in zip.Entries)
            {
                if (entry.FullName.EndsWith('/')) continue;
                var target = Path.GetFullPath(Path.Combine(root, entry.FullName));
                if (!target.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    throw new InvalidDataException($"The results zip names '{entry.FullName}', outside the folder; nothing of it is written.");
                files.Add((entry, target));
            }
            Directory.CreateDirectory(root);
            var written = new List<string>();
            foreach (var (entry, target) in files)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                entry.ExtractToFile(target, overwrite: true);
                written.Add(Path.GetRelativePath(root, target).Replace('\\', '/'));
            }
            return written;
        }
        finally { File.Delete(temp); }
    }

    /// <summary>One edited image streamed through the API (<c>GET /v1/jobs/{id}/items/{itemId}/output</c>).</summary>
    public Task DownloadOutputAsync(Guid id, Guid itemId, Stream destination, CancellationToken ct = default) =>
        CopyAsync(_api.Absolute($"/v1/jobs/{id}/items/{itemId}/output"), withKey: true, destination, ct);

    /// <summary>A result's bytes: from storage through its presigned URL, or through the API when <paramref name="throughApi"/>.</summary>
    public Task DownloadResultAsync(JobResult result, Stream destination, bool throughApi = false, CancellationToken ct = default) =>
        throughApi ? CopyAsync(_api.Absolute(result.Download), withKey: true, destination, ct) : CopyAsync(new Uri(result.Url), withKey: false, destination, ct);

    /// <summary><see cref="DownloadResultAsync"/> into memory.</summary>
    public async Task<byte[]> ReadResultAsync(JobResult result, bool throughApi = false, CancellationToken ct = default)
    {
        using var buffer = new MemoryStream();
        await DownloadResultAsync(result, buffer, throughApi, ct);
        return buffer.ToArray();
    }

    private async Task CopyAsync(Uri uri, bool withKey, Stream destination, CancellationToken ct)
    {
        using var response = await _api.SendAsync(HttpMethod.Get, uri, null, withKey, ct, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        await body.CopyToAsync(destination, ct);
    }
}
