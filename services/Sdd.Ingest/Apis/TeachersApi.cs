using System.Text.Json;
using Sdd.Ingest.Dispatch;

namespace Sdd.Ingest.Apis;

public sealed record TeacherDto(Guid Id, string Name, string Kind, IReadOnlyList<string> Attributes, int ImageSize, string State, Guid? DatasetId, bool Builtin)
{
    public static TeacherDto From(Teacher t) =>
        new(t.Id, t.Name, t.Kind, t.AttributeNames, t.Resolution, t.Status.ToString().ToLowerInvariant(), t.DatasetId, t.IsBuiltin);
}

public sealed record TrainTeacherRequest(Guid DatasetId, int? Steps, int? ImageSize);
public sealed record TeacherAccepted(Guid TeacherId, Guid RunId);

public static class TeachersApi
{
    public const string KindAttributeDdpm = "attribute-ddpm";

    public static RouteGroupBuilder MapTeachersApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/teachers").WithTags("Teachers").RequireAuthorization();
        api.MapGet("/", List);
        api.MapGet("/{id:guid}", Get);
        api.MapPost("/", Train).WithSummary("Train a teacher on one of your datasets (a run on the distill queue).");
        return api;
    }

    /// <summary>The teachers a caller may see: the builtin ones and its own.</summary>
    public static IQueryable<Teacher> Visible(this IQueryable<Teacher> teachers, string owner) =>
        teachers.Where(t => t.IsBuiltin || t.Owner == owner);

    public static async Task<Ok<TeacherDto[]>> List(ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var rows = await db.Teachers.AsNoTracking().Visible(user.Owner()).OrderBy(t => t.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(rows.Select(TeacherDto.From).ToArray());
    }

    public static async Task<Results<Ok<TeacherDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var t = await db.Teachers.AsNoTracking().Visible(user.Owner()).SingleOrDefaultAsync(t => t.Id == id, ct);
        return t is null ? Problems.NotFound($"No teacher {id}.") : TypedResults.Ok(TeacherDto.From(t));
    }

    public static async Task<Results<Accepted<TeacherAccepted>, ProblemHttpResult>> Train(TrainTeacherRequest request, ClaimsPrincipal user,
        SddDbContext db, RunDispatcher dispatcher, CancellationToken ct)
    {
        var steps = request.Steps ?? 2000;
        var size = request.ImageSize ?? 32;
        if (steps is < 1 or > 10_000_000) return Problems.Unprocessable("steps must be between 1 and 10000000.");
        if (size is < 8 or > 1024 || size % 8 != 0) return Problems.Unprocessable("imageSize must be a multiple of 8 between 8 and 1024.");
        var owner = user.Owner();
        var dataset = await db.Datasets.AsNoTracking().SingleOrDefaultAsync(d => d.Id == request.DatasetId && d.Owner == owner, ct);
        if (dataset is null) return Problems.NotFound($"No dataset {request.DatasetId}.");

        var now = DateTimeOffset.UtcNow;
        var teacher = new Teacher
        {
            Id = Guid.NewGuid(), Name = $"{dataset.Name}-{Guid.NewGuid():N}"[..Math.Min(200, dataset.Name.Length + 9)],
            Kind = KindAttributeDdpm, DatasetId = dataset.Id, Resolution = size, Status = TeacherStatus.Training,
            AttributeNames = [.. dataset.AttributeNames], Owner = owner, CreatedAt = now,
            SettingsJson = JsonSerializer.Serialize(new { steps, imageSize = size }),
        };
        var run = new TrainingRun
        {
            Id = Guid.NewGuid(), Kind = RunKind.Teacher, State = RunState.Queued, TeacherId = teacher.Id,
            TotalSteps = steps, Owner = owner, CreatedAt = now,
        };
        db.Teachers.Add(teacher);
        db.TrainingRuns.Add(run);
        await db.SaveChangesAsync(ct);
        await dispatcher.DispatchAsync(run, ct);
        return TypedResults.Accepted($"/v1/runs/{run.Id}", new TeacherAccepted(teacher.Id, run.Id));
    }
}
