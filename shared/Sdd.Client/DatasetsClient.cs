namespace Sdd.Client;

public sealed record Dataset(Guid Id, string Name, string Bucket, string Prefix, IReadOnlyList<string> Attributes, int ImageCount, DateTimeOffset CreatedAt);

/// <summary>A data set in one of the caller's uploads (<see cref="Upload"/>, a folder of it as <see cref="Prefix"/>) or in a granted bucket prefix.</summary>
public sealed record RegisterDataset(string Name, Guid? Upload = null, string? Bucket = null, string? Prefix = null);

/// <summary><c>/v1/datasets</c>: labeled image sets (labels.csv and images/) to train teachers and distil editors on.</summary>
public sealed class DatasetsClient
{
    private readonly ApiTransport _api;
    private readonly UploadsClient _uploads;
    internal DatasetsClient(ApiTransport api, UploadsClient uploads) => (_api, _uploads) = (api, uploads);

    public Task<Dataset> RegisterAsync(RegisterDataset request, CancellationToken ct = default) =>
        _api.SendJsonAsync<RegisterDataset, Dataset>(HttpMethod.Post, "/v1/datasets", request, ct);

    /// <summary>A zip holding labels.csv and images/, sent whole (multipart <c>POST /v1/datasets/upload</c>).</summary>
    public async Task<Dataset> UploadZipAsync(string name, UploadFile zip, CancellationToken ct = default)
    {
        using var response = await _api.SendAsync(HttpMethod.Post, "/v1/datasets/upload", () =>
        {
            var file = new StreamContent(zip.Open());
            file.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
            return new MultipartFormDataContent { { new StringContent(name), "name" }, { file, "file", zip.Name } };
        }, ct);
        return (await response.Content.ReadFromJsonAsync<Dataset>(SddJson.Options, ct))!;
    }

    /// <summary>A folder's files (labels.csv and images/…) through a new upload area, then registered from it.</summary>
    public async Task<Dataset> UploadDirectoryAsync(string name, string directory, IProgress<UploadProgress>? progress = null, CancellationToken ct = default)
    {
        var upload = await _uploads.UploadAsync(UploadFile.FromDirectory(directory), progress, ct);
        return await RegisterAsync(new RegisterDataset(name, Upload: upload.Id), ct);
    }

    public Task<Dataset> GetAsync(Guid id, CancellationToken ct = default) => _api.GetAsync<Dataset>($"/v1/datasets/{id}", ct);

    public Task<Page<Dataset>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<Dataset>("/v1/datasets", cursor, limit, ct);

    public IAsyncEnumerable<Dataset> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);
}
