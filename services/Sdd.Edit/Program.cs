using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Npgsql;
using Sdd.Edit;
using Sdd.Edit.Components;
using Sdd.Edit.Editing;
using Sdd.Messaging;
using Sdd.Ml.Torch;
using Sdd.ServiceDefaults;
using Prometheus;

// The edit worker: applies attribute editors to batches of a job's images from the "edit" queue.
var threads = TorchRuntime.ConfigureThreads();
var builder = WebApplication.CreateSlimBuilder(args);
// Only /metrics and /healthz/{live,ready}: loopback, a free port unless SDD_WORKER_URL names one (logged at start).
builder.WebHost.UseUrls(builder.Configuration["SDD_WORKER_URL"] is { Length: > 0 } url ? url : "http://127.0.0.1:0");
var settings = builder.AddSddDefaults("sdd-edit", x => x.AddConsumersFromNamespaceContaining<EditBatchConsumer>());
var options = EditOptions.From(builder.Configuration);

builder.Services.AddSingleton(options);
builder.Services.AddSingleton<JobLedger>();
builder.Services.AddSingleton<EditorCache>();
builder.Services.AddSingleton<BatchEditing>();

var host = builder.Build();
host.MapSddHealth();
host.MapMetrics("/metrics");
var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sdd.Edit");
await SddServiceDefaults.PrepareAsync(settings, host.Services.GetRequiredService<ObjectStore>(), log);
log.LogInformation("Edit worker {Worker}: device {Device}, {Threads} torch threads, {Concurrency} batches at once, {Cache} editors cached",
    $"{Environment.MachineName}:{Environment.ProcessId}", TorchRuntime.Device, threads, options.Concurrency, options.EditorCache);
await host.RunAsync();
