using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.Features;

namespace Sdd.Ingest.Operations;

/// <summary>
/// <c>Idempotency-Key</c> on POST: the first request with a key is answered and its answer kept (per owner, for
/// SDD_IDEMPOTENCY_HOURS); a retry with the same key and the same request gets that answer again, marked
/// <c>Idempotent-Replayed: true</c>, and creates nothing; the same key with a different request is a 422, and while the
/// first is still being answered a 409. The request is compared by method, path, query and content: a multipart body by
/// its fields and each file's name and bytes (so a retry with a new boundary is still the same request), any other body
/// byte for byte. Server errors and 429s are not kept: the retry runs again.
/// </summary>
public static class Idempotency
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    /// <summary>How long a first request may stay unanswered before it counts as lost (longer than any upload takes).</summary>
    public static readonly TimeSpan Abandoned = TimeSpan.FromMinutes(15);

    public static IApplicationBuilder UseIdempotencyKeys(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (!HttpMethods.IsPost(context.Request.Method) || !context.Request.Headers.TryGetValue(Header, out var values)
            || context.User.Identity?.IsAuthenticated != true)
        {
            await next(context);
            return;
        }
        var key = values.ToString();
        var problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        if (key.Length is < 1 or > 255 || key.Any(c => c is < ' ' or > '~'))
        {
            await WriteProblem(context, problems, 400, "Bad request", $"{Header} is 1 to 255 printable ASCII characters.");
            return;
        }
        var db = context.RequestServices.GetRequiredService<SddDbContext>();
        var settings = context.RequestServices.GetRequiredService<IngestSettings>();
        var owner = context.User.Owner();
        var hash = await HashRequestAsync(context.Request, settings);
        var ct = context.RequestAborted;

        var now = DateTimeOffset.UtcNow;
        // An answer past its retention is forgotten; so is a first request that never finished (its process died
        // mid-way): after Abandoned its retry runs again instead of meeting a 409 for the rest of the day.
        await db.IdempotencyRecords.Where(r => r.Owner == owner && r.Key == key
                && (r.CreatedAt < now - settings.IdempotencyRetention || (r.StatusCode == 0 && r.CreatedAt < now - Abandoned)))
            .ExecuteDeleteAsync(ct);
        var claimed = await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO idempotency_records ("Owner", "Key", "RequestHash", "StatusCode", "CreatedAt")
            VALUES ({owner}, {key}, {hash}, 0, {now}) ON CONFLICT DO NOTHING
            """, ct) == 1;
        if (!claimed)
        {
            var kept = await db.IdempotencyRecords.AsNoTracking().SingleOrDefaultAsync(r => r.Owner == owner && r.Key == key, ct);
            if (kept is null)
                await WriteProblem(context, problems, 409, "Conflict", $"The request with this {Header} was just given up; send it again.");
            else if (kept.RequestHash != hash)
                await WriteProblem(context, problems, 422, "Unprocessable content",
                    $"This {Header} was used for a different request within {settings.IdempotencyRetention.TotalHours:0} h; use a new key for a new request.");
            else if (kept.StatusCode == 0)
            {
                context.Response.Headers.RetryAfter = "1";
                await WriteProblem(context, problems, 409, "Conflict", $"The first request with this {Header} is still being answered; retry shortly.");
            }
            else
            {
                context.Response.StatusCode = kept.StatusCode;
                context.Response.Headers[ReplayedHeader] = "true";
                if (kept.Location is not null) context.Response.Headers.Location = kept.Location;
                if (kept.ContentType is not null) context.Response.ContentType = kept.ContentType;
                if (kept.Body is { Length: > 0 } body) await context.Response.Body.WriteAsync(body, ct);
            }
            return;
        }

        // The first request: answer it, keeping a copy of what is sent (answers to POSTs are small JSON).
        var original = context.Response.Body;
        using var copy = new MemoryStream();
        context.Response.Body = copy;
        var keep = false;
        try
        {
            await next(context);
            var status = context.Response.StatusCode;
            keep = status < 500 && status != StatusCodes.Status429TooManyRequests && copy.Length <= 1 << 20;
            if (keep)
                await db.IdempotencyRecords.Where(r => r.Owner == owner && r.Key == key).ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.StatusCode, status)
                    .SetProperty(r => r.ContentType, context.Response.ContentType)
                    .SetProperty(r => r.Location, context.Response.Headers.Location.ToString() is { Length: > 0 and <= 500 } l ? l : null)
                    .SetProperty(r => r.Body, copy.ToArray()), CancellationToken.None);
        }
        finally
        {
            context.Response.Body = original;
            if (!keep)
                await db.IdempotencyRecords.Where(r => r.Owner == owner && r.Key == key && r.StatusCode == 0).ExecuteDeleteAsync(CancellationToken.None);
            copy.Position = 0;
            if (copy.Length > 0) await copy.CopyToAsync(original, CancellationToken.None);
        }
    });

    /// <summary>Forgets answers older than the retention (called by the dispatch sweeper).</summary>
    public static Task<int> ExpireAsync(SddDbContext db, IngestSettings settings, CancellationToken ct)
    {
        var before = DateTimeOffset.UtcNow - settings.IdempotencyRetention;
        return db.IdempotencyRecords.Where(r => r.CreatedAt < before).ExecuteDeleteAsync(ct);
    }

    private static async Task<string> HashRequestAsync(HttpRequest request, IngestSettings settings)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            hash.AppendData(BitConverter.GetBytes(bytes.Length));
            hash.AppendData(bytes);
        }
        Add(request.Method);
        Add(request.Path.Value ?? "");
        Add(request.QueryString.Value ?? "");
        if (request.HasFormContentType)
        {
            // Read once here; the form is cached for the endpoint, which reads it again without touching the body.
            var form = await request.ReadFormAsync(request.HttpContext.RequestAborted);
            foreach (var field in form.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                Add(field.Key);
                foreach (var value in field.Value) Add(value ?? "");
            }
            foreach (var file in form.Files)
            {
                Add(file.Name);
                Add(file.FileName);
                await using var content = file.OpenReadStream();
                hash.AppendData(await SHA256.HashDataAsync(content, request.HttpContext.RequestAborted));
            }
        }
        else
        {
            Add(request.ContentType ?? "");
            request.EnableBuffering(bufferThreshold: 64 * 1024, bufferLimit: settings.MaxUploadBytes);
            hash.AppendData(await SHA256.HashDataAsync(request.Body, request.HttpContext.RequestAborted));
            request.Body.Position = 0;
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static async Task WriteProblem(HttpContext context, IProblemDetailsService problems, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        await problems.WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = { Status = status, Title = title, Detail = detail } });
    }
}
