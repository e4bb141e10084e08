using Minio.Exceptions;
using Sdd.Ingest.Datasets;
using Sdd.Ingest.Sources;

namespace Sdd.Ingest.Apis;

/// <summary>A data set in one of the caller's uploads (<see cref="Upload"/>, optionally a folder of it as <see cref="Prefix"/>) or in a granted bucket prefix.</summary>
public sealed record RegisterDatasetRequest(string Name, string? Bucket, string? Prefix, Guid? Upload);
public sealed record DatasetDto(Guid Id, string Name, string Bucket, string Prefix, IReadOnlyList<string> Attributes, int ImageCount, DateTimeOffset CreatedAt)
{
    public static DatasetDto From(Dataset d, ObjectStore store) =>
        new(d.Id, d.Name, d.Bucket ?? store.DatasetsBucket, d.Prefix ?? "", d.AttributeNames, d.ImageCount, d.CreatedAt);
}

public static class DatasetsApi
{
    public static RouteGroupBuilder MapDatasetsApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/datasets").WithTags("Datasets").RequireAuthorization();
        api.MapPost("/", Register).WithName("registerDataset").WithSummary("Register a prefix of one of your uploads, or of a bucket granted to you, holding labels.csv and images/.");
        api.MapPost("/upload", Upload).WithName("uploadDataset").WithSummary("Upload a zip holding labels.csv and images/.")
            .DisableAntiforgery().Accepts<IFormFile>("multipart/form-data");
        api.MapGet("/", List).WithName("listDatasets").WithSummary("Your data sets, oldest first.");
        api.MapGet("/{id:guid}", Get).WithName("getDataset").WithSummary("A data set of yours.");
        return api;
    }

    public static async Task<Results<Created<DatasetDto>, ProblemHttpResult>> Register(RegisterDatasetRequest request, ClaimsPrincipal user,
        SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        if (CheckName(request.Name) is { } bad) return bad;
        var owner = user.Owner();
        var named = (request.Prefix ?? "").Trim();
        if (named.Length > 0 && !named.EndsWith('/')) named += "/";
        var (source, refused) = await SourceAccess.ResolveAsync(new SourceRequest(request.Bucket, named, request.Upload), owner, db, store, ct);
        if (source is null) return refused!;
        var (bucket, prefix) = (source.Bucket, source.Prefix);
        if (await NameTaken(db, owner, request.Name, ct)) return NameConflict(request.Name);

        LabelsCsv labels;
        try
        {
            byte[] content;
            try { content = await store.GetBytesAsync(bucket, KeyLayout.DatasetLabels(prefix), LabelsCsv.MaxBytes, ct); }
            catch (FileNotFoundException) { return Problems.Unprocessable($"There is no {prefix}{LabelsCsv.FileName} in bucket '{bucket}'."); }
            catch (ObjectTooLargeException e) { return Problems.Unprocessable($"{LabelsCsv.FileName} is {e.Size} bytes or more; at most {LabelsCsv.MaxBytes >> 20} MiB are read (refused before its body was read)."); }
            if (content.LongLength > LabelsCsv.MaxBytes) return Problems.Unprocessable($"{LabelsCsv.FileName} is larger than {LabelsCsv.MaxBytes >> 20} MiB.");
            labels = LabelsCsv.Parse(content);
            var present = new HashSet<string>(StringComparer.Ordinal);
            var imagesPrefix = KeyLayout.DatasetImages(prefix);
            await foreach (var o in store.ListAsync(bucket, imagesPrefix, ct)) present.Add(o.Key[imagesPrefix.Length..]);
            if (labels.Missing(present) is { } missing) return Problems.Unprocessable(missing);
        }
        catch (InvalidDataException e) { return Problems.Unprocessable(e.Message); }
        catch (MinioException e) { return Problems.Unprocessable($"Bucket '{bucket}' cannot be read: {e.Message}"); }

        return await Save(db, store, new Dataset
        {
            Id = Guid.NewGuid(), Name = request.Name.Trim(), Owner = owner, Bucket = bucket, Prefix = prefix,
            AttributeNames = [.. labels.Attributes], ImageCount = labels.Rows.Count, CreatedAt = DateTimeOffset.UtcNow,
        }, ct);
    }

    public static async Task<Results<Created<DatasetDto>, ProblemHttpResult>> Upload(HttpRequest http, ClaimsPrincipal user,
        SddDbContext db, ObjectStore store, IngestSettings settings, CancellationToken ct)
    {
        if (!http.HasFormContentType) return Problems.Unsupported("Send multipart/form-data with a 'name' field and a 'file' (a zip).");
        var form = await http.ReadFormAsync(ct);
        var name = form["name"].ToString();
        if (CheckName(name) is { } bad) return bad;
        if (form.Files.GetFile("file") is not { } file) return Problems.BadRequest("Attach the dataset zip as the form field 'file'.");
        var owner = user.Owner();
        if (await NameTaken(db, owner, name, ct)) return NameConflict(name);

        var id = Guid.NewGuid();
        var prefix = KeyLayout.Dataset(owner, id);
        LabelsCsv labels;
        try
        {
            await using var content = file.OpenReadStream();
            labels = await DatasetZip.StoreAsync(content, store, store.DatasetsBucket, prefix, settings, ct);
        }
        catch (InvalidDataException e)
        {
            await DeletePrefixAsync(store, store.DatasetsBucket, prefix);
            return Problems.Unprocessable($"{file.FileName}: {e.Message}");
        }
        catch
        {
            await DeletePrefixAsync(store, store.DatasetsBucket, prefix); // a refused or failed upload leaves nothing behind
            throw;
        }

        return await Save(db, store, new Dataset
        {
            Id = id, Name = name.Trim(), Owner = owner, Bucket = store.DatasetsBucket, Prefix = prefix,
            AttributeNames = [.. labels.Attributes], ImageCount = labels.Rows.Count, CreatedAt = DateTimeOffset.UtcNow,
        }, ct);
    }

    public static async Task<Results<Ok<Page<DatasetDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct, int? limit = null, string? cursor = null)
    {
        var owner = user.Owner();
        var (rows, next, problem) = await Paging.ByCreationAsync(db.Datasets.AsNoTracking().Where(d => d.Owner == owner), limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<DatasetDto>(rows.Select(d => DatasetDto.From(d, store)).ToList(), next));
    }

    public static async Task<Results<Ok<DatasetDto>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        var owner = user.Owner();
        var d = await db.Datasets.AsNoTracking().SingleOrDefaultAsync(d => d.Id == id && d.Owner == owner, ct);
        return d is null ? Problems.NotFound($"No dataset {id}.") : TypedResults.Ok(DatasetDto.From(d, store));
    }

    private static ProblemHttpResult? CheckName(string? name) =>
        string.IsNullOrWhiteSpace(name) || name.Trim().Length > 200 ? Problems.BadRequest("Give the dataset a name of 1 to 200 characters.") : null;

    /// <summary>Names are unique per owner: another owner's data set of the same name is no concern of the caller's.</summary>
    private static Task<bool> NameTaken(SddDbContext db, string owner, string name, CancellationToken ct)
    {
        var trimmed = name.Trim();
        return db.Datasets.AnyAsync(d => d.Owner == owner && d.Name == trimmed, ct);
    }

    private static ProblemHttpResult NameConflict(string name) =>
        Problems.Conflict($"A dataset named '{name.Trim()}' exists already; choose another name.");

    private static async Task<Results<Created<DatasetDto>, ProblemHttpResult>> Save(SddDbContext db, ObjectStore store, Dataset dataset, CancellationToken ct)
    {
        db.Datasets.Add(dataset);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException e) when (e.IsUniqueViolation()) { return NameConflict(dataset.Name); }
        return TypedResults.Created($"/v1/datasets/{dataset.Id}", DatasetDto.From(dataset, store));
    }

    private static async Task DeletePrefixAsync(ObjectStore store, string bucket, string prefix)
    {
        try
        {
            var keys = new List<string>();
            await foreach (var o in store.ListAsync(bucket, prefix)) keys.Add(o.Key);
            foreach (var key in keys) await store.DeleteAsync(bucket, key);
        }
        catch (Exception) { /* best effort: a half-stored zip under an unused id harms nobody */ }
    }
}
