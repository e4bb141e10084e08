using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

namespace Sdd.Ingest.Dashboard;

/// <summary>
/// Who is signed in to the dashboard: a person posts an API key once (<c>/ui/signin</c>); the answer is a cookie holding a
/// data-protected ticket with the key's owner, name, admin flag and the key's SHA-256 (never the key). Every request
/// checks that hash against the key store again, so a revoked key signs its sessions out at once. The cookie is HttpOnly,
/// SameSite=Strict and scoped to <c>/ui</c>; the API (<c>/v1</c>) never accepts it, only the X-Api-Key header.
/// </summary>
public static class DashboardAuth
{
    public const string Scheme = "Dashboard";
    /// <summary>The default scheme: the cookie for <c>/ui</c>, the X-Api-Key header for everything else.</summary>
    public const string ByPath = "SddByPath";
    public const string Policy = "dashboard";
    public const string CookieName = "sdd-ui";
    public const string KeyHashClaim = "sdd:key-sha256";
    public const string PathBase = "/ui";

    public static bool IsDashboard(PathString path) => path.StartsWithSegments(PathBase);

    public static AuthenticationBuilder AddDashboardCookie(this AuthenticationBuilder auth) => auth
        .AddPolicyScheme(ByPath, null, o => o.ForwardDefaultSelector = context =>
            IsDashboard(context.Request.Path) ? Scheme : ApiKeyAuthentication.SchemeName)
        .AddCookie(Scheme, o =>
        {
            o.Cookie.Name = CookieName;
            o.Cookie.Path = PathBase;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest; // Secure behind TLS; plain http on 127.0.0.1 locally
            o.LoginPath = PathBase + "/signin";
            o.LogoutPath = PathBase + "/signout";
            o.AccessDeniedPath = PathBase + "/signin";
            o.ExpireTimeSpan = TimeSpan.FromHours(8);
            o.SlidingExpiration = true;
            o.Events.OnValidatePrincipal = ValidateAsync;
        });

    /// <summary>The ticket a key earns (see <see cref="ApiKeyAuthentication.ResolveAsync"/>).</summary>
    public static ClaimsPrincipal Principal(KeyHolder holder, string key) =>
        holder.Principal(Scheme, new Claim(KeyHashClaim, ApiKeys.Hash(key)));

    /// <summary>The key behind the ticket is still the bootstrap admin key, or a stored, unrevoked key of the same owner and role.</summary>
    private static async Task ValidateAsync(CookieValidatePrincipalContext context)
    {
        var user = context.Principal;
        var hash = user?.FindFirstValue(KeyHashClaim);
        var valid = false;
        if (user is not null && hash is not null)
        {
            var services = context.HttpContext.RequestServices;
            var owner = user.Owner();
            if (owner == ApiKeyAuthentication.AdminOwner)
            {
                var admin = ApiKeys.Hash(services.GetRequiredService<IngestSettings>().AdminKey);
                valid = CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(hash), Encoding.ASCII.GetBytes(admin));
            }
            else if (Guid.TryParse(owner, out var id))
            {
                var isAdmin = user.IsAdmin();
                valid = await services.GetRequiredService<SddDbContext>().ApiClients.AsNoTracking()
                    .AnyAsync(c => c.Id == id && c.KeyHash == hash && c.RevokedAt == null && c.IsAdmin == isAdmin, context.HttpContext.RequestAborted);
            }
        }
        if (!valid)
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(Scheme);
        }
    }
}
