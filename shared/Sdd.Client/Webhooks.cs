using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Sdd.Client;

/// <summary>The events a webhook may ask for (<c>webhookEvents</c>); none named = every event of its subject.</summary>
public static class WebhookEvents
{
    public const string JobCompleted = "job.completed";
    public const string JobFailed = "job.failed";
    public const string JobCancelled = "job.cancelled";
    public const string RunCompleted = "run.completed";
    public const string RunFailed = "run.failed";

    public static readonly IReadOnlyList<string> All = [JobCompleted, JobFailed, JobCancelled, RunCompleted, RunFailed];
}

public enum DeliveryState { Pending, Delivered, Failed }

/// <summary>One webhook delivery as the API logged it (<c>GET /v1/jobs/{id}/webhooks</c>, <c>GET /v1/runs/{id}/webhooks</c>).</summary>
public sealed record WebhookDelivery(Guid Id, string Event, string Url, DeliveryState State, int Attempts, int? LastStatus, string? LastError,
    DateTimeOffset CreatedAt, DateTimeOffset? DeliveredAt);

/// <summary>What a job or a run a webhook speaks of.</summary>
public sealed record WebhookSubject(string Kind, string Id);

/// <summary>
/// The body of a webhook POST: <see cref="Data"/> is the job's status (<see cref="JobStatus"/>) or the run (<see cref="Run"/>)
/// as <c>GET</c> would answer it when the event happened.
/// </summary>
public sealed record WebhookEvent(string Id, string Event, WebhookSubject Subject, DateTimeOffset At, JsonElement Data)
{
    public const string EventHeader = "X-Sdd-Event";
    public const string DeliveryHeader = "X-Sdd-Delivery";
    public const string TimestampHeader = "X-Sdd-Timestamp";
    public const string SignatureHeader = "X-Sdd-Signature";

    public static WebhookEvent Parse(string body) =>
        JsonSerializer.Deserialize<WebhookEvent>(body, SddJson.Options) ?? throw new JsonException("A webhook body is a JSON object.");

    [JsonIgnore] public JobStatus? Job => Subject.Kind == "job" ? Data.Deserialize<JobStatus>(SddJson.Options) : null;
    [JsonIgnore] public Run? Run => Subject.Kind == "run" ? Data.Deserialize<Run>(SddJson.Options) : null;
}

/// <summary>
/// The signature of a webhook: header <c>X-Sdd-Signature: sha256=&lt;hex HMAC-SHA256(secret, "&lt;timestamp&gt;.&lt;body&gt;")&gt;</c>,
/// with the secret of the key that asked for it (<c>webhookSecret</c> of <c>GET /v1/keys/me</c>).
/// </summary>
public static class WebhookSignature
{
    public const string Scheme = "sha256=";

    /// <summary>The header value the API sends for this timestamp (unix seconds, as in <c>X-Sdd-Timestamp</c>) and body.</summary>
    public static string Sign(string secret, string timestamp, ReadOnlySpan<byte> body) => Scheme + Convert.ToHexStringLower(Mac(secret, timestamp, body));

    public static string Sign(string secret, string timestamp, string body) => Sign(secret, timestamp, Encoding.UTF8.GetBytes(body));

    /// <summary>
    /// Whether <paramref name="header"/> signs <paramref name="body"/> (the raw bytes received) at <paramref name="timestamp"/>,
    /// compared in constant time. With <paramref name="tolerance"/>, a timestamp further than that from <paramref name="now"/>
    /// (default: the clock) is refused too, against replays.
    /// </summary>
    public static bool Verify(string secret, string timestamp, ReadOnlySpan<byte> body, string? header, TimeSpan? tolerance = null, DateTimeOffset? now = null)
    {
        if (string.IsNullOrEmpty(secret) || string.IsNullOrEmpty(header) || !header.StartsWith(Scheme, StringComparison.Ordinal)) return false;
        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)) return false;
        if (tolerance is { } window)
        {
            var at = DateTimeOffset.FromUnixTimeSeconds(seconds);
            if ((at - (now ?? DateTimeOffset.UtcNow)).Duration() > window) return false;
        }
        byte[] given;
        try { given = Convert.FromHexString(header.AsSpan(Scheme.Length)); }
        catch (FormatException) { return false; }
        return CryptographicOperations.FixedTimeEquals(given, Mac(secret, timestamp, body));
    }

    public static bool Verify(string secret, string timestamp, string body, string? header, TimeSpan? tolerance = null, DateTimeOffset? now = null) =>
        Verify(secret, timestamp, Encoding.UTF8.GetBytes(body), header, tolerance, now);

    private static byte[] Mac(string secret, string timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(timestamp + ".");
        var message = new byte[prefix.Length + body.Length];
        prefix.CopyTo(message, 0);
        body.CopyTo(message.AsSpan(prefix.Length));
        return HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), message);
    }
}
