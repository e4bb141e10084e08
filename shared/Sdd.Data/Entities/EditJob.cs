namespace Sdd.Data.Entities;

public enum JobState { Pending, Running, Completed, Failed, Cancelled }

/// <summary>A batch edit: one attribute applied to many images.</summary>
public class EditJob
{
    public Guid Id { get; set; }
    public Guid AttributeId { get; set; }
    public ImageAttribute? Attribute { get; set; }
    /// <summary>The editor chosen when the job was accepted (the attribute's active version then).</summary>
    public Guid? EditorVersionId { get; set; }
    public EditorVersion? EditorVersion { get; set; }
    public required string Owner { get; set; }
    public JobState State { get; set; }
    public int ItemCount { get; set; }
    public int DoneCount { get; set; }
    public int FailedCount { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public uint Version { get; set; }
    public List<JobItem> Items { get; set; } = [];
}
