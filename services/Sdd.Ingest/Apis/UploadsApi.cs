using Sdd.Ingest.Sources;

namespace Sdd.Ingest.Apis;

public sealed record CreateUploadRequest(IReadOnlyList<string>? Files, int? ExpiresInMinutes);
public sealed record UploadUrl(string Name, string Url);
/// <summary>
/// An upload area: PUT each file's bytes to its URL (any S3 client or plain HTTP), then name the upload as the source of
/// a job or a data set (<c>"source": { "upload": id }</c>). <see cref="Objects"/> and <see cref="Bytes"/> are counted on GET of one upload.
/// </summary>
public sealed record UploadDto(Guid Id, string Bucket, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt,
    IReadOnlyList<UploadUrl>? Files = null, int? Objects = null, long? Bytes = null);

public static class UploadsApi
{
    public const int MaxFilesPerRequest = 1000;
    public const int MaxNameBytes = 512;
    private const int DefaultMinutes = 60, MaxMinutes = 24 * 60;

    public static RouteGroupBuilder MapUploadsApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/uploads").WithTags("Uploads").RequireAuthorization();
        api.MapPost("/", Create).WithName("createUpload").WithSummary("Open an upload area: presigned PUT URLs for the named files, under your own prefix.");
        api.MapPost("/{id:guid}/files", AddFiles).WithName("addUploadFiles").WithSummary("More presigned PUT URLs for an upload of yours.");
        api.MapGet("/", List).WithName("listUploads").WithSummary("Your upload areas, oldest first.");
        api.MapGet("/{id:guid}", Get).WithName("getUpload").WithSummary("An upload of yours, with the number and bytes of the objects stored so far.");
        api.MapDelete("/{id:guid}", Delete).WithName("deleteUpload").WithSummary("Delete an upload of yours and every object in it.");
        return api;
    }

    public static async Task<Results<Created<UploadDto>, ProblemHttpResult>> Create(CreateUploadRequest request, ClaimsPrincipal user, SddDbContext db,
        ObjectStore store, CancellationToken ct)
    {
        if (CheckRequest(request, out var expiry) is { } bad) return bad;
        var now = DateTimeOffset.UtcNow;
        var upload = new Upload { Id = Guid.NewGuid(), Owner = user.Owner(), CreatedAt = now, ExpiresAt = now + expiry };
        db.Uploads.Add(upload);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/v1/uploads/{upload.Id}", await WithUrls(upload, request.Files!, expiry, store));
    }

    public static async Task<Results<Ok<UploadDto>, ProblemHttpResult>> AddFiles(Guid id, CreateUploadRequest request, ClaimsPrincipal user, SddDbContext db,
        ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var upload = await db.Uploads.SingleOrDefaultAsync(u => u.Id == id && u.Owner == owner, ct);
        if (upload is null) return Problems.NotFound($"No upload {id}.");
        if (CheckRequest(request, out var expiry) is { } bad) return bad;
        var expires = DateTimeOffset.UtcNow + expiry;
        if (expires > upload.ExpiresAt)
        {
            upload.ExpiresAt = expires;
            await db.SaveChangesAsync(ct);
        }
        return TypedResults.Ok(await WithUrls(upload, request.Files!, expiry, store));
    }

    public static async Task<Results<Ok<Page<UploadDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct, int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        var (rows, next, problem) = await Paging.ByCreationAsync(db.Uploads.AsNoTracking().Where(u => u.Owner == owner), limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<UploadDto>(rows.Select(u => Describe(u, store)).ToList(), next));
    }

    public static async Task<Results<Ok<UploadDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var upload = await db.Uploads.AsNoTracking().SingleOrDefaultAsync(u => u.Id == id && u.Owner == owner, ct);
        if (upload is null) return Problems.NotFound($"No upload {id}.");
        int objects = 0;
        long bytes = 0;
        await foreach (var o in store.ListAsync(store.DatasetsBucket, KeyLayout.Upload(owner, id), ct))
        {
            objects++;
            bytes += o.Size;
        }
        return TypedResults.Ok(Describe(upload, store) with { Objects = objects, Bytes = bytes });
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> Delete(Guid id, ClaimsPrincipal user, SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var upload = await db.Uploads.SingleOrDefaultAsync(u => u.Id == id && u.Owner == owner, ct);
        if (upload is null) return Problems.NotFound($"No upload {id}.");
        var keys = new List<string>();
        await foreach (var o in store.ListAsync(store.DatasetsBucket, KeyLayout.Upload(owner, id), ct)) keys.Add(o.Key);
        foreach (var chunk in keys.Chunk(1000)) await store.DeleteManyAsync(store.DatasetsBucket, chunk, ct);
        db.Uploads.Remove(upload);
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }

    private static UploadDto Describe(Upload u, ObjectStore store) =>
        new(u.Id, store.DatasetsBucket, KeyLayout.Upload(u.Owner, u.Id), u.CreatedAt, u.ExpiresAt);

    private static async Task<UploadDto> WithUrls(Upload upload, IReadOnlyList<string> files, TimeSpan expiry, ObjectStore store)
    {
        var prefix = KeyLayout.Upload(upload.Owner, upload.Id);
        var urls = new List<UploadUrl>(files.Count);
        foreach (var name in files)
            urls.Add(new UploadUrl(name, (await store.PresignPutAsync(store.DatasetsBucket, prefix + name, expiry)).ToString()));
        return Describe(upload, store) with { Files = urls };
    }

    /// <summary>1 to 1000 distinct relative file names ('/' makes folders), and an expiry of 1 minute to 24 hours.</summary>
    private static ProblemHttpResult? CheckRequest(CreateUploadRequest request, out TimeSpan expiry)
    {
        expiry = TimeSpan.FromMinutes(request.ExpiresInMinutes ?? DefaultMinutes);
        if (request.ExpiresInMinutes is < 1 or > MaxMinutes) return Problems.BadRequest($"expiresInMinutes must be between 1 and {MaxMinutes}.");
        if (request.Files is not { Count: > 0 } files || files.Count > MaxFilesPerRequest)
            return Problems.BadRequest($"Name 1 to {MaxFilesPerRequest} files to upload ('files'); ask again on POST /v1/uploads/{{id}}/files for more.");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in files)
        {
            if (string.IsNullOrEmpty(name) || System.Text.Encoding.UTF8.GetByteCount(name) > MaxNameBytes || name.EndsWith('/'))
                return Problems.BadRequest($"A file name is 1 to {MaxNameBytes} bytes and does not end with '/'.");
            try { ObjectKey.Validate(name, "files"); }
            catch (ArgumentException e) { return Problems.BadRequest(e.Message); }
            if (!seen.Add(name)) return Problems.BadRequest($"'{name}' is named twice.");
        }
        return null;
    }
}
