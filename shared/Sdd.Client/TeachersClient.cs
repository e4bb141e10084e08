namespace Sdd.Client;

public enum TeacherState { Pending, Training, Ready, Failed }

/// <summary><see cref="Shared"/>: another owner's (or the service's) published teacher; <see cref="DatasetId"/> only on one's own.</summary>
public sealed record Teacher(Guid Id, string Name, string Kind, IReadOnlyList<string> Attributes, int ImageSize, TeacherState State, Guid? DatasetId,
    bool Builtin, bool Published, bool Shared);

/// <summary>Train a teacher on one of the caller's data sets; <see cref="Webhook"/> hears of the run's end (<see cref="WebhookEvents"/>).</summary>
public sealed record TrainTeacher(Guid DatasetId, int? Steps = null, int? ImageSize = null, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);

public sealed record TeacherAccepted(Guid TeacherId, Guid RunId);

/// <summary>Where an import reads Stable Diffusion weights: one of the caller's uploads (and a folder in it), or a bucket prefix granted to it.</summary>
public sealed record TeacherSource(Guid? Upload = null, string? Bucket = null, string? Prefix = null);

/// <summary>Register Stable Diffusion 1.x/2.x weights as a teacher of text-prompt attributes.</summary>
public sealed record ImportTeacher(string Name, TeacherSource Source, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);

/// <summary><c>/v1/teachers</c>: the diffusion models editors are distilled from.</summary>
public sealed class TeachersClient
{
    private readonly ApiTransport _api;
    internal TeachersClient(ApiTransport api) => _api = api;

    public Task<TeacherAccepted> TrainAsync(TrainTeacher request, CancellationToken ct = default) =>
        _api.SendJsonAsync<TrainTeacher, TeacherAccepted>(HttpMethod.Post, "/v1/teachers", request, ct);

    /// <summary>Starts an import; the teacher is ready once the distill worker has loaded every weight (its run: <see cref="TeacherAccepted.RunId"/>).</summary>
    public Task<TeacherAccepted> ImportAsync(ImportTeacher request, CancellationToken ct = default) =>
        _api.SendJsonAsync<ImportTeacher, TeacherAccepted>(HttpMethod.Post, "/v1/teachers/import", request, ct);

    /// <summary>
    /// Uploads a local diffusers folder or one .safetensors file (with the tokenizer/ beside it) through presigned PUTs,
    /// skipping pickle weights (never read) and the parts SDD does not use, then starts the import.
    /// </summary>
    public async Task<TeacherAccepted> ImportLocalAsync(string name, string path, UploadsClient uploads, IProgress<UploadProgress>? progress = null, CancellationToken ct = default)
    {
        IReadOnlyList<UploadFile> files;
        if (Directory.Exists(path)) files = UploadFile.FromDirectory(path, f => Keep(Path.GetRelativePath(path, f).Replace('\\', '/')));
        else if (File.Exists(path))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            var beside = Directory.Exists(Path.Combine(dir, "tokenizer"))
                ? UploadFile.FromDirectory(dir, f => Path.GetRelativePath(dir, f).Replace('\\', '/') is var r && r.Contains('/') && Keep(r)) : [];
            files = [UploadFile.FromPath(path), .. beside];
        }
        else throw new FileNotFoundException($"{path}: no such folder or file", path);
        var upload = await uploads.UploadAsync(files, progress, ct);
        return await ImportAsync(new ImportTeacher(name, new TeacherSource(Upload: upload.Id)), ct);
    }

    private static readonly string[] Unused = ["safety_checker/", "feature_extractor/"];

    private static bool Keep(string relative) =>
        !Unused.Any(u => relative.StartsWith(u, StringComparison.Ordinal))
        && Path.GetExtension(relative).ToLowerInvariant() is not (".ckpt" or ".bin" or ".pt" or ".pth" or ".pkl" or ".pickle" or ".md" or ".png" or ".jpg");

    public Task<Teacher> GetAsync(Guid id, CancellationToken ct = default) => _api.GetAsync<Teacher>($"/v1/teachers/{id}", ct);

    public Task<Page<Teacher>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<Teacher>("/v1/teachers", cursor, limit, ct);

    public IAsyncEnumerable<Teacher> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    /// <summary>Admin: every key may then distil editors from it.</summary>
    public Task<Teacher> PublishAsync(Guid id, CancellationToken ct = default) => _api.SendAsync<Teacher>(HttpMethod.Post, $"/v1/teachers/{id}/publish", ct);

    public Task<Teacher> UnpublishAsync(Guid id, CancellationToken ct = default) =>
        _api.SendAsync<Teacher>(HttpMethod.Delete, $"/v1/teachers/{id}/publish", ct);
}
