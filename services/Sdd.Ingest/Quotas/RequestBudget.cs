using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;

namespace Sdd.Ingest.Quotas;

/// <summary>
/// What one caller may ask of the API: SDD_RATE_PER_MINUTE requests a minute per owner (per client address without a
/// key), answered 429 with Retry-After beyond; and bodies of at most SDD_MAX_JSON_BYTES unless they are multipart
/// uploads (bounded by SDD_MAX_UPLOAD_BYTES). Health and metrics are not limited.
/// </summary>
public static class RequestBudget
{
    public static IServiceCollection AddRequestBudget(this IServiceCollection services, IngestSettings settings) =>
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            {
                if (context.Request.Path.StartsWithSegments("/healthz") || context.Request.Path.StartsWithSegments("/metrics"))
                    return RateLimitPartition.GetNoLimiter("operations");
                var key = context.User.Identity?.IsAuthenticated == true
                    ? "owner:" + context.User.Owner()
                    : "address:" + context.Connection.RemoteIpAddress;
                return RateLimitPartition.GetFixedWindowLimiter(key, _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = settings.RatePerMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0,
                });
            });
            o.OnRejected = async (rejected, ct) =>
            {
                var retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromMinutes(1);
                await WriteTooManyAsync(rejected.HttpContext, retryAfter,
                    $"More than {settings.RatePerMinute} requests a minute (SDD_RATE_PER_MINUTE); try again in {Math.Ceiling(retryAfter.TotalSeconds)} s.");
            };
        });

    /// <summary>Bodies that are not multipart uploads are small: a larger one is a 413 before it is read.</summary>
    public static IApplicationBuilder UseJsonBodyLimit(this IApplicationBuilder app, IngestSettings settings) => app.Use(async (context, next) =>
    {
        if (!context.Request.HasFormContentType)
        {
            if (context.Request.ContentLength > settings.MaxJsonBytes)
            {
                context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
                await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = context,
                    ProblemDetails = { Status = 413, Title = "Request too large", Detail = $"A request body other than a multipart upload is at most {settings.MaxJsonBytes} bytes (SDD_MAX_JSON_BYTES)." },
                });
                return;
            }
            // A body without a length (chunked) is cut off by the server at the same size.
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = settings.MaxJsonBytes;
        }
        await next(context);
    });

    /// <summary>A 429 problem with Retry-After (seconds).</summary>
    public static async Task WriteTooManyAsync(HttpContext context, TimeSpan retryAfter, string detail)
    {
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = { Status = 429, Title = "Too many requests", Detail = detail },
        });
    }
}

/// <summary>An owner's work in flight: SDD_MAX_ACTIVE_JOBS jobs and SDD_MAX_ACTIVE_RUNS runs not yet finished; one more is a 429.</summary>
public static class OwnerQuota
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(30);

    public static async Task<ProblemHttpResult?> JobsAsync(HttpContext http, SddDbContext db, string owner, IngestSettings settings, CancellationToken ct)
    {
        var active = await db.EditJobs.CountAsync(j => j.Owner == owner && (j.State == JobState.Pending || j.State == JobState.Running), ct);
        return active < settings.MaxActiveJobs ? null : Problems.TooMany(http, RetryAfter,
            $"You have {active} jobs not yet finished; at most {settings.MaxActiveJobs} at once (SDD_MAX_ACTIVE_JOBS). Submit again when one finishes, or cancel one.");
    }

    public static async Task<ProblemHttpResult?> RunsAsync(HttpContext http, SddDbContext db, string owner, IngestSettings settings, CancellationToken ct)
    {
        var active = await db.TrainingRuns.CountAsync(r => r.Owner == owner && (r.State == RunState.Queued || r.State == RunState.Running), ct);
        return active < settings.MaxActiveRuns ? null : Problems.TooMany(http, RetryAfter,
            $"You have {active} runs (teachers or editors) not yet finished; at most {settings.MaxActiveRuns} at once (SDD_MAX_ACTIVE_RUNS).");
    }
}
