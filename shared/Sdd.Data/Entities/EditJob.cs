namespace Sdd.Data.Entities;

public enum JobState { Pending, Running, Completed, Failed, Cancelled }

/// <summary>A batch edit: one attribute applied to many images.</summary>
public class EditJob : IListed
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
    /// <summary>jpeg, png or webp: every output in this format; null keeps each input's own format.</summary>
    public string? OutputFormat { get; set; }
    /// <summary>Where the job's finish is announced (a signed POST; see <see cref="WebhookDelivery"/>), or null.</summary>
    public string? WebhookUrl { get; set; }
    /// <summary>Comma-separated events the webhook wants (null: every event of a job).</summary>
    public string? WebhookEvents { get; set; }
    /// <summary>What to do with an item outside the editor's domain: "skip" (null, the default) or "edit" (edit it anyway and mark it).</summary>
    public string? OutOfDomain { get; set; }
    public uint Version { get; set; }
    public List<JobItem> Items { get; set; } = [];
}
