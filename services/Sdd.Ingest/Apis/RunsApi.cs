using Sdd.Ingest.Webhooks;

namespace Sdd.Ingest.Apis;

public sealed record RunDto(Guid Id, string Kind, string State, int Step, int TotalSteps, string? CheckpointKey, DateTimeOffset? HeartbeatAt, string? Error)
{
    public static RunDto From(TrainingRun r) => new(r.Id, r.Kind.ToString().ToLowerInvariant(), StateName(r.State), r.Step, r.TotalSteps,
        r.CheckpointKey, r.HeartbeatAt, r.Error);

    public static string StateName(RunState state) => state switch
    {
        RunState.Queued => "queued",
        RunState.Running => "running",
        RunState.Completed => "succeeded",
        RunState.Cancelled => "cancelled",
        _ => "failed",
    };
}

public static class RunsApi
{
    public static RouteGroupBuilder MapRunsApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/runs").WithTags("Runs").RequireAuthorization();
        api.MapGet("/", List).WithName("listRuns").WithSummary("Your training and distillation runs, newest first.");
        api.MapGet("/{id:guid}", Get).WithName("getRun").WithSummary("A run's state, step and heartbeat.");
        api.MapPost("/{id:guid}/cancel", Cancel).WithName("cancelRun")
            .WithSummary("Cancel a queued or running run (its owner, or an admin): its worker stops within a heartbeat; what it was making fails.");
        api.MapGet("/{id:guid}/webhooks", Webhooks).WithName("listRunWebhookDeliveries").WithSummary("The run's webhook deliveries: event, attempts, last answer.");
        return api;
    }

    public static async Task<Results<Ok<Page<RunDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, CancellationToken ct,
        int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        var (rows, next, problem) = await Paging.ByCreationAsync(db.TrainingRuns.AsNoTracking().Where(r => r.Owner == owner), limit, cursor, newestFirst: true, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<RunDto>(rows.Select(RunDto.From).ToList(), next));
    }

    public static async Task<Results<Ok<Page<WebhookDeliveryDto>>, ProblemHttpResult>> Webhooks(Guid id, ClaimsPrincipal user, SddDbContext db,
        CancellationToken ct, int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        if (!await db.TrainingRuns.AnyAsync(r => r.Id == id && r.Owner == owner, ct)) return Problems.NotFound($"No run {id}.");
        var (rows, next, problem) = await Paging.ByCreationAsync(db.WebhookDeliveries.AsNoTracking().Where(d => d.SubjectId == id && d.Owner == owner),
            limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<WebhookDeliveryDto>(rows.Select(WebhookDeliveryDto.From).ToList(), next));
    }

    public static async Task<Results<Ok<RunDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var owner = user.Owner();
        var r = await db.TrainingRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == id && r.Owner == owner, ct);
        return r is null ? Problems.NotFound($"No run {id}.") : TypedResults.Ok(RunDto.From(r));
    }

    /// <summary>
    /// Cancels a queued or running run: the run's owner, or an admin for any owner's run (another owner's run is a 404
    /// like every route). 202 with the run; 409 when it had already finished.
    /// </summary>
    public static async Task<Results<Accepted<RunDto>, ProblemHttpResult>> Cancel(Guid id, ClaimsPrincipal user, SddDbContext db,
        WebhookOutbox outbox, CancellationToken ct)
    {
        var owner = user.Owner();
        bool admin = user.IsAdmin();
        var run = await db.TrainingRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == id && (r.Owner == owner || admin), ct);
        if (run is null) return Problems.NotFound($"No run {id}.");
        var reason = run.Owner == owner ? "cancelled by its owner" : "cancelled by an admin";
        if (!await db.CancelAsync(id, reason, ct))
        {
            var state = await db.TrainingRuns.AsNoTracking().Where(r => r.Id == id).Select(r => r.State).SingleAsync(ct);
            return Problems.Conflict($"Run {id} is {RunDto.StateName(state)}: only a queued or running run can be cancelled.");
        }
        await outbox.RunFinishedAsync(id, CancellationToken.None); // the backstop retries it if this fails
        var now = await db.TrainingRuns.AsNoTracking().SingleAsync(r => r.Id == id, ct);
        return TypedResults.Accepted($"/v1/runs/{id}", RunDto.From(now));
    }
}
