namespace Sdd.Data.Entities;

/// <summary>A caller of the API; only a hash of its key is stored.</summary>
public class ApiClient : IListed
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    /// <summary>SHA-256 of the key, hex (<see cref="ApiKeys.Hash"/>).</summary>
    public required string KeyHash { get; set; }
    public bool IsAdmin { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>When a request last authenticated with the key (updated at most once a minute).</summary>
    public DateTimeOffset? LastUsedAt { get; set; }
    /// <summary>Set by DELETE /v1/keys/{id}: the key is refused from then on.</summary>
    public DateTimeOffset? RevokedAt { get; set; }
    /// <summary>The HMAC-SHA256 key that signs the webhooks of what this key creates (hex, 32 bytes).</summary>
    public string? WebhookSecret { get; set; }
}
