using Npgsql;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// The fault suite on the real stack with the services as processes: workers killed, RabbitMQ killed, S3 down,
/// PostgreSQL killed, large photos against the worker's memory budget. Every case ends with every item edited exactly
/// once (or failed with its reason where the input is bad), every job final, every run completed. Small inside
/// ./sdd test; full size under ./sdd check faults (<see cref="FaultScale"/>). These kill shared servers: they run
/// alone (the test projects run one after another).
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class FaultTests(SddSystem system, ITestOutputHelper output)
{
    private SddApi Api => system.Api;

    [Fact]
    public async Task The_edit_worker_killed_again_and_again_mid_job_loses_and_repeats_nothing()
    {
        int n = FaultScale.Pick(300, 5000), kills = FaultScale.Pick(2, 10);
        await system.SmilingEditorAsync();
        FaultScale.ResetPeak(system.Edit.Pid);
        var jobId = (await Api.SubmitFilesAsync("smiling", SddSystem.Portraits(n, SddSystem.ImageSize, first: 10_000))).Id("jobId");
        long peak = 0;
        for (int k = 1; k <= kills; k++)
        {
            int target = n * k / (kills + 1);
            var status = await PollJobAsync(jobId, j => j.GetProperty("counts").Int("done") >= target || j.Str("state") == "completed", TimeSpan.FromMinutes(10));
            if (status.Str("state") == "completed") break;
            peak = Math.Max(peak, FaultScale.PeakRssMiB(system.Edit.Pid));
            system.Edit.Kill();
            await system.RestartAsync(system.Edit);
        }
        await PollJobAsync(jobId, j => j.Str("state") == "completed", TimeSpan.FromMinutes(15));
        peak = Math.Max(peak, FaultScale.PeakRssMiB(system.Edit.Pid));
        var counts = await AssertEditedExactlyOnceAsync(jobId, n);
        FaultScale.Report(output, $"| edit worker kill -9 x{kills} during a {n}-item job | {counts} | edit peak RSS {peak} MiB |");
    }

    [Fact]
    public async Task RabbitMQ_killed_and_restarted_mid_job_loses_and_repeats_nothing()
    {
        int n = FaultScale.Pick(200, 2000);
        await system.SmilingEditorAsync();
        FaultScale.ResetPeak(system.Edit.Pid);
        var jobId = (await Api.SubmitFilesAsync("smiling", SddSystem.Portraits(n, SddSystem.ImageSize, first: 20_000))).Id("jobId");
        await PollJobAsync(jobId, j => j.GetProperty("counts").Int("done") >= n / 5, TimeSpan.FromMinutes(5));
        await LocalStack.KillAsync(system.Root, "rabbitmq");
        await Task.Delay(TimeSpan.FromSeconds(3));
        await LocalStack.UpAsync(system.Root);
        await PollJobAsync(jobId, j => j.Str("state") == "completed", TimeSpan.FromMinutes(10));
        var counts = await AssertEditedExactlyOnceAsync(jobId, n);
        FaultScale.Report(output, $"| RabbitMQ kill -9 and restart during a {n}-item job | {counts} | edit peak RSS {FaultScale.PeakRssMiB(system.Edit.Pid)} MiB |");
    }

    [Fact]
    public async Task S3_down_mid_job_delays_but_loses_nothing()
    {
        int n = FaultScale.Pick(100, 1000);
        var outage = TimeSpan.FromSeconds(FaultScale.Pick(10, 60));
        await system.SmilingEditorAsync();
        FaultScale.ResetPeak(system.Edit.Pid);
        var jobId = (await Api.SubmitFilesAsync("smiling", SddSystem.Portraits(n, SddSystem.ImageSize, first: 30_000))).Id("jobId");
        await PollJobAsync(jobId, j => j.GetProperty("counts").Int("done") >= n / 5, TimeSpan.FromMinutes(5));
        await LocalStack.KillAsync(system.Root, "s3rver");
        await Task.Delay(outage);
        await LocalStack.UpAsync(system.Root);
        await PollJobAsync(jobId, j => j.Str("state") == "completed", TimeSpan.FromMinutes(10));
        var counts = await AssertEditedExactlyOnceAsync(jobId, n);
        FaultScale.Report(output, $"| S3 down {outage.TotalSeconds:0} s during a {n}-item job | {counts} | edit peak RSS {FaultScale.PeakRssMiB(system.Edit.Pid)} MiB |");
    }

    [Theory]
    [InlineData("postgres")]
    [InlineData("s3rver")]
    public async Task A_run_survives_its_server_going_down_mid_run_and_completes(string server)
    {
        var name = $"fault-{server}-{Guid.NewGuid():N}"[..24];
        FaultScale.ResetPeak(system.Distill.Pid);
        var accepted = await Api.PostAsync("/v1/attributes", new { name, teacherId = system.TeacherId, targetAttribute = "white_hair", settings = new { steps = 40 } });
        var runId = accepted.Id("runId");
        await PollAsync($"/v1/runs/{runId}", r => r.Int("step") >= 10 || r.Str("state") is "succeeded" or "failed", TimeSpan.FromMinutes(3));
        var outage = TimeSpan.FromSeconds(server == "postgres" ? 3 : FaultScale.Pick(10, 60));
        await LocalStack.KillAsync(system.Root, server);
        await Task.Delay(outage);
        await LocalStack.UpAsync(system.Root);
        var run = await PollAsync($"/v1/runs/{runId}", r => r.Str("state") is "succeeded" or "failed", TimeSpan.FromMinutes(10));
        Assert.True(run.Str("state") == "succeeded", $"{run}\n{system.Distill.Tail()}");
        Assert.Equal(40, run.Int("step"));
        FaultScale.Report(output, $"| {server} down {outage.TotalSeconds:0} s mid-run (distill, 40 steps in chunks of 10) | run {run.Str("state")} at step {run.Int("step")} | distill peak RSS {FaultScale.PeakRssMiB(system.Distill.Pid)} MiB |");
    }

    [Fact]
    public async Task Large_photos_are_edited_within_the_memory_budget_and_a_thin_strip_fails_with_its_reason()
    {
        int count = FaultScale.Pick(4, 32);
        var (width, height) = FaultScale.Full ? (4000, 3000) : (1600, 1200); // 12 MP at full size
        int stripHeight = FaultScale.Pick(200_000, 5_000_000); // 8 x 5,000,000 = 40 MP passes the pixel limit
        await system.SmilingEditorAsync();
        var files = new List<(string Name, byte[] Bytes)>();
        foreach (var (name, bytes) in SddSystem.Portraits(count, 64, first: 40_000))
        {
            using var image = Image.Load<Rgb24>(bytes);
            image.Mutate(x => x.Resize(width, height));
            using var ms = new MemoryStream();
            image.SaveAsJpeg(ms, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 90 });
            files.Add((Path.ChangeExtension(name, ".jpg"), ms.ToArray()));
        }
        using (var strip = new Image<Rgb24>(8, stripHeight, new Rgb24(90, 90, 90)))
        using (var ms = new MemoryStream())
        {
            strip.SaveAsPng(ms);
            files.Add(("strip.png", ms.ToArray()));
        }
        var (uploadId, _) = await Api.UploadAsync(files);
        FaultScale.ResetPeak(system.Edit.Pid);
        var before = FaultScale.PeakRssMiB(system.Edit.Pid);
        var jobId = (await Api.PostAsync("/v1/jobs", new { attribute = "smiling", source = new { upload = uploadId } })).Id("jobId");
        var job = await PollJobAsync(jobId, j => j.Str("state") == "completed", TimeSpan.FromMinutes(15));

        Assert.Equal((count, 1), (job.GetProperty("counts").Int("done"), job.GetProperty("counts").Int("failed")));
        var strip_ = (await Api.GetAsync($"/v1/jobs/{jobId}/items?state=failed")).GetProperty("items").EnumerateArray().Single();
        Assert.Equal("strip.png", strip_.Str("name"));
        Assert.Contains("aspect ratio", strip_.Str("error"));
        var result = (await Api.GetAsync($"/v1/jobs/{jobId}/results")).GetProperty("items").EnumerateArray().First();
        using (var edited = Image.Load(await Api.DownloadAsync(result.Str("url")))) Assert.Equal((width, height), (edited.Width, edited.Height));
        long peak = FaultScale.PeakRssMiB(system.Edit.Pid), budget = 2048;
        Assert.True(peak < budget + 1024, $"edit worker peak RSS {peak} MiB (before the job {before} MiB) against a budget of {budget} MiB for images");
        FaultScale.Report(output, $"| {count} photos of {width}x{height} (JPEG) and an 8x{stripHeight} PNG in one job | {count} done, 1 failed: {strip_.Str("error")} | edit peak RSS {peak} MiB (SDD_EDIT_MEMORY_MB {budget}) |");
    }

    /// <summary>Every item done, each with its own output, the job completed once: returns a summary for the table.</summary>
    private async Task<string> AssertEditedExactlyOnceAsync(Guid jobId, int n)
    {
        var job = await Api.GetAsync($"/v1/jobs/{jobId}");
        Assert.Equal("completed", job.Str("state"));
        Assert.Equal((n, 0, 0), (job.GetProperty("counts").Int("done"), job.GetProperty("counts").Int("failed"), job.GetProperty("counts").Int("pending")));
        await using var db = system.Database();
        await db.OpenAsync();
        await using var items = new NpgsqlCommand("""
            SELECT count(*) FILTER (WHERE "State" = 'Done'), count(DISTINCT "OutputKey"), max("Attempts"), count(*) FILTER (WHERE "Attempts" > 1)
              FROM job_items WHERE "JobId" = @job
            """, db);
        items.Parameters.AddWithValue("job", jobId);
        await using var r = await items.ExecuteReaderAsync();
        await r.ReadAsync();
        var (done, outputs, maxAttempts, retried) = (r.GetInt64(0), r.GetInt64(1), r.GetInt32(2), r.GetInt64(3));
        Assert.Equal((n, n), ((int)done, (int)outputs));
        var stored = (await system.JobOutputsAsync(jobId)).Count;
        Assert.Equal(n, stored);
        var completions = File.ReadLines(system.Edit.LogFile).Count(l => l.Contains($"Job {jobId} completed", StringComparison.Ordinal));
        Assert.Equal(1, completions);
        return $"{done} done, 0 failed, 0 lost, {outputs} distinct outputs, {stored} objects, completed once; items sent again after a loss: {retried} (most attempts {maxAttempts})";
    }

    private Task<JsonElement> PollJobAsync(Guid jobId, Func<JsonElement, bool> done, TimeSpan timeout) => PollAsync($"/v1/jobs/{jobId}", done, timeout);

    /// <summary>Polls through an outage: the API may answer errors while a server is down.</summary>
    private async Task<JsonElement> PollAsync(string path, Func<JsonElement, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonElement last = default;
        string? error = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await Api.GetAsync(path);
                error = null;
                if (done(last)) return last;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { error = e.Message; }
            await Task.Delay(500);
        }
        throw new TimeoutException($"{path} did not reach the expected state in {timeout.TotalSeconds:0} s; last: {last} {error}\n{system.Edit.Tail()}\n{system.Distill.Tail()}");
    }
}
