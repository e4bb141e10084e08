using Microsoft.EntityFrameworkCore;
using Sdd.Data;
using Sdd.Data.Entities;

namespace Sdd.Infrastructure.Tests;

public sealed class MigratedDatabase : IAsyncLifetime
{
    public PostgresDatabase Database { get; } = new();
    public SddDbContext NewContext() => new(SddDb.Options(Database.ConnectionString));
    public Task InitializeAsync() => SddDb.MigrateAsync(Database.ConnectionString);
    public Task DisposeAsync() => Database.DropAsync();
}

/// <summary>Jobs, items, runs and editors in the stack's real PostgreSQL (one fresh database for the class).</summary>
public class JobPersistenceTests(MigratedDatabase store) : IClassFixture<MigratedDatabase>
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    [Fact]
    public async Task A_job_with_items_round_trips()
    {
        var attribute = new ImageAttribute { Id = Guid.NewGuid(), Name = Stack.UniqueName("smiling-"), CreatedAt = Now };
        var job = new EditJob
        {
            Id = Guid.NewGuid(), AttributeId = attribute.Id, Owner = "alice", State = JobState.Pending,
            ItemCount = 3, CreatedAt = Now,
            Items = Enumerable.Range(0, 3).Select(i => new JobItem
            {
                Id = Guid.NewGuid(), SourceKey = $"job/input/{i}.png", State = ItemState.Pending,
            }).ToList(),
        };
        await using (var db = store.NewContext())
        {
            db.Attributes.Add(attribute);
            db.EditJobs.Add(job);
            await db.SaveChangesAsync();
        }

        await using (var db = store.NewContext())
        {
            var loaded = await db.EditJobs.Include(j => j.Items).Include(j => j.Attribute)
                .SingleAsync(j => j.Id == job.Id && j.Owner == "alice");
            Assert.Equal(attribute.Name, loaded.Attribute!.Name);
            Assert.Equal(JobState.Pending, loaded.State);
            Assert.Equal(3, loaded.ItemCount);
            Assert.Equal(job.Items.Select(i => (i.Id, i.SourceKey)).OrderBy(x => x.Id),
                loaded.Items.Select(i => (i.Id, i.SourceKey)).OrderBy(x => x.Id));
            Assert.Equal(Now.ToUnixTimeMilliseconds(), loaded.CreatedAt.ToUnixTimeMilliseconds());
            Assert.NotEqual(0u, loaded.Version);
            Assert.Equal(3, await db.JobItems.CountAsync(i => i.JobId == job.Id && i.State == ItemState.Pending));
        }
    }

    [Fact]
    public async Task A_concurrent_update_of_an_item_is_detected()
    {
        var attribute = new ImageAttribute { Id = Guid.NewGuid(), Name = Stack.UniqueName("hair-"), CreatedAt = Now };
        var item = new JobItem { Id = Guid.NewGuid(), SourceKey = "j/input/a.png", State = ItemState.Pending };
        await using (var db = store.NewContext())
        {
            db.Attributes.Add(attribute);
            db.EditJobs.Add(new EditJob { Id = Guid.NewGuid(), AttributeId = attribute.Id, Owner = "bob", CreatedAt = Now, ItemCount = 1, Items = [item] });
            await db.SaveChangesAsync();
        }

        // Two workers read the same item; the first to write wins, the second is told.
        await using var first = store.NewContext();
        await using var second = store.NewContext();
        var a = await first.JobItems.SingleAsync(i => i.Id == item.Id);
        var b = await second.JobItems.SingleAsync(i => i.Id == item.Id);
        a.State = ItemState.Done; a.OutputKey = "j/output/a.png"; a.Attempts++;
        await first.SaveChangesAsync();
        b.State = ItemState.Failed; b.Error = "late"; b.Attempts++;

        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => second.SaveChangesAsync());

        await using var check = store.NewContext();
        var stored = await check.JobItems.SingleAsync(i => i.Id == item.Id);
        Assert.Equal(ItemState.Done, stored.State);
        Assert.Equal(1, stored.Attempts);
    }

    [Fact]
    public async Task A_concurrent_update_of_a_run_is_detected()
    {
        var run = new TrainingRun { Id = Guid.NewGuid(), Kind = RunKind.Teacher, State = RunState.Queued, Owner = "carol", TotalSteps = 100, CreatedAt = Now };
        await using (var db = store.NewContext()) { db.TrainingRuns.Add(run); await db.SaveChangesAsync(); }

        await using var first = store.NewContext();
        await using var second = store.NewContext();
        var a = await first.TrainingRuns.SingleAsync(r => r.Id == run.Id);
        var b = await second.TrainingRuns.SingleAsync(r => r.Id == run.Id);
        a.State = RunState.Running; a.Worker = "w1"; a.HeartbeatAt = DateTimeOffset.UtcNow;
        b.State = RunState.Running; b.Worker = "w2"; b.HeartbeatAt = DateTimeOffset.UtcNow;
        await first.SaveChangesAsync();

        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => second.SaveChangesAsync());
        await using var check = store.NewContext();
        Assert.Equal("w1", (await check.TrainingRuns.SingleAsync(r => r.Id == run.Id)).Worker);
    }

    [Fact]
    public async Task An_editor_version_keeps_its_timesteps_curve_and_only_one_is_active_per_attribute()
    {
        var attribute = new ImageAttribute { Id = Guid.NewGuid(), Name = Stack.UniqueName("glasses-"), CreatedAt = Now };
        var teacher = new Teacher { Id = Guid.NewGuid(), Name = Stack.UniqueName("teacher-"), Kind = "attribute-ddpm", Resolution = 32, CreatedAt = Now };
        EditorVersion Version(int v, bool active) => new()
        {
            Id = Guid.NewGuid(), AttributeId = attribute.Id, TeacherId = teacher.Id, Version = v, IsActive = active,
            Status = EditorStatus.Ready, SettingsJson = """{"cfg":30,"lambda":1}""", Threshold = 0.2,
            SelectedTimesteps = [300, 350, 400], MetricsJson = """{"editability":1.0}""", CreatedAt = Now,
            IndicatorPoints = [new() { T = 300, Entropy = 6.1, Norm = 12.5, Hqs = 0.4, EntropySpread = 0.1, NormSpread = 2, HqsSpread = 0.05 },
                               new() { T = 350, Entropy = 5.9, Norm = 14.0, Hqs = 0.6 }],
        };
        var v1 = Version(1, active: true);
        await using (var db = store.NewContext())
        {
            db.AddRange(attribute, teacher, v1);
            await db.SaveChangesAsync();
        }
        await using (var db = store.NewContext())
        {
            var loaded = await db.EditorVersions.Include(e => e.IndicatorPoints).SingleAsync(e => e.Id == v1.Id);
            Assert.Equal([300, 350, 400], loaded.SelectedTimesteps);
            Assert.Equal([0.4, 0.6], loaded.IndicatorPoints.OrderBy(p => p.T).Select(p => p.Hqs));
            Assert.Contains("\"cfg\"", loaded.SettingsJson);

            db.EditorVersions.Add(Version(2, active: true));
            var e = await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
            Assert.Contains("IX_editor_versions_active", e.InnerException!.Message);
        }
    }
}
