namespace Sdd.Data.Entities;

public enum ItemState { Pending, Done, Failed }

/// <summary>One image of a job.</summary>
public class JobItem
{
    public Guid Id { get; set; }
    public Guid JobId { get; set; }
    /// <summary>Jobs-bucket key of the input (&lt;jobId&gt;/input/&lt;itemId&gt;.&lt;ext&gt;) or a datasets-bucket key.</summary>
    public required string SourceKey { get; set; }
    public string? OutputKey { get; set; }
    public ItemState State { get; set; }
    public string? Error { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }
    public uint Version { get; set; }
}
