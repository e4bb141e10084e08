using System.Text.Json;

namespace Sdd.Distill.Runs;

/// <summary>
/// What the last switched checkpoint of a run holds: its chunk, the step, and its generation folder relative to the
/// model's folder (<c>train/chunk-&lt;n&gt;-&lt;tag&gt;/</c>; null for a checkpoint of the older in-place layout).
/// </summary>
public sealed record ChunkProgress(int Chunk, int Step, string? Folder = null);

/// <summary>
/// A run's checkpoint folder mirrored to the models bucket under the model's folder (teachers/&lt;id&gt;/ or
/// editors/&lt;attribute&gt;/&lt;version&gt;/). Each chunk uploads its whole folder to a new generation
/// (<see cref="KeyLayout.CheckpointGeneration"/>), never over the current one; then the small marker
/// <see cref="KeyLayout.CheckpointMarker"/> is switched to name it (one PUT: the old or the new generation, never a mix);
/// only then are older generations deleted. A worker killed mid-upload leaves the marker on the previous, complete
/// generation. The finished model's files are published at the top of the model's folder, where the registry and the
/// edit workers read them.
/// </summary>
public sealed class CheckpointStore(ObjectStore store, ILogger<CheckpointStore> log)
{
    public async Task<ChunkProgress?> ReadProgressAsync(string prefix, CancellationToken ct)
    {
        var marker = KeyLayout.CheckpointMarker(prefix);
        if (await store.StatAsync(store.ModelsBucket, marker, ct) is null) return null;
        var bytes = await store.GetBytesAsync(store.ModelsBucket, marker, ObjectStore.MaxSmallObjectBytes, ct);
        return JsonSerializer.Deserialize<ChunkProgress>(bytes, JsonSerializerOptions.Web);
    }

    /// <summary>The models-bucket key of the generation a marker names (the model's folder for the older layout).</summary>
    public static string GenerationKey(string prefix, ChunkProgress progress) => prefix + (progress.Folder ?? "");

    /// <summary>Replaces <paramref name="dir"/> with the files of the generation <paramref name="progress"/> names.</summary>
    public async Task DownloadAsync(string prefix, ChunkProgress progress, string dir, CancellationToken ct)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var from = GenerationKey(prefix, progress);
        var marker = KeyLayout.CheckpointMarker(prefix);
        var keys = new List<string>();
        await foreach (var o in store.ListAsync(store.ModelsBucket, from, ct))
            if (o.Key != marker && (progress.Folder is not null || !KeyLayout.IsCheckpointGeneration(prefix, o.Key))) keys.Add(o.Key);
        // A generation that vanished (a late switch of a worker that had lost its lease deleting it) is an IOException,
        // retried, not a FileNotFoundException, which would fail the run for good.
        // A distillation whose automatic scale search spans chunks has probes but no training state yet.
        if (!keys.Contains(from + StateFile) && !keys.Contains(from + EditorDistillation.ProbesFile))
            throw new IOException($"The checkpoint s3://{store.ModelsBucket}/{from} that {marker} names has no {StateFile}");
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (key, token) =>
        {
            var path = Path.Combine(dir, key[from.Length..]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var file = File.Create(path);
            try { await store.GetAsync(store.ModelsBucket, key, file, token); }
            catch (FileNotFoundException e) { throw new IOException($"The checkpoint file s3://{store.ModelsBucket}/{key} vanished: {e.Message}", e); }
        });
    }

    private const string StateFile = "train/state.json";

    /// <summary>
    /// Uploads every file of the folder to a new generation of chunk <paramref name="chunk"/>, confirms the lease, switches
    /// the marker to it, then deletes the older generations. Returns the new progress.
    /// </summary>
    public async Task<ChunkProgress> SwitchAsync(string dir, string prefix, int chunk, int step, RunLease lease, CancellationToken ct)
    {
        var folder = KeyLayout.CheckpointGeneration(chunk, Guid.NewGuid().ToString("N")[..8]);
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dir, f).Replace('\\', '/'))
            .Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal) && !f.EndsWith(".cache", StringComparison.Ordinal)) // partial writes; local caches (a latent run's encoded set)
            .ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct },
            async (f, token) => await PutFileAsync(Path.Combine(dir, f), prefix + folder + f, token));

        var progress = new ChunkProgress(chunk, step, folder);
        await lease.ConfirmAsync(ct); // the switch is the holder's alone
        await store.PutAsync(store.ModelsBucket, KeyLayout.CheckpointMarker(prefix), JsonSerializer.SerializeToUtf8Bytes(progress, JsonSerializerOptions.Web), "application/json", ct);

        try
        {
            var marker = KeyLayout.CheckpointMarker(prefix);
            var stale = new List<string>();
            await foreach (var o in store.ListAsync(store.ModelsBucket, prefix + KeyLayout.CheckpointsFolder, ct))
                if (o.Key != marker && !o.Key.StartsWith(prefix + folder, StringComparison.Ordinal)) stale.Add(o.Key);
            if (stale.Count > 0) await store.DeleteManyAsync(store.ModelsBucket, stale, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning("Older checkpoints under s3://{Bucket}/{Prefix}{Folder} not deleted ({Error}); the next switch deletes them", store.ModelsBucket, prefix, KeyLayout.CheckpointsFolder, e.Message);
        }
        return progress;
    }

    /// <summary>Publishes the finished model: every file of the folder outside train/ (config, weights, curve, grid, judge/) at the top of the model's folder.</summary>
    public async Task PublishAsync(string dir, string prefix, CancellationToken ct)
    {
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dir, f).Replace('\\', '/'))
            .Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal) && !f.StartsWith(KeyLayout.CheckpointsFolder, StringComparison.Ordinal))
            .ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct },
            async (f, token) => await PutFileAsync(Path.Combine(dir, f), prefix + f, token));
    }

    public async Task PutFileAsync(string path, string key, CancellationToken ct)
    {
        await using var file = File.OpenRead(path);
        await store.PutAsync(store.ModelsBucket, key, file, ContentType(path), ct);
    }

    private static string ContentType(string path) => Path.GetExtension(path) switch
    {
        ".json" => "application/json",
        ".png" => "image/png",
        _ => "application/octet-stream",
    };
}
