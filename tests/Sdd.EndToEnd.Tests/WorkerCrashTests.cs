using System.Text.RegularExpressions;
using Npgsql;

namespace Sdd.EndToEnd.Tests;

/// <summary>Workers killed with kill -9 in the middle of their work and started again: nothing is lost, nothing is done twice.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class WorkerCrashTests(SddSystem system, ITestOutputHelper output)
{
    private SddClient Api => system.Api;

    [Fact]
    public async Task An_edit_worker_killed_mid_job_and_restarted_edits_every_item_exactly_once()
    {
        await system.SmilingEditorAsync();
        const int n = 150; // 30 batches of 5, one at a time: seconds of work, so the kill lands mid-job
        var accepted = await Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(n, 160, first: 1000).ToUploads());
        var jobId = accepted.JobId;

        var atKill = await Api.WaitForJobAsync(jobId, j => j.Counts.Done >= 10, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        system.Edit.Kill();
        int doneAtKill = (await Api.Jobs.GetAsync(jobId)).Counts.Done;
        output.WriteLine($"edit worker killed with {doneAtKill} of {n} done (first seen {atKill.Counts})");
        Assert.True(doneAtKill < n, "the job finished before the kill: nothing was interrupted");
        await Task.Delay(1000);
        Assert.Equal(doneAtKill, (await Api.Jobs.GetAsync(jobId)).Counts.Done); // nobody else edits

        await system.RestartAsync(system.Edit);
        var job = await Api.WaitForCompletedAsync(jobId, TimeSpan.FromMinutes(3), () => system.Edit.Tail());
        Assert.Equal(n, job.Total);
        Assert.Equal(n, job.Counts.Done);
        Assert.Equal(0, job.Counts.Failed);
        Assert.Equal(0, job.Counts.Pending);

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
        var accepted = await Api.Attributes.CreateAsync(new CreateAttribute("eyeglasses", system.TeacherId, "eyeglasses", dataset, new DistillSettings(Steps: 60)));
        var runId = accepted.RunId;
        await Api.WaitForRunAsync(runId, r => r.Step >= 20, TimeSpan.FromMinutes(2), () => system.Distill.Tail());
        system.Distill.Kill();
        var atKill = await Api.Runs.GetAsync(runId);
        int stepAtKill = atKill.Step;
        output.WriteLine($"distill worker killed at checkpoint step {stepAtKill}, state {SddJson.Name(atKill.State)}");
        Assert.Equal(RunState.Running, atKill.State);
        Assert.InRange(stepAtKill, 20, 59);

        await system.RestartAsync(system.Distill);
        var run = await Api.WaitForFinishedAsync(runId, TimeSpan.FromMinutes(3), () => system.Distill.Tail());
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(60, run.Step);

        // The restarted worker resumed from the checkpoint the killed one uploaded, never from step 0.
        var resumed = system.Distill.Lines.Select(l => Regex.Match(l, $@"Run {runId}: chunk (\d+) resumes from checkpoint step (\d+)")).Where(m => m.Success).ToList();
        Assert.NotEmpty(resumed);
        int firstResumed = int.Parse(resumed[0].Groups[2].Value);
        output.WriteLine($"restarted worker resumed chunk {resumed[0].Groups[1].Value} from step {firstResumed}");
        Assert.True(firstResumed >= stepAtKill && firstResumed > 0, $"resumed from {firstResumed}, the checkpoint at the kill was {stepAtKill}");
        Assert.DoesNotContain(system.Distill.Lines, l => l.Contains($"Run {runId}: chunk", StringComparison.Ordinal) && l.Contains("starts at step 0", StringComparison.Ordinal));
        var version = (await Api.Attributes.GetAsync("eyeglasses")).Versions.Single();
        Assert.Equal(EditorState.Ready, version.State);
    }
}
