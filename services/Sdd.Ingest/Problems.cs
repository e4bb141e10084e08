using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;

namespace Sdd.Ingest;

/// <summary>Typed problem results with a title and a detail a person can act on.</summary>
public static class Problems
{
    public static ProblemHttpResult Status(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, title: title, statusCode: status);

    public static ProblemHttpResult BadRequest(string detail) => Status(400, "Bad request", detail);
    public static ProblemHttpResult NotFound(string detail) => Status(404, "Not found", detail);
    public static ProblemHttpResult Conflict(string detail) => Status(409, "Conflict", detail);
    public static ProblemHttpResult TooLarge(string detail) => Status(413, "Request too large", detail);
    public static ProblemHttpResult Unsupported(string detail) => Status(415, "Unsupported media type", detail);
    public static ProblemHttpResult Unprocessable(string detail) => Status(422, "Unprocessable content", detail);

    /// <summary>A 429 for a quota (the caller's active jobs or runs); Retry-After is set on the response.</summary>
    public static ProblemHttpResult TooMany(HttpContext context, TimeSpan retryAfter, string detail)
    {
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Status(429, "Too many requests", detail);
    }
}

/// <summary>Exceptions as problem details: bad bodies are 400, size limits 413, the rest 500 (logged).</summary>
public sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> log) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        var (status, title, detail) = exception switch
        {
            BadHttpRequestException { StatusCode: 413 } => (413, "Request too large", "The request body is larger than this server accepts (SDD_MAX_UPLOAD_BYTES)."),
            InvalidDataException e when e.Message.Contains("length limit", StringComparison.OrdinalIgnoreCase)
                => (413, "Request too large", "The request body is larger than this server accepts (SDD_MAX_UPLOAD_BYTES)."),
            BadHttpRequestException e => (e.StatusCode, "Bad request", BadBodyDetail(e)),
            JsonException e => (400, "Bad request", $"The body is not valid JSON: {e.Message}"),
            InvalidDataException e => (400, "Bad request", e.Message),
            _ => (500, "Internal error", "The server failed to handle the request; it has been logged."),
        };
        if (status >= 500) log.LogError(exception, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);
        if (context.Response.HasStarted) return false;
        context.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }

    private static string BadBodyDetail(BadHttpRequestException e) =>
        e.InnerException is JsonException json ? $"The body is not valid JSON: {json.Message}" : e.Message;
}
