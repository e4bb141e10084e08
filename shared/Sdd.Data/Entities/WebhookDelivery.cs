namespace Sdd.Data.Entities;

/// <summary>Skipped: the webhook's event filter left this event out (kept so the event is decided once).</summary>
public enum DeliveryState { Pending, Delivered, Failed, Skipped }

/// <summary>
/// One event to announce to a job's or run's webhook. At most one row per subject and event (a unique index), so a
/// finish seen twice is announced once; Ingest's deliverer posts it, retrying with backoff until delivered or given up.
/// </summary>
public class WebhookDelivery : IListed
{
    public Guid Id { get; set; }
    public required string Owner { get; set; }
    /// <summary>job or run.</summary>
    public required string SubjectKind { get; set; }
    public Guid SubjectId { get; set; }
    /// <summary>job.completed, job.failed, job.cancelled, run.completed, run.failed.</summary>
    public required string Event { get; set; }
    public required string Url { get; set; }
    /// <summary>The JSON body posted, fixed when the event happened (the signature covers exactly these bytes).</summary>
    public required string Payload { get; set; }
    public DeliveryState State { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset NextAttemptAt { get; set; }
    public int? LastStatus { get; set; }
    public string? LastError { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? DeliveredAt { get; set; }
    public uint Version { get; set; }
}
