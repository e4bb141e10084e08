namespace Sdd.Client;

/// <summary>A key as the API shows it (never the key itself). <see cref="WebhookSecret"/>: only on <c>GET /v1/keys/me</c>, for verifying webhooks.</summary>
public sealed record ApiKey(string Id, string Name, bool Admin, DateTimeOffset? CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt,
    string? WebhookSecret = null);

/// <summary>A new key: <see cref="Key"/> is shown this once.</summary>
public sealed record CreatedKey(Guid Id, string Name, string Key, string? WebhookSecret = null);

/// <summary><c>/v1/keys</c>: the calling key, and (admin) creating, listing and revoking keys.</summary>
public sealed class KeysClient
{
    private readonly ApiTransport _api;
    internal KeysClient(ApiTransport api) => _api = api;

    public Task<ApiKey> GetMeAsync(CancellationToken ct = default) => _api.GetAsync<ApiKey>("/v1/keys/me", ct);

    public Task<CreatedKey> CreateAsync(string name, CancellationToken ct = default) =>
        _api.SendJsonAsync<object, CreatedKey>(HttpMethod.Post, "/v1/keys", new { name }, ct);

    public Task<Page<ApiKey>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<ApiKey>("/v1/keys", cursor, limit, ct);

    public IAsyncEnumerable<ApiKey> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    public Task RevokeAsync(Guid id, CancellationToken ct = default) => _api.SendAsync(HttpMethod.Delete, $"/v1/keys/{id}", ct);
}
