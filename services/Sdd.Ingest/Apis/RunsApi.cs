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
        _ => "failed", // failed or cancelled
    };
}

public static class RunsApi
{
    public static RouteGroupBuilder MapRunsApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/runs").WithTags("Runs").RequireAuthorization();
        api.MapGet("/", List).WithName("listRuns").WithSummary("Your training and distillation runs, newest first.");
        api.MapGet("/{id:guid}", Get).WithName("getRun").WithSummary("A run's state, step and heartbeat.");
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
}
