using System.Text;
using Npgsql;

namespace Sdd.Ingest.Webhooks;

/// <summary>
/// Posts due webhook deliveries, signed with the owner's secret: a 2xx answer delivers, anything else (or no answer)
/// is retried with backoff (5 s doubling, at most an hour apart) until SDD_WEBHOOK_ATTEMPTS posts, then the delivery
/// fails with its last status and error in the log. A delivery is claimed by pushing its next attempt two minutes out,
/// so replicas share the work and one that dies mid-post leaves it to be retried. Redirects are not followed.
/// Every 30 s it also enqueues the finishes whose completion event was lost (a worker killed after recording its
/// last item, or the sweeper giving up on lost items).
/// </summary>
public sealed class WebhookDeliverer(IServiceScopeFactory scopes, IHttpClientFactory clients, IngestSettings settings, ILogger<WebhookDeliverer> log)
    : BackgroundService
{
    public const string ClientName = "webhooks";
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan BackstopEvery = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Claim = TimeSpan.FromMinutes(2);

    public static TimeSpan Backoff(int attempts) => TimeSpan.FromSeconds(Math.Min(3600, 5 * Math.Pow(2, Math.Max(0, attempts - 1))));

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        var lastBackstop = DateTimeOffset.MinValue;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (DateTimeOffset.UtcNow - lastBackstop > BackstopEvery)
                {
                    await BackstopAsync(stop);
                    lastBackstop = DateTimeOffset.UtcNow;
                }
                if (await DeliverDueAsync(stop) > 0) continue;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return; }
            catch (Exception e) { log.LogWarning(e, "Webhook delivery pass failed; trying again"); }
            try { await Task.Delay(Poll, stop); } catch (OperationCanceledException) { return; }
        }
    }

    private sealed record Due(Guid Id, string Owner, string Event, string Url, string Payload, int Attempts);

    public async Task<int> DeliverDueAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SddDbContext>();
        var due = new List<Due>();
        var connection = (NpgsqlConnection)db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(ct);
        try
        {
            await using var claim = new NpgsqlCommand("""
                UPDATE webhook_deliveries SET "NextAttemptAt" = now() + @claim, "Attempts" = "Attempts" + 1
                 WHERE "Id" IN (SELECT "Id" FROM webhook_deliveries WHERE "State" = 'Pending' AND "NextAttemptAt" <= now()
                                ORDER BY "NextAttemptAt" LIMIT 16 FOR UPDATE SKIP LOCKED)
                RETURNING "Id", "Owner", "Event", "Url", "Payload", "Attempts"
                """, connection);
            claim.Parameters.AddWithValue("claim", Claim);
            await using var reader = await claim.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                due.Add(new Due(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetInt32(5)));
        }
        finally { await db.Database.CloseConnectionAsync(); }

        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (d, token) =>
        {
            await using var inner = scopes.CreateAsyncScope();
            await PostAsync(inner.ServiceProvider.GetRequiredService<SddDbContext>(), d, token);
        });
        return due.Count;
    }

    private async Task PostAsync(SddDbContext db, Due d, CancellationToken ct)
    {
        int? status = null;
        string? error = null;
        try
        {
            var secret = await WebhookEvents.SecretAsync(db, d.Owner, settings, ct);
            var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            using var request = new HttpRequestMessage(HttpMethod.Post, d.Url) { Content = new StringContent(d.Payload, Encoding.UTF8, "application/json") };
            request.Headers.Add(WebhookEvents.EventHeader, d.Event);
            request.Headers.Add(WebhookEvents.DeliveryHeader, d.Id.ToString());
            request.Headers.Add(WebhookEvents.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add(WebhookEvents.SignatureHeader, WebhookEvents.Sign(secret, timestamp, d.Payload));
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(settings.WebhookTimeout);
            using var response = await clients.CreateClient(ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode) error = $"answered {status} {response.ReasonPhrase}";
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { error = $"no answer within {settings.WebhookTimeout.TotalSeconds:0} s"; }
        catch (HttpRequestException e) { error = Category(e); }

        var now = DateTimeOffset.UtcNow;
        if (error is null)
        {
            await db.WebhookDeliveries.Where(x => x.Id == d.Id).ExecuteUpdateAsync(s => s
                .SetProperty(x => x.State, DeliveryState.Delivered).SetProperty(x => x.DeliveredAt, now)
                .SetProperty(x => x.LastStatus, status).SetProperty(x => x.LastError, (string?)null), CancellationToken.None);
            log.LogInformation("Webhook {Event} delivered to {Url} ({Status}, attempt {Attempt})", d.Event, d.Url, status, d.Attempts);
            return;
        }
        var giveUp = d.Attempts >= settings.WebhookAttempts;
        await db.WebhookDeliveries.Where(x => x.Id == d.Id).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.State, giveUp ? DeliveryState.Failed : DeliveryState.Pending)
            .SetProperty(x => x.NextAttemptAt, now + Backoff(d.Attempts))
            .SetProperty(x => x.LastStatus, status).SetProperty(x => x.LastError, error), CancellationToken.None);
        log.LogWarning("Webhook {Event} to {Url} attempt {Attempt}: {Error}{GiveUp}", d.Event, d.Url, d.Attempts, error, giveUp ? "; given up" : "");
    }

    /// <summary>
    /// What a failed post is reported as: a category, not the exception's text, so that the delivery log tells a client
    /// nothing about the network beyond whether its receiver answered.
    /// </summary>
    public static string Category(HttpRequestException e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            switch (x)
            {
                case WebhookRefusedException: return "refused by the webhook egress policy (a loopback, private, link-local or reserved address, or a port not allowed)";
                case System.Net.Sockets.SocketException s when s.SocketErrorCode == System.Net.Sockets.SocketError.HostNotFound: return "the host name does not resolve";
                case System.Security.Authentication.AuthenticationException: return "the TLS handshake failed";
            }
        return "could not connect";
    }

    /// <summary>Finished jobs and runs with a webhook and no delivery row yet, finished over half a minute ago.</summary>
    public async Task BackstopAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SddDbContext>();
        var outbox = scope.ServiceProvider.GetRequiredService<WebhookOutbox>();
        var before = DateTimeOffset.UtcNow - BackstopEvery;
        var jobs = await db.EditJobs.AsNoTracking()
            .Where(j => j.WebhookUrl != null && (j.State == JobState.Completed || j.State == JobState.Failed || j.State == JobState.Cancelled)
                        && j.FinishedAt < before && !db.WebhookDeliveries.Any(d => d.SubjectId == j.Id))
            .Select(j => j.Id).Take(100).ToListAsync(ct);
        foreach (var id in jobs)
            if (await outbox.JobFinishedAsync(id, ct)) log.LogInformation("Webhook of job {JobId} enqueued by the backstop (its completion event was lost)", id);
        var runs = await db.TrainingRuns.AsNoTracking()
            .Where(r => r.WebhookUrl != null && (r.State == RunState.Completed || r.State == RunState.Failed || r.State == RunState.Cancelled)
                        && r.FinishedAt < before && !db.WebhookDeliveries.Any(d => d.SubjectId == r.Id))
            .Select(r => r.Id).Take(100).ToListAsync(ct);
        foreach (var id in runs)
            if (await outbox.RunFinishedAsync(id, ct)) log.LogInformation("Webhook of run {RunId} enqueued by the backstop", id);
    }
}
