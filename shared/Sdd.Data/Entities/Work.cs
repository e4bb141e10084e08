namespace Sdd.Data.Entities;

public enum RunKind { Teacher, Distill }
public enum RunState { Queued, Running, Completed, Failed, Cancelled }

/// <summary>A teacher training or editor distillation, executed in checkpointed chunks.</summary>
public class TrainingRun
{
    public Guid Id { get; set; }
    public RunKind Kind { get; set; }
    public RunState State { get; set; }
    public Guid? TeacherId { get; set; }
    public Guid? EditorVersionId { get; set; }
    public int Step { get; set; }
    public int TotalSteps { get; set; }
    /// <summary>Models-bucket key of the last checkpoint (weights + optimiser state).</summary>
    public string? CheckpointKey { get; set; }
    /// <summary>The worker executing the run, and when it last said so.</summary>
    public string? Worker { get; set; }
    public DateTimeOffset? HeartbeatAt { get; set; }
    public string? Error { get; set; }
    /// <summary>The API client that asked for the run.</summary>
    public required string Owner { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    /// <summary>PostgreSQL xmin: two workers updating the same row cannot both win.</summary>
    public uint Version { get; set; }
}

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
