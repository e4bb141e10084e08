namespace Sdd.Client;

public enum EditorState { Training, Ready, Failed }

/// <summary>How an editor version is distilled; what is null takes the API's default (300 steps, delta, automatic scale, λ 1, HQS timesteps).</summary>
public sealed record DistillSettings(int? Steps = null, string? Mode = null, double? Scale = null, double? Lambda = null, string? Timesteps = null);

/// <summary>One point of the indicator curve: the Hybrid Quality Score at timestep <see cref="T"/>, with its two parts.</summary>
public sealed record IndicatorPoint(int T, double Entropy, double Norm, double Hqs);

/// <summary>
/// A distilled editor of an attribute. <see cref="Settings"/> and <see cref="Metrics"/> are JSON as the worker wrote
/// them (metrics: editability, psnrSource, ssimSource, psnrCounterfactual, othersKept).
/// </summary>
public sealed record EditorVersion(Guid Id, int Version, EditorState State, IReadOnlyList<int> SelectedTimesteps, JsonElement? Settings, JsonElement? Metrics,
    IReadOnlyList<IndicatorPoint> Indicator, string? GridUrl, Guid? RunId, DateTimeOffset CreatedAt);

/// <summary>An attribute of the editor registry. <see cref="Shared"/>: another owner's published attribute (read-only to the caller).</summary>
public sealed record ImageAttribute(string Name, Guid? TeacherId, string? TargetAttribute, int? ActiveVersion, bool Published, bool Shared,
    IReadOnlyList<EditorVersion> Versions, string? Prompt = null, string? SourcePrompt = null)
{
    [JsonIgnore] public EditorVersion? Active => Versions.FirstOrDefault(v => v.Version == ActiveVersion);
}

/// <summary>
/// A new attribute; <see cref="DatasetId"/> null = the teacher's own domain, rendered by the worker. On a Stable Diffusion
/// teacher: <see cref="Prompt"/> (and <see cref="SourcePrompt"/>) instead of a teacher attribute, and a data set of photos.
/// </summary>
public sealed record CreateAttribute(string Name, Guid TeacherId, string? TargetAttribute, Guid? DatasetId = null, DistillSettings? Settings = null,
    string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null, string? Prompt = null, string? SourcePrompt = null);

public sealed record NewEditorVersion(DistillSettings? Settings = null, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);

public sealed record AttributeAccepted(string Attribute, Guid EditorVersionId, int Version, Guid RunId);

/// <summary><c>/v1/attributes</c>: the editor registry — attributes, their distilled versions, the active one.</summary>
public sealed class AttributesClient
{
    private readonly ApiTransport _api;
    internal AttributesClient(ApiTransport api) => _api = api;

    private static string Route(string name) => "/v1/attributes/" + ApiTransport.Segment(name);

    public Task<AttributeAccepted> CreateAsync(CreateAttribute request, CancellationToken ct = default) =>
        _api.SendJsonAsync<CreateAttribute, AttributeAccepted>(HttpMethod.Post, "/v1/attributes", request, ct);

    /// <summary>A new distillation of an attribute of the caller's.</summary>
    public Task<AttributeAccepted> AddVersionAsync(string name, NewEditorVersion? request = null, CancellationToken ct = default) =>
        _api.SendJsonAsync<NewEditorVersion, AttributeAccepted>(HttpMethod.Post, Route(name) + "/versions", request ?? new NewEditorVersion(), ct);

    public Task<ImageAttribute> GetAsync(string name, CancellationToken ct = default) => _api.GetAsync<ImageAttribute>(Route(name), ct);

    public Task<Page<ImageAttribute>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<ImageAttribute>("/v1/attributes", cursor, limit, ct);

    public IAsyncEnumerable<ImageAttribute> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    /// <summary>Pin (or roll back to) a ready version: jobs from now on use it.</summary>
    public Task<ImageAttribute> SetActiveAsync(string name, int version, CancellationToken ct = default) =>
        _api.SendJsonAsync<object, ImageAttribute>(HttpMethod.Put, Route(name) + "/active", new { version }, ct);

    /// <summary>Admin: publish <paramref name="owner"/>'s attribute (default the admin's own) to every key, read-only.</summary>
    public Task<ImageAttribute> PublishAsync(string name, string? owner = null, CancellationToken ct = default) =>
        _api.SendAsync<ImageAttribute>(HttpMethod.Post, Route(name) + "/publish" + ApiTransport.Query(("owner", owner)), ct);

    public Task<ImageAttribute> UnpublishAsync(string name, string? owner = null, CancellationToken ct = default) =>
        _api.SendAsync<ImageAttribute>(HttpMethod.Delete, Route(name) + "/publish" + ApiTransport.Query(("owner", owner)), ct);
}
