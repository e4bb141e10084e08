namespace Sdd.Client;

/// <summary>
/// An answer other than 2xx, from the problem details (RFC 7807) the API sends: <see cref="Status"/>, <see cref="Title"/>,
/// <see cref="Detail"/> and, for 429 and 503, the <see cref="RetryAfter"/> it asked for. An <see cref="HttpRequestException"/>
/// (with <see cref="HttpRequestException.StatusCode"/> set), so code that catches those catches these too.
/// </summary>
public sealed class SddApiException : HttpRequestException
{
    public SddApiException(HttpMethod method, string path, int status, string title, string? detail, TimeSpan? retryAfter, string body)
        : base($"{method} {path}: {status} {title}{(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}", null, (HttpStatusCode)status)
    {
        Method = method;
        Path = path;
        Status = status;
        Title = title;
        Detail = detail;
        RetryAfter = retryAfter;
        Body = body;
    }

    public HttpMethod Method { get; }
    /// <summary>The request's path (and query) or, for storage, its URL without the signature.</summary>
    public string Path { get; }
    public int Status { get; }
    public string Title { get; }
    public string? Detail { get; }
    public TimeSpan? RetryAfter { get; }
    /// <summary>The answer's body as text (at most 64 KiB), for diagnostics.</summary>
    public string Body { get; }

    internal const int MaxBody = 64 * 1024;

    internal static async Task<SddApiException> FromResponseAsync(HttpMethod method, string path, HttpResponseMessage response, CancellationToken ct)
    {
        string body;
        try
        {
            body = await response.Content.ReadAsStringAsync(ct);
            if (body.Length > MaxBody) body = body[..MaxBody];
        }
        catch (Exception e) when (e is HttpRequestException or IOException) { body = ""; }
        var status = (int)response.StatusCode;
        string title = response.ReasonPhrase is { Length: > 0 } reason ? reason : ((HttpStatusCode)status).ToString();
        string? detail = null;
        if (body.Length > 0 && body.TrimStart().StartsWith('{'))
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                var root = doc.RootElement;
                if (root.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String) title = t.GetString()!;
                if (root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String) detail = d.GetString();
            }
            catch (JsonException) { }
        }
        else if (body.Length > 0 && !(response.Content.Headers.ContentType?.MediaType?.Contains("html", StringComparison.OrdinalIgnoreCase) ?? false))
        {
            detail = body.Trim();
        }
        return new SddApiException(method, path, status, title, detail, RetryAfterOf(response), body);
    }

    internal static TimeSpan? RetryAfterOf(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta) return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        if (header?.Date is { } date)
        {
            var wait = date - DateTimeOffset.UtcNow;
            return wait < TimeSpan.Zero ? TimeSpan.Zero : wait;
        }
        return null;
    }
}
