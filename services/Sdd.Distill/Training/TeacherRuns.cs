using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sdd.Data.Entities;
using Sdd.Distill.Runs;
using Sdd.Ml.Diffusion;
using Sdd.Ml.Judging;
using Sdd.Ml.Torch;
using TeacherRow = Sdd.Data.Entities.Teacher;
using TeacherModel = Sdd.Ml.Diffusion.Teacher;

namespace Sdd.Distill.Training;

/// <summary>A teacher run's settings: the API's { steps, imageSize } plus optional architecture knobs.</summary>
public sealed record TeacherRequest(TeacherRow Teacher, int Steps, int ImageSize, int[] Channels, int BatchSize, int JudgeSteps, string Prefix);

/// <summary>
/// One chunk of teacher training (DDPM with condition dropout and EMA): resume from the checkpoint folder, train
/// until the chunk's budget, checkpoint and upload; after the last step, train the teacher's judge on the same data
/// set (held-out accuracy in its config) under judge/.
/// </summary>
public sealed class TeacherTraining(CheckpointStore checkpoints, DatasetSource datasets, IDbContextFactory<SddDbContext> databases,
    DistillOptions options, ILogger<TeacherTraining> log) : IDisposable
{
    private (Guid DatasetId, LoadedDataset Data, int Size, Tensor Images, Tensor Labels)? _data;

    public async Task<TeacherRequest> ResolveAsync(Guid teacherId, int totalSteps, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        var teacher = await db.Teachers.AsNoTracking().SingleOrDefaultAsync(t => t.Id == teacherId, ct)
                      ?? throw new RunFailure($"Teacher {teacherId} does not exist.");
        if (teacher.DatasetId is null) throw new RunFailure($"Teacher '{teacher.Name}' names no data set to train on.");
        var o = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
        using (var doc = JsonDocument.Parse(string.IsNullOrWhiteSpace(teacher.SettingsJson) ? "{}" : teacher.SettingsJson))
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
                foreach (var p in doc.RootElement.EnumerateObject()) o[p.Name.Replace("_", "")] = p.Value.Clone();
        int Int(string name, int fallback) => o.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : fallback;
        var defaults = new TeacherTrainingSettings();
        int size = Int("imageSize", teacher.Resolution > 0 ? teacher.Resolution : new UNetConfig().ImageSize);
        var channels = o.TryGetValue("channels", out var c) && c.ValueKind == JsonValueKind.Array
            ? c.EnumerateArray().Select(e => e.GetInt32()).ToArray()
            : o.TryGetValue("channels", out c) && c.ValueKind == JsonValueKind.String
                ? c.GetString()!.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray()
                : new UNetConfig().Channels;
        if (channels.Length == 0 || channels.Any(ch => ch < 8 || ch % 8 != 0)) throw new RunFailure($"Teacher channels must be multiples of 8, got {string.Join(",", channels)}.");
        if (size < 8 || size % (1 << (channels.Length - 1)) != 0) throw new RunFailure($"Teacher image size {size} must be divisible by {1 << (channels.Length - 1)}.");
        int steps = totalSteps > 0 ? totalSteps : Int("steps", defaults.Steps);
        return new TeacherRequest(teacher, steps, size, channels, Int("batch", defaults.BatchSize), Int("judgeSteps", options.JudgeSteps),
            KeyLayout.Teacher(teacher.IsBuiltin ? null : teacher.Owner, teacher.Id));
    }

    public async Task<ChunkResult> RunChunkAsync(Guid runId, TeacherRequest r, int chunk, ChunkProgress? from, RunLease lease, CancellationToken stopping)
    {
        var dir = Path.Combine(options.WorkDir, "runs", runId.ToString("N"));
        if (from is not null) await checkpoints.DownloadAsync(r.Prefix, from, dir, stopping);
        else
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            Directory.CreateDirectory(dir);
        }
        var (data, images, labels) = await DataAsync(r, stopping);
        await SetStatusAsync(r.Teacher.Id, TeacherStatus.Training, stopping);
        bool resume = File.Exists(Path.Combine(dir, "train", "state.json"));
        TeacherConfig config;
        if (resume)
        {
            var saved = TeacherModel.ReadConfig(dir);
            config = saved with { Training = (saved.Training ?? new TeacherTrainingSettings()) with { Steps = r.Steps } };
        }
        else
        {
            config = new TeacherConfig
            {
                AttributeNames = data.Set.Attributes.ToArray(),
                Unet = new UNetConfig { ImageSize = r.ImageSize, Channels = r.Channels, Attributes = data.Set.Attributes.Count, AttentionBelow = Math.Max(4, r.ImageSize / 4) },
                Dataset = data.Name,
                Training = new TeacherTrainingSettings { Steps = r.Steps, BatchSize = r.BatchSize, CheckpointEvery = int.MaxValue },
            };
        }

        var (step, finished) = await Task.Factory.StartNew(() =>
        {
            using var x = images.clone();
            using var y = labels.clone();
            using var trainer = new TeacherTrainer(dir, config, x, y, TorchRuntime.Device, resume);
            int start = trainer.Step;
            log.LogInformation("Run {RunId}: teacher chunk {Chunk} from step {Step} of {Total}", runId, chunk, start, r.Steps);
            var budget = new ChunkBudget(options, start, stopping, lease);
            while (trainer.Step < r.Steps && budget.Allows(trainer.Step))
            {
                var loss = trainer.TrainStep();
                if (!double.IsFinite(loss)) throw new RunFailure($"Teacher training diverged at step {trainer.Step} (loss {loss}).");
            }
            trainer.Checkpoint();
            log.LogInformation("Run {RunId}: teacher chunk {Chunk} trained steps {From}..{To} in {Seconds:0.0} s", runId, chunk, start, trainer.Step, budget.Elapsed.TotalSeconds);
            if (trainer.Step >= r.Steps) TrainJudge(runId, r, data, dir);
            return (trainer.Step, trainer.Step >= r.Steps);
        }, stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        lease.ThrowIfLost();
        var switched = await checkpoints.SwitchAsync(dir, r.Prefix, chunk, step, lease, CancellationToken.None);
        if (finished) await checkpoints.PublishAsync(dir, r.Prefix, CancellationToken.None); // config, weights and judge/ where the registry reads them
        return new ChunkResult(step, r.Steps, finished, CheckpointStore.GenerationKey(r.Prefix, switched));
    }

    /// <summary>The judge that scores this teacher's editors: trained on the training split, accuracy on the held-out one.</summary>
    private void TrainJudge(Guid runId, TeacherRequest r, LoadedDataset data, string dir)
    {
        var sw = Stopwatch.StartNew();
        var (train, held) = data.Set.Split();
        var (x, y) = data.Set.Load(r.ImageSize, train);
        var (hx, hy) = data.Set.Load(r.ImageSize, held.Length > 0 ? held : train);
        using (x) using (y) using (hx) using (hy)
        {
            var config = new JudgeConfig { AttributeNames = data.Set.Attributes.ToArray(), ImageSize = r.ImageSize, Dataset = data.Name };
            using var judge = Judge.Train(config, x, y, Math.Max(1, r.JudgeSteps), device: TorchRuntime.Device);
            var acc = judge.Accuracy(hx, hy);
            judge.Save(Path.Combine(dir, "judge"), judge.Config with
            {
                Accuracy = data.Set.Attributes.Select((a, i) => (a, i)).ToDictionary(p => p.a, p => Math.Round(acc[p.i], 4)),
            });
            log.LogInformation("Run {RunId}: judge trained {Steps} steps in {Seconds:0.0} s; held-out accuracy {Accuracy}", runId, r.JudgeSteps,
                sw.Elapsed.TotalSeconds, string.Join(", ", data.Set.Attributes.Select((a, i) => $"{a} {acc[i]:0.000}")));
        }
    }

    public async Task CompleteAsync(Guid runId, TeacherRequest r, int step, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var now = DateTimeOffset.UtcNow;
        await db.Teachers.Where(t => t.Id == r.Teacher.Id).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.Status, TeacherStatus.Ready)
            .SetProperty(t => t.WeightsKey, r.Prefix)
            .SetProperty(t => t.Resolution, r.ImageSize), ct);
        await db.TrainingRuns.Where(x => x.Id == runId).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.State, RunState.Completed)
            .SetProperty(x => x.Step, step)
            .SetProperty(x => x.CheckpointKey, r.Prefix)
            .SetProperty(x => x.HeartbeatAt, now)
            .SetProperty(x => x.FinishedAt, now)
            .SetProperty(x => x.Error, (string?)null), ct);
        await tx.CommitAsync(ct);
        Forget();
    }

    public Task FailAsync(Guid teacherId, CancellationToken ct) => SetStatusAsync(teacherId, TeacherStatus.Failed, ct);

    private async Task SetStatusAsync(Guid teacherId, TeacherStatus status, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        await db.Teachers.Where(t => t.Id == teacherId && t.Status != TeacherStatus.Ready).ExecuteUpdateAsync(s => s.SetProperty(t => t.Status, status), ct);
    }

    private async Task<(LoadedDataset Data, Tensor Images, Tensor Labels)> DataAsync(TeacherRequest r, CancellationToken ct)
    {
        var id = r.Teacher.DatasetId!.Value;
        if (_data is { } d && d.DatasetId == id && d.Size == r.ImageSize) return (d.Data, d.Images, d.Labels);
        Forget();
        var sw = Stopwatch.StartNew();
        var data = await datasets.LoadAsync(id, ct);
        var (x, y) = data.Set.Load(r.ImageSize);
        log.LogInformation("Teacher {Teacher}: loaded {Count} images of {Dataset} at {Size}px in {Seconds:0.0} s", r.Teacher.Name, data.Set.Rows.Count, data.Name, r.ImageSize, sw.Elapsed.TotalSeconds);
        _data = (id, data, r.ImageSize, x, y);
        return (data, x, y);
    }

    private void Forget()
    {
        if (_data is { } d) { d.Images.Dispose(); d.Labels.Dispose(); _data = null; }
    }

    public void Dispose() => Forget();
}
