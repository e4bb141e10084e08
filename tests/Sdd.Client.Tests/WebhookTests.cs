using System.Security.Cryptography;

namespace Sdd.Client.Tests;

public sealed class WebhookTests
{
    private const string Secret = "whsec_test";
    private const string Body = """{"id":"d1","event":"job.completed","subject":{"kind":"job","id":"9c41e5a4-0000-4000-8000-000000000001"},"at":"2026-01-02T03:04:05Z","data":{"id":"9c41e5a4-0000-4000-8000-000000000001","attribute":"smiling","editorVersion":1,"state":"completed","total":2,"counts":{"pending":0,"done":2,"failed":0,"cancelled":0},"createdAt":"2026-01-02T03:00:00Z","startedAt":null,"finishedAt":null,"imagesPerSecond":3.5,"etaSeconds":null,"completedWithErrors":false,"outputFormat":null,"webhook":"https://example.com/h"}}""";

    [Fact]
    public void A_signature_is_the_hex_HMAC_SHA256_of_timestamp_dot_body_and_verifies_only_unchanged()
    {
        var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes("1767323045." + Body)));

        Assert.Equal(expected, WebhookSignature.Sign(Secret, "1767323045", Body));
        Assert.True(WebhookSignature.Verify(Secret, "1767323045", Body, expected));
        Assert.True(WebhookSignature.Verify(Secret, "1767323045", Body, expected.ToUpperInvariant().Replace("SHA256=", "sha256=")));
        Assert.False(WebhookSignature.Verify(Secret, "1767323045", Body.Replace("completed", "cancelled"), expected));
        Assert.False(WebhookSignature.Verify(Secret, "1767323046", Body, expected));
        Assert.False(WebhookSignature.Verify("other", "1767323045", Body, expected));
        Assert.False(WebhookSignature.Verify(Secret, "1767323045", Body, expected[7..]));
        Assert.False(WebhookSignature.Verify(Secret, "1767323045", Body, "sha256=zz"));
        Assert.False(WebhookSignature.Verify(Secret, "1767323045", Body, null));
        var at = DateTimeOffset.FromUnixTimeSeconds(1767323045);
        Assert.True(WebhookSignature.Verify(Secret, "1767323045", Body, expected, TimeSpan.FromMinutes(5), at.AddMinutes(4)));
        Assert.False(WebhookSignature.Verify(Secret, "1767323045", Body, expected, TimeSpan.FromMinutes(5), at.AddMinutes(6)));
    }

    [Fact]
    public void A_webhook_body_parses_with_its_job_status()
    {
        var e = WebhookEvent.Parse(Body);

        Assert.Equal((WebhookEvents.JobCompleted, "job"), (e.Event, e.Subject.Kind));
        Assert.Equal(JobState.Completed, e.Job!.State);
        Assert.Equal(2, e.Job.Counts.Done);
        Assert.Null(e.Run);
    }
}
