using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Sdd.Ingest.Tests;

/// <summary>What users of a batch API expect: their jobs listed and paged, retry-safe POSTs, webhooks they can trust.</summary>
public class BatchApiTests(IngestHost host) : IClassFixture<IngestHost>
{
    private static MultipartFormDataContent Upload(string attribute, params (string Name, byte[] Content)[] files) =>
        Form(attribute, [], files);

    private static MultipartFormDataContent Form(string attribute, (string Field, string Value)[] fields, params (string Name, byte[] Content)[] files)
    {
        var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" } };
        foreach (var (field, value) in fields) form.Add(new StringContent(value), field);
        foreach (var (name, content) in files) form.Add(new ByteArrayContent(content), "files", name);
        return form;
    }

    private static async Task<Guid> JobIdAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();
    }

    [Fact]
    public async Task Ones_jobs_are_listed_newest_first_page_by_page_and_filtered_and_nobody_elses()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        var ids = new List<Guid>();
        for (int i = 0; i < 3; i++) ids.Add(await JobIdAsync(await client.PostAsync("/v1/jobs", Upload(attribute, ($"{i}.png", TestData.Png())))));
        await client.PostAsync($"/v1/jobs/{ids[0]}/cancel", null);

        var first = await client.GetFromJsonAsync<JsonElement>("/v1/jobs?limit=2");
        Assert.Equal([ids[2], ids[1]], first.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetGuid()));
        var second = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs?limit=2&cursor={Uri.EscapeDataString(first.GetProperty("next").GetString()!)}");
        Assert.Equal([ids[0]], second.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetGuid()));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("next").ValueKind);

        var cancelled = await client.AllAsync("/v1/jobs?state=cancelled");
        Assert.Equal([ids[0]], cancelled.Select(j => j.GetProperty("id").GetGuid()));
        Assert.Equal(2, (await client.AllAsync("/v1/jobs?state=queued")).Count);
        Assert.Equal(3, (await client.AllAsync($"/v1/jobs?attribute={attribute}")).Count);
        Assert.Empty(await client.AllAsync("/v1/jobs?attribute=no-such-attribute"));
        var created = first.GetProperty("items")[1].GetProperty("createdAt").GetDateTimeOffset();
        Assert.Equal([ids[2], ids[1]], (await client.AllAsync($"/v1/jobs?createdAfter={Uri.EscapeDataString(created.ToString("O"))}"))
            .Select(j => j.GetProperty("id").GetGuid()));
        await ProblemAssert.IsProblem(await client.GetAsync("/v1/jobs?state=sideways"), HttpStatusCode.BadRequest);

        var (_, otherKey) = await host.NewKeyAsync();
        using var other = host.Client(otherKey);
        Assert.Empty(await other.AllAsync("/v1/jobs"));
    }

    [Fact]
    public async Task A_post_retried_with_its_idempotency_key_makes_one_job_and_the_key_cannot_be_reused_for_another_request()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        var png = TestData.Png();
        async Task<HttpResponseMessage> Post(string idempotencyKey, byte[] content)
        {
            // A new form each time, as a client rebuilding its request would: a new multipart boundary, the same request.
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = Upload(attribute, ("a.png", content)) };
            request.Headers.Add("Idempotency-Key", idempotencyKey);
            return await client.SendAsync(request);
        }

        var first = await Post("retry-1", png);
        var again = await Post("retry-1", png);
        var jobId = await JobIdAsync(first);
        Assert.Equal(jobId, await JobIdAsync(again));
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal($"/v1/jobs/{jobId}", again.Headers.Location?.OriginalString);
        await using (var db = host.Db())
        {
            Assert.Equal(1, await db.EditJobs.CountAsync(j => j.Owner == owner));
            Assert.Equal(1, await db.JobItems.CountAsync(i => i.JobId == jobId));
        }

        var detail = await ProblemAssert.IsProblem(await Post("retry-1", TestData.Png(8, 8, 3)), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("different request", detail);
        Assert.NotEqual(jobId, await JobIdAsync(await Post("retry-2", png))); // a new key is a new job

        // JSON bodies too; a key first used on another route is a different request; another owner's same key is its own.
        async Task<HttpResponseMessage> OpenUpload(string idempotencyKey)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/uploads") { Content = JsonContent.Create(new { files = new[] { "x.png" } }) };
            request.Headers.Add("Idempotency-Key", idempotencyKey);
            return await client.SendAsync(request);
        }
        async Task<Guid> UploadId(HttpResponseMessage response) => (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        Assert.Equal(await UploadId(await OpenUpload("upload-1")), await UploadId(await OpenUpload("upload-1")));
        await ProblemAssert.IsProblem(await OpenUpload("retry-1"), HttpStatusCode.UnprocessableEntity);
        await using (var db = host.Db()) Assert.Equal(1, await db.Uploads.CountAsync(u => u.Owner == owner));

        var (_, otherKey) = await host.NewKeyAsync();
        using var other = host.Client(otherKey);
        var otherAttribute = await host.ReadyAttributeAsync((await other.GetFromJsonAsync<JsonElement>("/v1/keys/me")).GetProperty("id").GetString()!);
        using var theirs = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = Upload(otherAttribute, ("a.png", png)) };
        theirs.Headers.Add("Idempotency-Key", "retry-1");
        Assert.NotEqual(jobId, await JobIdAsync(await other.SendAsync(theirs)));

        // A first request whose process died mid-way leaves an unanswered record: a retry after the abandon window
        // runs again (without the window it would meet a 422 or 409 for the rest of the day).
        async Task LeaveUnanswered(string idempotencyKey, TimeSpan age)
        {
            await using var db = host.Db();
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO idempotency_records ("Owner", "Key", "RequestHash", "StatusCode", "CreatedAt")
                VALUES ({owner}, {idempotencyKey}, 'lost', 0, {DateTimeOffset.UtcNow - age})
                """);
        }
        await LeaveUnanswered("died-long-ago", TimeSpan.FromMinutes(20));
        await JobIdAsync(await Post("died-long-ago", png));

        using var bad = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = Upload(attribute, ("a.png", png)) };
        bad.Headers.Add("Idempotency-Key", new string('k', 256));
        await ProblemAssert.IsProblem(await client.SendAsync(bad), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task A_webhook_gets_one_signed_call_per_finish_retried_after_a_failure_and_logged()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        var secret = (await client.GetFromJsonAsync<JsonElement>("/v1/keys/me")).GetProperty("webhookSecret").GetString()!;
        Assert.Equal(64, secret.Length);

        using var receiver = new Receiver(failFirst: 1);
        var jobId = await JobIdAsync(await client.PostAsync("/v1/jobs",
            Form(attribute, [("webhook", receiver.Url), ("format", "jpeg")], ("a.png", TestData.Png()))));
        var status = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}");
        Assert.Equal(receiver.Url, status.GetProperty("webhook").GetString());
        Assert.Equal("jpeg", status.GetProperty("outputFormat").GetString());

        await client.PostAsync($"/v1/jobs/{jobId}/cancel", null);
        await client.PostAsync($"/v1/jobs/{jobId}/cancel", null); // cancelling twice finishes the job once

        var calls = await receiver.WaitAsync(2, TimeSpan.FromSeconds(30)); // the first answered 500, the retry 5 s later 200
        Assert.Equal(2, calls.Count);
        foreach (var call in calls)
        {
            Assert.Equal("job.cancelled", call.Headers["X-Sdd-Event"]);
            var timestamp = call.Headers["X-Sdd-Timestamp"];
            var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp}.{call.Body}")));
            Assert.Equal(expected, call.Headers["X-Sdd-Signature"]);
            var body = JsonDocument.Parse(call.Body).RootElement;
            Assert.Equal("job.cancelled", body.GetProperty("event").GetString());
            Assert.Equal(jobId, body.GetProperty("subject").GetProperty("id").GetGuid());
            Assert.Equal("cancelled", body.GetProperty("data").GetProperty("state").GetString());
        }
        Assert.Equal(calls[0].Headers["X-Sdd-Delivery"], calls[1].Headers["X-Sdd-Delivery"]); // one delivery, attempted twice
        Assert.Equal(calls[0].Body, calls[1].Body);

        var deadline = DateTime.UtcNow.AddSeconds(10);
        JsonElement log;
        while ((log = Assert.Single(await client.AllAsync($"/v1/jobs/{jobId}/webhooks"))).GetProperty("state").GetString() != "delivered"
               && DateTime.UtcNow < deadline)
            await Task.Delay(200);
        Assert.Equal("delivered", log.GetProperty("state").GetString());
        Assert.Equal(2, log.GetProperty("attempts").GetInt32());
        Assert.Equal(200, log.GetProperty("lastStatus").GetInt32());
        await Task.Delay(1500);
        Assert.Equal(2, receiver.Calls.Count); // nothing more once delivered
    }

    [Fact]
    public async Task A_webhook_to_a_host_not_allowed_or_a_bad_format_is_refused_and_nothing_is_stored()
    {
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = host.Client(key);
        (string, string)[][] bad =
        [
            [("webhook", "http://10.0.0.7/hook")],
            [("webhook", "http://169.254.169.254/latest/meta-data")],
            [("webhook", "ftp://127.0.0.1/hook")],
            [("webhook", "http://user:pw@127.0.0.1/hook")],
            [("webhook", "http://127.0.0.1:1/hook"), ("webhookEvents", "job.exploded")],
            [("webhookEvents", "job.completed")],
            [("format", "gif")],
        ];
        foreach (var fields in bad)
            await ProblemAssert.IsProblem(await client.PostAsync("/v1/jobs", Form(attribute, fields, ("a.png", TestData.Png()))), HttpStatusCode.UnprocessableEntity);
        await using var db = host.Db();
        Assert.Equal(0, await db.EditJobs.CountAsync(j => j.Owner == owner));
        var stored = 0;
        await foreach (var _ in host.Store.ListAsync(host.JobsBucket, KeyLayout.Tenant(owner))) stored++;
        Assert.Equal(0, stored);
    }

    [Fact]
    public async Task Webhooks_cannot_reach_inside_whatever_the_address_is_written_as_and_a_refused_call_says_only_why()
    {
        // A deployment as shipped: no trusted internal receiver allowed.
        await using var factory = host.NewFactory(new() { ["SDD_WEBHOOK_ALLOW"] = "" });
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        foreach (var url in new[]
                 {
                     "http://127.0.0.1:15672/api/definitions", "http://2130706433:15672/", "http://0x7f.0.0.1:9000/", "http://localhost:5433/",
                     "http://[::ffff:127.0.0.1]/", "http://[::1]:8080/", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://172.20.1.1/",
                     "http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0:8080/", "http://93.184.216.34:22/",
                 })
        {
            var detail = await ProblemAssert.IsProblem(await client.PostAsync("/v1/jobs", Form(attribute, [("webhook", url)], ("a.png", TestData.Png()))),
                HttpStatusCode.UnprocessableEntity);
            Assert.True(detail.Contains("loopback, private") || detail.Contains("port 22"), $"{url}: {detail}");
        }
        // A name is checked where it is connected to: this machine's own name resolves to a loopback or private address.
        using var receiver = new Receiver(failFirst: 0);
        var name = System.Net.Dns.GetHostName();
        var resolves = (await System.Net.Dns.GetHostAddressesAsync(name)).Length > 0;
        var jobId = await JobIdAsync(await client.PostAsync("/v1/jobs",
            Form(attribute, [("webhook", receiver.Url.Replace("127.0.0.1", name))], ("a.png", TestData.Png()))));
        await client.PostAsync($"/v1/jobs/{jobId}/cancel", null);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        JsonElement log = default;
        while (DateTime.UtcNow < deadline)
        {
            var logs = await client.AllAsync($"/v1/jobs/{jobId}/webhooks");
            if (logs.Count == 1 && (log = logs[0]).TryGetProperty("lastError", out var e) && e.GetString() is { Length: > 0 }) break;
            await Task.Delay(200);
        }
        var error = log.GetProperty("lastError").GetString()!;
        Assert.Equal(resolves ? "refused by the webhook egress policy (a loopback, private, link-local or reserved address, or a port not allowed)" : "the host name does not resolve", error);
        Assert.False(log.TryGetProperty("lastStatus", out var status) && status.ValueKind == JsonValueKind.Number);
        Assert.Empty(receiver.Calls);
    }

    /// <summary>A webhook receiver on 127.0.0.1 that answers 500 to its first calls, then 200.</summary>
    private sealed class Receiver : IDisposable
    {
        public sealed record Call(Dictionary<string, string> Headers, string Body);
        private readonly HttpListener listener = new();
        private readonly int failFirst;
        public ConcurrentQueue<Call> Calls { get; } = new();
        public string Url { get; }

        public Receiver(int failFirst)
        {
            this.failFirst = failFirst;
            var port = FreePort();
            Url = $"http://127.0.0.1:{port}/hook/";
            listener.Prefixes.Add(Url);
            listener.Start();
            _ = Task.Run(ServeAsync);
        }

        private async Task ServeAsync()
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync(); } catch { return; }
                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                var body = await reader.ReadToEndAsync();
                var headers = context.Request.Headers.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => context.Request.Headers[k]!);
                Calls.Enqueue(new Call(headers, body));
                context.Response.StatusCode = Calls.Count <= failFirst ? 500 : 200;
                context.Response.Close();
            }
        }

        public async Task<List<Call>> WaitAsync(int count, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (Calls.Count < count && DateTime.UtcNow < deadline) await Task.Delay(100);
            return [.. Calls];
        }

        private static int FreePort()
        {
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            return port;
        }

        public void Dispose() => listener.Close();
    }
}
