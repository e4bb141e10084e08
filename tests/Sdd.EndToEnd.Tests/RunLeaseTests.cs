using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace Sdd.EndToEnd.Tests;

/// <summary>
/// Distillation runs that cannot fork or die of a hiccup: a lease per run between real distill worker processes,
/// checkpoints switched to new generations, a vanished worker's run re-sent by the sweeper, an S3 outage retried.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class RunLeaseTests(SddSystem system, ITestOutputHelper output)
{
    private const int Steps = 40; // chunks of 10 (SDD_DISTILL_CHUNK_STEPS in the fixture)
    private SddClient Api => system.Api;

    private async Task<(Guid RunId, Guid VersionId)> StartRunAsync(string name, string target = "smiling")
    {
        var dataset = await system.DatasetAsync();
        var accepted = await Api.Attributes.CreateAsync(new CreateAttribute(name, system.TeacherId, target, dataset, new DistillSettings(Steps: Steps)));
        return (accepted.RunId, accepted.EditorVersionId);
    }

    private async Task<Run> WaitFinishedAsync(Guid runId, params ServiceProcess[] workers) =>
        await Api.WaitForFinishedAsync(runId, TimeSpan.FromMinutes(3), () => string.Join("\n---\n", workers.Select(w => $"{w.Name}:\n{w.Tail()}")));

    /// <summary>Every line any of these workers logged about the run (all their starts), with the worker's name.</summary>
    private static List<(string Worker, string Line)> RunLines(Guid runId, params ServiceProcess[] workers) =>
        workers.SelectMany(w => File.Exists(w.LogFile) ? File.ReadLines(w.LogFile).Select(l => (w.Name, l)) : [])
            .Where(x => x.l.Contains(runId.ToString(), StringComparison.Ordinal)).ToList();

    /// <summary>The chunks trained ("chunk k trained steps a..b"), by whom.</summary>
    private static List<(string Worker, int Chunk, int From, int To)> Trained(Guid runId, params ServiceProcess[] workers) =>
        RunLines(runId, workers).Select(x => (x.Worker, M: Regex.Match(x.Line, $@"Run {runId}: chunk (\d+) trained steps (\d+)\.\.(\d+)")))
            .Where(x => x.M.Success)
            .Select(x => (x.Worker, int.Parse(x.M.Groups[1].Value), int.Parse(x.M.Groups[2].Value), int.Parse(x.M.Groups[3].Value))).ToList();

    private static void AssertEveryChunkTrainedOnce(List<(string Worker, int Chunk, int From, int To)> trained)
    {
        Assert.Equal(Enumerable.Range(1, Steps / 10), trained.Select(t => t.Chunk).Order());
        Assert.Equal(Enumerable.Range(0, Steps / 10).Select(i => (i * 10, i * 10 + 10)), trained.OrderBy(t => t.Chunk).Select(t => (t.From, t.To)));
    }

    private async Task<(string? Worker, int Step)> RowAsync(Guid runId)
    {
        await using var db = system.Database();
        await db.OpenAsync();
        await using var q = new NpgsqlCommand("""SELECT "Worker", "Step" FROM training_runs WHERE "Id" = @id""", db);
        q.Parameters.AddWithValue("id", runId);
        await using var r = await q.ExecuteReaderAsync();
        await r.ReadAsync();
        return (r.IsDBNull(0) ? null : r.GetString(0), r.GetInt32(1));
    }

    private static string WorkerPrefix(ServiceProcess p) => $"{Environment.MachineName}:{p.Pid}:";

    /// <summary>Publishes a command to the distill queue as MassTransit would (through the broker's management API): a real duplicate delivery.</summary>
    private async Task SendDuplicateAsync(string type, object message)
    {
        using var http = system.Management();
        var envelope = JsonSerializer.Serialize(new
        {
            messageId = Guid.NewGuid(), messageType = new[] { $"urn:message:Sdd.Contracts:{type}" }, message, sentTime = DateTime.UtcNow,
        }, JsonSerializerOptions.Web);
        using var response = await http.PostAsJsonAsync($"api/exchanges/{Uri.EscapeDataString(system.RunName)}/distill/publish", new
        {
            properties = new Dictionary<string, object> { ["content_type"] = "application/vnd.masstransit+json", ["delivery_mode"] = 2 },
            routing_key = "", payload = envelope, payload_encoding = "string",
        });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode && body.Contains("\"routed\":true"), body);
    }

    private static void AssertCheckpointSwitched(List<string> keys, string folder, JsonElement progress)
    {
        var generation = progress.Str("folder");
        Assert.All(keys, k => Assert.True(k == folder + "train/progress.json" || k.StartsWith(folder + generation, StringComparison.Ordinal), $"left behind: {k}"));
        Assert.Contains(folder + generation + "train/state.json", keys);
    }

    [Fact]
    public async Task Two_workers_and_duplicate_commands_train_every_chunk_of_a_run_exactly_once()
    {
        await system.SmilingEditorAsync(); // the fixture's worker is free
        using var second = await system.StartDistillWorkerAsync("Sdd.Distill-second");
        var (runId, versionId) = await StartRunAsync("twins");
        // Duplicates of the first chunk, as a redelivery or a double send would make them; the two workers compete for them.
        await SendDuplicateAsync("RunDistillChunk", new { runId, editorVersionId = versionId, chunk = 1 });
        await SendDuplicateAsync("RunDistillChunk", new { runId, editorVersionId = versionId, chunk = 1 });

        var run = await WaitFinishedAsync(runId, system.Distill, second);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(Steps, run.Step);
        var trained = Trained(runId, system.Distill, second);
        output.WriteLine(string.Join("\n", trained.Select(t => $"chunk {t.Chunk} ({t.From}..{t.To}) by {t.Worker}")));
        AssertEveryChunkTrainedOnce(trained);
        // Both duplicates were seen and turned away: dropped while the holder was alive, or skipped as done (a worker
        // waiting for the lease may still be waiting when the run completes).
        var turnedAway = new Regex($@"Run {runId}( is Completed)?: chunk 1 (skipped|dropped: .* is alive|was already done \(checkpoint chunk \d+, step \d+\); skipped)");
        for (int i = 0; i < 150 && RunLines(runId, system.Distill, second).Count(x => turnedAway.IsMatch(x.Line)) < 2; i++) await Task.Delay(100);
        var lines = RunLines(runId, system.Distill, second);
        output.WriteLine(string.Join("\n", lines.Where(x => turnedAway.IsMatch(x.Line) || x.Line.Contains("lease", StringComparison.Ordinal)).Select(x => $"{x.Worker}: {x.Line}")));
        Assert.Equal(2, lines.Count(x => turnedAway.IsMatch(x.Line)));
        Assert.Contains(lines, x => x.Line.Contains($"Run {runId}: chunk 1 waits for the lease held by ", StringComparison.Ordinal)); // the workers did compete
        Assert.Single(lines, x => x.Line.Contains($"Run {runId} (distill) completed", StringComparison.Ordinal));
        AssertCheckpointSwitched(await system.ListAsync(system.Settings.S3.ModelsBucket, $"tenants/{system.Owner}/editors/twins/1/train/"),
            $"tenants/{system.Owner}/editors/twins/1/",
            JsonDocument.Parse(await system.Store.GetBytesAsync(system.Settings.S3.ModelsBucket, $"tenants/{system.Owner}/editors/twins/1/train/progress.json")).RootElement);
    }

    [Fact]
    public async Task A_cancelled_run_stops_on_its_worker_within_a_heartbeat_and_records_nothing_after()
    {
        await system.SmilingEditorAsync(); // the fixture's worker is free
        var name = $"cancelled-{Guid.NewGuid():N}"[..20];
        var dataset = await system.DatasetAsync();
        var accepted = await Api.Attributes.CreateAsync(new CreateAttribute(name, system.TeacherId, "smiling", dataset, new DistillSettings(Steps: 1000)));
        var runId = accepted.RunId;
        // Running, past its first recorded chunk: a worker holds the lease and is training.
        Run seen = await Api.Runs.GetAsync(runId);
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !(seen.State == RunState.Running && seen.Step >= 10); await Task.Delay(200))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), $"the run never got going: {seen}\n{system.Distill.Tail()}");
            seen = await Api.Runs.GetAsync(runId);
        }

        var cancelled = await Api.Runs.CancelAsync(runId);
        Assert.Equal(RunState.Cancelled, cancelled.State);
        Assert.Equal("cancelled by its owner", cancelled.Error);

        // The worker loses the lease at its next heartbeat (2 s here), abandons the chunk, and the chunk's re-sent
        // command finds the run cancelled.
        var lost = new Regex($@"Run {runId}: worker .* lost its lease");
        var skipped = new Regex($@"Run {runId} is Cancelled: chunk \d+ skipped");
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !RunLines(runId, system.Distill).Any(x => lost.IsMatch(x.Line)); await Task.Delay(100))
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(10), $"the worker did not stop:\n{system.Distill.Tail()}");
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !RunLines(runId, system.Distill).Any(x => skipped.IsMatch(x.Line)); await Task.Delay(200))
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(90), $"the abandoned chunk was not turned away:\n{system.Distill.Tail()}");

        // Nothing was recorded after the cancel: the step and state stand, the version failed.
        var after = await Api.Runs.GetAsync(runId);
        Assert.Equal((RunState.Cancelled, cancelled.Step), (after.State, after.Step));
        Assert.Equal(EditorState.Failed, (await Api.Attributes.GetAsync(name)).Versions.Single().State);
        var again = await Assert.ThrowsAsync<SddApiException>(() => Api.Runs.CancelAsync(runId));
        Assert.Equal(409, again.Status);
    }

    [Fact]
    public async Task A_worker_killed_mid_chunk_has_its_lease_taken_over_after_expiry_and_the_run_resumes_from_the_switched_checkpoint()
    {
        await system.SmilingEditorAsync();
        using var second = await system.StartDistillWorkerAsync("Sdd.Distill-taker");
        var (runId, _) = await StartRunAsync("takeover");
        // Kill the fixture's worker while it holds the lease and trains (after the first switched checkpoint).
        var deadline = DateTime.UtcNow.AddMinutes(2);
        (string? Worker, int Step) row;
        int chunkAtKill;
        while (true)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the fixture's worker never trained a later chunk of the run:\n{system.Distill.Tail()}\n---\n{second.Tail()}");
            row = await RowAsync(runId);
            var started = system.Distill.Lines.Select(l => Regex.Match(l, $@"Run {runId}: chunk (\d+) resumes from checkpoint step (\d+)")).LastOrDefault(m => m.Success);
            if (started is not null && row.Worker?.StartsWith(WorkerPrefix(system.Distill), StringComparison.Ordinal) == true &&
                !system.Distill.Lines.Any(l => l.Contains($"Run {runId}: chunk {started.Groups[1].Value} trained steps", StringComparison.Ordinal)))
            {
                chunkAtKill = int.Parse(started.Groups[1].Value);
                system.Distill.Kill();
                break;
            }
            await Task.Delay(50);
        }
        var atKill = await RowAsync(runId);
        output.WriteLine($"killed {atKill.Worker} in chunk {chunkAtKill}, checkpoint step {atKill.Step}");
        try
        {
            Assert.StartsWith(WorkerPrefix(system.Distill).Split(':')[0], atKill.Worker); // the dead worker still holds the lease
            var run = await WaitFinishedAsync(runId, second);
            Assert.Equal(RunState.Succeeded, run.State);
            Assert.Equal(Steps, run.Step);

            // The taker waited for the dead holder's lease to expire (6 s after its last heartbeat), then resumed the
            // interrupted chunk from the checkpoint switched before the kill.
            var took = second.Lines.Select(l => Regex.Match(l, $@"Run {runId}: chunk {chunkAtKill} took the lease over after ([\d.]+) s")).Single(m => m.Success);
            output.WriteLine($"lease taken over after {took.Groups[1].Value} s");
            Assert.InRange(double.Parse(took.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 0.5, 10);
            Assert.Contains(second.Lines, l => l.Contains($"Run {runId}: chunk {chunkAtKill} waits for the lease held by {atKill.Worker}", StringComparison.Ordinal));
            Assert.Contains(second.Lines, l => l.Contains($"Run {runId}: chunk {chunkAtKill} resumes from checkpoint step {atKill.Step}", StringComparison.Ordinal));
            var trained = Trained(runId, system.Distill, second);
            output.WriteLine(string.Join("\n", trained.Select(t => $"chunk {t.Chunk} ({t.From}..{t.To}) by {t.Worker}")));
            AssertEveryChunkTrainedOnce(trained); // the killed chunk never finished, so it counts once: the taker's
            Assert.DoesNotContain(RunLines(runId, system.Distill, second), x => x.Line.Contains("starts at step 0", StringComparison.Ordinal) && x.Worker == second.Name);
        }
        finally { await system.RestartAsync(system.Distill); }
    }

    [Fact]
    public async Task A_run_whose_worker_vanished_with_its_command_lost_is_re_sent_by_the_sweeper_and_completes()
    {
        await system.SmilingEditorAsync();
        var (runId, _) = await StartRunAsync("vanished", "eyeglasses");
        await Api.WaitForRunAsync(runId, r => r.Step >= 10, TimeSpan.FromMinutes(2), () => system.Distill.Tail());
        system.Distill.Kill();
        var atKill = await RowAsync(runId);
        // The dead worker's unacknowledged command comes back to the queue; lose it, as a broker or a fault could.
        using var http = system.Management();
        var queue = $"api/queues/{Uri.EscapeDataString(system.RunName)}/distill";
        for (int i = 0; i < 100 && JsonDocument.Parse(await http.GetStringAsync(queue)).RootElement.GetProperty("messages").GetInt32() == 0; i++) await Task.Delay(100);
        (await http.DeleteAsync(queue + "/contents")).EnsureSuccessStatusCode();
        output.WriteLine($"worker killed at step {atKill.Step}, its command purged");

        var restarted = DateTime.UtcNow;
        await system.RestartAsync(system.Distill);
        var run = await WaitFinishedAsync(runId, system.Distill);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(Steps, run.Step);
        Assert.Contains(system.Distill.Lines, l => Regex.IsMatch(l, $@"Run {runId} \(Running, step \d+\): no heartbeat for \d+ s .*resume command re-sent"));
        var resumed = system.Distill.Lines.Select(l => Regex.Match(l, $@"Run {runId}: resumed \(re-sent\) at chunk (\d+)")).Single(m => m.Success);
        Assert.True(int.Parse(resumed.Groups[1].Value) > 1, resumed.Value);
        Assert.Contains(system.Distill.Lines, l => l.Contains($"Run {runId}: chunk {resumed.Groups[1].Value} resumes from checkpoint step ", StringComparison.Ordinal));
        Assert.DoesNotContain(system.Distill.Lines, l => l.Contains($"Run {runId}: chunk", StringComparison.Ordinal) && l.Contains("starts at step 0", StringComparison.Ordinal));
        output.WriteLine($"resumed at chunk {resumed.Groups[1].Value}, completed {(DateTime.UtcNow - restarted).TotalSeconds:0} s after the restart");
    }

    [Fact]
    public async Task A_worker_cut_off_from_S3_for_seconds_retries_and_completes_its_run()
    {
        await system.SmilingEditorAsync();
        using var proxy = new TcpOutageProxy(system.Settings.S3.Endpoint.Host, system.Settings.S3.Endpoint.Port);
        using var cut = await system.StartDistillWorkerAsync("Sdd.Distill-s3proxy",
            new Dictionary<string, string> { ["SDD_S3_ENDPOINT"] = $"http://127.0.0.1:{proxy.Port}" });
        system.Distill.Kill(); // the proxied worker is the only one
        try
        {
            var (runId, _) = await StartRunAsync("outage", "eyeglasses");
            await Api.WaitForRunAsync(runId, r => r.Step >= 10, TimeSpan.FromMinutes(2), () => cut.Tail());
            proxy.Break();
            var broken = DateTime.UtcNow;
            var retry = new Regex($@"Run {runId}: chunk \d+ attempt (\d+) failed: .*retried in \d+ s");
            // Down for at least 10 s (several backoff rounds), and until it retried twice.
            while (DateTime.UtcNow - broken < TimeSpan.FromSeconds(40) && (DateTime.UtcNow - broken < TimeSpan.FromSeconds(10) || cut.Lines.Count(retry.IsMatch) < 2)) await Task.Delay(200);
            var down = DateTime.UtcNow - broken;
            proxy.Restore();
            output.WriteLine($"S3 cut off for {down.TotalSeconds:0.0} s ({proxy.Refused} connections refused)");
            Assert.True(cut.Lines.Count(retry.IsMatch) >= 2, $"no retries during the outage:\n{cut.Tail()}");

            var run = await WaitFinishedAsync(runId, cut);
            Assert.Equal(RunState.Succeeded, run.State);
            Assert.Equal(Steps, run.Step);
            Assert.True(run.Error is null, $"error: {run}");
            // A chunk whose checkpoint upload the outage cut is trained again from the last switched checkpoint; no other.
            var trained = Trained(runId, cut);
            Assert.Equal(Enumerable.Range(1, Steps / 10), trained.Select(t => t.Chunk).Distinct().Order());
            Assert.All(trained, t => Assert.Equal(((t.Chunk - 1) * 10, t.Chunk * 10), (t.From, t.To)));
            foreach (var again in trained.GroupBy(t => t.Chunk).Where(g => g.Count() > 1))
                Assert.Contains(cut.Lines, l => Regex.IsMatch(l, $@"Run {runId}: chunk {again.Key} attempt \d+ failed"));
            output.WriteLine(string.Join("\n", cut.Lines.Where(l => retry.IsMatch(l))));
        }
        finally { await system.RestartAsync(system.Distill); }
    }
}
