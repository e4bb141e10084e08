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
        api.MapGet("/", List);
        api.MapGet("/{id:guid}", Get);
        return api;
    }

    public static async Task<Ok<RunDto[]>> List(ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var owner = user.Owner();
        var rows = await db.TrainingRuns.AsNoTracking().Where(r => r.Owner == owner).OrderByDescending(r => r.CreatedAt).Take(1000).ToListAsync(ct);
        return TypedResults.Ok(rows.Select(RunDto.From).ToArray());
    }

    public static async Task<Results<Ok<RunDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var owner = user.Owner();
        var r = await db.TrainingRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == id && r.Owner == owner, ct);
        return r is null ? Problems.NotFound($"No run {id}.") : TypedResults.Ok(RunDto.From(r));
    }
}
