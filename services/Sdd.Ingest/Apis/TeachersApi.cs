using Sdd.Ingest.Webhooks;
using System.Text.Json;
using Sdd.Ingest.Dispatch;
using Sdd.Ingest.Quotas;
using Sdd.Ingest.Sources;

namespace Sdd.Ingest.Apis;

/// <summary><see cref="Shared"/>: another owner's (or the service's) teacher published to every key; <see cref="DatasetId"/> only for one's own.</summary>
public sealed record TeacherDto(Guid Id, string Name, string Kind, IReadOnlyList<string> Attributes, int ImageSize, string State, Guid? DatasetId, bool Builtin,
    bool Published, bool Shared)
{
    public static TeacherDto From(Teacher t, string caller)
    {
        var shared = t.Owner != caller;
        return new(t.Id, t.Name, t.Kind, t.AttributeNames, t.Resolution, t.Status.ToString().ToLowerInvariant(), shared ? null : t.DatasetId, t.IsBuiltin,
            t.IsPublished, shared);
    }
}

/// <summary>Webhook: a URL told when the training run finishes (webhookEvents: run.completed, run.failed).</summary>
public sealed record TrainTeacherRequest(Guid DatasetId, int? Steps, int? ImageSize, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);
public sealed record TeacherAccepted(Guid TeacherId, Guid RunId);
/// <summary>Stable Diffusion weights to register as a teacher: one of your uploads (<c>{ "upload": id, "prefix"? }</c>) or a granted bucket prefix.</summary>
public sealed record ImportTeacherRequest(string Name, SourceRequest? Source, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);

public static class TeachersApi
{
    public const string KindAttributeDdpm = TeacherConfig.KindAttributeDdpm;
    public const string KindStableDiffusion = TeacherConfig.KindStableDiffusion;

    public static RouteGroupBuilder MapTeachersApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/teachers").WithTags("Teachers").RequireAuthorization();
        api.MapGet("/", List).WithName("listTeachers").WithSummary("Your teachers and the published ones, oldest first.");
        api.MapGet("/{id:guid}", Get).WithName("getTeacher").WithSummary("A teacher you may use.");
        api.MapPost("/", Train).WithName("trainTeacher").WithSummary("Train a teacher on one of your datasets (a run on the distill queue).");
        api.MapPost("/import", Import).WithName("importTeacher")
            .WithSummary("Register Stable Diffusion 1.x/2.x weights (a diffusers folder or one .safetensors file, uploaded or in a granted prefix) as a teacher of text-prompt attributes; the distill worker checks every key and shape before it is ready.");
        api.MapPost("/{id:guid}/publish", Publish).WithName("publishTeacher").RequireAuthorization(ApiKeyAuthentication.AdminPolicy)
            .WithSummary("Publish a teacher (admin only): every key may then distil editors from it.");
        api.MapDelete("/{id:guid}/publish", Unpublish).WithName("unpublishTeacher").RequireAuthorization(ApiKeyAuthentication.AdminPolicy)
            .WithSummary("Make a published teacher private to its owner again (admin only; builtin teachers stay published).");
        return api;
    }

    /// <summary>The teachers a caller may see: its own, and the published ones (the builtin teachers among them).</summary>
    public static IQueryable<Teacher> Visible(this IQueryable<Teacher> teachers, string owner) =>
        teachers.Where(t => t.IsBuiltin || t.IsPublished || t.Owner == owner);

    public static async Task<Results<Ok<Page<TeacherDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, CancellationToken ct,
        int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        var (rows, next, problem) = await Paging.ByCreationAsync(db.Teachers.AsNoTracking().Visible(owner), limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<TeacherDto>(rows.Select(t => TeacherDto.From(t, owner)).ToList(), next));
    }

    public static async Task<Results<Ok<TeacherDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var owner = user.Owner();
        var t = await db.Teachers.AsNoTracking().Visible(owner).SingleOrDefaultAsync(t => t.Id == id, ct);
        return t is null ? Problems.NotFound($"No teacher {id}.") : TypedResults.Ok(TeacherDto.From(t, owner));
    }

    public static Task<Results<Ok<TeacherDto>, ProblemHttpResult>> Publish(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct) =>
        SetPublished(id, true, user.Owner(), db, ct);

    public static Task<Results<Ok<TeacherDto>, ProblemHttpResult>> Unpublish(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct) =>
        SetPublished(id, false, user.Owner(), db, ct);

    private static async Task<Results<Ok<TeacherDto>, ProblemHttpResult>> SetPublished(Guid id, bool published, string caller, SddDbContext db, CancellationToken ct)
    {
        var t = await db.Teachers.SingleOrDefaultAsync(t => t.Id == id, ct);
        if (t is null) return Problems.NotFound($"No teacher {id}.");
        if (t.IsBuiltin && !published) return Problems.Conflict("A builtin teacher is always published.");
        t.IsPublished = published;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(TeacherDto.From(t, caller));
    }

    /// <summary>
    /// An import: the source is resolved (the caller's own upload or a granted prefix, else 404), its files are listed and
    /// checked by name and size (<see cref="StableDiffusionLayout"/>: a refusal leaves nothing registered), and a teacher run
    /// on the distill queue copies them to the models bucket and loads them strictly before the teacher is ready.
    /// </summary>
    public static async Task<Results<Accepted<TeacherAccepted>, ProblemHttpResult>> Import(ImportTeacherRequest request, ClaimsPrincipal user,
        SddDbContext db, ObjectStore store, RunDispatcher dispatcher, IngestSettings settings, HttpContext http, CancellationToken ct)
    {
        var name = request.Name?.Trim() ?? "";
        if (name.Length is 0 or > 200) return Problems.BadRequest("Give the teacher a name of 1 to 200 characters.");
        if (WebhookEvents.Check(request.Webhook, request.WebhookEvents, WebhookEvents.ForRuns, settings, out var events) is { } badHook) return badHook;
        var owner = user.Owner();
        var named = request.Source;
        if (named is { Prefix: { Length: > 0 } p } && !p.EndsWith('/')) named = named with { Prefix = p + "/" };
        var (source, refused) = await SourceAccess.ResolveAsync(named, owner, db, store, ct);
        if (source is null) return refused!;
        var files = new List<(string, long)>();
        try
        {
            await foreach (var o in store.ListAsync(source.Bucket, source.Prefix, ct))
            {
                files.Add((o.Key[source.Prefix.Length..], o.Size));
                if (files.Count > StableDiffusionLayout.MaxFiles) break;
            }
        }
        catch (Minio.Exceptions.MinioException e) { return Problems.Unprocessable($"Bucket '{source.Bucket}' cannot be read: {e.Message}"); }
        var (plan, problem) = StableDiffusionLayout.Plan(files, settings.TeacherImportMaxBytes);
        if (plan is null) return Problems.Unprocessable($"s3://{source.Bucket}/{source.Prefix}: {problem}");
        if (await db.Teachers.AnyAsync(t => t.Owner == owner && t.Name == name, ct)) return Problems.Conflict($"A teacher named '{name}' exists already; choose another name.");
        if (await OwnerQuota.RunsAsync(http, db, owner, settings, ct) is { } quota) return quota;

        var now = DateTimeOffset.UtcNow;
        var teacher = new Teacher
        {
            Id = Guid.NewGuid(), Name = name, Kind = KindStableDiffusion, Status = TeacherStatus.Pending, AttributeNames = [], Owner = owner, CreatedAt = now,
            SettingsJson = new StableDiffusionImportSource(source.Bucket, source.Prefix, plan).ToJson(),
        };
        var run = new TrainingRun
        {
            Id = Guid.NewGuid(), Kind = RunKind.Teacher, State = RunState.Queued, TeacherId = teacher.Id,
            TotalSteps = 1, Owner = owner, CreatedAt = now, WebhookUrl = request.Webhook, WebhookEvents = events,
        };
        db.Teachers.Add(teacher);
        db.TrainingRuns.Add(run);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException e) when (e.IsUniqueViolation()) { return Problems.Conflict($"A teacher named '{name}' exists already; choose another name."); }
        await dispatcher.DispatchAsync(run, ct);
        return TypedResults.Accepted($"/v1/runs/{run.Id}", new TeacherAccepted(teacher.Id, run.Id));
    }

    public static async Task<Results<Accepted<TeacherAccepted>, ProblemHttpResult>> Train(TrainTeacherRequest request, ClaimsPrincipal user,
        SddDbContext db, ObjectStore store, RunDispatcher dispatcher, IngestSettings settings, HttpContext http, CancellationToken ct)
    {
        var defaults = new TeacherRunSettings(); // what the distill worker trains when a key is absent
        var steps = request.Steps ?? defaults.Training.Steps;
        var size = request.ImageSize ?? defaults.ImageSize;
        if (steps is < 1 or > 10_000_000) return Problems.Unprocessable("steps must be between 1 and 10000000.");
        if (size < 8 || size > settings.TeacherMaxImageSize || size % 8 != 0)
            return Problems.Unprocessable($"imageSize must be a multiple of 8 between 8 and {settings.TeacherMaxImageSize} (SDD_TEACHER_MAX_IMAGE_SIZE, what this deployment's distill workers train).");
        if (WebhookEvents.Check(request.Webhook, request.WebhookEvents, WebhookEvents.ForRuns, settings, out var events) is { } badHook) return badHook;
        var owner = user.Owner();
        var dataset = await db.Datasets.AsNoTracking().SingleOrDefaultAsync(d => d.Id == request.DatasetId && d.Owner == owner, ct);
        if (dataset is null || !await SourceAccess.StillReadableAsync(dataset, db, store, ct)) return Problems.NotFound($"No dataset {request.DatasetId}.");
        if (await OwnerQuota.RunsAsync(http, db, owner, settings, ct) is { } quota) return quota;

        var now = DateTimeOffset.UtcNow;
        var teacher = new Teacher
        {
            // Unique per owner, and nothing of the data set's name: a published teacher's name is seen by every key.
            Id = Guid.NewGuid(), Name = $"teacher-{Guid.NewGuid():N}"[..20],
            Kind = KindAttributeDdpm, DatasetId = dataset.Id, Resolution = size, Status = TeacherStatus.Training,
            AttributeNames = [.. dataset.AttributeNames], Owner = owner, CreatedAt = now,
            SettingsJson = JsonSerializer.Serialize(new { steps, imageSize = size }),
        };
        var run = new TrainingRun
        {
            Id = Guid.NewGuid(), Kind = RunKind.Teacher, State = RunState.Queued, TeacherId = teacher.Id,
            TotalSteps = steps, Owner = owner, CreatedAt = now, WebhookUrl = request.Webhook, WebhookEvents = events,
        };
        db.Teachers.Add(teacher);
        db.TrainingRuns.Add(run);
        await db.SaveChangesAsync(ct);
        await dispatcher.DispatchAsync(run, ct);
        return TypedResults.Accepted($"/v1/runs/{run.Id}", new TeacherAccepted(teacher.Id, run.Id));
    }
}
