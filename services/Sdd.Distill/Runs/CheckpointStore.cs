using System.Text.Json;

namespace Sdd.Distill.Runs;

/// <summary>What the last finished chunk of a run saved: its number and the step its checkpoint holds.</summary>
public sealed record ChunkProgress(int Chunk, int Step);

/// <summary>
/// A run's checkpoint folder mirrored to a prefix of the models bucket (teachers/&lt;id&gt;/ or
/// editors/&lt;attribute&gt;/&lt;version&gt;/, with the optimiser and RNG state under train/). The marker
/// train/progress.json is written last, so it only ever names a chunk whose files are all uploaded.
/// </summary>
public sealed class CheckpointStore(ObjectStore store)
{
    public const string ProgressFile = "train/progress.json";
    private const string StateFile = "train/state.json";

    public async Task<ChunkProgress?> ReadProgressAsync(string prefix, CancellationToken ct)
    {
        if (await store.StatAsync(store.ModelsBucket, prefix + ProgressFile, ct) is null) return null;
        var bytes = await store.GetBytesAsync(store.ModelsBucket, prefix + ProgressFile, ct);
        return JsonSerializer.Deserialize<ChunkProgress>(bytes, JsonSerializerOptions.Web);
    }

    /// <summary>Replaces <paramref name="dir"/> with the prefix's files (progress marker excluded).</summary>
    public async Task DownloadAsync(string prefix, string dir, CancellationToken ct)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var keys = new List<string>();
        await foreach (var o in store.ListAsync(store.ModelsBucket, prefix, ct))
            if (o.Key != prefix + ProgressFile) keys.Add(o.Key);
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (key, token) =>
        {
            var path = Path.Combine(dir, key[prefix.Length..]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var file = File.Create(path);
            await store.GetAsync(store.ModelsBucket, key, file, token);
        });
    }

    /// <summary>Uploads every file of the folder (the training state last), then the progress marker.</summary>
    public async Task UploadAsync(string dir, string prefix, ChunkProgress progress, CancellationToken ct)
    {
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dir, f).Replace('\\', '/'))
            .Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal) && f != ProgressFile)
            .ToList();
        await Parallel.ForEachAsync(files.Where(f => f != StateFile), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct },
            async (f, token) => await PutFileAsync(Path.Combine(dir, f), prefix + f, token));
        if (files.Contains(StateFile)) await PutFileAsync(Path.Combine(dir, StateFile), prefix + StateFile, ct);
        await store.PutAsync(store.ModelsBucket, prefix + ProgressFile, JsonSerializer.SerializeToUtf8Bytes(progress, JsonSerializerOptions.Web), "application/json", ct);
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
