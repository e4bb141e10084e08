using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Prometheus;
using Sdd.Edit.Components;
using Sdd.Edit.Editing;
using Sdd.Ml.Torch;
using Sdd.ServiceDefaults;

namespace Sdd.Edit;

/// <summary>
/// The edit worker's host: applies attribute editors to batches of a job's images from the "edit" queue. Serves only
/// /metrics and /healthz/{live,ready}, on loopback, at a free port unless SDD_WORKER_URL names one (logged at start).
/// </summary>
public static class EditWorker
{
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.UseUrls(builder.Configuration["SDD_WORKER_URL"] is { Length: > 0 } url ? url : "http://127.0.0.1:0");
        builder.AddSddDefaults("sdd-edit", x => x.AddConsumersFromNamespaceContaining<EditBatchConsumer>());
        builder.Services.AddSingleton(EditOptions.From(builder.Configuration));
        builder.Services.AddSingleton(new EditMetrics());
        builder.Services.AddSingleton<JobLedger>();
        builder.Services.AddSingleton<EditorCache>();
        builder.Services.AddSingleton<BatchEditing>();
        // Editors need no teacher: an edit worker reports its device and memory only.
        builder.Services.AddWorkerReport($"{Environment.MachineName}:{Environment.ProcessId}", new WorkerCapability(
            Sdd.Data.Entities.WorkerReport.Edit, TorchRuntime.Device.ToString(), GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, []));

        var host = builder.Build();
        host.MapSddHealth();
        host.MapMetrics("/metrics");
        return host;
    }

    /// <summary>Migrates and checks the buckets (waiting for servers still starting), then starts taking batches.</summary>
    public static async Task StartAsync(WebApplication host, int threads, CancellationToken ct = default)
    {
        var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sdd.Edit");
        await SddServiceDefaults.PrepareAsync(host.Services.GetRequiredService<SddSettings>(), host.Services.GetRequiredService<ObjectStore>(), log, ct);
        var options = host.Services.GetRequiredService<EditOptions>();
        await host.StartAsync(ct);
        log.LogInformation("Edit worker {Worker} on {Urls}: device {Device}, {Threads} torch threads, {Concurrency} batches in flight, {Cache} editors cached",
            $"{Environment.MachineName}:{Environment.ProcessId}", string.Join(' ', host.Urls), TorchRuntime.Device, threads, options.Concurrency, options.EditorCache);
    }
}
