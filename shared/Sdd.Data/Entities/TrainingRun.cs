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
    /// <summary>When its first command was sent; null = not yet (the Ingest sweeper sends it).</summary>
    public DateTimeOffset? DispatchedAt { get; set; }
    /// <summary>PostgreSQL xmin: two workers updating the same row cannot both win.</summary>
    public uint Version { get; set; }
}
