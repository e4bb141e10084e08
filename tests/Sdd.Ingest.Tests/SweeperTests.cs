namespace Sdd.Ingest.Tests;

/// <summary>
/// The dispatch sweeper on a virtual host of its own (no edit worker): a lost batch is sent again only when the edit
/// queue is idle, each such send is an attempt, and an item out of attempts fails for good so its job finishes.
/// </summary>
public class SweeperTests(IngestHost host) : IClassFixture<IngestHost>
{
    [Fact]
    public async Task A_lost_item_is_resent_only_while_the_queue_is_idle_and_given_up_after_its_attempts()
    {
        await using var factory = host.NewFactory(new() { ["SDD_REDISPATCH_AFTER_SECONDS"] = "8", ["SDD_ITEM_ATTEMPTS"] = "3" });
        _ = factory.Server;
        var (owner, key) = await host.NewKeyAsync();
        var attribute = await host.ReadyAttributeAsync(owner);
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        using var form = new MultipartFormDataContent { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "a.png" } };
        var jobId = (await (await client.PostAsync("/v1/jobs", form)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetGuid();
        Assert.Single(await host.MessagesAsync("edit", "jobId", jobId)); // sent once, taken off the queue: the batch is now "lost"

        async Task LoseAsync(int attempts)
        {
            await using var db = host.Db();
            await db.JobItems.Where(i => i.JobId == jobId).ExecuteUpdateAsync(s => s
                .SetProperty(i => i.DispatchedAt, DateTimeOffset.UtcNow.AddHours(-1)).SetProperty(i => i.Attempts, attempts));
        }
        async Task QueuedAsync(int atLeast)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (DateTime.UtcNow < deadline)
            {
                var queue = await host.Management.GetFromJsonAsync<JsonElement>($"api/queues/{Uri.EscapeDataString(host.VirtualHost)}/edit");
                if (queue.TryGetProperty("messages", out var m) && m.GetInt64() >= atLeast) return;
                await Task.Delay(500);
            }
            Assert.Fail($"the management API never counted {atLeast} message(s) in the edit queue");
        }
        async Task<JobItem> ItemAsync()
        {
            await using var db = host.Db();
            return await db.JobItems.AsNoTracking().SingleAsync(i => i.JobId == jobId);
        }

        // The queue is idle: the lost item is sent again, and that send is its second attempt.
        await LoseAsync(0);
        Assert.Equal(2, (await host.MessagesAsync("edit", "jobId", jobId, atLeast: 2, timeout: TimeSpan.FromSeconds(30))).Count);
        Assert.Equal(1, (await ItemAsync()).Attempts);

        // A message waits in the queue (a backlog, or the item's own batch): nothing stale is sent again, however old.
        using (var second = new MultipartFormDataContent { { new StringContent(attribute), "attribute" }, { new ByteArrayContent(TestData.Png()), "files", "b.png" } })
            Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", second)).StatusCode); // its batch stays queued
        await QueuedAsync(atLeast: 1); // the management API counts queued messages every 5 s: wait until it sees this one
        await LoseAsync(1);
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Equal(1, (await ItemAsync()).Attempts);
        Assert.Equal(2, (await host.MessagesAsync("edit", "jobId", jobId, atLeast: 3, timeout: TimeSpan.FromSeconds(1))).Count);

        // Idle again, and the item has had its attempts: it fails for good with the reason, and its job is finished.
        await host.MessagesAsync("edit", "jobId", Guid.Empty, atLeast: 1, timeout: TimeSpan.FromSeconds(1)); // drains the queue
        await LoseAsync(2);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        JobItem item;
        while ((item = await ItemAsync()).State == ItemState.Pending && DateTime.UtcNow < deadline) await Task.Delay(500);
        Assert.Equal(ItemState.Failed, item.State);
        Assert.StartsWith("gave up after 3 attempts", item.Error);
        var status = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}");
        Assert.Equal("failed", status.GetProperty("state").GetString()); // finished, and nothing of it succeeded
        await using (var db = host.Db()) Assert.Equal(JobState.Failed, (await db.EditJobs.SingleAsync(j => j.Id == jobId)).State);
    }
}
