namespace Sdd.Ingest.Apis;

public sealed record CreateKeyRequest(string Name);
public sealed record KeyCreated(Guid Id, string Name, string Key);

public static class KeysApi
{
    public static RouteGroupBuilder MapKeysApiV1(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/v1/keys").WithTags("Keys").RequireAuthorization(ApiKeyAuthentication.AdminPolicy);
        api.MapPost("/", CreateKey).WithSummary("Create an API key (admin only); the key is shown once.");
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
        var client = new ApiClient { Id = Guid.NewGuid(), Name = name, KeyHash = ApiKeys.Hash(key), CreatedAt = DateTimeOffset.UtcNow };
        db.ApiClients.Add(client);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            return Problems.Conflict($"A key named '{name}' exists already; choose another name.");
        }
        return TypedResults.Created($"/v1/keys/{client.Id}", new KeyCreated(client.Id, client.Name, key));
    }
}
