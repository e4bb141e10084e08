using Sdd.Ingest.Sources;

namespace Sdd.Ingest.Apis;

public sealed record CreateGrantRequest(string Owner, string Bucket, string? Prefix);
public sealed record GrantDto(Guid Id, string Owner, string Bucket, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public static GrantDto From(SourceGrant g) => new(g.Id, g.Owner, g.Bucket, g.Prefix, g.CreatedAt, g.RevokedAt);
}

/// <summary>Read-only access to external buckets, given to one owner by an admin: listed, and revocable at once.</summary>
public static class GrantsApi
{
    public static RouteGroupBuilder MapGrantsApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/grants").WithTags("Grants").RequireAuthorization();
        api.MapPost("/", Create).WithName("createGrant").RequireAuthorization(ApiKeyAuthentication.AdminPolicy)
            .WithSummary("Let one owner read an external bucket, or a prefix of it, as a job or data set source (admin only).");
        api.MapGet("/", List).WithName("listGrants").WithSummary("Your grants (an admin sees every grant).");
        api.MapDelete("/{id:guid}", Revoke).WithName("revokeGrant").RequireAuthorization(ApiKeyAuthentication.AdminPolicy).WithSummary("Revoke a grant (admin only).");
        return api;
    }

    public static async Task<Results<Created<GrantDto>, ProblemHttpResult>> Create(CreateGrantRequest request, SddDbContext db, ObjectStore store, CancellationToken ct)
    {
        var owner = request.Owner?.Trim() ?? "";
        if (!Guid.TryParse(owner, out var clientId) || !await db.ApiClients.AnyAsync(c => c.Id == clientId && c.RevokedAt == null, ct))
            return Problems.NotFound($"No key '{owner}' to grant to (GET /v1/keys lists them).");
        var bucket = request.Bucket?.Trim() ?? "";
        if (bucket.Length is < 3 or > 63) return Problems.BadRequest("Name the bucket (3 to 63 characters).");
        if (SourceAccess.IsServiceBucket(store, bucket))
            return Problems.Unprocessable($"Bucket '{bucket}' is the service's own and holds every owner's data; it cannot be granted.");
        var prefix = request.Prefix?.Trim() ?? "";
        if (prefix.Length > 0 && !prefix.EndsWith('/')) prefix += "/"; // a grant covers a folder, never "photos" and "photos-of-others"
        try { ObjectKey.ValidatePrefix(prefix); }
        catch (ArgumentException e) { return Problems.BadRequest(e.Message); }

        var grant = new SourceGrant { Id = Guid.NewGuid(), Owner = clientId.ToString(), Bucket = bucket, Prefix = prefix, CreatedAt = DateTimeOffset.UtcNow };
        db.SourceGrants.Add(grant);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/v1/grants/{grant.Id}", GrantDto.From(grant));
    }

    public static async Task<Results<Ok<Page<GrantDto>>, ProblemHttpResult>> List(ClaimsPrincipal user, SddDbContext db, CancellationToken ct,
        int? limit = null, string? cursor = null)
    {
        var query = db.SourceGrants.AsNoTracking();
        if (!user.IsAdmin())
        {
            var owner = user.Owner();
            query = query.Where(g => g.Owner == owner);
        }
        var (rows, next, problem) = await Paging.ByCreationAsync(query, limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<GrantDto>(rows.Select(GrantDto.From).ToList(), next));
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> Revoke(Guid id, SddDbContext db, CancellationToken ct)
    {
        if (!await db.SourceGrants.AnyAsync(g => g.Id == id, ct)) return Problems.NotFound($"No grant {id}.");
        var now = DateTimeOffset.UtcNow;
        await db.SourceGrants.Where(g => g.Id == id && g.RevokedAt == null).ExecuteUpdateAsync(s => s.SetProperty(g => g.RevokedAt, now), ct);
        return TypedResults.NoContent();
    }
}
