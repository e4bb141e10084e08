using System.Text;

namespace Sdd.Ingest.Tests;

/// <summary>Keys, authentication, ownership, and the operational endpoints.</summary>
public class AccessTests(IngestHost host) : IClassFixture<IngestHost>
{
    [Fact]
    public async Task A_request_without_a_key_is_a_401_problem()
    {
        using var anonymous = host.Client(key: null);
        var detail = await ProblemAssert.IsProblem(await anonymous.GetAsync("/v1/datasets"), HttpStatusCode.Unauthorized);
        Assert.Contains("X-Api-Key", detail);
    }

    [Fact]
    public async Task An_unknown_key_is_a_401_problem()
    {
        using var stranger = host.Client("not-a-key");
        await ProblemAssert.IsProblem(await stranger.GetAsync("/v1/teachers"), HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task The_admin_creates_a_key_that_is_stored_hashed_and_works()
    {
        var (owner, key) = await host.NewKeyAsync("alice-" + Guid.NewGuid().ToString("N")[..6]);

        await using (var db = host.Db())
        {
            var stored = await db.ApiClients.SingleAsync(c => c.Id == Guid.Parse(owner));
            Assert.Equal(ApiKeys.Hash(key), stored.KeyHash);
            Assert.DoesNotContain(key, stored.KeyHash);
        }
        using var alice = host.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await alice.GetAsync("/v1/datasets")).StatusCode);
    }

    [Fact]
    public async Task Only_an_admin_key_creates_keys_and_names_are_unique()
    {
        var (_, key) = await host.NewKeyAsync();
        using var client = host.Client(key);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/v1/keys", new { name = "mallory" }), HttpStatusCode.Forbidden);

        using var admin = host.Client();
        var name = IngestHost.Unique("bob-");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/v1/keys", new { name })).StatusCode);
        await ProblemAssert.IsProblem(await admin.PostAsJsonAsync("/v1/keys", new { name }), HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task A_malformed_json_body_is_a_400_problem()
    {
        using var admin = host.Client();
        var response = await admin.PostAsync("/v1/keys", new StringContent("{\"name\": ", Encoding.UTF8, "application/json"));
        await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Another_owners_job_is_not_found()
    {
        var (aliceOwner, aliceKey) = await host.NewKeyAsync();
        var (_, bobKey) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(aliceOwner);
        using var alice = host.Client(aliceKey);
        using var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "a.png" } };
        var submitted = await alice.PostAsync("/v1/jobs", form);
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var jobId = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();

        using var bob = host.Client(bobKey);
        await ProblemAssert.IsProblem(await bob.GetAsync($"/v1/jobs/{jobId}"), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await bob.GetAsync($"/v1/jobs/{jobId}/items"), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await bob.PostAsync($"/v1/jobs/{jobId}/cancel", null), HttpStatusCode.NotFound);
        await ProblemAssert.IsProblem(await bob.GetAsync($"/v1/attributes/{attribute}"), HttpStatusCode.NotFound);
        Assert.Equal(HttpStatusCode.OK, (await alice.GetAsync($"/v1/jobs/{jobId}")).StatusCode);
    }

    [Fact]
    public async Task Healthz_reports_postgresql_rabbitmq_and_s3()
    {
        using var anonymous = host.Client(key: null);
        HttpResponseMessage response = null!;
        for (int i = 0; i < 40; i++) // the bus connects in the background
        {
            response = await anonymous.GetAsync("/healthz");
            if (response.StatusCode == HttpStatusCode.OK) break;
            await Task.Delay(250);
        }
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(HttpStatusCode.OK == response.StatusCode, body.ToString());
        var checks = body.GetProperty("checks");
        foreach (var name in new[] { "postgresql", "rabbitmq", "s3" })
            Assert.Equal("healthy", checks.GetProperty(name).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Metrics_expose_live_jobs_items_runs_and_queue_depth_in_the_apis_words()
    {
        using var anonymous = host.Client(key: null);
        var text = await anonymous.GetStringAsync("/metrics");
        Assert.Contains("sdd_jobs{state=\"queued\"}", text);
        Assert.Contains("sdd_jobs{state=\"running\"}", text);
        Assert.DoesNotContain("state=\"pending\"", text);
        Assert.DoesNotContain("sdd_jobs{state=\"completed\"}", text); // finished work is history, not a gauge
        Assert.Contains("sdd_job_items_pending", text);
        Assert.Contains("sdd_runs{kind=\"distill\",state=\"queued\"}", text);
        Assert.DoesNotContain("sdd_edit_job_latency_seconds", text); // the edit worker's, observed once per job
        Assert.Contains("sdd_queue_messages{queue=\"edit\"}", text);
        Assert.Contains("sdd_queue_messages{queue=\"distill\"}", text);
    }

    [Fact]
    public async Task The_openapi_document_and_scalar_ui_are_served()
    {
        using var anonymous = host.Client(key: null);
        var document = await anonymous.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/v1/keys", "/v1/datasets", "/v1/datasets/upload", "/v1/teachers", "/v1/runs/{id}", "/v1/runs/{id}/cancel", "/v1/attributes/{name}/active",
                     "/v1/jobs", "/v1/jobs/{id}/items", "/v1/jobs/{id}/results.zip", "/v1/jobs/{id}/cancel", "/v1/jobs/{id}/items/{itemId}/output",
                     "/v1/keys/{id}", "/v1/keys/me", "/v1/uploads", "/v1/uploads/{id}/files", "/v1/grants", "/v1/grants/{id}",
                     "/v1/attributes/{name}/publish", "/v1/teachers/{id}/publish" })
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is not in the OpenAPI document");
        Assert.True(document.GetProperty("components").GetProperty("securitySchemes").TryGetProperty("ApiKey", out _));

        var scalar = await anonymous.GetAsync("/scalar/v1");
        Assert.Equal(HttpStatusCode.OK, scalar.StatusCode);
        Assert.Contains("text/html", scalar.Content.Headers.ContentType?.MediaType);
    }
}
