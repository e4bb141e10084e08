namespace Sdd.Data.Entities;

/// <summary>
/// Read access an admin gave one owner to an external bucket, or a prefix of it: jobs and data sets of that owner may
/// name it as their source. Never one of the service's own buckets. Revoked grants are kept for the record.
/// </summary>
public class SourceGrant : IListed
{
    public Guid Id { get; set; }
    public required string Owner { get; set; }
    public required string Bucket { get; set; }
    /// <summary>Empty (the whole bucket) or ending with '/'.</summary>
    public required string Prefix { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}
