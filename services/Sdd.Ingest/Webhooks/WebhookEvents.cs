using System.Security.Cryptography;
using System.Text;

namespace Sdd.Ingest.Webhooks;

/// <summary>The events a job or run announces, the checks on a webhook a client asks for, and the signature.</summary>
public static class WebhookEvents
{
    public const string JobCompleted = "job.completed";
    public const string JobFailed = "job.failed";
    public const string JobCancelled = "job.cancelled";
    public const string RunCompleted = "run.completed";
    public const string RunFailed = "run.failed";

    public static readonly string[] ForJobs = [JobCompleted, JobFailed, JobCancelled];
    public static readonly string[] ForRuns = [RunCompleted, RunFailed];

    public const string EventHeader = "X-Sdd-Event";
    public const string DeliveryHeader = "X-Sdd-Delivery";
    public const string TimestampHeader = "X-Sdd-Timestamp";
    public const string SignatureHeader = "X-Sdd-Signature";

    /// <summary>
    /// Checks a webhook request: an absolute http(s) URL to a host SDD_WEBHOOK_HOSTS allows, and events of the subject's
    /// kind. Returns the normalised event list (null: all of them) or a 422 problem.
    /// </summary>
    public static ProblemHttpResult? Check(string? url, IEnumerable<string>? events, string[] known, IngestSettings settings, out string? normalised)
    {
        normalised = null;
        if (url is null) return events?.Any() == true ? Problems.Unprocessable("webhookEvents needs a webhook URL.") : null;
        if (url.Length > 2048 || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(uri.UserInfo))
            return Problems.Unprocessable("webhook must be an absolute http or https URL of at most 2048 characters, without credentials.");
        var host = uri.IdnHost.Trim('[', ']');
        if (!settings.WebhookHosts.Contains("*") && !settings.WebhookHosts.Any(h => string.Equals(h.Trim('[', ']'), host, StringComparison.OrdinalIgnoreCase)))
            return Problems.Unprocessable($"webhook host '{host}' is not one this service may call (SDD_WEBHOOK_HOSTS: {string.Join(", ", settings.WebhookHosts)}).");
        // An address written out (in any of its spellings, which Uri normalises) or localhost is checked now; a name again when it is called.
        var egress = new WebhookEgress(settings);
        var literal = System.Net.IPAddress.TryParse(host, out var ip) ? ip
            : host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase) ? System.Net.IPAddress.Loopback : null;
        if (literal is not null && egress.Refusal(host, literal, uri.Port) is { } refused)
            return Problems.Unprocessable($"webhook {uri.GetLeftPart(UriPartial.Authority)}: {refused}.");
        if (literal is null && egress.Refusal(host, System.Net.IPAddress.Parse("8.8.8.8"), uri.Port) is { } badPort)
            return Problems.Unprocessable($"webhook {uri.GetLeftPart(UriPartial.Authority)}: {badPort}.");
        var list = events?.Select(e => e.Trim()).Where(e => e.Length > 0).Distinct().ToList();
        if (list is { Count: > 0 })
        {
            if (list.FirstOrDefault(e => !known.Contains(e)) is { } unknown)
                return Problems.Unprocessable($"Unknown webhook event '{unknown}'; choose from {string.Join(", ", known)}.");
            normalised = string.Join(',', list);
        }
        return null;
    }

    public static bool Wants(string? events, string name) => events is null || events.Split(',').Contains(name);

    /// <summary><c>sha256=</c> and the hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of "&lt;timestamp&gt;.&lt;body&gt;".</summary>
    public static string Sign(string secret, long timestamp, string body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp}.{body}")));

    /// <summary>The signing secret of an owner: its key's own (made on first use), or for the bootstrap admin one derived from the admin key.</summary>
    public static async Task<string> SecretAsync(SddDbContext db, string owner, IngestSettings settings, CancellationToken ct)
    {
        if (!Guid.TryParse(owner, out var id))
            return Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(settings.AdminKey), "sdd-webhook-secret"u8));
        var fresh = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        await db.ApiClients.Where(c => c.Id == id && c.WebhookSecret == null).ExecuteUpdateAsync(s => s.SetProperty(c => c.WebhookSecret, fresh), ct);
        return await db.ApiClients.Where(c => c.Id == id).Select(c => c.WebhookSecret).SingleOrDefaultAsync(ct)
            ?? throw new InvalidOperationException($"No key {owner} to sign its webhooks with");
    }
}
