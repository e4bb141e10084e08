using System.IO.Compression;
using System.Text.RegularExpressions;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// Debian's Chromium (no browser download), driven by Playwright, once for the dashboard's tests. The page's own script
/// runs, as for a person; nothing is reached beyond this machine (background networking, updates and sync are off).
/// </summary>
public sealed class DashboardBrowser : IAsyncLifetime
{
    /// <summary>Where the browser is: <c>SDD_CHROMIUM</c>, else Debian's package (deploy/local/stack.sh installs it).</summary>
    public static string ChromiumPath => System.Environment.GetEnvironmentVariable("SDD_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public IPlaywright Playwright { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
            throw new FileNotFoundException($"No Chromium at {ChromiumPath}: ./sdd up installs Debian's chromium package (or set SDD_CHROMIUM).", ChromiumPath);
        System.Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args =
            [
                "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
                "--metrics-recording-only", "--disable-default-apps", "--no-default-browser-check", "--disable-domain-reliability",
                "--disable-breakpad", "--disable-client-side-phishing-detection", "--no-pings", "--disable-features=Translate,MediaRouter,OptimizationHints",
            ],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        Playwright?.Dispose();
    }
}

/// <summary>
/// The operator dashboard (<c>/ui</c>) in a real browser against the real services: sign in with a key, follow a job to
/// 100 % on its page, cancel another from its page, download the results, read the selected timesteps off the registry's
/// curve, pin a version, another owner's job is a 404, an admin sees every owner, and every page passes axe with no serious
/// or critical violation. Each page is photographed into docs/screenshots/.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class DashboardTests(SddSystem system, DashboardBrowser browser, ITestOutputHelper output) : IClassFixture<DashboardBrowser>
{
    private static readonly TimeSpan Wait = TimeSpan.FromMinutes(2);
    private string Screenshots => Path.Combine(system.Root, "docs", "screenshots");

    [Fact]
    public async Task A_job_page_follows_its_job_to_100_percent_live_another_is_cancelled_from_its_page_and_results_download()
    {
        await system.SmilingEditorAsync();
        await using var session = await SignInAsync(system.ApiKey);
        var page = session.Page;

        // No edit worker for a while: both jobs stay queued, so the page is seen moving and the cancel is not raced.
        system.Edit.Kill();
        Guid followed, cancelled;
        try
        {
            followed = (await system.Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(20, SddSystem.ImageSize, first: 500).ToUploads())).JobId;
            cancelled = (await system.Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(30, SddSystem.ImageSize, first: 520).ToUploads())).JobId;

            var other = await session.Context.NewPageAsync();
            await other.GotoAsync($"/ui/jobs/{cancelled}");
            await Expect(other.Locator("#progress [data-state]")).ToHaveTextAsync("queued");
            await other.GetByRole(AriaRole.Button, new() { Name = "Cancel job" }).ClickAsync();
            await Expect(other.Locator("#progress [data-state]")).ToHaveTextAsync("cancelled");
            await Expect(other.Locator("#progress .percent")).ToHaveTextAsync("0 %"); // no image edited
            Assert.Equal(JobState.Cancelled, (await system.Api.Jobs.GetAsync(cancelled)).State);
            Assert.Equal(30, (await system.Api.Jobs.GetAsync(cancelled)).Counts.Cancelled);
            await Expect(other.GetByRole(AriaRole.Button, new() { Name = "Cancel job" })).ToHaveCountAsync(0);
            await AssertAccessibleAsync(other, "a cancelled job");
            await ShootAsync(other, "job-cancelled");

            await page.GotoAsync($"/ui/jobs/{followed}");
            await Expect(page.Locator("#progress .percent")).ToHaveTextAsync("0 %");
            await Expect(page.Locator("#progress [data-state]")).ToHaveTextAsync("queued");
        }
        finally
        {
            await system.RestartAsync(system.Edit);
        }

        // The page is not reloaded by the test: its own script follows the job.
        await Expect(page.Locator("#progress .percent")).ToHaveTextAsync("100 %", new() { Timeout = (float)Wait.TotalMilliseconds });
        await Expect(page.Locator("#progress [data-state]")).ToHaveTextAsync("completed", new() { Timeout = 30_000 });
        var status = await system.Api.Jobs.GetAsync(followed);
        Assert.Equal(JobState.Completed, status.State);
        Assert.Equal(20, status.Counts.Done);

        // Before/after previews stream through /ui with the cookie; the zip through the cookie route too.
        var previews = page.Locator(".gallery img");
        await Expect(previews).ToHaveCountAsync(2 * 6);
        await Expect(previews.First).ToHaveAttributeAsync("alt", new Regex("^Before: portrait-0500"));
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth > 0)");
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Link, new() { NameRegex = new Regex("^Download results") }).ClickAsync());
        var zipPath = Path.Combine(system.WorkDir, $"dashboard-{followed:N}.zip");
        await download.SaveAsAsync(zipPath);
        using (var zip = ZipFile.OpenRead(zipPath))
            Assert.Equal(SddSystem.Portraits(20, SddSystem.ImageSize, first: 500).Select(p => p.Name).Order(), zip.Entries.Select(e => e.FullName).Order());
        await ShootAsync(page, "job");

        // The list shows both, newest first, with the API's state and progress.
        await page.GotoAsync("/ui/jobs");
        var rows = page.Locator("tr[data-job]");
        Assert.Equal(cancelled.ToString(), await rows.Nth(0).GetAttributeAsync("data-job"));
        Assert.Equal(followed.ToString(), await rows.Nth(1).GetAttributeAsync("data-job"));
        await Expect(rows.Nth(1).Locator(".state")).ToHaveTextAsync("completed");
        await Expect(page.GetByRole(AriaRole.Columnheader, new() { Name = "Owner" })).ToHaveCountAsync(0); // a tenant sees only its own
    }

    [Fact]
    public async Task A_job_page_lists_the_images_the_domain_gate_skipped_with_their_scores()
    {
        await system.SmilingEditorAsync();
        var files = SddSystem.Portraits(4, SddSystem.ImageSize, first: 560).Concat(SddSystem.Houses(2, seed: 9)).ToList();
        var jobId = (await system.Api.Jobs.SubmitFilesAsync("smiling", files.ToUploads())).JobId;
        var job = await system.Api.WaitForCompletedAsync(jobId, Wait, () => system.Edit.Tail());
        Assert.Equal((4, 2), (job.Counts.Done, job.Counts.Skipped));

        await using var session = await SignInAsync(system.ApiKey);
        var page = session.Page;
        await page.GotoAsync($"/ui/jobs/{jobId}");
        await Expect(page.Locator("#progress [data-state]")).ToHaveTextAsync("completed");
        await Expect(page.Locator("#progress .percent")).ToHaveTextAsync("100 %"); // skipped images are processed
        var section = page.GetByRole(AriaRole.Heading, new() { Name = "Skipped: outside the editor's domain (2)" });
        await Expect(section).ToBeVisibleAsync();
        var rows = page.Locator("table.skipped tbody tr");
        await Expect(rows).ToHaveCountAsync(2);
        await Expect(rows.First).ToContainTextAsync("house-0.png");
        await Expect(rows.First).ToContainTextAsync("outside the editor's domain (score ");
        await AssertAccessibleAsync(page, "a job with skipped images");
        await ShootAsync(page, "job-skipped");
    }

    [Fact]
    public async Task The_registry_draws_the_selected_timesteps_of_smiling_and_pins_a_version_of_ones_own_attribute()
    {
        await system.SmilingEditorAsync();
        var name = "dash-pin-" + Guid.NewGuid().ToString("N")[..6];
        var first = await system.Api.Attributes.CreateAsync(new CreateAttribute(name, system.TeacherId, "smiling", await system.DatasetAsync(), new DistillSettings(Steps: 10)));
        await system.Api.WaitForFinishedAsync(first.RunId, TimeSpan.FromMinutes(4), () => system.Distill.Tail());

        await using var session = await SignInAsync(system.ApiKey);
        var page = session.Page;
        var second = await system.Api.Attributes.AddVersionAsync(name, new NewEditorVersion(new DistillSettings(Steps: 10)));
        await page.GotoAsync("/ui/runs");
        var run = page.Locator($"tr[data-run='{second.RunId}']");
        await Expect(run).ToHaveCountAsync(1);
        await Expect(run.Locator("td").Nth(1)).ToHaveTextAsync($"{name} v2");
        await system.Api.WaitForFinishedAsync(second.RunId, TimeSpan.FromMinutes(4), () => system.Distill.Tail());
        // The runs table follows the run by itself (no reload by the test).
        await Expect(run.Locator(".state")).ToHaveTextAsync("succeeded", new() { Timeout = 30_000 });
        await Expect(run.Locator(".progress-cell span")).ToHaveTextAsync("10 / 10");

        // smiling: the curve's labelled marks are the API's selected timesteps.
        await page.GotoAsync("/ui/attributes/smiling");
        var smiling = await system.Api.Attributes.GetAsync("smiling");
        var version = smiling.Versions.Single(v => v.Version == 1);
        var curve = page.Locator("svg.indicator[data-version='1']");
        await Expect(curve).ToBeVisibleAsync();
        var marked = (await curve.Locator("text.selected-t").AllTextContentsAsync()).Select(int.Parse).ToList();
        output.WriteLine($"smiling v1: the curve marks t = {string.Join(", ", marked)}; the API says {string.Join(", ", version.SelectedTimesteps)}");
        Assert.NotEmpty(marked);
        Assert.Equal(version.SelectedTimesteps.Order(), marked.Order());
        var ticks = await curve.Locator("text.tick").AllTextContentsAsync();
        Assert.Contains("500", ticks);
        Assert.Equal(3, await curve.Locator("polyline").CountAsync()); // HQS, entropy, norm
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Evaluation grid of v1 (PNG)" })).ToHaveCountAsync(1);
        var grid = await session.Context.APIRequest.GetAsync($"/ui/attributes/smiling/versions/1/grid.png");
        Assert.Equal(200, grid.Status);
        Assert.Equal("image/png", grid.Headers["content-type"]);

        // Pin version 2 of one's own attribute from its page.
        await page.GotoAsync("/ui/attributes");
        await page.GetByRole(AriaRole.Link, new() { Name = name, Exact = true }).ClickAsync();
        await Expect(page.Locator("[data-active-version]")).ToHaveTextAsync("v1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Pin version 2" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Version 2 is now active");
        await Expect(page.Locator("[data-active-version]")).ToHaveTextAsync("v2");
        Assert.Equal(2, (await system.Api.Attributes.GetAsync(name)).ActiveVersion);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Pin version 1" })).ToHaveCountAsync(1);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Pin version 2" })).ToHaveCountAsync(0);
        await AssertAccessibleAsync(page, "a pinned attribute");
        await ShootAsync(page, "attribute-pinned");
    }

    [Fact]
    public async Task A_strangers_key_cannot_open_the_owners_job_and_an_admin_key_sees_every_owner()
    {
        await system.SmilingEditorAsync();
        var job = (await system.Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(3, SddSystem.ImageSize, first: 560).ToUploads())).JobId;
        await system.Api.WaitForCompletedAsync(job, Wait, () => system.Edit.Tail());
        var item = (await system.Api.Jobs.ListItemsAsync(job)).Items.First().Id;

        using var admin = system.Client(system.AdminKey);
        var stranger = await admin.Keys.CreateAsync("dash-stranger-" + Guid.NewGuid().ToString("N")[..6]);
        await using (var session = await SignInAsync(stranger.Key))
        {
            var page = session.Page;
            var answer = await page.GotoAsync($"/ui/jobs/{job}");
            Assert.Equal(404, answer!.Status);
            await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync("Not found");
            await AssertAccessibleAsync(page, "another owner's job (404)");
            foreach (var path in new[] { $"/ui/jobs/{job}?handler=Progress", $"/ui/jobs/{job}/results.zip", $"/ui/jobs/{job}/items/{item}/input", $"/ui/jobs/{job}/items/{item}/output" })
                Assert.Equal(404, (await session.Context.APIRequest.GetAsync(path)).Status);
            // A cancel posted with a valid form of the stranger's own session is still a 404.
            var token = await page.Locator("form input[name='__RequestVerificationToken']").First.GetAttributeAsync("value");
            var cancel = await session.Context.APIRequest.PostAsync($"/ui/jobs/{job}?handler=Cancel",
                new() { Form = session.Context.APIRequest.CreateFormData().Set("__RequestVerificationToken", token!), MaxRedirects = 0 });
            Assert.Equal(404, cancel.Status);
            Assert.Equal(JobState.Completed, (await system.Api.Jobs.GetAsync(job)).State);
            await page.GotoAsync("/ui/jobs");
            await Expect(page.Locator($"tr[data-job='{job}']")).ToHaveCountAsync(0);
        }

        // Without antiforgery a form post is refused, even signed in.
        await using (var owner = await SignInAsync(system.ApiKey))
        {
            var forged = await owner.Context.APIRequest.PostAsync($"/ui/jobs/{job}?handler=Cancel", new() { MaxRedirects = 0 });
            Assert.Equal(400, forged.Status);
            var cookie = (await owner.Context.CookiesAsync()).Single(c => c.Name == "sdd-ui");
            Assert.True(cookie.HttpOnly);
            Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
            Assert.Equal("/ui", cookie.Path);
            Assert.DoesNotContain(system.ApiKey, cookie.Value);
            // The cookie is no key to the API.
            var api = await owner.Context.APIRequest.GetAsync("/v1/jobs");
            Assert.Equal(401, api.Status);
        }

        await using (var session = await SignInAsync(system.AdminKey))
        {
            var page = session.Page;
            await page.GotoAsync("/ui/jobs");
            await Expect(page.GetByRole(AriaRole.Columnheader, new() { Name = "Owner" })).ToHaveCountAsync(1);
            var row = page.Locator($"tr[data-job='{job}']");
            await Expect(row).ToHaveCountAsync(1);
            await Expect(row.Locator("td").First).ToHaveTextAsync("e2e");
            var answer = await page.GotoAsync($"/ui/jobs/{job}");
            Assert.Equal(200, answer!.Status);
            await Expect(page.Locator("dl.facts").First).ToContainTextAsync("e2e");
            await page.GotoAsync("/ui/runs");
            await Expect(page.GetByRole(AriaRole.Columnheader, new() { Name = "Owner" })).ToHaveCountAsync(1);
            await ShootAsync(page, "runs-admin");
            await page.GotoAsync("/ui/jobs");
            await ShootAsync(page, "jobs-admin");

            // Signing out ends the session: the next page asks for a key again.
            await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex("/ui/signin"));
            await page.GotoAsync("/ui/jobs");
            await Expect(page).ToHaveURLAsync(new Regex("/ui/signin"));
        }

        // A revoked key's session ends at its next request.
        await using (var revoked = await SignInAsync(stranger.Key))
        {
            await admin.Keys.RevokeAsync(stranger.Id);
            await revoked.Page.GotoAsync("/ui/jobs");
            await Expect(revoked.Page).ToHaveURLAsync(new Regex("/ui/signin"));
        }
    }

    [Fact]
    public async Task Every_page_passes_axe_with_no_serious_or_critical_violation_and_is_photographed()
    {
        await system.SmilingEditorAsync();
        var job = (await system.Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(8, SddSystem.ImageSize, first: 580).ToUploads())).JobId;
        await system.Api.WaitForCompletedAsync(job, Wait, () => system.Edit.Tail());

        await using var session = await SignInAsync(system.ApiKey, check: async signIn =>
        {
            await AssertAccessibleAsync(signIn, "sign-in");
            await ShootAsync(signIn, "signin");
        });
        var page = session.Page;
        foreach (var (path, shot) in new (string Path, string? Shot)[]
                 {
                     ("/ui/jobs", "jobs"), ($"/ui/jobs/{job}", null), ("/ui/runs", "runs"),
                     ("/ui/attributes", "registry"), ("/ui/attributes/smiling", "attribute-smiling"), ($"/ui/jobs/{Guid.NewGuid()}", "not-found"),
                 })
        {
            await page.GotoAsync(path);
            await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
            await AssertAccessibleAsync(page, path);
            if (shot is not null) await ShootAsync(page, shot);
        }
        // The status strip: PostgreSQL, RabbitMQ and S3 healthy, and the edit worker consuming its queue.
        await page.GotoAsync("/ui/jobs");
        var strip = page.GetByRole(AriaRole.Region, new() { Name = "System status" });
        foreach (var server in new[] { "PostgreSQL: healthy", "RabbitMQ: healthy", "S3: healthy" }) await Expect(strip).ToContainTextAsync(server);
        await Expect(strip.Locator("[data-queue='edit'] .consumers")).Not.ToHaveTextAsync("0");
    }

    /// <summary>A browser context signed in with <paramref name="key"/> through the sign-in form (reached by asking for a page).</summary>
    private async Task<Session> SignInAsync(string key, Func<IPage, Task>? check = null)
    {
        var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = system.ApiUrl.ToString().TrimEnd('/'),
            ViewportSize = new ViewportSize { Width = 1280, Height = 900 },
            AcceptDownloads = true,
        });
        context.SetDefaultTimeout(30_000);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/ui/jobs");
        await Expect(page).ToHaveURLAsync(new Regex("/ui/signin"));
        if (check is not null) await check(page);
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/ui/jobs$"));
        return new Session(context, page);
    }

    private sealed record Session(IBrowserContext Context, IPage Page) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => new(Context.CloseAsync());
    }

    private async Task AssertAccessibleAsync(IPage page, string what)
    {
        var result = await page.RunAxe();
        foreach (var v in result.Violations)
            output.WriteLine($"axe {what}: {v.Impact} {v.Id}: {v.Help} ({string.Join("; ", v.Nodes.Take(3).Select(n => string.Join(" ", n.Target)))})");
        var serious = result.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(serious.Count == 0, $"{what}: {string.Join("\n", serious.Select(v => $"{v.Impact} {v.Id}: {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Html))}"))}");
        Assert.NotEmpty(result.Passes);
    }

    private async Task ShootAsync(IPage page, string name)
    {
        Directory.CreateDirectory(Screenshots);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, name + ".png"), FullPage = true });
    }
}
