namespace Sdd.Client;

public sealed record Grant(Guid Id, string Owner, string Bucket, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary><c>/v1/grants</c>: read-only access to a bucket prefix, given to one owner by an admin.</summary>
public sealed class GrantsClient
{
    private readonly ApiTransport _api;
    internal GrantsClient(ApiTransport api) => _api = api;

    public Task<Grant> CreateAsync(string owner, string bucket, string? prefix = null, CancellationToken ct = default) =>
        _api.SendJsonAsync<object, Grant>(HttpMethod.Post, "/v1/grants", new { owner, bucket, prefix }, ct);

    public Task<Page<Grant>> ListAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        _api.GetPageAsync<Grant>("/v1/grants", cursor, limit, ct);

    public IAsyncEnumerable<Grant> ListAllAsync(CancellationToken ct = default) => Pages.AllAsync((c, t) => ListAsync(c, null, t), ct);

    public Task RevokeAsync(Guid id, CancellationToken ct = default) => _api.SendAsync(HttpMethod.Delete, $"/v1/grants/{id}", ct);
}
