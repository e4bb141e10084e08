using System.Diagnostics;

namespace Sdd.Ingest.Tests;

/// <summary>
/// The OpenAPI document is one a generator can use: operation ids, the real multipart form, enum states, every problem
/// answer; and Redocly's recommended rules (installed by the stack script from deploy/local/package.json) find no error.
/// The document is kept under .stack/openapi/ for people to read.
/// </summary>
public class OpenApiTests(IngestHost host) : IClassFixture<IngestHost>
{
    private async Task<JsonElement> DocumentAsync()
    {
        using var client = host.Client(null);
        var response = await client.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static IEnumerable<(string Path, string Method, JsonElement Operation)> Operations(JsonElement document) =>
        from path in document.GetProperty("paths").EnumerateObject()
        from operation in path.Value.EnumerateObject()
        where operation.Name is "get" or "post" or "put" or "delete" or "patch"
        select (path.Name, operation.Name, operation.Value);

    [Fact]
    public async Task Every_operation_has_a_unique_id_a_summary_and_its_problem_answers()
    {
        var operations = Operations(await DocumentAsync()).Where(o => o.Path.StartsWith("/v1/")).ToList();
        Assert.True(operations.Count >= 40, $"only {operations.Count} operations under /v1");
        var ids = operations.Select(o => o.Operation.TryGetProperty("operationId", out var id) ? id.GetString() : null).ToList();
        Assert.DoesNotContain(null, ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (var (path, method, operation) in operations)
        {
            Assert.True(operation.TryGetProperty("summary", out _), $"{method} {path} has no summary");
            var responses = operation.GetProperty("responses");
            foreach (var status in new[] { "400", "401", "429", "500" })
            {
                Assert.True(responses.TryGetProperty(status, out var problem), $"{method} {path} does not declare {status}");
                Assert.True(problem.GetProperty("content").TryGetProperty("application/problem+json", out _), $"{method} {path} {status} is not a problem");
            }
            if (path.Contains('{')) Assert.True(responses.TryGetProperty("404", out _), $"{method} {path} does not declare 404");
            if (method == "post")
                Assert.Contains(operation.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "Idempotency-Key");
        }
    }

    [Fact]
    public async Task The_job_submission_describes_its_multipart_form_and_states_are_enums()
    {
        var document = await DocumentAsync();
        var submit = Operations(document).Single(o => o.Operation.GetProperty("operationId").GetString() == "submitJob").Operation;
        var content = submit.GetProperty("requestBody").GetProperty("content");
        var form = content.GetProperty("multipart/form-data").GetProperty("schema");
        Assert.Equal(["attribute", "files"], form.GetProperty("required").EnumerateArray().Select(r => r.GetString()).Order());
        var files = form.GetProperty("properties").GetProperty("files");
        Assert.Equal("array", files.GetProperty("type").GetString());
        Assert.Equal("binary", files.GetProperty("items").GetProperty("format").GetString());
        Assert.True(content.TryGetProperty("application/json", out _));

        var schemas = document.GetProperty("components").GetProperty("schemas");
        Assert.Equal(["queued", "running", "completed", "failed", "cancelled"],
            schemas.GetProperty("JobStatusDto").GetProperty("properties").GetProperty("state").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["pending", "done", "failed", "cancelled"],
            schemas.GetProperty("JobItemDto").GetProperty("properties").GetProperty("state").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Redocly_lint_finds_no_error()
    {
        var root = Environment.GetEnvironmentVariable("SDD_ROOT") ?? throw new InvalidOperationException("SDD_ROOT is unset: source deploy/local/env.sh");
        var redocly = Path.Combine(root, "deploy", "local", "node_modules", "@redocly", "cli", "bin", "cli.js");
        Assert.True(File.Exists(redocly), $"{redocly} is missing: deploy/local/stack.sh up installs it (npm ci)");
        var folder = Path.Combine(root, ".stack", "openapi");
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, "v1.json");
        await File.WriteAllTextAsync(file, (await DocumentAsync()).GetRawText());

        var start = new ProcessStartInfo("node", [redocly, "lint", file, "--format=stylish", "--skip-rule=no-server-example.com"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = folder,
        };
        start.Environment["REDOCLY_TELEMETRY"] = "off"; // nothing leaves the machine
        start.Environment["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true";
        using var lint = Process.Start(start)!;
        var output = lint.StandardOutput.ReadToEndAsync();
        var errors = lint.StandardError.ReadToEndAsync();
        Assert.True(lint.WaitForExit(TimeSpan.FromMinutes(2)), "redocly lint did not finish in 2 minutes");
        var text = await output + await errors;
        Assert.True(lint.ExitCode == 0, $"redocly lint exit {lint.ExitCode}:\n{text}");
        Assert.DoesNotContain(" error ", text);
        Assert.Contains("valid", text);
        Assert.DoesNotMatch(@"You have \d+ warning", text); // the recommended rules' warnings too
    }
}
