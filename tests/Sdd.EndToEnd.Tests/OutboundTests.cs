namespace Sdd.EndToEnd.Tests;

/// <summary>Nothing leaves the machine: while the three services do their work, none of them reaches beyond loopback.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class OutboundTests(SddSystem system, ITestOutputHelper output)
{
    [Fact]
    public async Task No_service_opens_a_connection_beyond_this_machine()
    {
        // Real work first (an editor distilled, a job edited), and at least 20 s of watching since the services started.
        await system.SmilingEditorAsync();
        var job = await system.Api.Jobs.SubmitFilesAsync("smiling", SddSystem.Portraits(5, SddSystem.ImageSize, first: 900).ToUploads());
        await system.Api.WaitForCompletedAsync(job.JobId, TimeSpan.FromMinutes(2), () => system.Edit.Tail());
        var watched = DateTime.UtcNow - system.Outbound.Started;
        if (watched < TimeSpan.FromSeconds(20)) await Task.Delay(TimeSpan.FromSeconds(20) - watched);

        output.WriteLine($"watched {(DateTime.UtcNow - system.Outbound.Started).TotalSeconds:0} s, {system.Outbound.Samples} socket samples of 3 processes");
        Assert.True(system.Outbound.Samples > 50, "the sampler did not run");
        Assert.Empty(system.Outbound.Seen);
        foreach (var service in new[] { system.Ingest, system.Distill, system.Edit })
            Assert.DoesNotContain(File.ReadLines(service.LogFile), l => l.Contains("usage telemetry", StringComparison.OrdinalIgnoreCase));
    }
}
