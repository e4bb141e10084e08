namespace Sdd.Data.Entities;

/// <summary>
/// An upload area the API granted its owner: presigned PUTs under <c>tenants/&lt;owner&gt;/uploads/&lt;id&gt;/</c> in the
/// datasets bucket (Sdd.Storage.KeyLayout.Upload). Jobs and data sets may read it; no other owner can name it.
/// </summary>
public class Upload : IListed
{
    public Guid Id { get; set; }
    public required string Owner { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>When the last URLs handed out for it stop working.</summary>
    public DateTimeOffset ExpiresAt { get; set; }
}
