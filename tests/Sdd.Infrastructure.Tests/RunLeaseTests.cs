using Microsoft.EntityFrameworkCore;
using Sdd.Data;
using Sdd.Data.Entities;

namespace Sdd.Infrastructure.Tests;

/// <summary>The run lease (holder = Worker, expiry = HeartbeatAt + lease) and the stale-run queries, on the stack's real PostgreSQL.</summary>
public class RunLeaseTests(MigratedDatabase store) : IClassFixture<MigratedDatabase>
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private async Task<Guid> NewRunAsync(RunState state = RunState.Queued, string? worker = null, TimeSpan? heartbeatAgo = null, TimeSpan? dispatchedAgo = null)
    {
        var run = new TrainingRun
        {
            Id = Guid.NewGuid(), Kind = RunKind.Distill, State = state, Owner = "alice", CreatedAt = DateTimeOffset.UtcNow, TotalSteps = 30,
            Worker = worker, HeartbeatAt = heartbeatAgo is { } h ? DateTimeOffset.UtcNow - h : null,
            DispatchedAt = dispatchedAgo is { } d ? DateTimeOffset.UtcNow - d : null,
        };
        await using var db = store.NewContext();
        db.TrainingRuns.Add(run);
        await db.SaveChangesAsync();
        return run.Id;
    }

    private async Task<TrainingRun> RowAsync(Guid id)
    {
        await using var db = store.NewContext();
        return await db.TrainingRuns.AsNoTracking().SingleAsync(r => r.Id == id);
    }

    [Fact]
    public async Task One_worker_takes_the_lease_the_other_is_refused_until_it_is_released()
    {
        var id = await NewRunAsync();
        await using var db = store.NewContext();
        Assert.True(await db.TryAcquireAsync(id, "a", Lease, default));
        var row = await RowAsync(id);
        Assert.Equal(("a", RunState.Running), (row.Worker, row.State));
        Assert.NotNull(row.StartedAt);
        Assert.False(await db.TryAcquireAsync(id, "b", Lease, default));
        Assert.True(await db.TryAcquireAsync(id, "a", Lease, default)); // the holder again: renewed
        Assert.True(await db.RenewAsync(id, "a", default));
        Assert.False(await db.RenewAsync(id, "b", default));
        Assert.False(await db.ReleaseAsync(id, "b", default));
        Assert.Equal("a", (await RowAsync(id)).Worker);
        Assert.True(await db.ReleaseAsync(id, "a", default));
        Assert.Null((await RowAsync(id)).Worker);
        Assert.True(await db.TryAcquireAsync(id, "b", Lease, default));
        Assert.False(await db.RenewAsync(id, "a", default)); // a lost it: its heartbeat says so
        Assert.Equal("b", (await RowAsync(id)).Worker);
    }

    [Fact]
    public async Task Of_many_concurrent_takers_exactly_one_gets_the_lease()
    {
        var id = await NewRunAsync();
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            await using var db = store.NewContext();
            return await db.TryAcquireAsync(id, $"w{i}", Lease, default);
        }));
        Assert.Equal(1, results.Count(r => r));
        Assert.Equal($"w{Array.IndexOf(results, true)}", (await RowAsync(id)).Worker);
    }

    [Fact]
    public async Task An_expired_lease_is_taken_over_and_a_live_one_is_not()
    {
        var expired = await NewRunAsync(RunState.Running, "dead", heartbeatAgo: TimeSpan.FromSeconds(31));
        var live = await NewRunAsync(RunState.Running, "alive", heartbeatAgo: TimeSpan.FromSeconds(25));
        await using var db = store.NewContext();
        Assert.True(await db.TryAcquireAsync(expired, "b", Lease, default));
        Assert.False(await db.TryAcquireAsync(live, "b", Lease, default));
        Assert.Equal("b", (await RowAsync(expired)).Worker);
        Assert.Equal("alive", (await RowAsync(live)).Worker);
        // The taker's heartbeat is the database's clock, fresh: the old holder cannot renew nor take it back.
        Assert.InRange((DateTimeOffset.UtcNow - (await RowAsync(expired)).HeartbeatAt!.Value).TotalSeconds, -5, 5);
        Assert.False(await db.RenewAsync(expired, "dead", default));
        Assert.False(await db.TryAcquireAsync(expired, "dead", Lease, default));
    }

    [Fact]
    public async Task A_finished_run_is_never_leased()
    {
        foreach (var state in new[] { RunState.Completed, RunState.Failed, RunState.Cancelled })
        {
            var id = await NewRunAsync(state);
            await using var db = store.NewContext();
            Assert.False(await db.TryAcquireAsync(id, "a", Lease, default));
            Assert.Equal(state, (await RowAsync(id)).State);
        }
    }

    [Fact]
    public async Task Stale_runs_are_found_and_one_sweeper_claims_each_re_send()
    {
        var stale = TimeSpan.FromSeconds(60);
        var vanished = await NewRunAsync(RunState.Running, "dead", heartbeatAgo: TimeSpan.FromSeconds(90), dispatchedAgo: TimeSpan.FromMinutes(10));
        var lostCommand = await NewRunAsync(RunState.Queued, dispatchedAgo: TimeSpan.FromSeconds(90));
        var fresh = await NewRunAsync(RunState.Running, "alive", heartbeatAgo: TimeSpan.FromSeconds(5), dispatchedAgo: TimeSpan.FromMinutes(10));
        var justResent = await NewRunAsync(RunState.Running, null, heartbeatAgo: TimeSpan.FromSeconds(90), dispatchedAgo: TimeSpan.FromSeconds(10));
        var neverSent = await NewRunAsync(RunState.Queued); // the Ingest dispatch sweeper's
        var done = await NewRunAsync(RunState.Completed, heartbeatAgo: TimeSpan.FromMinutes(90), dispatchedAgo: TimeSpan.FromMinutes(90));

        await using var db = store.NewContext();
        var found = (await db.FindStaleAsync(stale, 1000, default)).ToDictionary(r => r.Id);
        Assert.Contains(vanished, found.Keys);
        Assert.Contains(lostCommand, found.Keys);
        foreach (var id in new[] { fresh, justResent, neverSent, done }) Assert.DoesNotContain(id, found.Keys);
        Assert.InRange(found[vanished].SilentSeconds, 85, 120);
        Assert.Equal(("dead", "Running", "Distill"), (found[vanished].Worker, found[vanished].State, found[vanished].Kind));

        var claims = await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            await using var other = store.NewContext();
            return await other.ClaimResendAsync(vanished, stale, default);
        }));
        Assert.Equal(1, claims.Count(c => c));
        var row = await RowAsync(vanished);
        Assert.Null(row.Worker); // the vanished holder is cleared: the re-sent command takes the lease at once
        Assert.InRange((DateTimeOffset.UtcNow - row.DispatchedAt!.Value).TotalSeconds, -5, 5);
        Assert.DoesNotContain(vanished, (await db.FindStaleAsync(stale, 1000, default)).Select(r => r.Id)); // not again within the stale time
        Assert.False(await db.ClaimResendAsync(fresh, stale, default));
    }
}
