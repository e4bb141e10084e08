using Sdd.Ingest.Webhooks;

namespace Sdd.Ingest.Apis;

public sealed record CreateKeyRequest(string Name);
/// <summary>Key: shown once. WebhookSecret: what signs the webhooks of what this key creates (X-Sdd-Signature).</summary>
public sealed record KeyCreated(Guid Id, string Name, string Key, string WebhookSecret);
/// <summary>
/// A key as the admin sees it (never the key itself: only its hash is stored). WebhookSecret: only in GET /v1/keys/me,
/// the caller's own.
/// </summary>
public sealed record KeyDto(string Id, string Name, bool Admin, DateTimeOffset? CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt,
    string? WebhookSecret = null)
{
    public static KeyDto From(ApiClient c) => new(c.Id.ToString(), c.Name, c.IsAdmin, c.CreatedAt, c.LastUsedAt, c.RevokedAt);
}

public static class KeysApi
{
    public static RouteGroupBuilder MapKeysApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/keys").WithTags("Keys");
        var admin = api.MapGroup("").RequireAuthorization(ApiKeyAuthentication.AdminPolicy);
        admin.MapPost("/", CreateKey).WithName("createKey").WithSummary("Create an API key (admin only); the key is shown once.");
        admin.MapGet("/", List).WithName("listKeys").WithSummary("Every key with its name, creation, last use and revocation (admin only).");
        admin.MapDelete("/{id:guid}", Revoke).WithName("revokeKey").WithSummary("Revoke a key at once (admin only); its owner's data stays.");
        api.MapGet("/me", Me).WithName("getCallingKey").RequireAuthorization().WithSummary("The calling key: its owner id and name.");
        return api;
    }

    public static async Task<Results<Created<KeyCreated>, ProblemHttpResult>> CreateKey(CreateKeyRequest request, SddDbContext db, CancellationToken ct)
    {
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200)
            return Problems.BadRequest("Give the key a name of 1 to 200 characters.");
        if (name == ApiKeyAuthentication.AdminOwner || await db.ApiClients.AnyAsync(c => c.Name == name, ct))
            return Problems.Conflict($"A key named '{name}' exists already; choose another name.");

        var key = ApiKeys.NewKey();
        var client = new ApiClient
        {
            Id = Guid.NewGuid(), Name = name, KeyHash = ApiKeys.Hash(key), CreatedAt = DateTimeOffset.UtcNow,
            WebhookSecret = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
        };
        db.ApiClients.Add(client);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            return Problems.Conflict($"A key named '{name}' exists already; choose another name.");
        }
        return TypedResults.Created($"/v1/keys/{client.Id}", new KeyCreated(client.Id, client.Name, key, client.WebhookSecret));
    }

    public static async Task<Results<Ok<Page<KeyDto>>, ProblemHttpResult>> List(SddDbContext db, CancellationToken ct, int? limit = null, string? cursor = null)
    {
        var (rows, next, problem) = await Paging.ByCreationAsync(db.ApiClients.AsNoTracking(), limit, cursor, newestFirst: false, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(new Page<KeyDto>(rows.Select(KeyDto.From).ToList(), next));
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> Revoke(Guid id, SddDbContext db, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        if (!await db.ApiClients.AnyAsync(c => c.Id == id, ct)) return Problems.NotFound($"No key {id}.");
        await db.ApiClients.Where(c => c.Id == id && c.RevokedAt == null).ExecuteUpdateAsync(s => s.SetProperty(c => c.RevokedAt, now), ct);
        return TypedResults.NoContent();
    }

    public static async Task<Ok<KeyDto>> Me(ClaimsPrincipal user, SddDbContext db, IngestSettings settings, CancellationToken ct)
    {
        var owner = user.Owner();
        var secret = await WebhookEvents.SecretAsync(db, owner, settings, ct); // made on first use for keys older than webhooks
        var row = Guid.TryParse(owner, out var id) ? await db.ApiClients.AsNoTracking().SingleOrDefaultAsync(c => c.Id == id, ct) : null;
        return TypedResults.Ok(row is null
            ? new KeyDto(owner, user.FindFirstValue(ClaimTypes.Name) ?? owner, user.IsAdmin(), null, null, null, secret) // the bootstrap admin key
            : KeyDto.From(row) with { WebhookSecret = secret });
    }
}
