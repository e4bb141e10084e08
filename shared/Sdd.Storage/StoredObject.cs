namespace Sdd.Storage;

/// <summary>What the store knows about one object.</summary>
public sealed record StoredObject(string Key, long Size, string? ETag, DateTimeOffset? LastModified, string? ContentType = null);
