using MassTransit;
using Npgsql;
using Sdd.Edit;
using Sdd.Edit.Components;
using Sdd.Edit.Editing;
using Sdd.Messaging;
using Sdd.Ml.Torch;

// The edit worker: applies attribute editors to batches of a job's images from the "edit" queue.
var threads = TorchRuntime.ConfigureThreads();
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
var settings = SddSettings.From(builder.Configuration);
var options = EditOptions.From(builder.Configuration);

builder.Services.AddSingleton(settings);
builder.Services.AddSingleton(options);
builder.Services.AddSingleton(_ => new ObjectStore(settings.S3));
builder.Services.AddPooledDbContextFactory<SddDbContext>(o => o.UseNpgsql(settings.Postgres.ConnectionString()));
builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(settings.Postgres.ConnectionString()));
builder.Services.AddSingleton<JobLedger>();
builder.Services.AddSingleton<EditorCache>();
builder.Services.AddSingleton<BatchEditing>();
builder.Services.AddSddBus(settings, x => x.AddConsumersFromNamespaceContaining<EditBatchConsumer>());

var host = builder.Build();
var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sdd.Edit");
await Startup.PrepareAsync(settings, host.Services.GetRequiredService<ObjectStore>(), log);
log.LogInformation("Edit worker {Worker}: device {Device}, {Threads} torch threads, {Concurrency} batches at once, {Cache} editors cached",
    $"{Environment.MachineName}:{Environment.ProcessId}", TorchRuntime.Device, threads, options.Concurrency, options.EditorCache);
await host.RunAsync();
