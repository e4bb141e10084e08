using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Sdd.Distill.Runs;
using Sdd.Ml.Data;

namespace Sdd.Distill.Training;

/// <summary>A labeled data set read from object storage; Synthetic when it is the procedural portrait domain (counterfactuals exist).</summary>
public sealed record LoadedDataset(string Name, LabeledImageSet Set, bool Synthetic);

/// <summary>Reads a registered data set (labels.csv + images/ under a prefix) from object storage.</summary>
public sealed class DatasetSource(ObjectStore store, IDbContextFactory<SddDbContext> databases)
{
    /// <summary>Bucket and prefix of a data set (null bucket: the datasets bucket; null prefix: &lt;name&gt;/).</summary>
    public async Task<(string Name, string Bucket, string Prefix)> LocateAsync(Guid datasetId, CancellationToken ct)
    {
        await using var db = await databases.CreateDbContextAsync(ct);
        var row = await db.Datasets.AsNoTracking().SingleOrDefaultAsync(d => d.Id == datasetId, ct) ?? throw new RunFailure($"Data set {datasetId} does not exist.");
        var bucket = row.Bucket is { Length: > 0 } b ? b : store.DatasetsBucket;
        var prefix = row.Prefix ?? row.Name + "/";
        if (prefix.Length > 0 && !prefix.EndsWith('/')) prefix += "/";
        return (row.Name, bucket, prefix);
    }

    public async Task<LoadedDataset> LoadAsync(Guid datasetId, CancellationToken ct)
    {
        var (name, bucket, prefix) = await LocateAsync(datasetId, ct);
        var source = $"s3://{bucket}/{prefix}labels.csv";
        byte[] csvBytes;
        try { csvBytes = await store.GetBytesAsync(bucket, KeyLayout.DatasetLabels(prefix), ct); }
        catch (FileNotFoundException) { throw new RunFailure($"Data set '{name}': {source} is missing."); }
        var csv = Encoding.UTF8.GetString(csvBytes);
        // Fetch every image concurrently first; the parser then reads from memory.
        var names = LabeledImageSet.Parse(csv, source, _ => []).Rows.Select(r => r.Name).ToList();
        var images = new ConcurrentDictionary<string, byte[]>();
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct }, async (n, token) =>
        {
            try { images[n] = await store.GetBytesAsync(bucket, KeyLayout.DatasetImages(prefix) + n, token); }
            catch (FileNotFoundException) { throw new DatasetException($"{source}: image '{n}' is listed but s3://{bucket}/{prefix}images/{n} is missing."); }
        });
        var set = LabeledImageSet.Parse(csv, source, n => images[n]);
        bool synthetic = false;
        if (await store.StatAsync(bucket, prefix + "dataset.json", ct) is not null)
        {
            try
            {
                using var doc = JsonDocument.Parse(await store.GetBytesAsync(bucket, prefix + "dataset.json", ct));
                synthetic = doc.RootElement.TryGetProperty("kind", out var kind) && kind.GetString() == "synthetic-portraits";
            }
            catch (JsonException) { }
        }
        return new LoadedDataset(name, set, synthetic);
    }
}
