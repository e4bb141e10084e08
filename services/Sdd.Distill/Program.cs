using MassTransit;
using Sdd.Distill;
using Sdd.Distill.Components;
using Sdd.Distill.Runs;
using Sdd.Distill.Training;
using Sdd.Messaging;
using Sdd.Ml.Torch;

// The distill worker: trains teachers and distils editors in checkpointed chunks from the "distill" queue.
var threads = TorchRuntime.ConfigureThreads();
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
var settings = SddSettings.From(builder.Configuration);
var options = DistillOptions.From(builder.Configuration);

builder.Services.AddSingleton(settings);
builder.Services.AddSingleton(options);
builder.Services.AddSingleton(_ => new ObjectStore(settings.S3));
builder.Services.AddPooledDbContextFactory<SddDbContext>(o => o.UseNpgsql(settings.Postgres.ConnectionString()));
builder.Services.AddSingleton<RunLedger>();
builder.Services.AddSingleton<CheckpointStore>();
builder.Services.AddSingleton<ChunkedRun>();
builder.Services.AddSingleton<DatasetSource>();
builder.Services.AddSingleton<ModelCache>();
builder.Services.AddSingleton<EditorRegistry>();
builder.Services.AddSingleton<EditorDistiller>();
builder.Services.AddSingleton<TeacherTraining>();
builder.Services.AddSddBus(settings, x => x.AddConsumersFromNamespaceContaining<DistillRunConsumer>());
builder.Services.AddHostedService<RunSweeper>();
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(Math.Max(30, options.ChunkSeconds + 30)));

var host = builder.Build();
var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sdd.Distill");
await Startup.PrepareAsync(settings, host.Services.GetRequiredService<ObjectStore>(), log);
Directory.CreateDirectory(options.WorkDir);
log.LogInformation("Distill worker {Worker}: device {Device}, {Threads} torch threads, chunks of {Chunk}, work dir {Dir}; run lease {Lease} s, transient errors retried for {Retry} min, stale runs re-sent after {Stale} s",
    RunLedger.WorkerName, TorchRuntime.Device, threads,
    options.ChunkSteps > 0 ? $"{options.ChunkSteps} steps" : $"{options.ChunkSeconds} s", options.WorkDir,
    options.Lease.TotalSeconds, options.RetryWindow.TotalMinutes, options.StaleAfter.TotalSeconds);
await host.RunAsync();
