using System.IO.Compression;
using System.Runtime.ExceptionServices;
using System.Text.Json;
using Minio.Exceptions;
using Sdd.Ingest.Dispatch;
using Sdd.Ingest.Jobs;
using Sdd.Ingest.Quotas;
using Sdd.Ingest.Sources;
using Sdd.Ingest.Webhooks;

namespace Sdd.Ingest.Apis;

/// <summary>
/// A job over objects the caller may read: one of its uploads, or a bucket prefix granted to it. Format: jpeg, png or
/// webp for every output (absent: each input's own); webhook: a URL told when the job finishes (webhookEvents: which);
/// outOfDomain: what happens to an image the editor's domain gate refuses, "skip" (the default: the item is skipped with
/// its score) or "edit" (edited anyway, its score recorded).
/// </summary>
public sealed record SubmitJobFromBucket(string Attribute, SourceRequest Source, string? Format = null, string? Webhook = null,
    IReadOnlyList<string>? WebhookEvents = null, string? OutOfDomain = null);
/// <summary>Items: how many images the job holds.</summary>
public sealed record JobAccepted(Guid JobId, int Items);
/// <summary>Skipped: items the editor's domain gate refused (outside what it was trained on), left unedited.</summary>
public sealed record JobCounts(int Pending, int Done, int Failed, int Cancelled, int Skipped);
/// <summary>
/// State: queued, running, completed (at least one item done or skipped), failed (finished and nothing done or skipped) or cancelled.
/// CompletedWithErrors: completed with some failed items. EtaSeconds: pending items at the rate seen so far.
/// </summary>
public sealed record JobStatusDto(Guid Id, string Attribute, int? EditorVersion, string State, int Total, JobCounts Counts,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, double? ImagesPerSecond, bool CompletedWithErrors,
    double? EtaSeconds, string? OutputFormat, string? Webhook);
/// <summary>
/// DomainScore: the editor's domain-gate score for the image (absent: the editor has no gate or the item was not
/// scored); OutsideDomain: whether the score was above the gate's threshold. A skipped item's Error says both.
/// </summary>
public sealed record JobItemDto(Guid Id, string Name, string State, string? Error, string? OutputKey, double? DomainScore, bool OutsideDomain);
/// <summary><see cref="Url"/>: presigned GET for the public S3 endpoint (1 h); <see cref="Download"/>: the same bytes streamed by this API.</summary>
public sealed record JobResult(Guid Id, string Name, string Url, string Download);

public static class JobsApi
{
    /// <summary>Longest name of an uploaded file (what the results zip calls its output).</summary>
    public const int MaxFileNameLength = 255;

    public static RouteGroupBuilder MapJobsApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/jobs").WithTags("Jobs").RequireAuthorization();
        api.MapPost("/", Submit).WithName("submitJob")
            .WithSummary("Submit an edit job: multipart (attribute + files) or JSON (attribute + an upload or a granted bucket prefix).")
            .DisableAntiforgery()
            .Accepts<SubmitJobFromBucket>("application/json", "multipart/form-data"); // the form's own schema: OpenApiDescription
        api.MapGet("/", List).WithName("listJobs").WithSummary("Your jobs, newest first, filtered by state, attribute and creation time.");
        api.MapGet("/{id:guid}", Get).WithName("getJob").WithSummary("A job's state, counts, rate and ETA.");
        api.MapGet("/{id:guid}/items", Items).WithName("listJobItems").WithSummary("A job's items by name, optionally of one state, with their errors.");
        api.MapGet("/{id:guid}/results", Results).WithName("listJobResults").WithSummary("Download links of the done items, by name.");
        api.MapGet("/{id:guid}/results.zip", ResultsZip).WithName("downloadJobResults")
            .WithSummary("Every done output in one zip, named after its input (folders kept) with the output's extension.");
        api.MapGet("/{id:guid}/items/{itemId:guid}/output", Output).WithName("downloadJobItemOutput")
            .WithSummary("One edited image, streamed through the API (no S3 access needed).");
        api.MapPost("/{id:guid}/cancel", Cancel).WithName("cancelJob").WithSummary("Cancel: pending items become cancelled and are skipped.");
        api.MapGet("/{id:guid}/webhooks", Webhooks).WithName("listJobWebhookDeliveries").WithSummary("The job's webhook deliveries: event, attempts, last answer.");
        return api;
    }

    public static string ItemStateName(ItemState s) => s.ToString().ToLowerInvariant();

    public static async Task<Results<Accepted<JobAccepted>, ProblemHttpResult>> Submit(HttpRequest http, ClaimsPrincipal user, SddDbContext db,
        ObjectStore store, EditDispatcher dispatcher, IngestSettings settings, ILogger<EditJob> log, CancellationToken ct)
    {
        // The webhook and format are read before any file is stored, so a bad one leaves nothing behind.
        if (http.ContentLength > settings.MaxUploadBytes)
            return Problems.TooLarge($"The request is {http.ContentLength} bytes; at most {settings.MaxUploadBytes} are accepted (SDD_MAX_UPLOAD_BYTES).");
        var owner = user.Owner();
        if (await OwnerQuota.JobsAsync(http.HttpContext, db, owner, settings, ct) is { } quota) return quota;
        var job = new EditJob { Id = Guid.NewGuid(), Owner = owner, State = JobState.Pending, CreatedAt = DateTimeOffset.UtcNow };
        List<JobItem> items;
        List<CheckedUpload>? uploads = null; // files of a multipart job: checked, not yet stored
        long? maxPixels = null; // known for uploads: their batches are sized by pixels
        if (http.HasFormContentType)
        {
            var form = await http.ReadFormAsync(ct);
            if (await ResolveEditor(db, owner, form["attribute"].ToString(), job, ct) is { } noEditor) return noEditor;
            if (Options(job, NullIfEmpty(form["format"]), NullIfEmpty(form["webhook"]),
                    form["webhookEvents"].SelectMany(v => (v ?? "").Split(',')).ToList(), NullIfEmpty(form["outOfDomain"]), settings) is { } badOptions) return badOptions;
            if (form.Files.Count == 0) return Problems.BadRequest("Attach one or more image files (form field 'files').");
            if (form.Files.Count > settings.MaxItemsPerJob)
                return Problems.Unprocessable($"{form.Files.Count} files; a job holds at most {settings.MaxItemsPerJob} (SDD_MAX_ITEMS_PER_JOB).");
            var (checkedFiles, pixels, problem) = await CheckUploadsAsync(form.Files, owner, job.Id, settings);
            if (problem is not null) return problem;
            uploads = checkedFiles!;
            items = uploads.Select(u => u.Item).ToList();
            maxPixels = pixels;
        }
        else if (http.HasJsonContentType())
        {
            SubmitJobFromBucket? request;
            try { request = await http.ReadFromJsonAsync<SubmitJobFromBucket>(ct); }
            catch (JsonException e) { return Problems.BadRequest($"The body is not valid JSON: {e.Message}"); }
            if (request?.Source is null)
                return Problems.BadRequest("Give { \"attribute\", \"source\": { \"upload\": \"<uploadId>\" } } or { \"attribute\", \"source\": { \"bucket\", \"prefix\" } }.");
            if (await ResolveEditor(db, owner, request.Attribute, job, ct) is { } noEditor) return noEditor;
            if (Options(job, request.Format, request.Webhook, request.WebhookEvents, request.OutOfDomain, settings) is { } badOptions) return badOptions;
            var (listed, problem) = await ListSourceAsync(request.Source, owner, db, store, settings.MaxItemsPerJob, ct);
            if (problem is not null) return problem;
            items = listed!;
        }
        else
        {
            return Problems.Unsupported("Send multipart/form-data (attribute + files) or application/json (attribute + source).");
        }

        job.ItemCount = items.Count;
        // Uploaded items are claimed by this request from the start: their objects are stored after the rows exist, and
        // the sweeper must not send an item before its input is there (it re-sends a claimed item only once it is stale).
        var claim = EditDispatcher.ClaimTime();
        foreach (var item in items)
        {
            item.JobId = job.Id;
            if (uploads is not null) item.DispatchedAt = claim;
        }
        // The job and all its items in one transaction: the job row by EF, the items by one COPY.
        await using (var transaction = await db.Database.BeginTransactionAsync(ct))
        {
            db.EditJobs.Add(job);
            await db.SaveChangesAsync(ct);
            await JobRows.CopyItemsAsync(db, items, ct);
            await transaction.CommitAsync(ct);
        }
        var batchSize = settings.BatchSizeFor(maxPixels);
        if (uploads is not null)
        {
            // The request's bytes are all here, so the client's going away does not stop the storing either.
            if (await StoreAndDispatchAsync(job, uploads, claim, batchSize, db, store, dispatcher, settings, log) is { } storeFailure)
                ExceptionDispatchInfo.Throw(storeFailure);
        }
        else
        {
            // Accepted now: a send that fails here is the sweeper's to retry, so the client's going away must not stop it.
            await dispatcher.DispatchAsync(job.Id, items.Select(i => i.Id).ToList(), DateTimeOffset.MinValue, CancellationToken.None, batchSize);
        }
        return TypedResults.Accepted($"/v1/jobs/{job.Id}", new JobAccepted(job.Id, items.Count));
    }

    private static string? NullIfEmpty(Microsoft.Extensions.Primitives.StringValues v) => v.ToString() is { Length: > 0 } s ? s : null;

    /// <summary>The output format, webhook and out-of-domain policy a job asks for, checked; a 422 problem when one is bad.</summary>
    private static ProblemHttpResult? Options(EditJob job, string? format, string? webhook, IReadOnlyList<string>? events, string? outOfDomain,
        IngestSettings settings)
    {
        if (outOfDomain is not null)
        {
            if (outOfDomain is not ("skip" or "edit"))
                return Problems.Unprocessable("outOfDomain must be 'skip' (the default: an image outside the editor's domain is skipped with its score) or 'edit' (edited anyway).");
            job.OutOfDomain = outOfDomain == "edit" ? "edit" : null;
        }
        if (format is not null)
        {
            if (!OutputFormat.TryParse(format, out var parsed))
                return Problems.Unprocessable($"format must be one of {string.Join(", ", OutputFormat.All.Select(f => f.Name))} (absent: each input's own format).");
            job.OutputFormat = parsed!.Name;
        }
        if (WebhookEvents.Check(webhook, events, WebhookEvents.ForJobs, settings, out var filter) is { } bad) return bad;
        job.WebhookUrl = webhook;
        job.WebhookEvents = filter;
        return null;
    }

    public static async Task<Results<Ok<Page<JobStatusDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, CancellationToken ct,
        string? state = null, string? attribute = null, DateTimeOffset? createdAfter = null, DateTimeOffset? createdBefore = null,
        int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        var query = db.EditJobs.AsNoTracking().Include(j => j.Attribute).Include(j => j.EditorVersion).Where(j => j.Owner == owner);
        if (!string.IsNullOrEmpty(state))
        {
            if (JobStateFromName(state) is not { } s)
                return Problems.BadRequest($"state must be one of {string.Join(", ", Enum.GetValues<JobState>().Select(JobStateName))}.");
            query = query.Where(j => j.State == s);
        }
        if (!string.IsNullOrEmpty(attribute)) query = query.Where(j => j.Attribute!.Name == attribute);
        if (createdAfter is { } after) query = query.Where(j => j.CreatedAt >= after);
        if (createdBefore is { } before) query = query.Where(j => j.CreatedAt < before);
        var (rows, next, problem) = await Paging.ByCreationAsync(query, limit, cursor, newestFirst: true, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<JobStatusDto>(await DescribeAsync(db, rows, ct), next));
    }

    public static async Task<Results<Ok<Page<WebhookDeliveryDto>>, ProblemHttpResult>> Webhooks(Guid id, ClaimsPrincipal user, SddDbContext db,
        CancellationToken ct, int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        if (!await db.EditJobs.AnyAsync(j => j.Id == id && j.Owner == owner, ct)) return Problems.NotFound($"No job {id}.");
        var (rows, next, problem) = await Paging.ByCreationAsync(db.WebhookDeliveries.AsNoTracking().Where(d => d.SubjectId == id && d.Owner == owner),
            limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<WebhookDeliveryDto>(rows.Select(WebhookDeliveryDto.From).ToList(), next));
    }

    public static string JobStateName(JobState s) => s == JobState.Pending ? "queued" : s.ToString().ToLowerInvariant();

    public static JobState? JobStateFromName(string name) =>
        Enum.GetValues<JobState>().Cast<JobState?>().FirstOrDefault(s => JobStateName(s!.Value) == name.ToLowerInvariant());

    public static async Task<Results<Ok<JobStatusDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct)
    {
        var status = await StatusAsync(db, id, user.Owner(), ct);
        return status is null ? Problems.NotFound($"No job {id}.") : TypedResults.Ok(status);
    }

    public static async Task<Results<Ok<Page<JobItemDto>>, ProblemHttpResult>> Items(Guid id, ClaimsPrincipal user, SddDbContext db, CancellationToken ct,
        string? state = null, int? limit = null, string? cursor = null)
    {
        if (Paging.CheckLimit(limit, out var take) is { } badLimit) return badLimit;
        ItemState? filter = null;
        if (!string.IsNullOrEmpty(state))
        {
            if (!Enum.TryParse<ItemState>(state, ignoreCase: true, out var parsed) || int.TryParse(state, out _))
                return Problems.BadRequest($"state must be one of {string.Join(", ", Enum.GetNames<ItemState>().Select(n => n.ToLowerInvariant()))}.");
            filter = parsed;
        }
        var owner = user.Owner();
        if (!await db.EditJobs.AnyAsync(j => j.Id == id && j.Owner == owner, ct)) return Problems.NotFound($"No job {id}.");
        var query = db.JobItems.AsNoTracking().Where(i => i.JobId == id);
        if (filter is { } f) query = query.Where(i => i.State == f);
        var (rows, next, problem) = await ByNameAsync(query, take, cursor, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<JobItemDto>(
            rows.Select(i => new JobItemDto(i.Id, i.Name ?? i.SourceKey, ItemStateName(i.State), i.Error, i.OutputKey, i.DomainScore, i.OutsideDomain)).ToList(), next));
    }

    /// <summary>Items by name then id, after the cursor's item; one more row than asked tells whether a page follows.</summary>
    private static async Task<(List<JobItem> Rows, string? Next, ProblemHttpResult? Problem)> ByNameAsync(IQueryable<JobItem> query, int take,
        string? cursor, CancellationToken ct)
    {
        if (!string.IsNullOrEmpty(cursor))
        {
            if (!Paging.TryNameCursor(cursor, out var name, out var after)) return ([], null, Paging.BadCursor());
            query = query.Where(i => string.Compare(i.Name ?? i.SourceKey, name) > 0 || ((i.Name ?? i.SourceKey) == name && i.Id.CompareTo(after) > 0));
        }
        var rows = await query.OrderBy(i => i.Name ?? i.SourceKey).ThenBy(i => i.Id).Take(take + 1).ToListAsync(ct);
        if (rows.Count <= take) return (rows, null, null);
        rows.RemoveAt(take);
        return (rows, Paging.NameCursor(rows[^1].Name ?? rows[^1].SourceKey, rows[^1].Id), null);
    }

    public static async Task<Results<Ok<Page<JobResult>>, ProblemHttpResult>> Results(Guid id, ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct, int? limit = null, string? cursor = null)
    {
        if (Paging.CheckLimit(limit, out var take) is { } badLimit) return badLimit;
        var owner = user.Owner();
        if (!await db.EditJobs.AnyAsync(j => j.Id == id && j.Owner == owner, ct)) return Problems.NotFound($"No job {id}.");
        var (rows, next, problem) = await ByNameAsync(db.JobItems.AsNoTracking().Where(i => i.JobId == id && i.State == ItemState.Done && i.OutputKey != null),
            take, cursor, ct);
        if (problem is not null) return problem;
        var results = new List<JobResult>(rows.Count);
        foreach (var i in rows)
            results.Add(new JobResult(i.Id, i.Name ?? i.SourceKey, (await store.PresignGetAsync(store.JobsBucket, i.OutputKey!, TimeSpan.FromHours(1))).ToString(),
                $"/v1/jobs/{id}/items/{i.Id}/output"));
        return TypedResults.Ok(new Page<JobResult>(results, next));
    }

    public static async Task<Results<PushStreamHttpResult, ProblemHttpResult>> Output(Guid id, Guid itemId, ClaimsPrincipal user, SddDbContext db,
        ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var item = await db.JobItems.AsNoTracking()
            .Where(i => i.Id == itemId && i.JobId == id && db.EditJobs.Any(j => j.Id == id && j.Owner == owner))
            .Select(i => new { i.State, i.OutputKey, i.Name }).SingleOrDefaultAsync(ct);
        if (item is null) return Problems.NotFound($"No item {itemId} in job {id}.");
        if (item.State != ItemState.Done || item.OutputKey is null) return Problems.NotFound($"Item {itemId} has no output (it is {ItemStateName(item.State)}).");
        var stat = await store.StatAsync(store.JobsBucket, item.OutputKey, ct);
        if (stat is null) return Problems.NotFound($"The output of item {itemId} is gone from storage.");
        var file = Path.GetFileNameWithoutExtension(item.Name ?? itemId.ToString()) + Path.GetExtension(item.OutputKey);
        return TypedResults.Stream(body => store.GetAsync(store.JobsBucket, item.OutputKey, body, ct), stat.ContentType ?? "application/octet-stream", file);
    }

    public static async Task<Results<PushStreamHttpResult, ProblemHttpResult>> ResultsZip(Guid id, HttpRequest http, ClaimsPrincipal user, SddDbContext db,
        ObjectStore store, ILogger<EditJob> log, CancellationToken ct)
    {
        var owner = user.Owner();
        if (!await db.EditJobs.AnyAsync(j => j.Id == id && j.Owner == owner, ct)) return Problems.NotFound($"No job {id}.");
        return await ZipOfOutputsAsync(id, http.HttpContext, db, store, log, ct);
    }

    /// <summary>The zip of a job's done outputs, streamed; the caller has checked that the job is the requester's to read.</summary>
    public static async Task<PushStreamHttpResult> ZipOfOutputsAsync(Guid id, HttpContext http, SddDbContext db, ObjectStore store, ILogger log,
        CancellationToken ct)
    {
        var done = await DoneOutputs(db, id, ct);
        // ZipArchive still writes its records synchronously; the entries' bytes are copied asynchronously.
        http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpBodyControlFeature>()!.AllowSynchronousIO = true;
        return TypedResults.Stream(async body =>
        {
            // Entries are written one after another straight to the response; nothing is held in memory or on disk.
            await using var zip = await ZipArchive.CreateAsync(body, ZipArchiveMode.Create, leaveOpen: true, entryNameEncoding: null, ct);
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (itemId, name, key) in done)
            {
                var entryName = ZipEntryName(name, Path.GetExtension(key), itemId, names);
                var entry = zip.CreateEntry(entryName, CompressionLevel.NoCompression); // PNG, JPEG and WebP are compressed already
                await using var target = await entry.OpenAsync(ct);
                try { await store.GetAsync(store.JobsBucket, key, target, ct); }
                catch (FileNotFoundException) { log.LogWarning("Output {Key} of job {JobId} is missing from the jobs bucket", key, id); }
            }
        }, "application/zip", $"{id}.zip");
    }

    public static async Task<Results<Accepted<JobStatusDto>, ProblemHttpResult>> Cancel(Guid id, ClaimsPrincipal user, SddDbContext db,
        WebhookOutbox outbox, CancellationToken ct)
    {
        var owner = user.Owner();
        if (!await db.EditJobs.AnyAsync(j => j.Id == id && j.Owner == owner, ct)) return Problems.NotFound($"No job {id}.");
        var now = DateTimeOffset.UtcNow;
        bool cancelled;
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            // The job row first, then its items: the order every writer of item states keeps (JobRows), so no deadlock.
            await db.Database.ExecuteSqlRawAsync(JobRows.LockJob, [new Npgsql.NpgsqlParameter("job", id)], ct);
            await db.JobItems.Where(i => i.JobId == id && i.State == ItemState.Pending)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, ItemState.Cancelled).SetProperty(i => i.UpdatedAt, now), ct);
            cancelled = await db.EditJobs.Where(j => j.Id == id && (j.State == JobState.Pending || j.State == JobState.Running))
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobState.Cancelled).SetProperty(j => j.FinishedAt, now), ct) == 1;
            await tx.CommitAsync(ct);
        }
        if (cancelled) await outbox.JobFinishedAsync(id, CancellationToken.None); // the backstop retries it if this fails
        return TypedResults.Accepted($"/v1/jobs/{id}", (await StatusAsync(db, id, owner, ct))!);
    }

    /// <summary>The job's status with counts from its item rows (the source of truth), or null when the owner has no such job.</summary>
    public static async Task<JobStatusDto?> StatusAsync(SddDbContext db, Guid id, string owner, CancellationToken ct)
    {
        var job = await db.EditJobs.AsNoTracking().Include(j => j.Attribute).Include(j => j.EditorVersion)
            .SingleOrDefaultAsync(j => j.Id == id && j.Owner == owner, ct);
        return job is null ? null : (await DescribeAsync(db, [job], ct))[0];
    }

    /// <summary>
    /// Statuses of jobs (loaded with their attribute and editor version) from one grouped count of their items. The job
    /// row's state is exact: the statement that records an item recounts and completes the job in the same transaction.
    /// </summary>
    public static async Task<List<JobStatusDto>> DescribeAsync(SddDbContext db, IReadOnlyList<EditJob> jobs, CancellationToken ct)
    {
        var ids = jobs.Select(j => j.Id).ToList();
        var counted = await db.JobItems.AsNoTracking().Where(i => ids.Contains(i.JobId))
            .GroupBy(i => new { i.JobId, i.State })
            .Select(g => new { g.Key.JobId, g.Key.State, Count = g.Count(), First = g.Min(i => i.UpdatedAt), Last = g.Max(i => i.UpdatedAt) })
            .ToListAsync(ct);
        var now = DateTimeOffset.UtcNow;
        return jobs.Select(job =>
        {
            var byState = counted.Where(c => c.JobId == job.Id).ToList();
            int Count(ItemState s) => byState.FirstOrDefault(x => x.State == s)?.Count ?? 0;
            var counts = new JobCounts(Count(ItemState.Pending), Count(ItemState.Done), Count(ItemState.Failed), Count(ItemState.Cancelled),
                Count(ItemState.Skipped));
            var processed = byState.Where(x => x.State is ItemState.Done or ItemState.Failed or ItemState.Skipped).ToList();
            var state = JobStateName(job.State);
            var startedAt = job.StartedAt ?? processed.Select(x => x.First).Where(t => t is not null).Min();
            var finishedAt = job.FinishedAt;
            double? rate = null, eta = null;
            var seen = counts.Done + counts.Failed + counts.Skipped;
            if (startedAt is { } start && seen > 0)
            {
                var seconds = ((finishedAt ?? now) - start).TotalSeconds;
                if (seconds > 0) rate = Math.Round(seen / seconds, 3);
            }
            if (job.State is JobState.Pending or JobState.Running && counts.Pending > 0 && rate > 0)
                eta = Math.Round(counts.Pending / rate.Value, 1);
            return new JobStatusDto(job.Id, job.Attribute?.Name ?? "", job.EditorVersion?.Version, state, byState.Sum(x => x.Count), counts,
                job.CreatedAt, startedAt, finishedAt, rate, job.State == JobState.Completed && counts.Failed > 0, eta, job.OutputFormat, job.WebhookUrl);
        }).ToList();
    }

    /// <summary>The attribute's (the caller's own, else a published one) active editor version goes on the job; 404 for an unknown attribute, 409 when none is ready.</summary>
    private static async Task<ProblemHttpResult?> ResolveEditor(SddDbContext db, string owner, string? name, EditJob job, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(name)) return Problems.BadRequest("Name the attribute to apply ('attribute').");
        var attribute = await AttributesApi.FindVisibleAsync(db, owner, name, ct);
        if (attribute is null) return Problems.NotFound($"No attribute '{name}'.");
        var active = await db.EditorVersions.AsNoTracking()
            .SingleOrDefaultAsync(v => v.AttributeId == attribute.Id && v.IsActive && v.Status == EditorStatus.Ready, ct);
        if (active is null) return Problems.Conflict($"Attribute '{name}' has no ready editor version yet; see GET /v1/attributes/{name}.");
        job.AttributeId = attribute.Id;
        job.EditorVersionId = active.Id;
        return null;
    }

    /// <summary>Checks each file's header, then stores it under the owner's job input folder (<see cref="KeyLayout.JobInput"/>); one bad file refuses the request.</summary>
    /// <summary>
    /// Checks every file (name, header: format and pixels) before anything is stored, so a refused upload leaves nothing
    /// behind; then stores them in parallel (SDD_UPLOAD_PARALLELISM at once, pooled connections). A failed store deletes
    /// what was stored.
    /// </summary>
    /// <summary>An uploaded file that passed its checks, with the item it becomes.</summary>
    private sealed record CheckedUpload(JobItem Item, IFormFile File, string ContentType);

    /// <summary>
    /// Every file's name and header is checked before anything is stored or written, so a refused upload leaves nothing
    /// behind; returns the items (their input keys chosen) and the largest image's pixels.
    /// </summary>
    private static async Task<(List<CheckedUpload>?, long MaxPixels, ProblemHttpResult?)> CheckUploadsAsync(IFormFileCollection files, string owner, Guid jobId,
        IngestSettings settings)
    {
        long maxPixels = 0;
        var uploads = new List<CheckedUpload>(files.Count);
        foreach (var file in files)
        {
            var name = Path.GetFileName(file.FileName.Replace('\\', '/'));
            if (string.IsNullOrWhiteSpace(name)) name = file.Name;
            if (name.Length > MaxFileNameLength || name.Any(char.IsControl))
                return (null, 0, Problems.Unprocessable($"A file name is at most {MaxFileNameLength} characters without control characters; '{new string(name.Take(40).Select(c => char.IsControl(c) ? '?' : c).ToArray())}...' is not."));
            ImageHeader? header;
            ProblemHttpResult? problem;
            await using (var content = file.OpenReadStream()) header = ImageCheck.Identify(content, name, settings.MaxImagePixels, out problem);
            if (header is null) return (null, 0, problem);
            maxPixels = Math.Max(maxPixels, (long)header.Width * header.Height);
            var itemId = Guid.NewGuid();
            var key = KeyLayout.JobInput(owner, jobId, itemId, header.Extension);
            uploads.Add(new CheckedUpload(new JobItem { Id = itemId, JobId = jobId, Name = name, SourceKey = key, State = ItemState.Pending }, file, header.ContentType));
        }
        return (uploads, maxPixels, null);
    }

    /// <summary>
    /// Stores the checked uploads of a job whose rows exist (SDD_UPLOAD_PARALLELISM at a time, in upload order) and sends
    /// each batch of <paramref name="batchSize"/> as soon as its inputs are stored, so the workers start while the rest is
    /// still being stored. If storing fails before any batch was sent, the job is undone (its rows and stored inputs
    /// deleted) and the failure returned for the request to answer with; after that, the inputs that were stored are sent
    /// and the others fail with the reason, so the job still finishes.
    /// </summary>
    private static async Task<Exception?> StoreAndDispatchAsync(EditJob job, List<CheckedUpload> uploads, DateTimeOffset claim, int batchSize,
        SddDbContext db, ObjectStore store, EditDispatcher dispatcher, IngestSettings settings, ILogger log)
    {
        var stored = new bool[uploads.Count];
        var left = uploads.Chunk(batchSize).Select(b => b.Length).ToArray();
        var sent = new bool[uploads.Count];
        var ready = System.Threading.Channels.Channel.CreateUnbounded<int>(new() { SingleReader = true });
        var sending = Task.Run(async () =>
        {
            // One reader: the request's DbContext is used by one thing at a time.
            await foreach (var b in ready.Reader.ReadAllAsync())
            {
                var ids = Enumerable.Range(b * batchSize, left.Length - 1 == b ? uploads.Count - b * batchSize : batchSize).ToList();
                foreach (var k in ids) sent[k] = true;
                try { await dispatcher.DispatchAsync(job.Id, ids.Select(k => uploads[k].Item.Id).ToList(), DateTimeOffset.MinValue, CancellationToken.None, batchSize, claim); }
                catch (Exception e)
                {
                    // The claim could not be written (database unreachable): the items stay claimed, the sweeper sends them once stale.
                    log.LogWarning(e, "Job {JobId}: a batch could not be dispatched; the sweeper will send it", job.Id);
                }
            }
        });
        Exception? failure = null;
        try
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, uploads.Count), new ParallelOptions { MaxDegreeOfParallelism = settings.UploadParallelism }, async (k, token) =>
            {
                var x = uploads[k];
                await using (var content = x.File.OpenReadStream()) // buffered by the form reader
                    await store.PutAsync(store.JobsBucket, x.Item.SourceKey, content, x.ContentType, token);
                stored[k] = true;
                if (Interlocked.Decrement(ref left[k / batchSize]) == 0) ready.Writer.TryWrite(k / batchSize);
            });
        }
        catch (Exception e) { failure = e; }
        ready.Writer.Complete();
        await sending;
        if (failure is null) return null;

        if (!sent.Any(s => s))
        {
            // Nothing reached a worker: undo the job as if it had never been accepted.
            await db.EditJobs.Where(j => j.Id == job.Id).ExecuteDeleteAsync(CancellationToken.None);
            await DeleteQuietly(store, uploads.Where((_, k) => stored[k]).Select(x => x.Item));
            return failure;
        }
        // Part of the job is at the workers: it goes on with what was stored; the rest fails with the reason.
        log.LogError(failure, "Job {JobId}: storing its uploads failed after some batches were sent; the unstored items fail", job.Id);
        var storedUnsent = Enumerable.Range(0, uploads.Count).Where(k => stored[k] && !sent[k]).Select(k => uploads[k].Item.Id).ToList();
        if (storedUnsent.Count > 0) await dispatcher.DispatchAsync(job.Id, storedUnsent, DateTimeOffset.MinValue, CancellationToken.None, batchSize, claim);
        var unstored = Enumerable.Range(0, uploads.Count).Where(k => !stored[k]).Select(k => uploads[k].Item.Id).ToArray();
        await JobRows.FailItemsAsync(db, job.Id, unstored, $"The upload could not be stored: {failure.GetType().Name}: {failure.Message}", CancellationToken.None);
        return null;
    }

    /// <summary>
    /// Every object under a source the caller may read (<see cref="SourceAccess"/>, checked before listing) becomes an
    /// item that reads the object in place.
    /// </summary>
    private static async Task<(List<JobItem>?, ProblemHttpResult?)> ListSourceAsync(SourceRequest request, string owner, SddDbContext db,
        ObjectStore store, int maxItems, CancellationToken ct)
    {
        var (source, refused) = await SourceAccess.ResolveAsync(request, owner, db, store, ct);
        if (source is null) return (null, refused);
        var (bucket, prefix) = (source.Bucket, source.Prefix);
        var items = new List<JobItem>();
        try
        {
            await foreach (var o in store.ListAsync(bucket, prefix, ct))
            {
                if (o.Key.EndsWith('/')) continue;
                if (items.Count == maxItems)
                    return (null, Problems.Unprocessable($"More than {maxItems} objects under '{prefix}' (SDD_MAX_ITEMS_PER_JOB); submit smaller prefixes."));
                var name = o.Key[prefix.Length..].TrimStart('/');
                items.Add(new JobItem { Id = Guid.NewGuid(), SourceBucket = bucket, SourceKey = o.Key, Name = name.Length > 0 ? name : o.Key, State = ItemState.Pending });
            }
        }
        catch (MinioException e) { return (null, Problems.Unprocessable($"Bucket '{bucket}' cannot be listed: {e.Message}")); }
        return items.Count == 0
            ? (null, Problems.Unprocessable($"There is no object under '{prefix}' in bucket '{bucket}'."))
            : (items, null);
    }

    private static async Task<List<(Guid Id, string Name, string Key)>> DoneOutputs(SddDbContext db, Guid jobId, CancellationToken ct) =>
        (await db.JobItems.AsNoTracking().Where(i => i.JobId == jobId && i.State == ItemState.Done && i.OutputKey != null)
            .OrderBy(i => i.Name).ThenBy(i => i.Id).Select(i => new { i.Id, i.Name, i.SourceKey, i.OutputKey }).ToListAsync(ct))
        .Select(i => (i.Id, i.Name ?? i.SourceKey, i.OutputKey!)).ToList();

    /// <summary>
    /// The input's name (folders kept, unsafe segments dropped) with the output's extension, made unique with the item
    /// id when two names meet (photo.png and photo.jpg both edited to PNG).
    /// </summary>
    public static string ZipEntryName(string name, string extension, Guid itemId, HashSet<string> taken)
    {
        var segments = name.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries).Where(s => s is not ("." or "..")).ToList();
        var stem = segments.Count == 0 ? itemId.ToString("N") : string.Join('/', segments[..^1].Append(Path.GetFileNameWithoutExtension(segments[^1])));
        var entry = stem + extension;
        if (!taken.Add(entry)) taken.Add(entry = $"{stem}-{itemId:N}{extension}");
        return entry;
    }

    private static async Task DeleteQuietly(ObjectStore store, IEnumerable<JobItem> items)
    {
        foreach (var item in items)
        {
            try { await store.DeleteAsync(store.JobsBucket, item.SourceKey); }
            catch (Exception) { /* an orphan input under an unused job id harms nobody */ }
        }
    }
}
