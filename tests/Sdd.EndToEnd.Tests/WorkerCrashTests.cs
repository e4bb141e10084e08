using System.Text.RegularExpressions;
using Npgsql;

namespace Sdd.EndToEnd.Tests;

/// <summary>Workers killed with kill -9 in the middle of their work and started again: nothing is lost, nothing is done twice.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class WorkerCrashTests(SddSystem system, ITestOutputHelper output)
{
    private SddApi Api => system.Api;

    [Fact]
    public async Task An_edit_worker_killed_mid_job_and_restarted_edits_every_item_exactly_once()
    {
        await system.SmilingEditorAsync();
        const int n = 150; // 30 batches of 5, one at a time: seconds of work, so the kill lands mid-job
        var accepted = await Api.SubmitFilesAsync("smiling", SddSystem.Portraits(n, 160, first: 1000));
        var jobId = accepted.Id("jobId");

        var atKill = await Api.WaitForAsync($"/v1/jobs/{jobId}", j => j.GetProperty("counts").Int("done") >= 10, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        system.Edit.Kill();
        int doneAtKill = (await Api.GetAsync($"/v1/jobs/{jobId}")).GetProperty("counts").Int("done");
        output.WriteLine($"edit worker killed with {doneAtKill} of {n} done (first seen {atKill.GetProperty("counts")})");
        Assert.True(doneAtKill < n, "the job finished before the kill: nothing was interrupted");
        await Task.Delay(1000);
        Assert.Equal(doneAtKill, (await Api.GetAsync($"/v1/jobs/{jobId}")).GetProperty("counts").Int("done")); // nobody else edits

        await system.RestartAsync(system.Edit);
        var job = await Api.WaitForAsync($"/v1/jobs/{jobId}", j => j.Str("state") == "completed", TimeSpan.FromMinutes(3), () => system.Edit.Tail());
        Assert.Equal(n, job.Int("total"));
        Assert.Equal(n, job.GetProperty("counts").Int("done"));
        Assert.Equal(0, job.GetProperty("counts").Int("failed"));
        Assert.Equal(0, job.GetProperty("counts").Int("pending"));

        // The rows: every item done once (one recorded attempt), each with its own output; the job's counts from them.
        await using var db = system.Database();
        await db.OpenAsync();
        await using (var items = new NpgsqlCommand("""
            SELECT count(*) FILTER (WHERE "State" = 'Done'), count(*) FILTER (WHERE "Attempts" <> 1), count(DISTINCT "OutputKey")
              FROM job_items WHERE "JobId" = @job
            """, db))
        {
            items.Parameters.AddWithValue("job", jobId);
            await using var r = await items.ExecuteReaderAsync();
            await r.ReadAsync();
            Assert.Equal(n, r.GetInt64(0));
            Assert.Equal(0, r.GetInt64(1));
            Assert.Equal(n, r.GetInt64(2));
        }
        await using (var counts = new NpgsqlCommand("""SELECT "DoneCount", "FailedCount", "State" FROM edit_jobs WHERE "Id" = @job""", db))
        {
            counts.Parameters.AddWithValue("job", jobId);
            await using var r = await counts.ExecuteReaderAsync();
            await r.ReadAsync();
            Assert.Equal((n, 0, "Completed"), (r.GetInt32(0), r.GetInt32(1), r.GetString(2)));
        }
        var outputs = await system.JobOutputsAsync(jobId);
        Assert.Equal(n, outputs.Count);
        Assert.Equal(n, outputs.Distinct().Count());
        Assert.Single(system.Edit.Lines, l => l.Contains($"Job {jobId} completed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_distill_worker_killed_mid_run_and_restarted_resumes_from_its_last_checkpoint()
    {
        var dataset = await system.DatasetAsync();
        await system.SmilingEditorAsync(); // the worker is free for this run
        var accepted = await Api.PostAsync("/v1/attributes", new
        {
            name = "eyeglasses", teacherId = system.TeacherId, targetAttribute = "eyeglasses", datasetId = dataset,
            settings = new { steps = 60 },
        });
        var runId = accepted.Id("runId");
        await Api.WaitForAsync($"/v1/runs/{runId}", r => r.Int("step") >= 20, TimeSpan.FromMinutes(2), () => system.Distill.Tail());
        system.Distill.Kill();
        var atKill = await Api.GetAsync($"/v1/runs/{runId}");
        int stepAtKill = atKill.Int("step");
        output.WriteLine($"distill worker killed at checkpoint step {stepAtKill}, state {atKill.Str("state")}");
        Assert.Equal("running", atKill.Str("state"));
        Assert.InRange(stepAtKill, 20, 59);

        await system.RestartAsync(system.Distill);
        var run = await Api.WaitForAsync($"/v1/runs/{runId}", r => r.Str("state") is "succeeded" or "failed", TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        Assert.Equal("succeeded", run.Str("state"));
        Assert.Equal(60, run.Int("step"));

        // The restarted worker resumed from the checkpoint the killed one uploaded, never from step 0.
        var resumed = system.Distill.Lines.Select(l => Regex.Match(l, $@"Run {runId}: chunk (\d+) resumes from checkpoint step (\d+)")).Where(m => m.Success).ToList();
        Assert.NotEmpty(resumed);
        int firstResumed = int.Parse(resumed[0].Groups[2].Value);
        output.WriteLine($"restarted worker resumed chunk {resumed[0].Groups[1].Value} from step {firstResumed}");
        Assert.True(firstResumed >= stepAtKill && firstResumed > 0, $"resumed from {firstResumed}, the checkpoint at the kill was {stepAtKill}");
        Assert.DoesNotContain(system.Distill.Lines, l => l.Contains($"Run {runId}: chunk", StringComparison.Ordinal) && l.Contains("starts at step 0", StringComparison.Ordinal));
        var version = (await Api.GetAsync("/v1/attributes/eyeglasses")).GetProperty("versions").EnumerateArray().Single();
        Assert.Equal("ready", version.Str("state"));
    }
}
