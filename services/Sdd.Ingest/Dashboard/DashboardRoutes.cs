using System.Security.Cryptography;
using Microsoft.AspNetCore.Authorization;
using Minio.Exceptions;
using Sdd.Ingest.Apis;
using Sdd.Ingest.Sources;

namespace Sdd.Ingest.Dashboard;

/// <summary>
/// The dashboard in the host: its pages (Razor Pages under this folder, routes <c>/ui/…</c>), the cookie sign-in, and the
/// bytes its pages link to — the results zip, small before/after previews and an editor's evaluation grid — each behind the
/// same visibility rule as the pages (<see cref="Visibility"/>), so another owner's id answers 404.
/// </summary>
public static class DashboardRoutes
{
    /// <summary>Largest object shown as a preview; bigger ones are left out of the gallery.</summary>
    public const long MaxPreviewBytes = 2 * 1024 * 1024;

    public static IServiceCollection AddDashboard(this IServiceCollection services)
    {
        services.AddRazorPages(o =>
        {
            o.RootDirectory = "/Dashboard";
            o.Conventions.AuthorizeFolder("/", DashboardAuth.Policy);
            o.Conventions.AllowAnonymousToPage("/SignIn");
        });
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = DashboardAuth.CookieName + "-af";
            o.Cookie.Path = DashboardAuth.PathBase;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
        });
        services.AddSingleton<SystemStatus>();
        return services;
    }

    public static AuthorizationBuilder AddDashboardPolicy(this AuthorizationBuilder authorization) =>
        authorization.AddPolicy(DashboardAuth.Policy, p => p.AddAuthenticationSchemes(DashboardAuth.Scheme).RequireAuthenticatedUser());

    /// <summary>Pages may only load this origin's styles, script and images, and no one may frame them.</summary>
    public static IApplicationBuilder UseDashboardHeaders(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (DashboardAuth.IsDashboard(context.Request.Path))
        {
            var headers = context.Response.Headers;
            headers.ContentSecurityPolicy = "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; " +
                                            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "same-origin";
            if (!context.Request.Path.StartsWithSegments(DashboardAuth.PathBase + "/assets")) headers.CacheControl = "no-store";
        }
        await next(context);
    });

    public static void MapDashboard(this WebApplication app)
    {
        app.MapRazorPages();
        var ui = app.MapGroup(DashboardAuth.PathBase).ExcludeFromDescription();
        ui.MapGet("/assets/{file}", Asset).AllowAnonymous();
        var signedIn = ui.MapGroup("").RequireAuthorization(DashboardAuth.Policy);
        signedIn.MapGet("/jobs/{id:guid}/results.zip", ResultsZip);
        signedIn.MapGet("/jobs/{id:guid}/items/{itemId:guid}/{side:regex(^(input|output)$)}", ItemPreview);
        signedIn.MapGet("/attributes/{name}/versions/{version:int}/grid.png", Grid);
    }

    private static readonly Dictionary<string, (string ContentType, byte[] Bytes, string ETag)> Assets = LoadAssets();

    private static Dictionary<string, (string, byte[], string)> LoadAssets()
    {
        var assembly = typeof(DashboardRoutes).Assembly;
        var assets = new Dictionary<string, (string, byte[], string)>(StringComparer.Ordinal);
        foreach (var (file, type) in new[] { ("dashboard.css", "text/css; charset=utf-8"), ("dashboard.js", "text/javascript; charset=utf-8") })
        {
            using var stream = assembly.GetManifestResourceStream($"Sdd.Ingest.Dashboard.Assets.{file}")
                ?? throw new InvalidOperationException($"The dashboard asset {file} is not embedded.");
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var bytes = buffer.ToArray();
            assets[file] = (type, bytes, $"\"{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}\"");
        }
        return assets;
    }

    private static IResult Asset(string file, HttpContext http)
    {
        if (!Assets.TryGetValue(file, out var asset)) return Results.NotFound();
        http.Response.Headers.CacheControl = "no-cache"; // revalidated by ETag
        return Results.Bytes(asset.Bytes, asset.ContentType, entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue(asset.ETag));
    }

    private static async Task<IResult> ResultsZip(Guid id, HttpContext http, ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        ILogger<EditJob> log, CancellationToken ct)
    {
        if (!await db.VisibleJobs(user).AnyAsync(j => j.Id == id, ct)) return Results.NotFound();
        return await JobsApi.ZipOfOutputsAsync(id, http, db, store, log, ct);
    }

    private static async Task<IResult> ItemPreview(Guid id, Guid itemId, string side, ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct)
    {
        var job = await db.VisibleJobs(user).Where(j => j.Id == id).Select(j => new { j.Owner }).SingleOrDefaultAsync(ct);
        var item = job is null ? null : await db.JobItems.AsNoTracking().SingleOrDefaultAsync(i => i.Id == itemId && i.JobId == id, ct);
        if (job is null || item is null) return Results.NotFound();
        if (side == "output")
            return item is { State: ItemState.Done, OutputKey: { } output } ? await PreviewAsync(store, store.JobsBucket, output, ct) : Results.NotFound();
        if (item.SourceBucket is { } bucket)
        {
            // Read in place from an upload area or a granted bucket: shown only while the job's owner may still read it there.
            var folder = item.SourceKey[..(item.SourceKey.LastIndexOf('/') + 1)];
            var (readable, _) = await SourceAccess.ResolveAsync(new SourceRequest(bucket, folder, null), job.Owner, db, store, ct);
            if (readable is null) return Results.NotFound();
            return await PreviewAsync(store, bucket, item.SourceKey, ct);
        }
        return await PreviewAsync(store, store.JobsBucket, item.SourceKey, ct);
    }

    private static async Task<IResult> Grid(string name, int version, string? owner, ClaimsPrincipal user, SddDbContext db, ObjectStore store,
        CancellationToken ct)
    {
        var attribute = await db.FindAttributeAsync(user, name, owner, ct);
        // The grid holds the owner's held-out photos: another owner of a published attribute does not see it.
        if (attribute is null || attribute.Owner != user.Owner() && !user.IsAdmin()) return Results.NotFound();
        var weights = await db.EditorVersions.AsNoTracking().Where(v => v.AttributeId == attribute.Id && v.Version == version)
            .Select(v => v.WeightsKey).SingleOrDefaultAsync(ct);
        if (string.IsNullOrEmpty(weights)) return Results.NotFound();
        return await PreviewAsync(store, store.ModelsBucket, weights.TrimEnd('/') + "/" + AttributesApi.GridFile, ct, MaxPreviewBytes * 8);
    }

    /// <summary>
    /// A small stored image, served only as the raster format its first bytes show (PNG, JPEG, GIF, WebP, BMP): anything
    /// else — an SVG or HTML someone put in a bucket — is never handed to the browser from this origin.
    /// </summary>
    private static async Task<IResult> PreviewAsync(ObjectStore store, string bucket, string key, CancellationToken ct, long maxBytes = MaxPreviewBytes)
    {
        try
        {
            var stat = await store.StatAsync(bucket, key, ct);
            if (stat is null || stat.Size > maxBytes) return Results.NotFound();
            var bytes = await store.GetBytesAsync(bucket, key, maxBytes, ct);
            return RasterType(bytes) is { } type ? Results.File(bytes, type) : Results.NotFound();
        }
        catch (Exception e) when (e is MinioException or ArgumentException or FileNotFoundException)
        {
            return Results.NotFound();
        }
    }

    public static string? RasterType(ReadOnlySpan<byte> b) =>
        b.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G']) ? "image/png"
        : b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]) ? "image/jpeg"
        : b.StartsWith("GIF8"u8) ? "image/gif"
        : b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8) ? "image/webp"
        : b.StartsWith("BM"u8) ? "image/bmp"
        : null;
}
