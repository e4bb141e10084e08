namespace Sdd.Data.Entities;

public enum RunKind { Teacher, Distill }
public enum RunState { Queued, Running, Completed, Failed, Cancelled }

/// <summary>A teacher training or editor distillation, executed in checkpointed chunks.</summary>
public class TrainingRun : IListed
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
    /// <summary>
    /// The run's lease: the worker holding it (null between chunks), and its last heartbeat; the lease expires a lease
    /// length after it (see <see cref="RunLeases"/>).
    /// </summary>
    public string? Worker { get; set; }
    public DateTimeOffset? HeartbeatAt { get; set; }
    public string? Error { get; set; }
    /// <summary>The API client that asked for the run.</summary>
    public required string Owner { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    /// <summary>
    /// When its command was last sent by a dispatcher: the first by Ingest (null = not yet, the Ingest sweeper sends it),
    /// later ones by the distill run sweeper re-sending a stale run.
    /// </summary>
    public DateTimeOffset? DispatchedAt { get; set; }
    /// <summary>PostgreSQL xmin: two workers updating the same row cannot both win.</summary>
    /// <summary>Where the run's finish is announced (a signed POST), or null.</summary>
    public string? WebhookUrl { get; set; }
    /// <summary>Comma-separated events the webhook wants (null: every event of a run).</summary>
    public string? WebhookEvents { get; set; }
    public uint Version { get; set; }
}
