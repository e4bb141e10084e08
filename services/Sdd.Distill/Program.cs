using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Sdd.Distill;
using Sdd.Distill.Components;
using Sdd.Distill.Runs;
using Sdd.Distill.Training;
using Sdd.Messaging;
using Sdd.Ml.Torch;
using Sdd.ServiceDefaults;
using Prometheus;

// The distill worker: trains teachers and distils editors in checkpointed chunks from the "distill" queue.
var threads = TorchRuntime.ConfigureThreads();
var builder = WebApplication.CreateSlimBuilder(args);
// Only /metrics and /healthz/{live,ready}: loopback, a free port unless SDD_WORKER_URL names one (logged at start).
builder.WebHost.UseUrls(builder.Configuration["SDD_WORKER_URL"] is { Length: > 0 } url ? url : "http://127.0.0.1:0");
var settings = builder.AddSddDefaults("sdd-distill", x => x.AddConsumersFromNamespaceContaining<DistillRunConsumer>());
var options = DistillOptions.From(builder.Configuration);

builder.Services.AddSingleton(options);
builder.Services.AddSingleton<RunLedger>();
builder.Services.AddSingleton<CheckpointStore>();
builder.Services.AddSingleton<ChunkedRun>();
builder.Services.AddSingleton(new DistillMetrics());
builder.Services.AddSingleton<DatasetSource>();
builder.Services.AddSingleton<ModelCache>();
builder.Services.AddSingleton<EditorRegistry>();
builder.Services.AddSingleton<EditorDistiller>();
builder.Services.AddSingleton<TeacherRuns>();
builder.Services.AddSingleton<TeacherImports>();
builder.Services.AddHostedService<RunSweeper>();
builder.Services.AddWorkerReport(RunLedger.WorkerName, new WorkerCapability(Sdd.Data.Entities.WorkerReport.Distill, TorchRuntime.Device.ToString(),
    GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
    options.StableDiffusionMaxImageSize > 0 ? [TeacherConfig.KindAttributeDdpm, TeacherConfig.KindLatentDdpm, TeacherConfig.KindStableDiffusion]
        : [TeacherConfig.KindAttributeDdpm, TeacherConfig.KindLatentDdpm],
    options.StableDiffusionMaxImageSize));
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(Math.Max(30, options.ChunkSeconds + 30)));

var host = builder.Build();
host.MapSddHealth();
host.MapMetrics("/metrics");
var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sdd.Distill");
await SddServiceDefaults.PrepareAsync(settings, host.Services.GetRequiredService<ObjectStore>(), log);
Directory.CreateDirectory(options.WorkDir);
await host.StartAsync();
log.LogInformation("Distill worker {Worker} on {Urls}: device {Device}, {Threads} torch threads, chunks of {Chunk}, work dir {Dir}; run lease {Lease} s, transient errors retried for {Retry} min, stale runs re-sent after {Stale} s",
    RunLedger.WorkerName, string.Join(' ', host.Urls), TorchRuntime.Device, threads,
    options.ChunkSteps > 0 ? $"{options.ChunkSteps} steps" : $"{options.ChunkSeconds} s", options.WorkDir,
    options.Lease.TotalSeconds, options.RetryWindow.TotalMinutes, options.StaleAfter.TotalSeconds);
await host.WaitForShutdownAsync();
