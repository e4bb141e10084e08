using System.Text.Json;
using Microsoft.Extensions.Options;
using Sdd.Ingest.Apis;

namespace Sdd.Ingest.Webhooks;

/// <summary>The body of every webhook post.</summary>
public sealed record WebhookSubject(string Kind, Guid Id);
public sealed record WebhookPayload(Guid Id, string Event, WebhookSubject Subject, DateTimeOffset At, object Data);
/// <summary>A delivery as the log shows it.</summary>
public sealed record WebhookDeliveryDto(Guid Id, string Event, string Url, string State, int Attempts, int? LastStatus, string? LastError,
    DateTimeOffset CreatedAt, DateTimeOffset? DeliveredAt)
{
    public static WebhookDeliveryDto From(WebhookDelivery d) => new(d.Id, d.Event, d.Url, d.State.ToString().ToLowerInvariant(), d.Attempts,
        d.LastStatus, d.LastError, d.CreatedAt, d.DeliveredAt);
}

/// <summary>
/// Puts a finished job's or run's event in <c>webhook_deliveries</c> when its webhook wants it: at most one row per
/// subject and event (the unique index), so the completion event, the backstop scan and a repeat all announce it once.
/// The payload is fixed now, with the status as it is at the finish.
/// </summary>
public sealed class WebhookOutbox(SddDbContext db, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
{
    public async Task<bool> JobFinishedAsync(Guid jobId, CancellationToken ct)
    {
        var job = await db.EditJobs.AsNoTracking().Where(j => j.Id == jobId && j.WebhookUrl != null)
            .Select(j => new { j.Owner, j.State, j.WebhookUrl, j.WebhookEvents }).SingleOrDefaultAsync(ct);
        if (job is null) return false;
        var name = job.State switch
        {
            JobState.Completed => WebhookEvents.JobCompleted,
            JobState.Failed => WebhookEvents.JobFailed,
            JobState.Cancelled => WebhookEvents.JobCancelled,
            _ => null, // not finished: nothing to announce
        };
        if (name is null) return false;
        var status = await JobsApi.StatusAsync(db, jobId, job.Owner, ct);
        return await AddAsync(job.Owner, "job", jobId, name, job.WebhookUrl!, status!, WebhookEvents.Wants(job.WebhookEvents, name), ct);
    }

    public async Task<bool> RunFinishedAsync(Guid runId, CancellationToken ct)
    {
        var run = await db.TrainingRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == runId && r.WebhookUrl != null, ct);
        if (run is null) return false;
        var name = run.State switch
        {
            RunState.Completed => WebhookEvents.RunCompleted,
            RunState.Failed or RunState.Cancelled => WebhookEvents.RunFailed,
            _ => null,
        };
        if (name is null) return false;
        return await AddAsync(run.Owner, "run", runId, name, run.WebhookUrl!, RunDto.From(run), WebhookEvents.Wants(run.WebhookEvents, name), ct);
    }

    /// <summary>Adds the delivery (skipped when the webhook's filter leaves the event out); false when it was there already.</summary>
    private async Task<bool> AddAsync(string owner, string kind, Guid subject, string name, string url, object data, bool wanted, CancellationToken ct)
    {
        var state = (wanted ? DeliveryState.Pending : DeliveryState.Skipped).ToString();
        var id = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        var payload = JsonSerializer.Serialize(new WebhookPayload(id, name, new WebhookSubject(kind, subject), now, data), json.Value.SerializerOptions);
        var added = await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO webhook_deliveries ("Id", "Owner", "SubjectKind", "SubjectId", "Event", "Url", "Payload", "State", "Attempts", "NextAttemptAt", "CreatedAt")
            VALUES ({id}, {owner}, {kind}, {subject}, {name}, {url}, {payload}, {state}, 0, {now}, {now})
            ON CONFLICT ("SubjectId", "Event") DO NOTHING
            """, ct);
        return added == 1;
    }
}
