using System.Collections.Concurrent;
using System.Diagnostics;
using Sdd.Data.Entities;
using Sdd.Ml.Data;
using Sdd.Ml.Editors;

namespace Sdd.Edit.Editing;

/// <summary>
/// The image pipeline of one batch: download the inputs in parallel, decode them (an unreadable image fails its own
/// item with the reason), edit each group of one size in one tensor batch, encode PNG and upload to the owner's
/// <see cref="KeyLayout.JobOutput"/>. The output key depends only on the item, so a redelivered batch
/// overwrites rather than duplicates.
/// </summary>
public sealed class BatchEditing(ObjectStore store, EditOptions options, ILogger<BatchEditing> log)
{
    public async Task<IReadOnlyList<ItemOutcome>> RunAsync(Guid jobId, string owner, IReadOnlyList<PendingItem> items, Editor editor, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var outcomes = new ConcurrentDictionary<Guid, ItemOutcome>();
        var io = new ParallelOptions { MaxDegreeOfParallelism = options.IoParallelism, CancellationToken = ct };

        // Download and decode; a missing or unreadable input is that item's failure.
        var decoded = new ConcurrentDictionary<Guid, Tensor>();
        await Parallel.ForEachAsync(items, io, async (item, token) =>
        {
            byte[] bytes;
            try { bytes = await store.GetBytesAsync(item.SourceBucket, item.SourceKey, token); }
            catch (FileNotFoundException) { outcomes[item.Id] = Failed(item, $"The input s3://{item.SourceBucket}/{item.SourceKey} does not exist."); return; }
            try
            {
                using var image = ImageCodec.Decode(bytes, options.MaxImagePixels);
                decoded[item.Id] = ImageCodec.ToTensor(image);
            }
            catch (ImageDecodeException e) { outcomes[item.Id] = Failed(item, e.Message); }
        });
        var downloaded = sw.Elapsed;

        // Edit: one forward pass per size (split above MaxBatch), then encode.
        var encoded = new ConcurrentDictionary<Guid, byte[]>();
        try
        {
            var groups = items.Where(i => decoded.ContainsKey(i.Id)).GroupBy(i => (decoded[i.Id].shape[1], decoded[i.Id].shape[2]));
            foreach (var group in groups)
            foreach (var part in group.Chunk(options.MaxBatch))
            {
                using var scope = NewDisposeScope();
                var edited = editor.Edit(stack(part.Select(i => decoded[i.Id]).ToArray()));
                var rows = Enumerable.Range(0, part.Length).Select(k => edited[k]).ToArray();
                Parallel.For(0, part.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = ct },
                    k => encoded[part[k].Id] = ImageCodec.EncodePng(rows[k]));
            }
        }
        finally
        {
            foreach (var t in decoded.Values) t.Dispose();
        }
        var edited_ = sw.Elapsed;

        await Parallel.ForEachAsync(encoded, io, async (kv, token) =>
        {
            var key = KeyLayout.JobOutput(owner, jobId, kv.Key);
            await store.PutAsync(store.JobsBucket, key, kv.Value, "image/png", token);
            outcomes[kv.Key] = new ItemOutcome(kv.Key, ItemState.Done, key, null);
        });
        log.LogInformation("Job {JobId}: batch of {Count} ({Done} edited, {Failed} failed) in {Total:0.00} s (download+decode {Download:0.00} s, edit+encode {Edit:0.00} s, upload {Upload:0.00} s)",
            jobId, items.Count, encoded.Count, items.Count - encoded.Count, sw.Elapsed.TotalSeconds, downloaded.TotalSeconds,
            (edited_ - downloaded).TotalSeconds, (sw.Elapsed - edited_).TotalSeconds);
        return items.Select(i => outcomes[i.Id]).ToList();
    }

    private static ItemOutcome Failed(PendingItem item, string reason) => new(item.Id, ItemState.Failed, null, reason);
}
