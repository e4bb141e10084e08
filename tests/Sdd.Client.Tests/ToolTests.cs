using Sdd.Tool;

namespace Sdd.Client.Tests;

/// <summary>The user CLI's command tree run in-process against a fake API: credentials, exit codes, --json.</summary>
public sealed class ToolTests : IDisposable
{
    private static readonly Guid JobId = Guid.Parse("9c41e5a4-0000-4000-8000-000000000002");
    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("sdd-tool-home-");
    private readonly Dictionary<string, string> _env = new();

    public void Dispose() => _home.Delete(recursive: true);

    private string CredentialsFile => Path.Combine(_home.FullName, ".config", "sdd", "credentials.json");

    private async Task<(int Code, string Out, string Err)> Sdd(params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var code = await SddTool.RunAsync(args, new ToolContext
        {
            Out = stdout, Error = stderr, Environment = k => _env.GetValueOrDefault(k), Home = _home.FullName,
            PollInterval = TimeSpan.FromMilliseconds(10), RetryDelay = TimeSpan.FromMilliseconds(10), ReportInterval = TimeSpan.Zero,
        });
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static Task<FakeApi> Api(Action<WebApplication> map) => FakeApi.StartAsync((app, _) =>
    {
        app.MapGet("/v1/keys/me", (HttpRequest r) => r.Headers["X-Api-Key"] == "good"
            ? Results.Ok(new { id = "owner-1", name = "alice", admin = false, webhookSecret = "s" })
            : FakeApi.Problem(401, "Unauthorized", "The API key is unknown or revoked."));
        map(app);
    });

    [Fact]
    public async Task Login_checks_the_key_and_keeps_it_in_a_file_created_owner_only()
    {
        if (OperatingSystem.IsWindows()) return; // file modes are POSIX
        await using var api = await Api(_ => { });
        Directory.CreateDirectory(Path.GetDirectoryName(CredentialsFile)!);
        File.WriteAllText(CredentialsFile, "{}"); // an old file, world-readable: replaced, not reused
        File.SetUnixFileMode(CredentialsFile, (UnixFileMode)0b110_100_100);

        var (code, stdout, stderr) = await Sdd("login", "--api", api.Url.ToString(), "--key", "good");

        Assert.True(code == 0, stderr);
        Assert.Contains("alice", stdout);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(CredentialsFile));
        var saved = JsonDocument.Parse(File.ReadAllText(CredentialsFile)).RootElement;
        Assert.Equal((api.Url.ToString(), "good"), (saved.GetProperty("api").GetString(), saved.GetProperty("key").GetString()));
        Assert.Equal("good", api.Seen("GET", "/v1/keys/me").Single().ApiKey);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(CredentialsFile)!, "*.tmp"));
    }

    [Fact]
    public async Task Login_with_a_refused_key_exits_3_with_the_problem_and_keeps_nothing()
    {
        await using var api = await Api(_ => { });

        var (code, stdout, stderr) = await Sdd("login", "--api", api.Url.ToString(), "--key", "bad", "--json");

        Assert.Equal(3, code);
        Assert.Equal("", stdout);
        Assert.Contains("401 Unauthorized: The API key is unknown or revoked.", stderr);
        Assert.Contains("sdd login --api URL --key KEY", stderr); // the command that fixes it
        Assert.False(File.Exists(CredentialsFile));
    }

    [Fact]
    public async Task An_API_that_does_not_answer_exits_3_naming_the_commands_that_start_it()
    {
        _env["SDD_API_URL"] = "http://127.0.0.1:1"; // nothing listens there
        _env["SDD_API_KEY"] = "good";

        var (code, stdout, stderr) = await Sdd("jobs", "list", "--json");

        Assert.Equal(3, code);
        Assert.Equal("", stdout);
        Assert.Contains("the API cannot be reached", stderr);
        Assert.Contains("./sdd services start", stderr);
        Assert.Contains("SDD_API_URL", stderr);
    }

    [Fact]
    public async Task Environment_variables_override_the_credentials_file_field_by_field()
    {
        await using var api = await Api(app => app.MapGet("/v1/runs", () => new { items = Array.Empty<object>(), next = (string?)null }));
        new Credentials("http://127.0.0.1:1", "good").Save(CredentialsFile); // an address where nothing listens

        _env["SDD_API_URL"] = api.Url.ToString();
        var (code, stdout, stderr) = await Sdd("runs", "list", "--json");
        Assert.True(code == 0, stderr);
        Assert.Equal("[]", stdout.Trim());
        Assert.Equal("good", api.Requests.Last().ApiKey); // the file's key, the environment's address

        _env["SDD_API_KEY"] = "from-env";
        (code, _, stderr) = await Sdd("runs", "list");
        Assert.True(code == 0, stderr);
        Assert.Equal("from-env", api.Requests.Last().ApiKey);
    }

    [Fact]
    public async Task Not_logged_in_or_a_bad_command_line_exits_2()
    {
        var (code, stdout, stderr) = await Sdd("jobs", "list");
        Assert.Equal(2, code);
        Assert.Contains("Not logged in", stderr);
        Assert.Equal("", stdout);

        (code, _, stderr) = await Sdd("jobs", "submit", "photos/");
        Assert.Equal(2, code);
        Assert.Contains("--attribute", stderr);

        (code, _, _) = await Sdd("jobs", "frobnicate");
        Assert.Equal(2, code);

        (code, _, stderr) = await Sdd("jobs", "submit", "no-such-folder/", "--attribute", "smiling");
        Assert.Equal(2, code);
        Assert.Contains("no-such-folder/: no such file or folder", stderr); // found before credentials are needed
    }

    [Fact]
    public async Task Help_shows_examples_and_the_exit_codes()
    {
        var (code, stdout, _) = await Sdd("jobs", "submit", "--help");

        Assert.Equal(0, code);
        Assert.Contains("sdd jobs submit photos/ --attribute smiling --wait", stdout);
        Assert.Contains("Exit codes:", stdout);
        Assert.Contains("3    API or network error", stdout);
    }

    [Fact]
    public async Task Jobs_status_json_prints_only_the_status_and_exits_1_when_the_job_finished_with_failed_items()
    {
        await using var api = await Api(app => app.MapGet("/v1/jobs/{id}", (Guid id) => Wire.Job(id, "completed", 10, 8, failed: 2, withErrors: true)));
        new Credentials(api.Url.ToString(), "good").Save(CredentialsFile);

        var (code, stdout, stderr) = await Sdd("jobs", "status", JobId.ToString(), "--json");

        Assert.Equal(1, code);
        var job = JsonDocument.Parse(stdout).RootElement; // stdout is the JSON and nothing else
        Assert.Equal(JobId, job.GetProperty("id").GetGuid());
        Assert.Equal("completed", job.GetProperty("state").GetString());
        Assert.Equal(2, job.GetProperty("counts").GetProperty("failed").GetInt32());
        Assert.Contains($"sdd jobs items {JobId} --failed", stderr);
    }

    [Fact]
    public async Task An_unknown_job_exits_3_with_the_APIs_problem()
    {
        await using var api = await Api(app => app.MapGet("/v1/jobs/{id}", (Guid id) => FakeApi.Problem(404, "Not Found", $"No job {id}.")));
        new Credentials(api.Url.ToString(), "good").Save(CredentialsFile);

        var (code, stdout, stderr) = await Sdd("jobs", "status", JobId.ToString());

        Assert.Equal(3, code);
        Assert.Equal("", stdout);
        Assert.Contains($"404 Not Found: No job {JobId}.", stderr);
    }

    [Fact]
    public async Task Jobs_submit_wait_sends_a_small_folder_in_one_request_follows_the_job_and_exits_0_when_every_image_is_edited()
    {
        int polls = 0;
        await using var api = await Api(app =>
        {
            app.MapPost("/v1/jobs", () => Results.Accepted($"/v1/jobs/{JobId}", new { jobId = JobId, items = 2 })).DisableAntiforgery();
            app.MapGet("/v1/jobs/{id}", (Guid id) => Interlocked.Increment(ref polls) < 3
                ? Wire.Job(id, "running", 2, polls - 1, pending: 3 - polls)
                : Wire.Job(id, "completed", 2, 2));
        });
        new Credentials(api.Url.ToString(), "good").Save(CredentialsFile);
        var photos = Directory.CreateDirectory(Path.Combine(_home.FullName, "photos"));
        File.WriteAllBytes(Path.Combine(photos.FullName, "a.jpg"), [1]);
        File.WriteAllBytes(Path.Combine(photos.FullName, "b.png"), [2]);
        File.WriteAllText(Path.Combine(photos.FullName, "notes.txt"), "not a photo");
        File.WriteAllBytes(Path.Combine(photos.FullName, ".hidden.jpg"), [3]);

        var (code, stdout, stderr) = await Sdd("jobs", "submit", photos.FullName, "--attribute", "smiling", "--format", "png", "--wait", "--json");

        Assert.True(code == 0, stderr);
        var job = JsonDocument.Parse(stdout).RootElement; // the finished job, and nothing else on stdout
        Assert.Equal("completed", job.GetProperty("state").GetString());
        Assert.Contains("2/2 done", stderr); // the progress, on stderr
        var form = Encoding.UTF8.GetString(api.Seen("POST", "/v1/jobs").Single().Body);
        Assert.Contains("filename=a.jpg", form);
        Assert.Contains("filename=b.png", form);
        Assert.DoesNotContain("notes.txt", form);
        Assert.DoesNotContain("hidden", form);
        Assert.Contains("name=format", form);
    }

    [Fact]
    public async Task Jobs_submit_sends_a_folder_with_sub_folders_through_an_upload_area_so_the_names_keep_their_folders()
    {
        var uploadId = Guid.NewGuid();
        await using var api = await FakeApi.StartAsync((app, fake) =>
        {
            app.MapPost("/v1/uploads", (JsonElement body) => Results.Created($"/v1/uploads/{uploadId}", new
            {
                id = uploadId, bucket = "b", prefix = "p/", createdAt = DateTimeOffset.UtcNow, expiresAt = DateTimeOffset.UtcNow.AddHours(1),
                files = body.GetProperty("files").EnumerateArray().Select(f => new { name = f.GetString(), url = $"{fake.Url}storage/{f.GetString()}" }),
            }));
            app.MapPut("/storage/{**name}", () => Results.Ok());
            app.MapPost("/v1/jobs", () => Results.Accepted($"/v1/jobs/{JobId}", new { jobId = JobId, items = 2 }));
        });
        _env["SDD_API_URL"] = api.Url.ToString();
        _env["SDD_API_KEY"] = "good";
        var photos = Directory.CreateDirectory(Path.Combine(_home.FullName, "photos"));
        File.WriteAllBytes(Path.Combine(photos.FullName, "a.jpg"), [1]);
        Directory.CreateDirectory(Path.Combine(photos.FullName, "trip"));
        File.WriteAllBytes(Path.Combine(photos.FullName, "trip", "b.png"), [2]);

        var (code, stdout, stderr) = await Sdd("jobs", "submit", photos.FullName, "--attribute", "smiling", "--json");

        Assert.True(code == 0, stderr);
        Assert.Equal(JobId, JsonDocument.Parse(stdout).RootElement.GetProperty("jobId").GetGuid());
        Assert.Equal(["a.jpg", "trip/b.png"], api.Seen("POST", "/v1/uploads").Single().Json.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(["/storage/a.jpg", "/storage/trip/b.png"], api.Requests.Where(r => r.Method == "PUT").Select(r => r.Path).Order());
        Assert.Equal(uploadId, api.Seen("POST", "/v1/jobs").Single().Json.GetProperty("source").GetProperty("upload").GetGuid());
    }

    [Fact]
    public async Task Jobs_list_json_is_one_array_across_pages_up_to_the_limit()
    {
        await using var api = await Api(app => app.MapGet("/v1/jobs", (string? cursor) => cursor is null
            ? Results.Ok(new { items = new[] { Wire.Job(Guid.NewGuid(), "running", 5, 1), Wire.Job(Guid.NewGuid(), "completed", 5, 5) }, next = "p2" })
            : Results.Ok(new { items = new[] { Wire.Job(Guid.NewGuid(), "failed", 5, 0, failed: 5) }, next = (string?)null })));
        new Credentials(api.Url.ToString(), "good").Save(CredentialsFile);

        var (code, stdout, stderr) = await Sdd("jobs", "list", "--json", "--state", "failed");
        Assert.True(code == 0, stderr);
        Assert.Equal(["running", "completed", "failed"], JsonDocument.Parse(stdout).RootElement.EnumerateArray().Select(j => j.GetProperty("state").GetString()));
        Assert.Equal("?state=failed&limit=20", api.Seen("GET", "/v1/jobs")[0].Query);

        (code, stdout, _) = await Sdd("jobs", "list", "--json", "--limit", "1");
        Assert.Equal(0, code);
        Assert.Single(JsonDocument.Parse(stdout).RootElement.EnumerateArray());
    }

    [Fact]
    public async Task Jobs_download_unzips_the_results_into_the_folder()
    {
        var zip = ClientTests.Zip(("a.jpg", [1]), ("trip/b.png", [2]));
        await using var api = await Api(app =>
        {
            app.MapGet("/v1/jobs/{id}", (Guid id) => Wire.Job(id, "completed", 2, 2));
            app.MapGet("/v1/jobs/{id}/results.zip", (Guid id) => Results.Bytes(zip, "application/zip"));
        });
        new Credentials(api.Url.ToString(), "good").Save(CredentialsFile);
        var output = Path.Combine(_home.FullName, "edited");

        var (code, stdout, stderr) = await Sdd("jobs", "download", JobId.ToString(), "--out", output);

        Assert.True(code == 0, stderr);
        Assert.Contains("2 edited images", stdout);
        Assert.Equal([2], File.ReadAllBytes(Path.Combine(output, "trip", "b.png")));
    }

    [Fact]
    public async Task Attributes_show_draws_the_versions_and_the_HQS_curve_with_the_selected_timesteps_marked()
    {
        await using var api = await Api(app => app.MapGet("/v1/attributes/{name}", (string name) => new
        {
            name, teacherId = Guid.NewGuid(), targetAttribute = "smiling", activeVersion = 1, published = false, shared = false,
            versions = new[]
            {
                new
                {
                    id = Guid.NewGuid(), version = 1, state = "ready", selectedTimesteps = new[] { 250, 300 },
                    settings = new { steps = 300 }, metrics = new { editability = 0.97, psnrSource = 25.1 },
                    indicator = new[] { 200, 250, 300, 350 }.Select(t => new { t, entropy = 0.5, norm = 10.0, hqs = t == 250 ? 0.9 : 0.3 }),
                    gridUrl = (string?)null, runId = Guid.NewGuid(), createdAt = DateTimeOffset.UtcNow,
                },
            },
        }));
        new Credentials(api.Url.ToString(), "good").Save(CredentialsFile);

        var (code, stdout, stderr) = await Sdd("attributes", "show", "smiling");

        Assert.True(code == 0, stderr);
        Assert.Contains("v1 *", stdout);
        Assert.Contains("250,300", stdout);
        Assert.Contains("0.97", stdout);
        Assert.Contains("t=250 *", stdout);
        Assert.Contains("t=200  ", stdout);
        Assert.Contains("0.900", stdout);
    }
}
