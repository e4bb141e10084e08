using System.Diagnostics;
using System.Text.Json;
using Sdd.Data.Entities;
using Sdd.Distill.Runs;
using Sdd.Ml.StableDiffusion;
using TeacherRow = Sdd.Data.Entities.Teacher;

namespace Sdd.Distill.Training;

/// <summary>
/// The worker's side of a Stable Diffusion import (a teacher run of one step): the files the API planned are listed again
/// and re-planned (what changed since is refused), downloaded, loaded strictly (<see cref="StableDiffusionModel.Load"/>:
/// every key, shape and dtype, pickles refused), and only then copied into the models bucket under the teacher's prefix;
/// the teacher becomes ready with its image size. A refused import leaves no object in the models bucket.
/// </summary>
public sealed class TeacherImports(ObjectStore store, IDbContextFactory<SddDbContext> databases, DistillOptions options, ILogger<TeacherImports> log)
{
    public static bool IsImport(TeacherRow teacher) => teacher.Kind == TeacherConfig.KindStableDiffusion;

    public static string Prefix(TeacherRow teacher) => KeyLayout.Teacher(teacher.IsBuiltin ? null : teacher.Owner, teacher.Id);

    /// <summary>What the import found: the teacher's image side and a summary for its settings.</summary>
    public sealed record Imported(int ImageSize, string SettingsJson);

    public async Task<Imported> RunAsync(Guid runId, TeacherRow teacher, RunLease lease, CancellationToken stopping)
    {
        StableDiffusionImportSource source;
        try { source = StableDiffusionImportSource.FromJson(teacher.SettingsJson); }
        catch (FormatException e) { throw new RunFailure($"Teacher '{teacher.Name}': {e.Message}", e); }
        var files = new List<(string, long)>();
        await foreach (var o in store.ListAsync(source.Bucket, source.Prefix, stopping))
        {
            files.Add((o.Key[source.Prefix.Length..], o.Size));
            if (files.Count > StableDiffusionLayout.MaxFiles) break;
        }
        var (plan, problem) = StableDiffusionLayout.Plan(files, source.Plan.Bytes);
        if (plan is null) throw new RunFailure($"s3://{source.Bucket}/{source.Prefix} changed since the import was accepted: {problem}");
        if (!plan.Files.SequenceEqual(source.Plan.Files)) throw new RunFailure($"s3://{source.Bucket}/{source.Prefix}: its files changed since the import was accepted.");

        var dir = Path.Combine(options.WorkDir, "imports", teacher.Id.ToString("N"));
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var sw = Stopwatch.StartNew();
        foreach (var file in plan.Files)
        {
            var path = Path.Combine(dir, file);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var f = File.Create(path);
            await store.GetAsync(source.Bucket, source.Prefix + file, f, stopping);
            lease.ThrowIfLost();
        }
        log.LogInformation("Run {RunId}: import of '{Teacher}': {Count} files, {Bytes} bytes downloaded in {Seconds:0.0} s",
            runId, teacher.Name, plan.Files.Count, plan.Bytes, sw.Elapsed.TotalSeconds);

        var loadPath = plan.SingleFile is { } single ? Path.Combine(dir, single) : dir;
        var summary = await Task.Factory.StartNew(() =>
        {
            using var model = StableDiffusionModel.Load(loadPath, plan.SingleFile is null ? null : dir);
            long Count(nn.Module m) => m.parameters().Sum(p => p.numel());
            return new
            {
                imageSize = model.UNet.Config.SampleSize * model.Vae.Config.Downsampling,
                parameters = new { unet = Count(model.UNet), vae = Count(model.Vae.Net), textEncoder = Count(model.TextEncoder) },
                prediction = model.Schedule.PredictionType,
                textWidth = model.TextEncoder.Config.HiddenSize,
                assumptions = model.Assumptions,
            };
        }, stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        log.LogInformation("Run {RunId}: '{Teacher}' loads strictly: UNet {UNet:N0}, VAE {Vae:N0}, text encoder {Text:N0} parameters, {Size} px, {Prediction}",
            runId, teacher.Name, summary.parameters.unet, summary.parameters.vae, summary.parameters.textEncoder, summary.imageSize, summary.prediction);

        lease.ThrowIfLost();
        var prefix = Prefix(teacher);
        foreach (var file in plan.Files)
        {
            await using var f = File.OpenRead(Path.Combine(dir, file));
            await store.PutAsync(store.ModelsBucket, prefix + file, f, file.EndsWith(".json", StringComparison.Ordinal) ? "application/json" : "application/octet-stream", stopping);
        }
        Directory.Delete(dir, recursive: true);
        var settings = JsonSerializer.Serialize(new { source.Bucket, source.Prefix, source.Plan, Model = summary }, new JsonSerializerOptions(JsonSerializerDefaults.Web));
        return new Imported(summary.imageSize, settings);
    }

    public async Task CompleteAsync(Guid runId, TeacherRow teacher, Imported imported, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var prefix = Prefix(teacher);
        await db.Teachers.Where(t => t.Id == teacher.Id).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.Status, TeacherStatus.Ready)
            .SetProperty(t => t.WeightsKey, prefix)
            .SetProperty(t => t.Resolution, imported.ImageSize)
            .SetProperty(t => t.SettingsJson, imported.SettingsJson), ct);
        if (!await db.CompleteAsync(runId, RunLedger.WorkerName, 1, prefix, ct))
            throw new LeaseLostException($"Run {runId} was cancelled or taken over before its teacher was ready");
        await tx.CommitAsync(ct);
    }

    /// <summary>A refused import: the teacher failed, and nothing it copied stays in the models bucket.</summary>
    public async Task FailAsync(TeacherRow teacher, CancellationToken ct)
    {
        var keys = new List<string>();
        await foreach (var o in store.ListAsync(store.ModelsBucket, Prefix(teacher), ct)) keys.Add(o.Key);
        if (keys.Count > 0) await store.DeleteManyAsync(store.ModelsBucket, keys, ct);
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.Teachers.Where(t => t.Id == teacher.Id && t.Status != TeacherStatus.Ready).ExecuteUpdateAsync(s => s.SetProperty(t => t.Status, TeacherStatus.Failed), ct);
    }
}
