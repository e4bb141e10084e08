namespace Sdd.Client;

/// <summary>How an <see cref="SddClient"/> reaches the API and how hard it tries.</summary>
public sealed record SddClientOptions
{
    /// <summary>The API's address (e.g. http://127.0.0.1:8080); when null, the <see cref="HttpClient.BaseAddress"/> of the given client.</summary>
    public Uri? BaseAddress { get; init; }

    /// <summary>The key sent as <c>X-Api-Key</c> on every API request (never to storage URLs).</summary>
    public required string ApiKey { get; init; }

    /// <summary>
    /// Tries of one call in all: a connection refused or cut, a timeout, 502/503/504, 429 with Retry-After, and a 409 met
    /// by a retry (its own first try still at work under the same Idempotency-Key) are tried again.
    /// </summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>The wait before the first retry; doubled for each further one (up to 10 s), unless the answer's Retry-After says otherwise.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest Retry-After the client waits out; a longer one is thrown at once as an <see cref="SddApiException"/>.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Files PUT to storage at once when uploading.</summary>
    public int UploadParallelism { get; init; } = 8;

    /// <summary>The timeout of one try, for the HttpClient a client makes itself (a given HttpClient keeps its own).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often <c>WaitAsync</c> methods ask for a job's or a run's state.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);
}
