namespace Sdd.Data.Entities;

/// <summary>A caller of the API; only a hash of its key is stored.</summary>
public class ApiClient
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    /// <summary>SHA-256 of the key, hex (<see cref="ApiKeys.Hash"/>).</summary>
    public required string KeyHash { get; set; }
    public bool IsAdmin { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
