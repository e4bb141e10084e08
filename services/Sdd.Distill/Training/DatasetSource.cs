using System.Collections.Concurrent;
using Sdd.Formats.Datasets;
using Sdd.Distill.Runs;
using Sdd.Ml.Data;

namespace Sdd.Distill.Training;

/// <summary>Reads a registered data set (labels.csv + images/ under a prefix) from object storage.</summary>
public sealed class DatasetSource(ObjectStore store, IDbContextFactory<SddDbContext> databases)
{
    /// <summary>The largest image of a data set read (a larger one fails the run with its name).</summary>
    public const long MaxImageBytes = 64L << 20;
    /// <summary>The most bytes of images one distillation holds in memory.</summary>
    public const long MaxDatasetBytes = 4L << 30;

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
        try { csvBytes = await store.GetBytesAsync(bucket, KeyLayout.DatasetLabels(prefix), LabelsCsv.MaxBytes, ct); }
        catch (FileNotFoundException) { throw new RunFailure($"Data set '{name}': {source} is missing."); }
        catch (ObjectTooLargeException) { throw new RunFailure($"Data set '{name}': {source} is larger than {LabelsCsv.MaxBytes >> 20} MiB."); }
        // Fetch every image concurrently first; the parser (the API's, so what it accepted reads here) then reads from memory.
        var names = LabeledImageSet.Parse(csvBytes, source, _ => []).Rows.Select(r => r.Name).ToList();
        var images = new ConcurrentDictionary<string, byte[]>();
        long total = 0;
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct }, async (n, token) =>
        {
            byte[] bytes;
            try { bytes = await store.GetBytesAsync(bucket, KeyLayout.DatasetImages(prefix) + n, MaxImageBytes, token); }
            catch (FileNotFoundException) { throw new DatasetException($"{source}: image '{n}' is listed but s3://{bucket}/{prefix}images/{n} is missing."); }
            catch (ObjectTooLargeException) { throw new DatasetException($"{source}: image '{n}' is larger than {MaxImageBytes >> 20} MiB."); }
            // What the worker holds at once is bounded too, not only each image.
            if (Interlocked.Add(ref total, bytes.LongLength) > MaxDatasetBytes)
                throw new DatasetException($"{source}: its images come to more than {MaxDatasetBytes >> 30} GiB; a distillation reads at most that much.");
            images[n] = bytes;
        });
        var set = LabeledImageSet.Parse(csvBytes, source, n => images[n]);
        var description = prefix + LoadedDataset.DescriptionFile;
        bool synthetic = await store.StatAsync(bucket, description, ct) is not null
                         && LoadedDataset.IsSynthetic(await store.GetBytesAsync(bucket, description, ObjectStore.MaxSmallObjectBytes, ct));
        return new LoadedDataset(name, set, synthetic);
    }
}
