namespace Sdd.Data.Entities;

/// <summary>
/// The answer given to a POST that carried an <c>Idempotency-Key</c>: the same owner sending the same key with the same
/// body within the retention window gets this answer again instead of a second resource.
/// </summary>
public class IdempotencyRecord
{
    public required string Owner { get; set; }
    public required string Key { get; set; }
    /// <summary>SHA-256 (hex) of method, path and body: the same key with a different request is refused.</summary>
    public required string RequestHash { get; set; }
    /// <summary>0 while the first request is still being answered.</summary>
    public int StatusCode { get; set; }
    public string? ContentType { get; set; }
    public string? Location { get; set; }
    public byte[]? Body { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
