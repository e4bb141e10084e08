using Sdd.Ingest.Webhooks;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Sdd.Ingest.Dispatch;
using Sdd.Ingest.Quotas;
using Sdd.Ingest.Sources;

namespace Sdd.Ingest.Apis;

/// <summary>Webhook: a URL told when the distillation run finishes (webhookEvents: run.completed, run.failed).</summary>
/// <summary>
/// On a Stable Diffusion teacher an attribute is a text prompt: <see cref="Prompt"/> (the edit, "a photo of a smiling
/// person") and optionally <see cref="SourcePrompt"/> (what the photos show, "a photo of a person"; delta guidance's
/// reference), distilled on the plain photos of <see cref="DatasetId"/> (its labels, if any, are not read).
/// </summary>
public sealed record CreateAttributeRequest(string Name, Guid TeacherId, string? TargetAttribute, Guid? DatasetId, JsonObject? Settings,
    string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null, string? Prompt = null, string? SourcePrompt = null);
public sealed record NewVersionRequest(JsonObject? Settings, string? Webhook = null, IReadOnlyList<string>? WebhookEvents = null);
public sealed record SetActiveRequest(int Version);
public sealed record AttributeAccepted(string Attribute, Guid EditorVersionId, int Version, Guid RunId);
public sealed record IndicatorPointDto(int T, double Entropy, double Norm, double Hqs);
public sealed record EditorVersionDto(Guid Id, int Version, string State, IReadOnlyList<int> SelectedTimesteps, JsonElement? Settings,
    JsonElement? Metrics, IReadOnlyList<IndicatorPointDto> Indicator, string? GridUrl, Guid? RunId, DateTimeOffset CreatedAt);
/// <summary><see cref="Published"/>: every key may use it; <see cref="Shared"/>: published by another owner, so read-only for the caller.</summary>
public sealed record AttributeDto(string Name, Guid? TeacherId, string? TargetAttribute, int? ActiveVersion, bool Published, bool Shared,
    IReadOnlyList<EditorVersionDto> Versions, string? Prompt = null, string? SourcePrompt = null);

public static partial class AttributesApi
{
    public const string GridFile = "grid.png";

    public static RouteGroupBuilder MapAttributesApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/attributes").WithTags("Attributes").RequireAuthorization();
        api.MapPost("/", Create).WithName("createAttribute").WithSummary("Create an attribute and distill its first editor version.");
        api.MapPost("/{name}/versions", NewVersion).WithName("createAttributeVersion").WithSummary("Distill a new editor version of an attribute.");
        api.MapGet("/", List).WithName("listAttributes").WithSummary("Your attributes and the published ones, by name.");
        api.MapGet("/{name}", Get).WithName("getAttribute").WithSummary("An attribute with its versions, metrics, selected timesteps and HQS curve.");
        api.MapPut("/{name}/active", SetActive).WithName("setActiveAttributeVersion").WithSummary("Pin or roll back the active editor version (a ready one).");
        api.MapPost("/{name}/publish", Publish).WithName("publishAttribute").RequireAuthorization(ApiKeyAuthentication.AdminPolicy)
            .WithSummary("Publish an owner's attribute (admin only): every key may then submit jobs with it, read-only.");
        api.MapDelete("/{name}/publish", Unpublish).WithName("unpublishAttribute").RequireAuthorization(ApiKeyAuthentication.AdminPolicy)
            .WithSummary("Make a published attribute private to its owner again (admin only).");
        return api;
    }

    /// <summary>The attribute a caller means by a name: its own, else the published one of that name.</summary>
    public static async Task<ImageAttribute?> FindVisibleAsync(SddDbContext db, string owner, string name, CancellationToken ct) =>
        await db.Attributes.AsNoTracking().SingleOrDefaultAsync(a => a.Name == name && a.Owner == owner, ct)
        ?? await db.Attributes.AsNoTracking().SingleOrDefaultAsync(a => a.Name == name && a.IsPublished, ct);

    /// <summary>The caller's own attribute, or the problem: 404 when it sees none of that name, 403 when the one it sees is shared with it (read-only).</summary>
    private static async Task<(ImageAttribute?, ProblemHttpResult?)> FindOwnAsync(SddDbContext db, string owner, string name, CancellationToken ct)
    {
        var attribute = await FindVisibleAsync(db, owner, name, ct);
        if (attribute is null) return (null, Problems.NotFound($"No attribute '{name}'."));
        if (attribute.Owner != owner)
            return (null, Problems.Status(403, "Read-only", $"'{name}' is shared with you read-only: submit jobs with it, or create your own attribute to train versions."));
        return (attribute, null);
    }

    /// <summary>Why no live distill worker can run a Stable Diffusion teacher at its size (null: one can), from their reports.</summary>
    private static async Task<ProblemHttpResult?> DistillWorkerProblemAsync(SddDbContext db, Teacher teacher, CancellationToken ct)
    {
        var since = DateTimeOffset.UtcNow - Sdd.ServiceDefaults.WorkerReporter.LiveWithin;
        var live = await db.Workers.AsNoTracking().Where(w => w.Service == WorkerReport.Distill && w.HeartbeatAt > since).ToListAsync(ct);
        if (live.Any(w => w.TeacherKinds.Contains(TeacherConfig.KindStableDiffusion) && w.StableDiffusionMaxImageSize >= teacher.Resolution)) return null;
        if (live.Count == 0)
            return Problems.Unprocessable($"No distill worker of this deployment has reported in the last {Sdd.ServiceDefaults.WorkerReporter.LiveWithin.TotalMinutes:0} minutes: " +
                "a Stable Diffusion run would wait for one. Start a distill worker (SDD_SD_MAX_IMAGE_SIZE 512 or more) and submit again.");
        var sd = live.Where(w => w.TeacherKinds.Contains(TeacherConfig.KindStableDiffusion)).ToList();
        var seen = string.Join("; ", live.GroupBy(w => (w.Device, w.StableDiffusionMaxImageSize))
            .Select(g => $"{g.Count()} on {g.Key.Device}, {(g.Key.StableDiffusionMaxImageSize > 0 ? $"Stable Diffusion up to {g.Key.StableDiffusionMaxImageSize} px" : "no Stable Diffusion")}"));
        return Problems.Unprocessable(sd.Count == 0
            ? $"None of this deployment's {live.Count} distill worker(s) runs Stable Diffusion teachers (their SDD_SD_MAX_IMAGE_SIZE is 0: {seen}); '{teacher.Name}' cannot be distilled here."
            : $"'{teacher.Name}' works at {teacher.Resolution} px; this deployment's distill workers run Stable Diffusion teachers up to {sd.Max(w => w.StableDiffusionMaxImageSize)} px (their SDD_SD_MAX_IMAGE_SIZE; {seen}).");
    }

    /// <summary>A prompt: trimmed, 1 to <see cref="ImageAttribute.MaxPromptLength"/> characters, no control characters.</summary>
    private static ProblemHttpResult? CheckPrompt(string? text, string field, bool required, out string? prompt)
    {
        prompt = string.IsNullOrWhiteSpace(text) ? null : text.Trim();
        if (prompt is null)
            return required ? Problems.Unprocessable($"A Stable Diffusion teacher edits by text: give {field} (for example \"a photo of a smiling person\").") : null;
        if (prompt.Length > ImageAttribute.MaxPromptLength) return Problems.Unprocessable($"{field} is {prompt.Length} characters; at most {ImageAttribute.MaxPromptLength}.");
        if (prompt.Any(char.IsControl)) return Problems.Unprocessable($"{field} holds control characters.");
        return null;
    }

    public static string StateName(EditorStatus status) => status switch
    {
        EditorStatus.Ready => "ready",
        EditorStatus.Failed or EditorStatus.Retired => "failed",
        _ => "training",
    };

    public static async Task<Results<Accepted<AttributeAccepted>, ProblemHttpResult>> Create(CreateAttributeRequest request, ClaimsPrincipal user,
        SddDbContext db, ObjectStore store, RunDispatcher dispatcher, IngestSettings settings, HttpContext http, CancellationToken ct)
    {
        var name = request.Name?.Trim() ?? "";
        if (!NamePattern().IsMatch(name))
            return Problems.BadRequest("An attribute name is 1 to 100 letters, digits, '-' or '_', starting with a letter or digit.");
        if (DistillSettings(request.Settings, out var settingsJson, out var steps) is { } badSettings) return badSettings;
        if (WebhookEvents.Check(request.Webhook, request.WebhookEvents, WebhookEvents.ForRuns, settings, out var events) is { } badHook) return badHook;
        var owner = user.Owner();
        var teacher = await db.Teachers.AsNoTracking().Visible(owner).SingleOrDefaultAsync(t => t.Id == request.TeacherId, ct);
        if (teacher is null) return Problems.NotFound($"No teacher {request.TeacherId}.");
        if (teacher.Status == TeacherStatus.Failed) return Problems.Conflict($"Teacher {teacher.Id} failed to train; distil from another teacher.");
        var target = request.TargetAttribute;
        string? prompt = null, sourcePrompt = null;
        if (teacher.Kind == TeacherConfig.KindStableDiffusion)
        {
            if (teacher.Status != TeacherStatus.Ready)
                return Problems.Conflict($"Teacher '{teacher.Name}' is still being imported (its run checks every weight); create the attribute once it is ready.");
            if (CheckPrompt(request.Prompt, "prompt", required: true, out prompt) is { } badPrompt) return badPrompt;
            if (CheckPrompt(request.SourcePrompt, "sourcePrompt", required: false, out sourcePrompt) is { } badSource) return badSource;
            if (request.DatasetId is null)
                return Problems.Unprocessable("A prompt attribute is distilled on your photos: give datasetId (a data set of plain photos; its labels, if any, are not read).");
            // Refused now rather than queued for a worker that cannot take it: what the live distill workers report.
            if (await DistillWorkerProblemAsync(db, teacher, ct) is { } noWorker) return noWorker;
            target = string.IsNullOrWhiteSpace(target) ? name : target.Trim();
            if (!NamePattern().IsMatch(target)) return Problems.BadRequest("targetAttribute is 1 to 100 letters, digits, '-' or '_'.");
        }
        else
        {
            if (request.Prompt is not null || request.SourcePrompt is not null)
                return Problems.Unprocessable($"prompt and sourcePrompt go with a Stable Diffusion teacher; '{teacher.Name}' is a {teacher.Kind} teacher of the attributes {string.Join(", ", teacher.AttributeNames)}.");
            if (!teacher.AttributeNames.Contains(target ?? ""))
                return Problems.Unprocessable($"'{target}' is not an attribute of teacher '{teacher.Name}' (it has: {string.Join(", ", teacher.AttributeNames)}).");
        }
        if (request.DatasetId is { } datasetId)
        {
            var dataset = await db.Datasets.AsNoTracking().SingleOrDefaultAsync(d => d.Id == datasetId && d.Owner == owner, ct);
            if (dataset is null || !await SourceAccess.StillReadableAsync(dataset, db, store, ct)) return Problems.NotFound($"No dataset {datasetId}.");
        }
        if (await db.Attributes.AnyAsync(a => a.Name == name && a.Owner == owner, ct)) return NameTaken(name);
        if (await OwnerQuota.RunsAsync(http, db, owner, settings, ct) is { } quota) return quota;

        var now = DateTimeOffset.UtcNow;
        var attribute = new ImageAttribute
        {
            Id = Guid.NewGuid(), Name = name, Owner = owner, TeacherId = teacher.Id, TargetAttribute = target,
            DatasetId = request.DatasetId, CreatedAt = now, Prompt = prompt, SourcePrompt = sourcePrompt,
        };
        var (version, run) = NewEditorVersion(attribute, 1, settingsJson, steps, owner, now);
        (run.WebhookUrl, run.WebhookEvents) = (request.Webhook, events);
        db.AddRange(attribute, version, run);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException e) when (e.IsUniqueViolation()) { return NameTaken(name); }
        await dispatcher.DispatchAsync(run, ct);
        return TypedResults.Accepted($"/v1/attributes/{name}", new AttributeAccepted(name, version.Id, 1, run.Id));
    }

    public static async Task<Results<Accepted<AttributeAccepted>, ProblemHttpResult>> NewVersion(string name, NewVersionRequest? request, ClaimsPrincipal user,
        SddDbContext db, RunDispatcher dispatcher, IngestSettings settings, HttpContext http, CancellationToken ct)
    {
        if (DistillSettings(request?.Settings, out var settingsJson, out var steps) is { } badSettings) return badSettings;
        if (WebhookEvents.Check(request?.Webhook, request?.WebhookEvents, WebhookEvents.ForRuns, settings, out var events) is { } badHook) return badHook;
        var owner = user.Owner();
        var (attribute, problem) = await FindOwnAsync(db, owner, name, ct);
        if (attribute is null) return problem!;
        if (await OwnerQuota.RunsAsync(http, db, owner, settings, ct) is { } quota) return quota;
        for (int attempt = 0; ; attempt++)
        {
            var next = 1 + (await db.EditorVersions.Where(v => v.AttributeId == attribute.Id).MaxAsync(v => (int?)v.Version, ct) ?? 0);
            var (version, run) = NewEditorVersion(attribute, next, settingsJson, steps, owner, DateTimeOffset.UtcNow);
            (run.WebhookUrl, run.WebhookEvents) = (request?.Webhook, events);
            db.AddRange(version, run);
            try
            {
                await db.SaveChangesAsync(ct);
                await dispatcher.DispatchAsync(run, ct);
                return TypedResults.Accepted($"/v1/attributes/{name}", new AttributeAccepted(name, version.Id, next, run.Id));
            }
            catch (DbUpdateException e) when (e.IsUniqueViolation() && attempt < 3)
            {
                db.ChangeTracker.Clear(); // another request took this version number
            }
        }
    }

    /// <summary>One's own attributes and the published ones, by name; one's own hides a published namesake.</summary>
    public static async Task<Results<Ok<Page<AttributeDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct, int? limit = null, string? cursor = null)
    {
        if (Paging.CheckLimit(limit, out var take) is { } bad) return bad;
        var owner = user.Owner();
        var query = db.Attributes.AsNoTracking().Where(a => a.Owner == owner || a.IsPublished);
        if (!string.IsNullOrEmpty(cursor))
        {
            if (!Paging.TryNameCursor(cursor, out var after, out _)) return Paging.BadCursor();
            query = query.Where(a => string.Compare(a.Name, after) > 0);
        }
        // A name has at most two rows (one's own, one published): 2·limit + 2 rows hold more than limit names, the last
        // of which may be cut in half, so it is left for the next page.
        var fetch = 2 * take + 2;
        var rows = await query.OrderBy(a => a.Name).ThenBy(a => a.Id).Take(fetch).ToListAsync(ct);
        var groups = rows.GroupBy(a => a.Name).ToList();
        if (rows.Count == fetch) groups.RemoveAt(groups.Count - 1);
        var chosen = groups.Select(g => g.FirstOrDefault(a => a.Owner == owner) ?? g.First()).ToList();
        var more = rows.Count == fetch || chosen.Count > take;
        if (chosen.Count > take) chosen.RemoveRange(take, chosen.Count - take);
        var result = new List<AttributeDto>(chosen.Count);
        foreach (var a in chosen) result.Add(await Describe(a, owner, db, store, ct, user.IsAdmin()));
        return TypedResults.Ok(new Page<AttributeDto>(result, more && chosen.Count > 0 ? Paging.NameCursor(chosen[^1].Name, Guid.Empty) : null));
    }

    public static async Task<Results<Ok<AttributeDto>, ProblemHttpResult>> Get(string name, ClaimsPrincipal user, SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var a = await FindVisibleAsync(db, owner, name, ct);
        return a is null ? Problems.NotFound($"No attribute '{name}'.") : TypedResults.Ok(await Describe(a, owner, db, store, ct, user.IsAdmin()));
    }

    public static async Task<Results<Ok<AttributeDto>, ProblemHttpResult>> SetActive(string name, SetActiveRequest request, ClaimsPrincipal user,
        SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var (a, problem) = await FindOwnAsync(db, owner, name, ct);
        if (a is null) return problem!;
        var target = await db.EditorVersions.AsNoTracking().SingleOrDefaultAsync(v => v.AttributeId == a.Id && v.Version == request.Version, ct);
        if (target is null) return Problems.NotFound($"Attribute '{name}' has no version {request.Version}.");
        if (target.Status != EditorStatus.Ready)
            return Problems.Conflict($"Version {request.Version} of '{name}' is {StateName(target.Status)}; only a ready version can be active.");

        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            // Clear first: at most one active version per attribute is a unique index.
            await db.EditorVersions.Where(v => v.AttributeId == a.Id && v.IsActive && v.Id != target.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(v => v.IsActive, false), ct);
            await db.EditorVersions.Where(v => v.Id == target.Id).ExecuteUpdateAsync(s => s.SetProperty(v => v.IsActive, true), ct);
            await tx.CommitAsync(ct);
        }
        return TypedResults.Ok(await Describe(a, owner, db, store, ct, user.IsAdmin()));
    }

    /// <summary>Publishes <paramref name="owner"/>'s attribute (default: the admin's own); a second published attribute of one name is a 409.</summary>
    public static async Task<Results<Ok<AttributeDto>, ProblemHttpResult>> Publish(string name, ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct, string? owner = null) => await SetPublished(name, owner ?? user.Owner(), true, db, store, ct);

    public static async Task<Results<Ok<AttributeDto>, ProblemHttpResult>> Unpublish(string name, ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct, string? owner = null) => await SetPublished(name, owner ?? user.Owner(), false, db, store, ct);

    private static async Task<Results<Ok<AttributeDto>, ProblemHttpResult>> SetPublished(string name, string owner, bool published, SddDbContext db,
        ObjectStore store, CancellationToken ct)
    {
        var a = await db.Attributes.SingleOrDefaultAsync(a => a.Name == name && a.Owner == owner, ct);
        if (a is null) return Problems.NotFound($"Owner '{owner}' has no attribute '{name}'.");
        if (published && !a.IsPublished && await db.Attributes.AnyAsync(x => x.Name == name && x.IsPublished, ct))
            return Problems.Conflict($"Another owner's '{name}' is published already; unpublish it first (DELETE /v1/attributes/{name}/publish?owner=...).");
        a.IsPublished = published;
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            return Problems.Conflict($"Another owner's '{name}' was published at the same time.");
        }
        return TypedResults.Ok(await Describe(a, owner, db, store, ct, admin: true));
    }

    private static (EditorVersion, TrainingRun) NewEditorVersion(ImageAttribute attribute, int number, string settingsJson, int steps, string owner, DateTimeOffset now)
    {
        var version = new EditorVersion
        {
            Id = Guid.NewGuid(), AttributeId = attribute.Id, TeacherId = attribute.TeacherId ?? Guid.Empty, Version = number,
            SettingsJson = settingsJson, Status = EditorStatus.Pending, CreatedAt = now,
        };
        var run = new TrainingRun
        {
            Id = Guid.NewGuid(), Kind = RunKind.Distill, State = RunState.Queued, TeacherId = attribute.TeacherId,
            EditorVersionId = version.Id, TotalSteps = steps, Owner = owner, CreatedAt = now,
        };
        return (version, run);
    }

    /// <summary>
    /// An attribute with its versions as <paramref name="caller"/> sees it (<see cref="AttributeDto.Shared"/> when it is not
    /// theirs). Publishing publishes the model, not the owner's data: the evaluation grid shows held-out images of the
    /// owner's data set, so only the owner (and an admin, <paramref name="admin"/>) gets its URL.
    /// </summary>
    public static async Task<AttributeDto> Describe(ImageAttribute a, string caller, SddDbContext db, ObjectStore store, CancellationToken ct, bool admin = false)
    {
        bool seesData = a.Owner == caller || admin;
        var versions = await db.EditorVersions.AsNoTracking().Include(v => v.IndicatorPoints)
            .Where(v => v.AttributeId == a.Id).OrderBy(v => v.Version).ToListAsync(ct);
        var ids = versions.Select(v => v.Id).ToList();
        var runs = await db.TrainingRuns.AsNoTracking().Where(r => r.EditorVersionId != null && ids.Contains(r.EditorVersionId.Value))
            .OrderBy(r => r.CreatedAt).Select(r => new { r.EditorVersionId, r.Id }).ToListAsync(ct);
        var dtos = new List<EditorVersionDto>();
        foreach (var v in versions)
        {
            dtos.Add(new EditorVersionDto(v.Id, v.Version, StateName(v.Status), v.SelectedTimesteps, Json(v.SettingsJson), Json(v.MetricsJson),
                v.IndicatorPoints.OrderBy(p => p.T).Select(p => new IndicatorPointDto(p.T, p.Entropy, p.Norm, p.Hqs)).ToList(),
                seesData ? await GridUrl(store, v, ct) : null, runs.LastOrDefault(r => r.EditorVersionId == v.Id)?.Id, v.CreatedAt));
        }
        return new AttributeDto(a.Name, a.TeacherId, a.TargetAttribute, versions.FirstOrDefault(v => v.IsActive)?.Version, a.IsPublished,
            a.Owner != caller, dtos, a.Prompt, a.SourcePrompt);
    }

    /// <summary>A presigned URL of the version's before/after grid (<c>&lt;WeightsKey&gt;/grid.png</c>), when the worker stored one.</summary>
    private static async Task<string?> GridUrl(ObjectStore store, EditorVersion v, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(v.WeightsKey)) return null;
        var key = v.WeightsKey.TrimEnd('/') + "/" + GridFile;
        try
        {
            return await store.StatAsync(store.ModelsBucket, key, ct) is null ? null
                : (await store.PresignGetAsync(store.ModelsBucket, key, TimeSpan.FromHours(1))).ToString();
        }
        catch (Exception e) when (e is ArgumentException or Minio.Exceptions.MinioException)
        {
            return null;
        }
    }

    private static JsonElement? Json(string? json)
    {
        if (string.IsNullOrWhiteSpace(json)) return null;
        try { return JsonDocument.Parse(json).RootElement.Clone(); }
        catch (JsonException) { return null; }
    }

    private static ProblemHttpResult NameTaken(string name) =>
        Problems.Conflict($"An attribute named '{name}' exists already; add a version with POST /v1/attributes/{name}/versions, or choose another name.");

    /// <summary>
    /// The request's settings as the run will use them: <see cref="Sdd.Formats.Runs.DistillSettings"/> (the one set of
    /// defaults, the worker's own parser) with every key filled in, stored as the version's settings.
    /// </summary>
    private static ProblemHttpResult? DistillSettings(JsonObject? given, out string json, out int steps)
    {
        json = "{}";
        steps = 0;
        try
        {
            var s = Sdd.Formats.Runs.DistillSettings.FromApi(given);
            (json, steps) = (s.ToApiJson(), s.Steps);
            return null;
        }
        catch (FormatException e) { return Problems.Unprocessable(e.Message); }
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")]
    private static partial Regex NamePattern();
}
