using System.Collections.Concurrent;
using System.Diagnostics;
using Minio.Exceptions;
using Sdd.Data.Entities;
using Sdd.Ml.Data;
using Sdd.Ml.Editors;
using Sdd.Ml.Torch;

namespace Sdd.Edit.Editing;

/// <summary>
/// The image pipeline of one batch, bounded and with failure kept to its item:
/// <list type="number">
/// <item>each input's size is checked (SDD_MAX_INPUT_BYTES) before it is downloaded, its header (pixels, aspect ratio)
/// before it is decoded;</item>
/// <item>images of one size are edited in groups whose pixels fit the worker's memory budget (SDD_EDIT_MEMORY_MB), one
/// tensor batch each, decoded just before and freed just after;</item>
/// <item>inputs are decoded upright (EXIF orientation); outputs are encoded in the job's format, or each in its input's
/// (<see cref="OutputFormat.Keeping"/>), with the input's colour profile and metadata, and uploaded with that content type
/// to the owner's <see cref="KeyLayout.JobOutput"/>, a key that depends only on the item, so a redelivered batch
/// overwrites rather than duplicates.</item>
/// </list>
/// A problem of the input (missing, too large, not an image, too many pixels, extreme aspect ratio) fails its item with
/// the reason; any other error of an item (storage unreachable, out of memory...) leaves it pending for a retry of the batch.
/// </summary>
public sealed class BatchEditing(ObjectStore store, EditOptions options, EditMetrics metrics, ILogger<BatchEditing> log)
{
    /// <summary>
    /// Bytes of working memory one pixel of a forward pass costs at its peak (decoded image, float tensors in, out, the
    /// upsampled residual and their intermediates, the encoder's copy), as measured: a job of 32 12 MP JPEGs in groups
    /// of two raised the worker's peak RSS by 3.76 GB, about 157 bytes a pixel (./sdd check faults).
    /// </summary>
    public const long BytesPerPixel = 160;

    private sealed record Input(PendingItem Item, byte[] Bytes, int Width, int Height);

    private sealed record Output(byte[] Bytes, OutputFormat Format);

    /// <summary>
    /// One forward pass at a time in this process: the torch threads are the worker's, and a second pass would only halve
    /// the first one's. Batches overlap around it: while one batch edits, the next downloads and decodes and the one before
    /// encodes and uploads (SDD_EDIT_CONCURRENCY batches in flight, each within its share of the memory budget).
    /// </summary>
    private readonly SemaphoreSlim _forward = new(1, 1);

    /// <summary>Edits and stores a batch; <paramref name="format"/> null keeps each input's format.</summary>
    /// <remarks>
    /// An editor with a domain gate scores every decoded image first (<see cref="DomainGate"/>: microseconds an image); one
    /// outside its domain is skipped with the reason and no output, unless <paramref name="editOutside"/> (the job's
    /// <c>"outOfDomain": "edit"</c>), when it is edited and marked. Every outcome carries its score.
    /// </remarks>
    public async Task<IReadOnlyList<ItemOutcome>> RunAsync(Guid jobId, string owner, IReadOnlyList<PendingItem> items, Editor editor, OutputFormat? format, CancellationToken ct,
        bool editOutside = false)
    {
        Interlocked.Increment(ref _inFlight);
        try { return await EditAndStoreAsync(jobId, owner, items, editor, format, editOutside, ct); }
        finally
        {
            // The forward passes' tensors went back to glibc, which keeps them: hand the free pages back, so the worker's
            // RSS follows its working set over a long job instead of creeping up to the worst overlap of its batches.
            TrimNativeHeap(idle: Interlocked.Decrement(ref _inFlight) == 0);
        }
    }

    private async Task<IReadOnlyList<ItemOutcome>> EditAndStoreAsync(Guid jobId, string owner, IReadOnlyList<PendingItem> items, Editor editor, OutputFormat? format, bool editOutside, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var outcomes = new ConcurrentDictionary<Guid, ItemOutcome>();
        var io = new ParallelOptions { MaxDegreeOfParallelism = options.IoParallelism, CancellationToken = ct };

        // Download within the size limit and read each header; a bad input is its item's failure, nothing else's.
        var inputs = new ConcurrentBag<Input>();
        using (metrics.Time(EditStage.Download))
        {
            await Parallel.ForEachAsync(items, io, async (item, token) =>
            {
                try
                {
                    var bytes = await DownloadAsync(item, token);
                    var (w, h) = ImageCodec.ReadSize(bytes);
                    if ((long)w * h > options.MaxImagePixels)
                        throw new ImageDecodeException($"The image is {w}x{h} = {(long)w * h} pixels, above the limit of {options.MaxImagePixels} (SDD_MAX_IMAGE_PIXELS).");
                    if ((w != editor.Size || h != editor.Size) && ResidualMode.Refusal(w, h) is { } refusal) throw new ImageDecodeException(refusal);
                    inputs.Add(new Input(item, bytes, w, h));
                }
                catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
                {
                    outcomes[item.Id] = Outcome(item, e);
                }
            });
        }
        var downloaded = sw.Elapsed;

        // Edit: groups of one size, each within this batch's share of the memory budget, decoded just before their
        // forward pass and encoded just after it, outside the forward gate.
        long budget = Math.Max(1, options.MemoryMegabytes * (1L << 20) / BytesPerPixel / options.Concurrency);
        var encoded = new ConcurrentDictionary<Guid, Output>();
        var scores = new ConcurrentDictionary<Guid, (double Score, bool Outside)>();
        foreach (var part in inputs.OrderBy(i => i.Item.Id).GroupBy(i => (i.Width, i.Height)).SelectMany(g => Chunk(g.ToList(), (long)g.Key.Width * g.Key.Height, budget)))
        {
            try { await EditPartAsync(part, editor, format, editOutside, encoded, outcomes, scores, ct); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The whole group failed (out of memory, a bad editor...): a retry for each of its items, counted by the ledger.
                log.LogWarning(e, "Job {JobId}: a group of {Count} {Width}x{Height} images failed to edit", jobId, part.Count, part[0].Width, part[0].Height);
                foreach (var input in part) outcomes.TryAdd(input.Item.Id, ItemOutcome.Retry(input.Item.Id, $"Editing failed: {e.GetType().Name}: {e.Message}"));
            }
        }
        var edited = sw.Elapsed;

        using (metrics.Time(EditStage.Upload))
        {
            await Parallel.ForEachAsync(encoded, io, async (kv, token) =>
            {
                var key = KeyLayout.JobOutput(owner, jobId, kv.Key, kv.Value.Format);
                try
                {
                    await store.PutAsync(store.JobsBucket, key, kv.Value.Bytes, kv.Value.Format.ContentType, token);
                    var scored = scores.TryGetValue(kv.Key, out var sc) ? sc : ((double Score, bool Outside)?)null;
                    outcomes[kv.Key] = new ItemOutcome(kv.Key, ItemState.Done, key, null, scored?.Score, scored?.Outside ?? false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
                {
                    outcomes[kv.Key] = ItemOutcome.Retry(kv.Key, $"The output could not be stored: {e.GetType().Name}: {e.Message}");
                }
            });
        }
        log.LogDebug("Job {JobId}: batch of {Count} ({Done} edited, {Failed} failed, {Retry} to retry) in {Total:0.00} s (download {Download:0.00} s, decode+edit+encode {Edit:0.00} s, upload {Upload:0.00} s)",
            jobId, items.Count, outcomes.Values.Count(o => o.State == ItemState.Done), outcomes.Values.Count(o => o.State == ItemState.Failed),
            outcomes.Values.Count(o => o.State == ItemState.Pending), sw.Elapsed.TotalSeconds, downloaded.TotalSeconds,
            (edited - downloaded).TotalSeconds, (sw.Elapsed - edited).TotalSeconds);
        return items.Select(i => outcomes[i.Id]).ToList();
    }

    /// <summary>
    /// <see cref="TorchRuntime.TrimNativeHeap"/> (tens of milliseconds on a heap of a gigabyte) after a batch: always when
    /// it was the last batch in flight (the worker goes idle at its working set), else at most once every
    /// SDD_EDIT_TRIM_SECONDS (the pages handed back are faulted in again by the next batches).
    /// </summary>
    private void TrimNativeHeap(bool idle)
    {
        long now = Environment.TickCount64, last = Interlocked.Read(ref _trimmedAt);
        if (!idle && (options.TrimSeconds == 0 || now - last < options.TrimSeconds * 1000
                      || Interlocked.CompareExchange(ref _trimmedAt, now, last) != last)) return;
        Interlocked.Exchange(ref _trimmedAt, now);
        using (metrics.Time(EditStage.Trim)) TorchRuntime.TrimNativeHeap();
    }

    private long _trimmedAt = long.MinValue / 2;
    private int _inFlight;

    /// <summary>One GET per input (no stat first), refused beyond SDD_MAX_INPUT_BYTES before or while reading.</summary>
    private async Task<byte[]> DownloadAsync(PendingItem item, CancellationToken ct)
    {
        try
        {
            return await store.GetBytesAsync(item.SourceBucket, item.SourceKey, options.MaxInputBytes, ct);
        }
        catch (ObjectTooLargeException e)
        {
            throw new InputRefusedException($"The input is {e.Size} bytes or more; at most {options.MaxInputBytes} are accepted (SDD_MAX_INPUT_BYTES).");
        }
    }

    private async Task EditPartAsync(List<Input> part, Editor editor, OutputFormat? format, bool editOutside, ConcurrentDictionary<Guid, Output> encoded,
        ConcurrentDictionary<Guid, ItemOutcome> outcomes, ConcurrentDictionary<Guid, (double Score, bool Outside)> scores, CancellationToken ct)
    {
        var cpu = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = ct };
        var tensors = new Tensor?[part.Count];
        var kept = new KeptMetadata[part.Count];
        Tensor? result = null;
        try
        {
            using (metrics.Time(EditStage.Decode))
            {
                Parallel.For(0, part.Count, cpu, k =>
                {
                    try
                    {
                        using var image = ImageCodec.Decode(part[k].Bytes, out kept[k], options.MaxImagePixels);
                        tensors[k] = ImageCodec.ToTensor(image);
                    }
                    catch (ImageDecodeException e) { outcomes[part[k].Item.Id] = Outcome(part[k].Item, e); }
                });
            }
            var ok = Enumerable.Range(0, part.Count).Where(k => tensors[k] is not null).ToList();
            if (ok.Count == 0) return;
            if (editor.Domain is { } gate)
            {
                // The domain gate, on the decoded images at their own size (its features are pooled to 16 x 16 first).
                float[] s;
                using (metrics.Time(EditStage.Domain))
                using (var batch = stack(ok.Select(k => tensors[k]!).ToArray())) s = gate.Scores(batch);
                var inside = new List<int>();
                for (int j = 0; j < ok.Count; j++)
                {
                    var item = part[ok[j]].Item;
                    bool outside = !gate.Passes(s[j]);
                    scores[item.Id] = (Math.Round(s[j], 3), outside);
                    if (outside && !editOutside) outcomes[item.Id] = new ItemOutcome(item.Id, ItemState.Skipped, null, gate.Reason(s[j]), Math.Round(s[j], 3), true);
                    else inside.Add(ok[j]);
                }
                ok = inside;
                if (ok.Count == 0) return;
            }

            var waited = Stopwatch.StartNew();
            await _forward.WaitAsync(ct);
            metrics.GateWait(waited.Elapsed);
            try
            {
                using var scope = NewDisposeScope();
                using (metrics.Time(EditStage.Edit)) result = editor.Edit(stack(ok.Select(k => tensors[k]!).ToArray())).DetachFromDisposeScope();
            }
            finally { _forward.Release(); }

            // Encoding behind the gate: the next batch's forward pass runs meanwhile.
            using (metrics.Time(EditStage.Encode))
            {
                Parallel.For(0, ok.Count, cpu, j =>
                {
                    var k = ok[j];
                    var to = format ?? kept[k].Format;
                    using var image = result[j];
                    encoded[part[k].Item.Id] = new Output(ImageCodec.Encode(image, to, kept[k]), to);
                });
            }
        }
        finally
        {
            result?.Dispose();
            foreach (var t in tensors) t?.Dispose();
        }
    }

    /// <summary>Consecutive runs of at most MaxBatch images whose pixels fit the budget (an image larger than the budget goes alone).</summary>
    private IEnumerable<List<Input>> Chunk(List<Input> inputs, long pixelsEach, long budget)
    {
        int perPart = (int)Math.Clamp(budget / Math.Max(1, pixelsEach), 1, options.MaxBatch);
        return inputs.Chunk(perPart).Select(c => c.ToList());
    }

    /// <summary>A problem of the input fails its item for good; anything else is worth another attempt.</summary>
    private static ItemOutcome Outcome(PendingItem item, Exception e) => (e.InnerException is InputRefusedException inner ? inner : e) switch
    {
        FileNotFoundException => new ItemOutcome(item.Id, ItemState.Failed, null, $"The input s3://{item.SourceBucket}/{item.SourceKey} does not exist."),
        BucketNotFoundException => new ItemOutcome(item.Id, ItemState.Failed, null, $"The input's bucket '{item.SourceBucket}' does not exist."),
        ImageDecodeException or InputRefusedException => new ItemOutcome(item.Id, ItemState.Failed, null, (e.InnerException as InputRefusedException ?? e).Message),
        ArgumentException => new ItemOutcome(item.Id, ItemState.Failed, null, $"The input cannot be read: {e.Message}"),
        _ => ItemOutcome.Retry(item.Id, $"The input could not be read: {e.GetType().Name}: {e.Message}"),
    };
}

/// <summary>An input refused by a limit (its size): its item fails with the reason.</summary>
public sealed class InputRefusedException(string message) : Exception(message);
