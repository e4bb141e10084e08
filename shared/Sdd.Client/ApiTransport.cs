namespace Sdd.Client;

/// <summary>
/// One HTTP exchange with the API or storage, tried again on passing failures. Every POST carries an
/// <c>Idempotency-Key</c>: a fresh one per call, the same on that call's retries, so a retried creation is done once.
/// </summary>
internal sealed class ApiTransport(HttpClient http, Uri baseAddress, SddClientOptions options)
{
    public const string ApiKeyHeader = "X-Api-Key";
    public const string IdempotencyKeyHeader = "Idempotency-Key";
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    public SddClientOptions Options => options;
    public Uri BaseAddress => baseAddress;

    public Uri Absolute(string path) => new(baseAddress, path.TrimStart('/'));

    /// <summary>
    /// Sends until a 2xx answer (returned; the caller disposes it) or a failure that is not passing, or tries run out
    /// (an <see cref="SddApiException"/>, or the last connection error). <paramref name="content"/> makes the body anew for each try.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, Func<HttpContent>? content, bool withKey, CancellationToken ct,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead, string? idempotencyKey = null)
    {
        if (method == HttpMethod.Post) idempotencyKey ??= Guid.NewGuid().ToString();
        var shown = Shown(uri);
        for (int attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, uri) { Content = content?.Invoke() };
            if (withKey) request.Headers.TryAddWithoutValidation(ApiKeyHeader, options.ApiKey);
            if (idempotencyKey is not null) request.Headers.TryAddWithoutValidation(IdempotencyKeyHeader, idempotencyKey);
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, completion, ct);
            }
            catch (HttpRequestException e) when (attempt < options.MaxAttempts && IsPassing(e))
            {
                await Task.Delay(Backoff(attempt), ct);
                continue;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested && attempt < options.MaxAttempts) // the client's timeout
            {
                await Task.Delay(Backoff(attempt), ct);
                continue;
            }
            if (response.IsSuccessStatusCode) return response;
            if (attempt < options.MaxAttempts && RetryDelay(response, attempt, idempotencyKey is not null) is { } delay)
            {
                response.Dispose();
                await Task.Delay(delay, ct);
                continue;
            }
            using (response) throw await SddApiException.FromResponseAsync(method, shown, response, ct);
        }
    }

    public Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, Func<HttpContent>? content, CancellationToken ct,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead) =>
        SendAsync(method, Absolute(path), content, withKey: true, ct, completion);

    public async Task<T> GetAsync<T>(string path, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Get, path, null, ct);
        return await ReadAsync<T>(response, path, ct);
    }

    public async Task<T> SendJsonAsync<TBody, T>(HttpMethod method, string path, TBody body, CancellationToken ct)
    {
        using var response = await SendAsync(method, path, () => JsonContent.Create(body, options: SddJson.Options), ct);
        return await ReadAsync<T>(response, path, ct);
    }

    /// <summary>A request without a body whose answer is JSON.</summary>
    public async Task<T> SendAsync<T>(HttpMethod method, string path, CancellationToken ct)
    {
        using var response = await SendAsync(method, path, null, ct);
        return await ReadAsync<T>(response, path, ct);
    }

    public async Task SendAsync(HttpMethod method, string path, CancellationToken ct)
    {
        using var _ = await SendAsync(method, path, null, ct);
    }

    /// <summary>A page of a list route. A bare JSON array (what list routes answered before paging) is one last page.</summary>
    public async Task<Page<T>> GetPageAsync<T>(string path, string? cursor, int? limit, CancellationToken ct, params (string Name, string? Value)[] query)
    {
        if (limit is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(limit), limit, "A page holds 1 to 1000 items.");
        var url = path + Query([.. query, ("limit", limit?.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("cursor", cursor)]);
        using var response = await SendAsync(HttpMethod.Get, url, null, ct);
        using var doc = await ReadAsync<JsonDocument>(response, url, ct);
        var root = doc.RootElement;
        if (root.ValueKind == JsonValueKind.Array) return new Page<T>(root.Deserialize<List<T>>(SddJson.Options)!, null);
        var items = root.TryGetProperty("items", out var i) ? i.Deserialize<List<T>>(SddJson.Options) ?? [] : [];
        var next = root.TryGetProperty("next", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
        return new Page<T>(items, string.IsNullOrEmpty(next) ? null : next);
    }

    public static string Query(params (string Name, string? Value)[] pairs)
    {
        var given = pairs.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return given.Count == 0 ? "" : "?" + string.Join('&', given);
    }

    public static string Segment(string value) => Uri.EscapeDataString(value);

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, string path, CancellationToken ct)
    {
        try
        {
            return await response.Content.ReadFromJsonAsync<T>(SddJson.Options, ct)
                ?? throw new InvalidDataException($"{path}: the API answered {(int)response.StatusCode} without a body.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: the API's answer is not what this client expects: {e.Message}", e);
        }
    }

    /// <summary>How long to wait before trying again, or null when the answer is final.</summary>
    private TimeSpan? RetryDelay(HttpResponseMessage response, int attempt, bool keyed)
    {
        var after = SddApiException.RetryAfterOf(response);
        if (after > options.MaxRetryAfter) return null;
        return (int)response.StatusCode switch
        {
            429 => after, // only when the API says when
            502 or 503 or 504 => after ?? Backoff(attempt),
            // A retry of ours meeting our own first try still at work (same Idempotency-Key): wait for its answer to be replayed.
            // A first try's 409 is a real conflict (a name taken) and is thrown at once.
            409 when keyed && attempt > 1 => after ?? Backoff(attempt),
            _ => null,
        };
    }

    private TimeSpan Backoff(int attempt)
    {
        var wait = options.RetryDelay * Math.Pow(2, attempt - 1) * (0.8 + 0.4 * Random.Shared.NextDouble());
        return wait > MaxBackoff ? MaxBackoff : wait;
    }

    /// <summary>Failures of the connection, not of the request: refused, reset, cut mid-answer.</summary>
    private static bool IsPassing(HttpRequestException e) =>
        e is not SddApiException && e.StatusCode is null &&
        e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.ResponseEnded or HttpRequestError.Unknown;

    /// <summary>A URL as error messages show it: an API route as its path and query, any other URL without its query (a presigned URL's signature).</summary>
    private string Shown(Uri uri) => baseAddress.IsBaseOf(uri) ? "/" + baseAddress.MakeRelativeUri(uri) : uri.GetLeftPart(UriPartial.Path);
}
