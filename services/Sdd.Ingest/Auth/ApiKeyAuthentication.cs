using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Sdd.Ingest.Auth;

/// <summary>
/// Authenticates the <c>X-Api-Key</c> header: the bootstrap admin key (SDD_ADMIN_KEY) or a key whose
/// SHA-256 is in <c>api_clients</c> and not revoked. The row is read on every request (no cache), so a revoked key is
/// refused from the next request on. Challenges and refusals answer with problem details.
/// </summary>
public sealed class ApiKeyAuthentication(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger,
    UrlEncoder encoder, SddDbContext db, IngestSettings settings, IProblemDetailsService problems)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string Header = "X-Api-Key";
    public const string AdminPolicy = "admin";
    /// <summary>The owner recorded for what the bootstrap admin key creates.</summary>
    public const string AdminOwner = "admin";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(Header, out var values) || values.ToString() is not { Length: > 0 } key)
            return AuthenticateResult.NoResult();

        var caller = await ResolveAsync(key, db, settings, Context.RequestAborted);
        if (caller is null) return AuthenticateResult.Fail("Unknown or revoked API key");
        return AuthenticateResult.Success(new AuthenticationTicket(caller.Principal(SchemeName), SchemeName));
    }

    /// <summary>How stale a key's recorded last use may get.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Who a key is: the bootstrap admin key, or an unrevoked key whose hash is stored; null for anything else. Records the
    /// key's last use (at most one write a minute per key). The API and the dashboard's sign-in both ask this.
    /// </summary>
    public static async Task<KeyHolder?> ResolveAsync(string key, SddDbContext db, IngestSettings settings, CancellationToken ct)
    {
        if (IsAdminKey(key, settings)) return new KeyHolder(AdminOwner, AdminOwner, Admin: true);

        var hash = ApiKeys.Hash(key);
        var client = await db.ApiClients.AsNoTracking().Where(c => c.KeyHash == hash)
            .Select(c => new { c.Id, c.Name, c.IsAdmin, c.RevokedAt, c.LastUsedAt }).SingleOrDefaultAsync(ct);
        if (client is null || client.RevokedAt is not null) return null;

        // The condition makes concurrent requests write once.
        var now = DateTimeOffset.UtcNow;
        var stale = now - LastUsedResolution;
        if (client.LastUsedAt is null || client.LastUsedAt < stale)
            await db.ApiClients.Where(c => c.Id == client.Id && (c.LastUsedAt == null || c.LastUsedAt < stale))
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.LastUsedAt, now), ct);
        return new KeyHolder(client.Id.ToString(), client.Name, client.IsAdmin);
    }

    public static bool IsAdminKey(string key, IngestSettings settings) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(settings.AdminKey));

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) =>
        WriteProblem(StatusCodes.Status401Unauthorized, "Missing or unknown API key",
            $"Send a valid, unrevoked key in the {Header} header (POST /v1/keys with the admin key creates one).");

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        WriteProblem(StatusCodes.Status403Forbidden, "Admin key required", "Only an admin key may do this.");

    private async Task WriteProblem(int status, string title, string detail)
    {
        Response.StatusCode = status;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }
}

/// <summary>The owner a key speaks for (its client id, or "admin" for the bootstrap key), its name, and whether it is an admin.</summary>
public sealed record KeyHolder(string Owner, string Name, bool Admin)
{
    /// <summary>The claims every route reads (<see cref="CallerExtensions"/>), under <paramref name="scheme"/>.</summary>
    public ClaimsPrincipal Principal(string scheme, params IEnumerable<Claim> more)
    {
        List<Claim> claims = [new(ClaimTypes.NameIdentifier, Owner), new(ClaimTypes.Name, Name), .. more];
        if (Admin) claims.Add(new Claim(ClaimTypes.Role, ApiKeyAuthentication.AdminPolicy));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }
}

public static class CallerExtensions
{
    /// <summary>The owner string stored on what this caller creates (its client id, or "admin").</summary>
    public static string Owner(this ClaimsPrincipal user) =>
        user.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new InvalidOperationException("The request is not authenticated");

    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(ApiKeyAuthentication.AdminPolicy);
}
